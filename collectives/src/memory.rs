//! An in-memory transport: one thread per rank, one `crossbeam` channel per
//! ordered pair of ranks, for testing algorithms with no sockets.
//!
//! A channel per `(from, to)` pair keeps messages between two ranks in order.
//! A receive for `(from, tag)` first looks among the early arrivals from
//! `from`, then takes messages off that channel, putting aside those with
//! other tags. Receives give up after a deadline, so a broken algorithm fails
//! a test instead of hanging it.
//!
//! Sends come in two modes ([`SendMode`]): *eager* sends return at once, like
//! short messages on a real transport; *synchronous* sends wait until the
//! receiver has matched the message, like a rendezvous, which is what shows
//! an algorithm that would deadlock on long messages. `send_receive` posts its
//! send, receives, then waits for its send, as `MPI_Sendrecv` does.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};

use crate::PointToPoint;

/// A message in flight: tag, payload, and in synchronous mode the channel on
/// which the receiver reports that it matched the message.
struct Message {
    tag: u32,
    data: Vec<u8>,
    matched: Option<Sender<()>>,
}

/// When a send returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    /// At once (the message is queued).
    Eager,
    /// When the receiver has matched the message.
    Synchronous,
}

/// An error of the in-memory transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The message that matched had another length than the receive buffer.
    #[error("rank {rank}: message from rank {from} with tag {tag} has {received} bytes, expected {expected}")]
    LengthMismatch {
        /// The receiving rank.
        rank: usize,
        /// The sender.
        from: usize,
        /// The tag.
        tag: u32,
        /// Bytes the receive asked for.
        expected: usize,
        /// Bytes the message held.
        received: usize,
    },
    /// No matching message came before the deadline.
    #[error("rank {rank}: no message from rank {from} with tag {tag} within {waited:?}")]
    Timeout {
        /// The receiving rank.
        rank: usize,
        /// The awaited sender.
        from: usize,
        /// The awaited tag.
        tag: u32,
        /// How long the receive waited.
        waited: Duration,
    },
    /// A synchronous send was not matched before the deadline.
    #[error("rank {rank}: message to rank {to} with tag {tag} not received within {waited:?}")]
    SendTimeout {
        /// The sending rank.
        rank: usize,
        /// The receiver.
        to: usize,
        /// The tag.
        tag: u32,
        /// How long the send waited.
        waited: Duration,
    },
    /// The peer's endpoint is gone (its thread ended).
    #[error("rank {rank}: rank {peer} has left")]
    PeerGone {
        /// This rank.
        rank: usize,
        /// The peer.
        peer: usize,
    },
    /// The peer is not a rank of the group.
    #[error("rank {rank}: no rank {peer} among {size}")]
    InvalidRank {
        /// This rank.
        rank: usize,
        /// The rank asked for.
        peer: usize,
        /// The number of ranks.
        size: usize,
    },
}

/// One rank's endpoint of an in-memory group.
pub struct MemoryTransport {
    rank: usize,
    mode: SendMode,
    /// `outgoing[to]` carries our messages to `to`.
    outgoing: Vec<Sender<Message>>,
    /// `incoming[from]` carries `from`'s messages to us, in send order.
    incoming: Vec<Receiver<Message>>,
    /// `early[from]`: messages from `from` taken off the channel while looking
    /// for another tag, oldest first (not matched yet).
    early: RefCell<Vec<VecDeque<Message>>>,
    timeout: Duration,
}

/// A posted send: in synchronous mode, where its match will be reported.
struct PostedSend {
    to: usize,
    tag: u32,
    matched: Option<Receiver<()>>,
}

impl MemoryTransport {
    /// Endpoints for `size` ranks with eager sends, whose receives give up after `timeout`.
    pub fn group(size: usize, timeout: Duration) -> Vec<MemoryTransport> {
        Self::group_with(SendMode::Eager, size, timeout)
    }

    /// Endpoints for `size` ranks sending in `mode`; receives and synchronous
    /// sends give up after `timeout`.
    pub fn group_with(mode: SendMode, size: usize, timeout: Duration) -> Vec<MemoryTransport> {
        // channels[from][to]
        let channels: Vec<Vec<(Sender<Message>, Receiver<Message>)>> = (0..size)
            .map(|_| (0..size).map(|_| unbounded()).collect())
            .collect();
        (0..size)
            .map(|rank| MemoryTransport {
                rank,
                mode,
                outgoing: (0..size).map(|to| channels[rank][to].0.clone()).collect(),
                incoming: (0..size)
                    .map(|from| channels[from][rank].1.clone())
                    .collect(),
                early: RefCell::new((0..size).map(|_| VecDeque::new()).collect()),
                timeout,
            })
            .collect()
    }

    /// Messages that reached this rank and were not received yet (a
    /// collective that leaves any behind would corrupt the next one).
    pub fn undelivered(&self) -> usize {
        let early: usize = self.early.borrow().iter().map(VecDeque::len).sum();
        early + self.incoming.iter().map(Receiver::len).sum::<usize>()
    }

    fn check_peer(&self, peer: usize) -> Result<(), MemoryError> {
        if peer < self.outgoing.len() {
            Ok(())
        } else {
            Err(MemoryError::InvalidRank {
                rank: self.rank,
                peer,
                size: self.outgoing.len(),
            })
        }
    }

    fn post(&self, to: usize, tag: u32, data: &[u8]) -> Result<PostedSend, MemoryError> {
        self.check_peer(to)?;
        let (report, matched) = match self.mode {
            SendMode::Eager => (None, None),
            SendMode::Synchronous => {
                let (report, matched) = bounded(1);
                (Some(report), Some(matched))
            }
        };
        let message = Message {
            tag,
            data: data.to_vec(),
            matched: report,
        };
        self.outgoing[to]
            .send(message)
            .map_err(|_| MemoryError::PeerGone {
                rank: self.rank,
                peer: to,
            })?;
        Ok(PostedSend { to, tag, matched })
    }

    fn complete(&self, send: PostedSend) -> Result<(), MemoryError> {
        let Some(matched) = send.matched else {
            return Ok(());
        };
        match matched.recv_timeout(self.timeout) {
            Ok(()) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(MemoryError::SendTimeout {
                rank: self.rank,
                to: send.to,
                tag: send.tag,
                waited: self.timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(MemoryError::PeerGone {
                rank: self.rank,
                peer: send.to,
            }),
        }
    }

    /// Matches `message`: tells a synchronous sender, then checks the length.
    fn deliver(&self, from: usize, message: Message, into: &mut [u8]) -> Result<(), MemoryError> {
        if let Some(matched) = message.matched {
            // The sender may have given up already; nothing to do then.
            let _ = matched.send(());
        }
        if message.data.len() != into.len() {
            return Err(MemoryError::LengthMismatch {
                rank: self.rank,
                from,
                tag: message.tag,
                expected: into.len(),
                received: message.data.len(),
            });
        }
        into.copy_from_slice(&message.data);
        Ok(())
    }
}

impl PointToPoint for MemoryTransport {
    type Error = MemoryError;

    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.outgoing.len()
    }

    fn send(&self, to: usize, tag: u32, data: &[u8]) -> Result<(), MemoryError> {
        let posted = self.post(to, tag, data)?;
        self.complete(posted)
    }

    fn receive(&self, from: usize, tag: u32, into: &mut [u8]) -> Result<(), MemoryError> {
        self.check_peer(from)?;
        let early_match = {
            let mut early = self.early.borrow_mut();
            let queue = &mut early[from];
            queue
                .iter()
                .position(|m| m.tag == tag)
                .and_then(|i| queue.remove(i))
        };
        if let Some(message) = early_match {
            return self.deliver(from, message, into);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming[from].recv_timeout(left) {
                Ok(message) if message.tag == tag => return self.deliver(from, message, into),
                Ok(other) => self.early.borrow_mut()[from].push_back(other),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(MemoryError::Timeout {
                        rank: self.rank,
                        from,
                        tag,
                        waited: self.timeout,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(MemoryError::PeerGone {
                        rank: self.rank,
                        peer: from,
                    })
                }
            }
        }
    }

    fn send_receive(
        &self,
        to: usize,
        send_tag: u32,
        data: &[u8],
        from: usize,
        receive_tag: u32,
        into: &mut [u8],
    ) -> Result<(), MemoryError> {
        // Post, receive, then wait: a ring of these cannot deadlock.
        let posted = self.post(to, send_tag, data)?;
        self.receive(from, receive_tag, into)?;
        self.complete(posted)
    }
}

/// Runs `body` on `size` ranks with eager sends, one thread each, and returns
/// their results in rank order. A panic on any rank is re-raised here.
pub fn run<R, F>(size: usize, timeout: Duration, body: F) -> Vec<R>
where
    R: Send,
    F: Fn(&MemoryTransport) -> R + Sync,
{
    run_with(SendMode::Eager, size, timeout, body)
}

/// [`run`] with sends in `mode`.
pub fn run_with<R, F>(mode: SendMode, size: usize, timeout: Duration, body: F) -> Vec<R>
where
    R: Send,
    F: Fn(&MemoryTransport) -> R + Sync,
{
    let endpoints = MemoryTransport::group_with(mode, size, timeout);
    std::thread::scope(|scope| {
        let handles: Vec<_> = endpoints
            .into_iter()
            .map(|endpoint| {
                let body = &body;
                scope.spawn(move || body(&endpoint))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
