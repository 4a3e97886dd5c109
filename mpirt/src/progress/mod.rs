//! Progress: the one place that touches both the engine and the transports.
//! It pumps frames between them and decides how a waiting call waits.
//!
//! There is no background thread: calls make progress, as in MPICH and Open
//! MPI. A wait spins (polling without blocking) while this host's ranks fit
//! its cores, then yields, then blocks in the kernel. The engine lock is
//! never held while blocked: the poller has a lock of its own, and a thread
//! that finds it taken leaves blocking to its holder (which is woken
//! through [`mio::Waker`] or the doorbell when another thread changed the
//! state), so several threads of one rank can communicate at once. The
//! engine lock ([`lock`]) is biased to the thread that initialized: until
//! another thread calls, it locks and unlocks with plain loads and stores.
//!
//! Where it blocks depends on the links:
//! - TCP only: in `epoll` until a socket is ready (or `block` passes).
//! - shared memory only (the listener aside): on this rank's doorbell, a
//!   futex in its segment that peers ring after writing to its rings (see
//!   `transport::shm::doorbell`); the listening socket is looked at after
//!   each sleep, so a stranger waits at most `block`.
//! - both: in `epoll` for at most [`MIXED_BLOCK`], looking at the rings
//!   between sleeps: a shared-memory message waits at most that long for a
//!   rank that has slept through 2 ms of silence.
//!
//! While spinning, sockets are polled (a system call) every round only when
//! TCP links exist; with shared memory alone, once every
//! [`SOCKET_POLL_INTERVAL`], so a round costs a few cache-line reads.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use parking_lot::{Condvar, Mutex};

use self::lock::{BiasedGuard, BiasedMutex};

use crate::engine::{EagerEnvelope, Engine, Limits};
use crate::transport::shm::{Segment, ShmLink};
use crate::transport::tcp::{self, Admission, Stranger, TcpConnection};
use crate::transport::{Link, LinkError};
use crate::wire::handshake::Token as JobToken;

pub mod lock;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Tokens from here up name strangers (connections before their handshake).
const STRANGERS: usize = 1 << 40;
/// With TCP and shared-memory links, the longest a wait sleeps in `epoll`
/// before it looks at the rings.
pub const MIXED_BLOCK: Duration = Duration::from_millis(1);
/// With shared-memory links only, how often a spinning wait polls the
/// listening socket.
pub const SOCKET_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Whether this host has more of the job's ranks than cores for them.
pub fn oversubscribed(ranks_on_host: usize) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    ranks_on_host > cores
}

/// How long a waiting call spins, then yields, before it blocks.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    /// Poll without giving up the CPU for this long.
    pub spin: Duration,
    /// Then poll and yield the CPU for this long.
    pub yield_for: Duration,
    /// Then block in the kernel for at most this long at a time.
    pub block: Duration,
}

impl WaitPolicy {
    /// Spinning pays only while every rank of the host has a core: with more
    /// ranks than cores a spinning rank can hold a core a peer needs for a
    /// whole time slice.
    pub fn for_host(ranks_on_host: usize) -> WaitPolicy {
        let oversubscribed = oversubscribed(ranks_on_host);
        WaitPolicy {
            spin: if oversubscribed {
                Duration::ZERO
            } else {
                Duration::from_micros(300)
            },
            yield_for: if oversubscribed {
                Duration::from_micros(200)
            } else {
                Duration::from_millis(2)
            },
            block: Duration::from_millis(50),
        }
    }
}

/// The engine and the links, under one lock.
pub struct State {
    /// The protocol engine.
    pub engine: Engine,
    links: Vec<Link>,
    listener: Option<TcpListener>,
    /// Connections before their handshake, oldest first.
    strangers: Vec<(usize, Stranger)>,
    next_stranger: usize,
    registry: Registry,
    job_token: JobToken,
    rank: i32,
    size: i32,
    /// Links that are `Link::Tcp`.
    tcp_links: usize,
    /// Calls of [`Progress::with_state`] since one pumped.
    calls_since_pump: u32,
}

struct Poller {
    poll: Poll,
    events: Events,
}

/// A rank's progress engine: state, poller and waiting policy.
pub struct Progress {
    state: BiasedMutex<State>,
    poller: Mutex<Poller>,
    waker: Waker,
    /// A thread is blocked in the poller (so others must wake it).
    blocked: AtomicBool,
    /// Signalled after every pump by the thread that polled, for threads
    /// that found the poller busy.
    pumped: Condvar,
    pumped_lock: Mutex<()>,
    policy: WaitPolicy,
    /// This rank's shared-memory segment: its doorbell.
    segment: Option<Arc<Segment>>,
    /// When a due poll of the sockets last ran (any wait): with shared memory
    /// alone, a rank whose waits are all short still looks at its listener
    /// every [`SOCKET_POLL_INTERVAL`] (strangers are closed promptly).
    sockets_polled_at: Mutex<Instant>,
    /// Waits started; every [`WAITS_PER_SOCKET_CHECK`]th looks at the clock
    /// for a socket poll that is due, even if it ends in its first round.
    waits_started: AtomicU32,
}

/// See [`Progress::waits_started`].
const WAITS_PER_SOCKET_CHECK: u32 = 64;
/// See [`Progress::with_state`].
const PUMP_EVERY: u32 = 16;
/// While spinning, the clock is read (and the lock let go) once in this
/// many rounds: a quiet round is a few loads (tens of nanoseconds), and the
/// clock with an unlock and a lock costs about as much as one, which would
/// delay seeing a message that arrives meanwhile.
const ROUNDS_PER_CLOCK: u32 = 128;

/// Where this rank listens and whom it connects to at start.
pub struct Wiring {
    /// The bound listener (none for a singleton).
    pub listener: Option<TcpListener>,
    /// Connected streams to lower ranks, handshake already written.
    pub connected: Vec<(i32, std::net::TcpStream)>,
    /// The job's token.
    pub job_token: JobToken,
    /// Shared-memory links to peers on this host.
    pub shm_links: Vec<(i32, ShmLink)>,
    /// This rank's segment, when it has shared-memory links.
    pub segment: Option<Arc<Segment>>,
}

impl Progress {
    /// Sets up progress for `rank` of `size` with the connections made so far.
    pub fn new(
        rank: i32,
        size: i32,
        limits: Limits,
        wiring: Wiring,
        policy: WaitPolicy,
    ) -> io::Result<Progress> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let mut links: Vec<Link> = (0..size).map(|_| Link::Pending).collect();
        links[rank as usize] = Link::Loopback;
        let mut listener = wiring.listener;
        if let Some(l) = &mut listener {
            registry.register(l, LISTENER, Interest::READABLE)?;
        }
        for (peer, stream) in wiring.connected {
            stream.set_nonblocking(true)?;
            let mut stream = mio::net::TcpStream::from_std(stream);
            tcp::configure(&stream)?;
            registry.register(
                &mut stream,
                Token(peer as usize),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            links[peer as usize] =
                Link::Tcp(Box::new(TcpConnection::new(stream, limits.remote_buffer)));
        }
        let tcp_links = links.iter().filter(|l| matches!(l, Link::Tcp(_))).count();
        for (peer, link) in wiring.shm_links {
            links[peer as usize] = Link::Shm(Box::new(link));
        }
        let state = State {
            engine: Engine::new(rank, size, limits),
            links,
            listener,
            strangers: Vec::new(),
            next_stranger: STRANGERS,
            registry,
            job_token: wiring.job_token,
            rank,
            size,
            tcp_links,
            calls_since_pump: 0,
        };
        Ok(Progress {
            state: BiasedMutex::new(state),
            poller: Mutex::new(Poller {
                poll,
                events: Events::with_capacity(256),
            }),
            waker,
            blocked: AtomicBool::new(false),
            pumped: Condvar::new(),
            pumped_lock: Mutex::new(()),
            policy,
            segment: wiring.segment,
            sockets_polled_at: Mutex::new(Instant::now()),
            waits_started: AtomicU32::new(0),
        })
    }

    /// Runs `f` on the state, then pushes out whatever it queued. When it
    /// queued nothing (a small send written straight into a ring, a receive
    /// posted) the links are pumped only every `PUMP_EVERY`th call: a
    /// pump per immediate operation took a fifth of the time of a window
    /// of 8-byte sends, and the wait or test that must follow pumps anyway.
    /// Receives are not spared that pump: without it, a window of 64
    /// 8-byte receives was no faster (0.084 against 0.085 us per message),
    /// and an 8-rank allreduce of 1 MiB on 2 cores took 1.3 times as long
    /// (an announcement of a large message waited in the ring until the
    /// wait, and its clear-to-send with it).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock();
        let result = f(&mut state);
        state.calls_since_pump += 1;
        if state.engine.has_queued_frames() || state.calls_since_pump >= PUMP_EVERY {
            state.calls_since_pump = 0;
            state.pump();
        }
        drop(state);
        if self.blocked.load(Ordering::Acquire) {
            // Someone sleeps in the poller and may wait for what we did.
            self.wake_sleeper();
        }
        result
    }

    /// Wakes the thread of this rank that blocks, wherever it blocks.
    fn wake_sleeper(&self) {
        let _ = self.waker.wake();
        if let Some(segment) = &self.segment {
            segment.doorbell().ring();
        }
    }

    /// Polls sockets once without blocking, then runs `f` as
    /// [`with_state`](Self::with_state) does: what `test` and the immediate
    /// probes use, so that a loop of them sees new data.
    pub fn poll_once_then<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.poll_events(Duration::ZERO);
        self.with_state(|state| {
            state.pump();
            f(state)
        })
    }

    /// Makes progress until `done` says so; returns its value.
    pub fn wait_for<R>(&self, mut done: impl FnMut(&mut State) -> Option<R>) -> R {
        self.start_then_wait(|_| (), |state, ()| done(state))
    }

    /// Runs `start` on the state (posting operations), then makes progress
    /// until `done` says so, and returns its value. Posting, pushing out
    /// and the spinning that follows share one hold of the lock: once the
    /// rank calls from more than one thread (see [`lock`]), a lock or
    /// unlock is an atomic read-modify-write, which waits until this core's
    /// writes into a peer's ring have reached the peer's cache, and a
    /// blocking send or exchange would otherwise pay that transfer several
    /// times (an 8-byte exchange over shared memory took 0.25 us against a
    /// one-way latency of 0.14). Other threads of the rank get the lock
    /// every `ROUNDS_PER_CLOCK` rounds, or at once when one has parked.
    pub fn start_then_wait<T, R>(
        &self,
        start: impl FnOnce(&mut State) -> T,
        mut done: impl FnMut(&mut State, &T) -> Option<R>,
    ) -> R {
        // A plain load and store, not a read-modify-write (see above): a
        // count lost to a race between threads only delays a socket poll.
        let waits = self.waits_started.load(Ordering::Relaxed);
        self.waits_started
            .store(waits.wrapping_add(1), Ordering::Relaxed);
        if waits.is_multiple_of(WAITS_PER_SOCKET_CHECK) {
            self.poll_sockets_if_due(Instant::now());
        }
        // Read lazily: most waits end in their first rounds.
        let mut idle_since: Option<Instant> = None;
        let mut moved_since_clock = false;
        let mut spinning = !self.policy.spin.is_zero();
        let mut round = 0u32;
        let mut state = self.state.lock();
        let started = start(&mut state);
        // Whether `done` has looked since `start`.
        let mut checked = false;
        // Done already and nothing queued (a send written straight into a
        // ring, a request that completed earlier): no pump, as `with_state`
        // would skip it. A receive that matched a synchronous message queued
        // its acknowledgement: that goes out first.
        if !state.engine.has_queued_frames() {
            if let Some(r) = done(&mut state, &started) {
                drop(state);
                if self.blocked.load(Ordering::Acquire) {
                    self.wake_sleeper();
                }
                return r;
            }
            checked = true;
        }
        let mut first = true;
        loop {
            // A quiet state (nothing to write, nothing arrived) needs no
            // pump, not even the first: what `start` queued makes it loud.
            //
            // No PAUSE between looks. With one, 8-byte ping-pong took 1.05
            // times as long where a cache line crosses between the cores
            // in 30 ns, and 0.95 times where it takes 160 ns (same runs);
            // a PAUSE only after the first 32 or 128 looks kept the loss
            // and not the gain.
            let moved = if spinning && state.quiet() {
                false
            } else {
                state.pump()
            };
            let sockets = state.tcp_links > 0;
            if first && self.blocked.load(Ordering::Acquire) {
                // Someone sleeps in the poller and may wait for what
                // `start` did.
                self.wake_sleeper();
            }
            // Requests complete when frames move, here or in another
            // thread; while spinning, the latter is looked for once in a
            // while. TCP links cannot tell whether they moved anything.
            let look = if first {
                !checked
            } else {
                round.is_multiple_of(ROUNDS_PER_CLOCK)
            };
            if look || moved || sockets || !spinning {
                if let Some(r) = done(&mut state, &started) {
                    return r;
                }
            }
            first = false;
            if moved {
                moved_since_clock = true;
                if self.blocked.load(Ordering::Relaxed) {
                    // What arrived may be another thread's.
                    self.wake_sleeper();
                }
            }
            round = round.wrapping_add(1);
            if spinning && !sockets && !round.is_multiple_of(ROUNDS_PER_CLOCK) {
                // Spinning happens only while every rank has a core. A
                // thread parked on the lock gets it now.
                BiasedGuard::bump(&mut state);
                continue;
            }
            // The clock, socket polls, yields and sleeps: without the lock.
            BiasedGuard::unlocked(&mut state, || {
                let now = Instant::now();
                if moved_since_clock {
                    idle_since = Some(now);
                    moved_since_clock = false;
                }
                let idle = now - *idle_since.get_or_insert(now);
                spinning = idle < self.policy.spin;
                if idle < self.policy.spin + self.policy.yield_for {
                    if !spinning {
                        std::thread::yield_now();
                    }
                    let polled = if sockets {
                        self.poll_events(Duration::ZERO)
                    } else {
                        self.poll_sockets_if_due(now)
                    };
                    if polled {
                        moved_since_clock = true;
                    }
                } else if self.block(sockets) {
                    moved_since_clock = true;
                }
            });
        }
    }

    /// Blocks until something may have happened (or the policy's `block`
    /// passes); returns whether something did.
    fn block(&self, sockets: bool) -> bool {
        match &self.segment {
            Some(segment) if !sockets => self.sleep_on_doorbell(segment),
            Some(_) => self.poll_events(self.policy.block.min(MIXED_BLOCK)),
            None => self.poll_events(self.policy.block),
        }
    }

    /// Sleeps on this rank's doorbell until a peer writes to its rings,
    /// another thread of the rank wakes it, or `block` passes.
    fn sleep_on_doorbell(&self, segment: &Segment) -> bool {
        let Some(poller) = self.poller.try_lock() else {
            // Another thread blocks for this rank; wait for it, briefly.
            let mut guard = self.pumped_lock.lock();
            self.pumped.wait_for(&mut guard, Duration::from_millis(1));
            return false;
        };
        let doorbell = segment.doorbell();
        let generation = doorbell.prepare_sleep();
        self.blocked.store(true, Ordering::Release);
        // Announced: a record written from now on rings the bell. Look once
        // more for one written before.
        let arrived = {
            let mut state = self.state.lock();
            let arrived = state.pump();
            state.publish_rings();
            arrived
        };
        let rung = !arrived && doorbell.sleep(generation, self.policy.block);
        self.blocked.store(false, Ordering::Release);
        doorbell.finish_sleep();
        drop(poller);
        if !arrived && !rung {
            // A quiet `block`: are the peers still there?
            self.state.lock().check_shm_peers();
        }
        self.pumped.notify_all();
        // The listener (strangers), without blocking.
        let sockets = self.poll_events(Duration::ZERO);
        arrived || rung || sockets
    }

    /// Polls sockets without blocking if none has been for
    /// [`SOCKET_POLL_INTERVAL`]; returns whether anything happened.
    fn poll_sockets_if_due(&self, now: Instant) -> bool {
        let mut polled_at = self.sockets_polled_at.lock();
        if now.saturating_duration_since(*polled_at) < SOCKET_POLL_INTERVAL {
            return false;
        }
        *polled_at = now;
        drop(polled_at);
        self.poll_events(Duration::ZERO)
    }

    /// Polls sockets for up to `timeout` and applies what happened. Returns
    /// whether anything did.
    fn poll_events(&self, timeout: Duration) -> bool {
        let Some(mut poller) = self.poller.try_lock() else {
            // Another thread polls; wait for it to pump, briefly.
            let mut guard = self.pumped_lock.lock();
            if !timeout.is_zero() {
                self.pumped.wait_for(&mut guard, Duration::from_millis(1));
            }
            return false;
        };
        let Poller { poll, events } = &mut *poller;
        let blocking = !timeout.is_zero();
        if blocking {
            self.blocked.store(true, Ordering::Release);
        }
        let result = poll.poll(events, Some(timeout));
        if blocking {
            self.blocked.store(false, Ordering::Release);
        }
        if result.is_err() || events.is_empty() {
            return false;
        }
        let mut state = self.state.lock();
        for event in events.iter() {
            state.apply_event(event);
        }
        drop(state);
        drop(poller);
        self.pumped.notify_all();
        true
    }

    /// The state, locked.
    pub fn lock(&self) -> BiasedGuard<'_, State> {
        self.state.lock()
    }
}

impl State {
    /// Whether a pump would do nothing: no frame queued, no TCP link (a
    /// socket cannot tell without a system call), and every shared-memory
    /// link quiet. A spinning wait asks this instead of pumping: a few
    /// loads per link against hundreds of instructions, so it notices an
    /// arriving message sooner.
    fn quiet(&self) -> bool {
        self.tcp_links == 0
            && !self.engine.has_queued_frames()
            && self.links.iter().all(|link| match link {
                Link::Shm(link) => link.quiet(),
                _ => true,
            })
    }

    /// Writes and reads every link that can. Returns whether a link that
    /// can tell (loopback, shared memory) moved anything.
    pub fn pump(&mut self) -> bool {
        let mut moved = false;
        for peer in 0..self.size {
            match self.links[peer as usize].exchange(peer, &mut self.engine) {
                Ok(m) => moved |= m,
                Err(e) => {
                    // Closing completes requests (with an error): waits
                    // must look.
                    self.close_link(peer, e);
                    moved = true;
                }
            }
        }
        moved
    }

    /// Writes a standard send of `bytes` to `peer` straight into its ring
    /// when nothing of ours waits ahead of it and credit allows: the send
    /// is then complete, with no frame queued for the link to pick up and
    /// nothing to look up once written. Returns whether it did; if not, the
    /// caller posts the send as usual.
    pub fn send_now(&mut self, peer: i32, context: u32, tag: i32, bytes: &[u8]) -> bool {
        let Link::Shm(link) = &mut self.links[peer as usize] else {
            return false;
        };
        let Some(slot) = link.reserve_eager(bytes.len()) else {
            return false;
        };
        if !self.engine.eager_now(peer, bytes.len()) {
            // The reserved room stays free: nothing was committed.
            return false;
        }
        let envelope = EagerEnvelope {
            context,
            tag,
            flags: 0,
            // Complete at once: no acknowledgement will name it.
            sender_request: 0,
        };
        link.commit_eager(slot, &envelope, bytes);
        true
    }

    /// Hands every consumed ring byte back to its writer.
    fn publish_rings(&mut self) {
        for link in &mut self.links {
            if let Link::Shm(link) = link {
                link.publish();
            }
        }
    }

    /// Closes the shared-memory links of peers whose process has exited:
    /// a normal end if they said `Fin` (read first), a loss otherwise.
    fn check_shm_peers(&mut self) {
        for peer in 0..self.size {
            let Link::Shm(link) = &mut self.links[peer as usize] else {
                continue;
            };
            let drained = link.receive(peer, &mut self.engine);
            let why = match drained {
                Err(e) => e,
                Ok(_) if !link.peer_gone() => continue,
                Ok(_) if self.engine.peer_finished(peer) => LinkError::Finished,
                Ok(_) => LinkError::Lost("its process exited".into()),
            };
            self.close_link(peer, why);
        }
    }

    fn close_link(&mut self, peer: i32, why: LinkError) {
        if let Link::Tcp(c) = &mut self.links[peer as usize] {
            let _ = self.registry.deregister(c.stream_mut());
            self.tcp_links -= 1;
        }
        self.links[peer as usize] = Link::Closed;
        match why {
            LinkError::Finished => self.engine.handle_peer_closed(peer),
            LinkError::Lost(reason) => {
                eprintln!(
                    "mpirt: rank {}: closed the connection to rank {peer}: {reason}",
                    self.rank
                );
                self.engine.handle_peer_lost(peer, &reason);
            }
        }
    }

    fn apply_event(&mut self, event: &mio::event::Event) {
        match event.token() {
            WAKER => {}
            LISTENER => self.accept_all(),
            Token(t) if t >= STRANGERS => self.admit(t),
            Token(peer) => {
                if let Some(Link::Tcp(c)) = self.links.get_mut(peer) {
                    c.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                    c.read_closed |= event.is_read_closed() || event.is_error();
                    c.writable |= event.is_writable() || event.is_write_closed();
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, address)) => {
                    if self.strangers.len() >= tcp::MAX_PENDING {
                        // Evict the oldest, not the newcomer: strangers that
                        // stall must not lock a late rank out.
                        let (_, mut oldest) = self.strangers.remove(0);
                        eprintln!("mpirt: rank {}: refused a connection from {}: more than {} unfinished handshakes, this one the oldest", self.rank, oldest.address, tcp::MAX_PENDING);
                        let _ = self.registry.deregister(&mut oldest.stream);
                    }
                    let token = self.next_stranger;
                    self.next_stranger += 1;
                    if self
                        .registry
                        .register(&mut stream, Token(token), Interest::READABLE)
                        .is_ok()
                    {
                        self.strangers.push((token, Stranger::new(stream, address)));
                        self.admit(token);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("mpirt: rank {}: accept failed: {e}", self.rank);
                    break;
                }
            }
        }
        // Strangers that stall are dropped when the next one knocks.
        let now = Instant::now();
        let rank = self.rank;
        let registry = &self.registry;
        self.strangers.retain_mut(|(_, s)| {
            let keep = !s.expired(now);
            if !keep {
                eprintln!(
                    "mpirt: rank {rank}: closed a connection from {}: no handshake within {:?}",
                    s.address,
                    tcp::HANDSHAKE_TIMEOUT
                );
                let _ = registry.deregister(&mut s.stream);
            }
            keep
        });
    }

    fn admit(&mut self, token: usize) {
        let Some(index) = self.strangers.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let verdict = self.strangers[index]
            .1
            .read_handshake(&self.job_token, self.size);
        let refuse = |rank: i32, s: &mut Stranger, registry: &Registry, why: &str| {
            eprintln!(
                "mpirt: rank {rank}: refused a connection from {}: {why}",
                s.address
            );
            let _ = registry.deregister(&mut s.stream);
        };
        match verdict {
            Admission::Waiting => {}
            Admission::Refused(why) => {
                let (_, mut s) = self.strangers.remove(index);
                refuse(self.rank, &mut s, &self.registry, &why);
            }
            Admission::Admitted(peer) => {
                let (_, mut s) = self.strangers.remove(index);
                // Only higher ranks connect to us, once each.
                if peer <= self.rank || !matches!(self.links[peer as usize], Link::Pending) {
                    refuse(
                        self.rank,
                        &mut s,
                        &self.registry,
                        &format!("rank {peer} may not connect here (again)"),
                    );
                    return;
                }
                let mut stream = s.stream;
                let registered = tcp::configure(&stream).and_then(|_| {
                    self.registry.reregister(
                        &mut stream,
                        Token(peer as usize),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                });
                match registered {
                    Ok(()) => {
                        let remote_buffer = self.engine.limits().remote_buffer;
                        self.links[peer as usize] =
                            Link::Tcp(Box::new(TcpConnection::new(stream, remote_buffer)));
                        self.tcp_links += 1;
                    }
                    Err(e) => eprintln!(
                        "mpirt: rank {}: could not set up the connection from rank {peer}: {e}",
                        self.rank
                    ),
                }
            }
        }
    }

    /// Whether every peer's link is up or closed (none pending).
    pub fn all_connected(&self) -> bool {
        !self.links.iter().any(|l| matches!(l, Link::Pending))
    }

    /// Closes every link (after finalize).
    pub fn close_all(&mut self) {
        for peer in 0..self.size {
            if let Link::Tcp(c) = &mut self.links[peer as usize] {
                let _ = self.registry.deregister(c.stream_mut());
            }
            self.links[peer as usize] = Link::Closed;
        }
        self.tcp_links = 0;
        if let Some(mut l) = self.listener.take() {
            let _ = self.registry.deregister(&mut l);
        }
    }

    /// The TCP address this rank listens on, if it listens.
    pub fn listen_address(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// This rank.
    pub fn rank(&self) -> i32 {
        self.rank
    }
}
