//! Start-up and shutdown (MPI 4.1 chapter 11): [`initialize`] wires this
//! rank to the others, and dropping the [`Universe`] finalizes.
//!
//! Start-up: read rank and size from the process manager, listen (on
//! loopback for a one-node job, else on the address
//! [`crate::bootstrap::net`] chooses), create this rank's shared-memory
//! segment, publish a business card through PMI (`put`, then a fence), and
//! read the others' cards. Peers on this rank's node are reached through
//! shared memory (their segments are mapped now), others by TCP. "On this
//! node" means the process manager's `PMI_process_mapping` says so (when it
//! publishes one) *and* the cards' node identities agree:
//! this rank connects to every lower rank (the fixed rule: the higher rank
//! connects), and higher ranks' connections are admitted as they arrive.
//! `MPIRT_TRANSPORT=tcp|shm|auto` forces a choice. A second fence tells
//! every rank that its peers have mapped its segment, which it then unlinks.
//!
//! Shutdown: wait for every send of this rank to complete, say `Fin` to each
//! peer, keep serving peers until each has said `Fin` too, then close. A rank
//! that returns from `main` early therefore still delivers what it sent and
//! still answers rendezvous requests for data its peers need.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;

use crate::bootstrap::{net, pmi, Bootstrap};
use crate::engine::{Limits, RequestId, Status as EngineStatus};
use crate::error::{Error, Operation};
use crate::progress::{Progress, WaitPolicy, Wiring};
use crate::topology::SimpleCommunicator;
use crate::transport::shm::{self, CopyPath, Segment, ShmLink, ShmSettings};
use crate::transport::tcp;
use crate::wire::handshake::{Handshake, Token, TOKEN_LEN};

/// How long a rank that lost a peer waits for the launcher to end the job
/// before it aborts the job itself.
const PEER_LOSS_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What a rank that panicked exits with (the code of a Rust panic).
const PANIC_EXIT_CODE: i32 = 101;

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The state of this rank's runtime, shared by every communicator.
pub(crate) struct Runtime {
    pub(crate) rank: i32,
    pub(crate) size: i32,
    pub(crate) progress: Progress,
    bootstrap: Mutex<Bootstrap>,
    finalized: AtomicBool,
    /// The attached buffer of buffered sends (MPI_Buffer_attach).
    pub(crate) attached: Mutex<crate::buffered::AttachedBuffer>,
    /// The world communicator's error handler, shared by every handle
    /// `Universe::world` gives out.
    pub(crate) world_error_handler: Arc<std::sync::atomic::AtomicU8>,
    /// How this rank reaches each peer, indexed by rank.
    links: Vec<LinkKind>,
}

/// How this rank reaches one peer ([`Universe::peer_links`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// The rank itself.
    SelfLink,
    /// Shared memory: the peer runs on this node.
    SharedMemory,
    /// A TCP connection.
    Tcp,
}

impl LinkKind {
    /// A short name: `self`, `shm` or `tcp`.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::SelfLink => "self",
            LinkKind::SharedMemory => "shm",
            LinkKind::Tcp => "tcp",
        }
    }
}

/// The MPI environment (rsmpi's `Universe`). Dropping it finalizes.
pub struct Universe {
    pub(crate) runtime: Arc<Runtime>,
}

/// How ranks reach each other (`MPIRT_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportChoice {
    /// Shared memory with peers of the same node, TCP with the others.
    Auto,
    /// TCP with every peer.
    Tcp,
    /// Shared memory with every peer: all must share this node.
    Shm,
}

/// What the environment variables set (`mpirun` flags set them too).
#[derive(Debug, Clone, Copy)]
struct Settings {
    limits: Limits,
    transport: TransportChoice,
    shm: ShmSettings,
}

fn parse_size(name: &str, text: &str) -> Result<usize, Error> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(Error::Bootstrap(format!(
                "{name}={text:?}: unknown unit (use bytes, K, M or G)"
            )))
        }
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| Error::Bootstrap(format!("{name}={text:?} is not a size")))
}

impl Settings {
    fn from_env() -> Result<Settings, Error> {
        let mut limits = Limits::default();
        if let Ok(v) = std::env::var("MPIRT_EAGER_LIMIT") {
            limits.eager_limit = parse_size("MPIRT_EAGER_LIMIT", &v)?;
        }
        if let Ok(v) = std::env::var("MPIRT_REMOTE_BUFFER") {
            limits.remote_buffer = parse_size("MPIRT_REMOTE_BUFFER", &v)?;
        }
        let minimum = limits.eager_limit + crate::wire::HEADER_LEN;
        if limits.remote_buffer < minimum {
            return Err(Error::Bootstrap(format!(
                "MPIRT_REMOTE_BUFFER ({}) must hold at least one eager message: eager limit + {} = {minimum} bytes",
                limits.remote_buffer,
                crate::wire::HEADER_LEN
            )));
        }
        let transport = match std::env::var("MPIRT_TRANSPORT").as_deref() {
            Err(_) | Ok("") | Ok("auto") => TransportChoice::Auto,
            Ok("tcp") => TransportChoice::Tcp,
            Ok("shm") => TransportChoice::Shm,
            Ok(other) => {
                return Err(Error::Bootstrap(format!(
                    "MPIRT_TRANSPORT={other:?}: use tcp, shm or auto"
                )))
            }
        };
        let copy = match std::env::var("MPIRT_SHM_COPY").as_deref() {
            Err(_) | Ok("") | Ok("auto") => CopyPath::Auto,
            Ok("cma") => CopyPath::Cma,
            Ok("pipeline") => CopyPath::Pipeline,
            Ok(other) => {
                return Err(Error::Bootstrap(format!(
                    "MPIRT_SHM_COPY={other:?}: use auto, cma or pipeline"
                )))
            }
        };
        let mut shm = ShmSettings {
            copy,
            ..ShmSettings::default()
        };
        if let Ok(v) = std::env::var("MPIRT_SHM_RING") {
            shm.ring_bytes = parse_size("MPIRT_SHM_RING", &v)?;
        }
        if let Ok(v) = std::env::var("MPIRT_SHM_CMA_THRESHOLD") {
            shm.cma_threshold = parse_size("MPIRT_SHM_CMA_THRESHOLD", &v)?;
        }
        if let Ok(v) = std::env::var("MPIRT_SHM_CHUNK") {
            shm.chunk = parse_size("MPIRT_SHM_CHUNK", &v)?.max(4096);
        }
        Ok(Settings {
            limits,
            transport,
            shm,
        })
    }
}

/// A rank's business card: how to reach it, published through PMI. About
/// 100 bytes before hex encoding (PMI values may hold 1024).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Card {
    node: String,
    address: SocketAddr,
    pid: u32,
    /// The shared-memory segment's name, when the rank offers one.
    shm: Option<String>,
}

impl Card {
    fn encode(&self) -> String {
        let mut plain = format!("node={};tcp={};pid={}", self.node, self.address, self.pid);
        if let Some(name) = &self.shm {
            plain += &format!(";shm={name}");
        }
        pmi::hex_encode(plain.as_bytes())
    }

    fn decode(text: &str) -> Option<Card> {
        let plain = String::from_utf8(pmi::hex_decode(text)?).ok()?;
        let mut node = None;
        let mut address = None;
        let mut pid = None;
        let mut shm = None;
        for field in plain.split(';') {
            match field.split_once('=')? {
                ("node", v) => node = Some(v.to_string()),
                ("tcp", v) => address = v.parse().ok(),
                ("pid", v) => pid = v.parse().ok(),
                ("shm", v) => shm = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Card {
            node: node?,
            address: address?,
            pid: pid?,
            shm,
        })
    }
}

/// Decodes a business card (hex, as published through PMI) and encodes it
/// again; `None` when `text` is not a card. For the fuzz targets and tests.
#[doc(hidden)]
pub fn card_round_trip(text: &str) -> Option<String> {
    Card::decode(text).map(|card| card.encode())
}

/// This host's identity: the same for every process of one machine that
/// shares its network, IPC and PID namespaces and its `/dev/shm` (so
/// loopback addresses, shared-memory segment names and the pids that
/// cross-memory attach needs mean the same to both); `MPIRT_NODE_ID`
/// overrides it.
///
/// `/dev/shm` is identified by its device and inode, not by the mount
/// namespace: `ip netns exec` gives every command its own mount namespace
/// (to remount `/sys`), while `/dev/shm` stays the same file system, so two
/// ranks started that way in one network namespace share memory.
fn node_identity() -> String {
    if let Ok(id) = std::env::var("MPIRT_NODE_ID") {
        return id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    }
    let mut hasher = DefaultHasher::new();
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .hash(&mut hasher);
    processor_name().hash(&mut hasher);
    for namespace in ["net", "ipc", "pid"] {
        std::fs::read_link(format!("/proc/self/ns/{namespace}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/dev/shm")
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn random_token() -> Result<Token, Error> {
    let mut token = [0u8; TOKEN_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut token))
        .map_err(|e| {
            Error::Bootstrap(format!("cannot read /dev/urandom for the job token: {e}"))
        })?;
    Ok(token)
}

impl Runtime {
    fn start() -> Result<Runtime, Error> {
        let settings = Settings::from_env()?;
        let mut bootstrap = Bootstrap::from_env()?;
        let (rank, size) = (bootstrap.rank(), bootstrap.size());
        let mut wiring = Wiring {
            listener: None,
            connected: Vec::new(),
            job_token: [0; TOKEN_LEN],
            shm_links: Vec::new(),
            segment: None,
        };
        let mut ranks_on_host = 1;
        let mut links = vec![LinkKind::SelfLink; size.max(1) as usize];
        if size > 1 {
            let mapping = bootstrap.process_mapping();
            let mapped_nodes = mapping.as_ref().map(|m| m.nodes_of(size as usize));
            let one_node = mapped_nodes
                .as_ref()
                .is_none_or(|nodes| nodes.iter().all(|n| *n == nodes[0]));
            let bind = net::rank_listen_address(one_node)?;
            let listener = tcp::listen(bind)
                .map_err(|e| Error::Bootstrap(format!("cannot listen on {bind}: {e}")))?;
            let address = listener.local_addr()?;
            let mut segment = match settings.transport {
                TransportChoice::Tcp => None,
                choice => {
                    let capacity = shm::segment::ring_capacity(
                        settings.shm.ring_bytes,
                        settings.limits.eager_limit,
                        size as usize,
                    );
                    match Segment::create(size as usize, capacity) {
                        Ok(segment) => Some(segment),
                        Err(e) if choice == TransportChoice::Auto => {
                            eprintln!("mpirt: rank {rank}: no shared memory ({e}); using TCP");
                            None
                        }
                        Err(e) => {
                            return Err(Error::Bootstrap(format!(
                                "MPIRT_TRANSPORT=shm: cannot create a shared-memory segment: {e}"
                            )))
                        }
                    }
                }
            };
            let me = Card {
                node: node_identity(),
                address,
                pid: std::process::id(),
                shm: segment.as_ref().map(|s| s.name().to_string()),
            };
            if rank == 0 {
                bootstrap.put("mpirt-token", &pmi::hex_encode(&random_token()?))?;
            }
            bootstrap.put(&format!("mpirt-card-{rank}"), &me.encode())?;
            bootstrap.fence()?;
            let token_text = bootstrap.get("mpirt-token")?;
            let token = pmi::hex_decode(&token_text)
                .and_then(|t| Token::try_from(t.as_slice()).ok())
                .ok_or_else(|| {
                    Error::Bootstrap("the job token published by rank 0 is malformed".into())
                })?;
            let mut cards = Vec::with_capacity(size as usize);
            for peer in 0..size {
                let text = bootstrap.get(&format!("mpirt-card-{peer}"))?;
                cards.push(Card::decode(&text).ok_or_else(|| {
                    Error::Bootstrap(format!("rank {peer}'s business card is malformed"))
                })?);
            }
            // On this node: the process map (if any) and the node identity agree.
            let same_node = |peer: usize, card: &Card| {
                card.node == me.node
                    && mapped_nodes
                        .as_ref()
                        .is_none_or(|nodes| nodes.get(peer) == nodes.get(rank as usize))
            };
            ranks_on_host = cards
                .iter()
                .enumerate()
                .filter(|(peer, c)| same_node(*peer, c))
                .count();
            if let Some(segment) = &segment {
                // Before this rank first sleeps, which is after start-up.
                segment
                    .doorbell()
                    .init(!crate::progress::oversubscribed(ranks_on_host));
            }
            if settings.transport == TransportChoice::Shm {
                if let Some((peer, card)) = cards
                    .iter()
                    .enumerate()
                    .find(|(peer, c)| !same_node(*peer, c) || c.shm.is_none())
                {
                    return Err(Error::Bootstrap(format!(
                        "MPIRT_TRANSPORT=shm, but rank {peer} (pid {}) is on another node or offers no shared memory; use auto or tcp for jobs across nodes",
                        card.pid
                    )));
                }
            }
            // Shared memory with a peer when both offer it on one node.
            let mine = segment.as_ref().map(|s| s.name().to_string());
            let shared = |peer: usize, card: &Card| {
                mine.is_some() && card.shm.is_some() && same_node(peer, card)
            };
            let mut peer_segments = Vec::new();
            for (peer, card) in cards.iter().enumerate() {
                if peer as i32 == rank {
                    continue;
                }
                if !shared(peer, card) {
                    links[peer] = LinkKind::Tcp;
                    continue;
                }
                links[peer] = LinkKind::SharedMemory;
                let name = card.shm.as_deref().unwrap_or_default();
                let theirs = Segment::open(name, size as usize).map_err(|e| {
                    Error::Bootstrap(format!(
                        "cannot map rank {peer}'s shared-memory segment {name}: {e}"
                    ))
                })?;
                peer_segments.push((peer, card.pid, theirs));
            }
            let handshake = Handshake { token, rank, size }.encode();
            for (peer, card) in cards.iter().enumerate().take(rank as usize) {
                if shared(peer, card) {
                    continue;
                }
                let connect = || -> std::io::Result<std::net::TcpStream> {
                    let mut stream = std::net::TcpStream::connect(card.address)?;
                    stream.write_all(&handshake)?;
                    Ok(stream)
                };
                let stream = connect().map_err(|e| Error::PeerLost {
                    peer: peer as i32,
                    reason: format!("cannot connect to {}: {e}", card.address),
                })?;
                wiring.connected.push((peer as i32, stream));
            }
            // Every rank has mapped the segments it needs: unlink ours, so
            // nothing stays in /dev/shm however the job ends.
            bootstrap.fence()?;
            if let Some(segment) = &mut segment {
                segment.unlink()?;
            }
            if let Some(segment) = segment.filter(|_| !peer_segments.is_empty()) {
                let segment = Arc::new(segment);
                for (peer, pid, theirs) in peer_segments {
                    let link = ShmLink::new(
                        rank as usize,
                        peer,
                        pid,
                        segment.clone(),
                        Arc::new(theirs),
                        settings.shm,
                        settings.limits.remote_buffer,
                    );
                    wiring.shm_links.push((peer as i32, link));
                }
                wiring.segment = Some(segment);
            }
            wiring.listener = Some(listener);
            wiring.job_token = token;
        }
        let progress = Progress::new(
            rank,
            size,
            settings.limits,
            wiring,
            WaitPolicy::for_host(ranks_on_host),
        )?;
        Ok(Runtime {
            rank,
            size,
            progress,
            bootstrap: Mutex::new(bootstrap),
            finalized: AtomicBool::new(false),
            attached: Mutex::new(Default::default()),
            world_error_handler: Default::default(),
            links,
        })
    }

    /// Waits for request `id` and returns its outcome.
    pub(crate) fn wait(&self, id: RequestId) -> Result<EngineStatus, Error> {
        self.progress
            .wait_for(|state| state.engine.take_outcome(id))
    }

    /// Fails if the universe is gone.
    pub(crate) fn check_live(&self) -> Result<(), Error> {
        if self.finalized.load(Ordering::Acquire) {
            Err(Error::Finalized)
        } else {
            Ok(())
        }
    }

    /// The one line that reports `error`: this rank, the operation with its
    /// peer or root, tag and sizes, and the error.
    pub(crate) fn describe(&self, operation: Operation<'_>, error: &Error) -> String {
        format!("mpirt: rank {}: {operation}: {error}", self.rank)
    }

    /// MPI's default error handler: print the error's one line and end the
    /// whole job.
    pub(crate) fn fatal(&self, operation: Operation<'_>, error: Error) -> ! {
        let message = self.describe(operation, &error);
        eprintln!("{message}");
        if matches!(error, Error::PeerLost { .. }) {
            // A lost peer has most likely died; its launcher will report the
            // death (the root cause) and end the job. Give it that moment
            // rather than blaming this rank with an abort of our own.
            std::thread::sleep(PEER_LOSS_GRACE);
        }
        self.abort(1, &message)
    }

    /// Ends the whole job with `code` (MPI_Abort).
    pub(crate) fn abort(&self, code: i32, message: &str) -> ! {
        let _ = std::io::stdout().flush();
        self.bootstrap.lock().abort(code, message);
        std::process::exit(code)
    }

    fn finalize(&self) {
        if self.finalized.swap(true, Ordering::AcqRel) {
            return;
        }
        self.progress
            .wait_for(|state| (state.engine.pending_sends() == 0).then_some(()));
        self.progress
            .with_state(|state| state.engine.start_finalize());
        self.progress
            .wait_for(|state| state.engine.finalize_done().then_some(()));
        self.progress.lock().close_all();
        if let Err(e) = self.bootstrap.lock().finalize() {
            eprintln!("mpirt: rank {}: finalize: {e}", self.rank);
        }
    }
}

/// Initializes mpirt (MPI_Init, MPI 4.1 §11.2.1). Returns `None` if it was
/// initialized before in this process. Ends the process with a message if
/// the process manager cannot be reached; [`try_initialize`] returns the
/// error instead.
pub fn initialize() -> Option<Universe> {
    match try_initialize() {
        Ok(universe) => Some(universe),
        Err(Error::Finalized) => None,
        Err(e) => {
            eprintln!("mpirt: initialize failed: {e}");
            std::process::exit(1)
        }
    }
}

/// [`initialize`], returning errors. Initializing twice gives
/// `Error::Finalized`.
pub fn try_initialize() -> Result<Universe, Error> {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return Err(Error::Finalized);
    }
    let _ = start_time();
    Ok(Universe {
        runtime: Arc::new(Runtime::start()?),
    })
}

impl Universe {
    /// The communicator of every rank of the job (MPI_COMM_WORLD).
    pub fn world(&self) -> SimpleCommunicator {
        SimpleCommunicator::world(self.runtime.clone())
    }
}

impl Universe {
    /// The TCP address this rank accepts its peers' connections on (none in
    /// a job of one rank). For diagnostics and for tests that play a
    /// stranger knocking at a rank's port.
    pub fn listen_address(&self) -> Option<std::net::SocketAddr> {
        self.runtime.progress.lock().listen_address()
    }

    /// How this rank reaches each rank of the world, indexed by rank: itself,
    /// shared memory or TCP. For diagnostics, and for tests that check which
    /// transport each pair of ranks chose.
    pub fn peer_links(&self) -> Vec<LinkKind> {
        self.runtime.links.clone()
    }
}

impl Drop for Universe {
    /// Finalizes (MPI_Finalize, MPI 4.1 §11.2.2): delivers everything this
    /// rank sent, then closes its connections. A universe dropped while its
    /// thread unwinds from a panic does not finalize (finalize would wait
    /// for peers that wait for this rank): it ends the job, exit code 101
    /// as Rust's own for a panic, naming the cause.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let rank = self.runtime.rank;
            self.runtime.abort(
                PANIC_EXIT_CODE,
                &format!("rank {rank} panicked (its stderr says where)"),
            );
        }
        self.runtime.finalize();
    }
}

fn start_time() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Seconds since an arbitrary moment fixed for the process (MPI_Wtime,
/// MPI 4.1 §11.6).
pub fn time() -> f64 {
    start_time().elapsed().as_secs_f64()
}

/// The resolution of [`time`] in seconds (MPI_Wtick).
pub fn time_resolution() -> f64 {
    1e-9
}

/// This host's name (MPI_Get_processor_name, MPI 4.1 §9.1).
pub fn processor_name() -> String {
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into our buffer.
    let rc = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a peer publishes (random bytes, or text shaped like a
        /// card with random fields), decoding never panics, and what decodes
        /// re-encodes to a card that decodes the same.
        #[test]
        fn any_published_card_decodes_or_is_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            fields in proptest::collection::vec(
                ("(node|tcp|pid|shm|x)", "[ -~]{0,24}"), 0..6),
        ) {
            let shaped: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let texts = [pmi::hex_encode(&bytes), pmi::hex_encode(shaped.join(";").as_bytes()),
                         String::from_utf8_lossy(&bytes).into_owned()];
            for text in texts {
                if let Some(encoded) = card_round_trip(&text) {
                    prop_assert_eq!(card_round_trip(&encoded), Some(encoded.clone()));
                }
            }
        }

        #[test]
        fn every_card_round_trips(node in "[0-9a-z]{1,16}", v6: bool, ip4: u32, ip6: u128, port: u16,
                                  pid: u32, shm in proptest::option::of("[0-9a-z-]{0,40}")) {
            let address = if v6 {
                SocketAddr::from((std::net::Ipv6Addr::from(ip6), port))
            } else {
                SocketAddr::from((std::net::Ipv4Addr::from(ip4), port))
            };
            let card = Card { node, address, pid, shm };
            prop_assert_eq!(Card::decode(&card.encode()), Some(card));
        }
    }

    #[test]
    fn cards_round_trip_and_reject_junk() {
        let mut card = Card {
            node: "abc".into(),
            address: "127.0.0.1:4000".parse().unwrap(),
            pid: 42,
            shm: None,
        };
        assert_eq!(Card::decode(&card.encode()), Some(card.clone()));
        card.shm = Some("mpirt-123-0123456789abcdef".into());
        assert_eq!(Card::decode(&card.encode()), Some(card));
        assert_eq!(Card::decode("zz"), None);
        assert_eq!(Card::decode(&pmi::hex_encode(b"node=a;pid=1")), None);
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("X", "65536").unwrap(), 65536);
        assert_eq!(parse_size("X", "64K").unwrap(), 65536);
        assert_eq!(parse_size("X", "4MiB").unwrap(), 4 << 20);
        assert!(parse_size("X", "4 parsecs").is_err());
        assert!(parse_size("X", "99999999999999999999G").is_err());
    }
}

/// Thread support levels (MPI 4.1 §11.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Threading {
    /// Only one thread (MPI_THREAD_SINGLE).
    Single,
    /// Only the main thread calls mpirt (MPI_THREAD_FUNNELED).
    Funneled,
    /// One thread at a time calls mpirt (MPI_THREAD_SERIALIZED).
    Serialized,
    /// Any thread, at any time (MPI_THREAD_MULTIPLE).
    Multiple,
}

/// Initializes with a requested thread level (MPI_Init_thread, MPI 4.1
/// §11.2.3). mpirt always provides [`Threading::Multiple`]: communicators
/// are `Send + Sync` and the engine sits behind a lock that is never held
/// while blocked.
pub fn initialize_with_threading(_requested: Threading) -> Option<(Universe, Threading)> {
    initialize().map(|u| (u, Threading::Multiple))
}
