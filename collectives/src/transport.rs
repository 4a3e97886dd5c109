//! The point-to-point contract every collective algorithm is written against.
//!
//! A transport connects `size()` ranks numbered `0..size()`. The algorithms in
//! this crate need only blocking operations, and rely on these rules:
//!
//! - **Non-overtaking.** Two messages from the same sender to the same receiver
//!   with the same tag are received in the order they were sent (MPI 4.0 §3.5).
//! - **Exact lengths.** `receive` expects exactly `into.len()` bytes; a message
//!   of any other length is an error (the message is consumed), never a
//!   truncation or a short read. This is how a collective called with
//!   mismatched buffer lengths on different ranks turns into an error.
//! - **Progress.** `send` may wait for the matching receive (a rendezvous), so
//!   the algorithms never rely on buffering; `send_receive` must not deadlock
//!   when every rank of a ring calls it at once, nor when `to == from == rank`.
//! - **Zero-length messages** are real messages: they are matched like any
//!   other (the barrier is made of them).
//! - **Own traffic.** The caller runs collectives on a context where no user
//!   message can match, so tags are free for the algorithms (see `tags.rs`).
//!
//! An error from any operation ends the collective on that rank. Ranks that
//! were waiting on it may then wait for ever, so a runtime should treat a
//! collective error as fatal to the communicator (MPI's default
//! `MPI_ERRORS_ARE_FATAL`), and the in-memory test transport gives up after a
//! deadline.

use crate::error::{CollectiveError, Result};

/// Blocking point-to-point messaging between the ranks of one group
/// (the part of `MPI_Send`, `MPI_Recv` and `MPI_Sendrecv` the collectives use).
pub trait PointToPoint {
    /// The transport's own error (peer lost, length mismatch, timeout...).
    type Error: std::error::Error + Send + Sync + 'static;

    /// This rank, in `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Sends `data` to rank `to` with `tag`; may wait for the matching receive.
    fn send(&self, to: usize, tag: u32, data: &[u8]) -> std::result::Result<(), Self::Error>;

    /// Receives a message of exactly `into.len()` bytes from rank `from` with `tag`.
    fn receive(
        &self,
        from: usize,
        tag: u32,
        into: &mut [u8],
    ) -> std::result::Result<(), Self::Error>;

    /// Sends `data` to `to` and receives exactly `into.len()` bytes from `from`,
    /// without deadlocking in a ring or when both peers are this rank.
    fn send_receive(
        &self,
        to: usize,
        send_tag: u32,
        data: &[u8],
        from: usize,
        receive_tag: u32,
        into: &mut [u8],
    ) -> std::result::Result<(), Self::Error>;
}

/// A transport seen by one collective call: errors come out naming the
/// operation and the rank, so a failure says where it happened.
pub(crate) struct Comm<'a, T: PointToPoint> {
    transport: &'a T,
    operation: &'static str,
    /// This rank.
    pub rank: usize,
    /// The number of ranks.
    pub size: usize,
}

impl<'a, T: PointToPoint> Comm<'a, T> {
    pub fn new(transport: &'a T, operation: &'static str) -> Self {
        Comm {
            transport,
            operation,
            rank: transport.rank(),
            size: transport.size(),
        }
    }

    fn wrap(&self, source: T::Error) -> CollectiveError<T::Error> {
        CollectiveError::Transport {
            operation: self.operation,
            rank: self.rank,
            source,
        }
    }

    /// An invalid-argument error for this operation at this rank.
    pub fn invalid(&self, reason: impl Into<String>) -> CollectiveError<T::Error> {
        CollectiveError::InvalidArgument {
            operation: self.operation,
            rank: self.rank,
            reason: reason.into(),
        }
    }

    /// Checks that `root` names a rank.
    pub fn check_root(&self, root: usize) -> Result<(), T::Error> {
        if root < self.size {
            Ok(())
        } else {
            Err(self.invalid(format!("root {root} is not a rank of {}", self.size)))
        }
    }

    pub fn send(&self, to: usize, tag: u32, data: &[u8]) -> Result<(), T::Error> {
        self.transport.send(to, tag, data).map_err(|e| self.wrap(e))
    }

    pub fn receive(&self, from: usize, tag: u32, into: &mut [u8]) -> Result<(), T::Error> {
        self.transport
            .receive(from, tag, into)
            .map_err(|e| self.wrap(e))
    }

    /// `send_receive` with one tag for both directions.
    pub fn send_receive(
        &self,
        to: usize,
        data: &[u8],
        from: usize,
        into: &mut [u8],
        tag: u32,
    ) -> Result<(), T::Error> {
        self.transport
            .send_receive(to, tag, data, from, tag, into)
            .map_err(|e| self.wrap(e))
    }
}
