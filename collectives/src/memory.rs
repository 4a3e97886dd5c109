//! An in-memory transport: one thread per rank, one `crossbeam` channel per
//! ordered pair of ranks, for testing algorithms with no sockets.
//!
//! A channel per `(from, to)` pair keeps messages between two ranks in order.
//! A receive for `(from, tag)` first looks among the early arrivals from
//! `from`, then takes messages off that channel, putting aside those with
//! other tags. Sends never wait (unbounded channels), which is allowed by the
//! [`PointToPoint`] contract; receives give up after a deadline, so a broken
//! algorithm fails a test instead of hanging it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam::channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use crate::PointToPoint;

type Message = (u32, Vec<u8>);

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
    /// `outgoing[to]` carries our messages to `to`.
    outgoing: Vec<Sender<Message>>,
    /// `incoming[from]` carries `from`'s messages to us, in send order.
    incoming: Vec<Receiver<Message>>,
    /// `early[from]`: messages from `from` taken off the channel while looking
    /// for another tag, oldest first.
    early: RefCell<Vec<VecDeque<Message>>>,
    timeout: Duration,
}

impl MemoryTransport {
    /// Endpoints for `size` ranks whose receives give up after `timeout`.
    pub fn group(size: usize, timeout: Duration) -> Vec<MemoryTransport> {
        // channels[from][to]
        let channels: Vec<Vec<(Sender<Message>, Receiver<Message>)>> = (0..size)
            .map(|_| (0..size).map(|_| unbounded()).collect())
            .collect();
        (0..size)
            .map(|rank| MemoryTransport {
                rank,
                outgoing: (0..size).map(|to| channels[rank][to].0.clone()).collect(),
                incoming: (0..size)
                    .map(|from| channels[from][rank].1.clone())
                    .collect(),
                early: RefCell::new(vec![VecDeque::new(); size]),
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

    fn deliver(
        &self,
        from: usize,
        tag: u32,
        data: Vec<u8>,
        into: &mut [u8],
    ) -> Result<(), MemoryError> {
        if data.len() != into.len() {
            return Err(MemoryError::LengthMismatch {
                rank: self.rank,
                from,
                tag,
                expected: into.len(),
                received: data.len(),
            });
        }
        into.copy_from_slice(&data);
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
        self.check_peer(to)?;
        self.outgoing[to]
            .send((tag, data.to_vec()))
            .map_err(|_| MemoryError::PeerGone {
                rank: self.rank,
                peer: to,
            })
    }

    fn receive(&self, from: usize, tag: u32, into: &mut [u8]) -> Result<(), MemoryError> {
        self.check_peer(from)?;
        let early_match = {
            let mut early = self.early.borrow_mut();
            let queue = &mut early[from];
            queue
                .iter()
                .position(|(t, _)| *t == tag)
                .and_then(|i| queue.remove(i))
        };
        if let Some((_, data)) = early_match {
            return self.deliver(from, tag, data, into);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming[from].recv_timeout(left) {
                Ok((t, data)) if t == tag => return self.deliver(from, tag, data, into),
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
        // Sends never wait here, so send-then-receive cannot deadlock.
        self.send(to, send_tag, data)?;
        self.receive(from, receive_tag, into)
    }
}

/// Runs `body` on `size` ranks, one thread each, and returns their results in
/// rank order. A panic on any rank is re-raised here.
pub fn run<R, F>(size: usize, timeout: Duration, body: F) -> Vec<R>
where
    R: Send,
    F: Fn(&MemoryTransport) -> R + Sync,
{
    let endpoints = MemoryTransport::group(size, timeout);
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
