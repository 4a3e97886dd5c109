//! The attached buffer of buffered sends (MPI_Buffer_attach/detach,
//! MPI 4.1 §3.6), and per-rank counters of what the protocols did.
//!
//! `buffered_send` copies the message out of the caller's memory at once and
//! charges `len + BSEND_OVERHEAD` bytes against the attached buffer; the
//! charge is released when the copy has left this rank (eager frame written,
//! or rendezvous data delivered). A message that does not fit is
//! `Error::BufferExhausted` (MPI_ERR_BUFFER), never a silent block.

use std::fmt;

use crate::engine::{Engine, RequestId, SendData, SendMode};
use crate::environment::{Runtime, Universe};
use crate::error::Error;

/// Bookkeeping bytes each buffered message takes in the attached buffer
/// besides its data (MPI_BSEND_OVERHEAD): a buffer of
/// `message bytes + BSEND_OVERHEAD` per message is always enough.
pub const BSEND_OVERHEAD: usize = 96;

/// The attached buffer's accounting.
#[derive(Debug, Default)]
pub struct AttachedBuffer {
    capacity: usize,
    used: usize,
    used_max: usize,
    buffered_sends: u64,
    /// Sends whose copy has not left yet, with the bytes they hold.
    in_flight: Vec<(RequestId, usize)>,
}

impl AttachedBuffer {
    /// Releases the space of buffered sends that have completed.
    fn reap(&mut self, engine: &mut Engine) {
        let mut freed = 0;
        self.in_flight
            .retain(|&(id, bytes)| match engine.take_outcome(id) {
                Some(_) => {
                    freed += bytes;
                    false
                }
                None => true,
            });
        self.used -= freed;
    }
}

/// Copies `bytes` into the attached buffer and starts a standard send from
/// the copy to world rank `dest`. Returns once the copy is made.
pub(crate) fn buffered_send(
    runtime: &Runtime,
    dest: i32,
    context: u32,
    tag: i32,
    bytes: &[u8],
) -> Result<(), Error> {
    // Lock order: the attached buffer, then the engine state.
    let mut attached = runtime.attached.lock();
    runtime
        .progress
        .with_state(|s| attached.reap(&mut s.engine));
    let needed = bytes.len() + BSEND_OVERHEAD;
    let available = attached.capacity - attached.used;
    if needed > available {
        return Err(Error::BufferExhausted {
            needed,
            available,
            attached: attached.capacity,
        });
    }
    attached.used += needed;
    attached.used_max = attached.used_max.max(attached.used);
    attached.buffered_sends += 1;
    let copy = SendData::Owned(bytes.to_vec());
    let id = runtime.progress.with_state(|s| {
        s.engine
            .post_send(dest, context, tag, copy, SendMode::Standard)
    });
    attached.in_flight.push((id, needed));
    Ok(())
}

/// What a rank's protocols have done so far (see [`Universe::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent in one eager frame.
    pub eager_sends: u64,
    /// Messages sent by rendezvous.
    pub rendezvous_sends: u64,
    /// Messages sent by `buffered_send` (counted in one of the above too).
    pub buffered_sends: u64,
    /// Local buffer (a): bytes of the attached buffer, held now and at most.
    pub attached_bytes: usize,
    /// Bytes of the attached buffer held by messages not yet sent.
    pub attached_used: usize,
    /// Most attached-buffer bytes ever held.
    pub attached_used_max: usize,
    /// Local buffer (b): eager bytes staged for transports now.
    pub staged_bytes: usize,
    /// Most eager bytes ever staged.
    pub staged_bytes_max: usize,
    /// Remote buffer: bytes held for unexpected eager messages now.
    pub unexpected_bytes: usize,
    /// Most bytes ever held for unexpected messages (at most
    /// `remote_buffer` per sender).
    pub unexpected_bytes_max: usize,
    /// Most unexpected messages queued at once.
    pub unexpected_messages_max: usize,
    /// The eager limit in force.
    pub eager_limit: usize,
    /// The remote buffer per sender in force.
    pub remote_buffer: usize,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} eager, {} rendezvous, {} buffered; attached buffer {}/{} B (max {}); staged {} B (max {}); unexpected {} B (max {}, {} messages at most); eager limit {} B, remote buffer {} B",
            self.eager_sends,
            self.rendezvous_sends,
            self.buffered_sends,
            self.attached_used,
            self.attached_bytes,
            self.attached_used_max,
            self.staged_bytes,
            self.staged_bytes_max,
            self.unexpected_bytes,
            self.unexpected_bytes_max,
            self.unexpected_messages_max,
            self.eager_limit,
            self.remote_buffer
        )
    }
}

impl Universe {
    /// Attaches a buffer of `size` bytes for buffered sends, detaching the
    /// previous one first (MPI_Buffer_attach, MPI 4.1 §3.6.1).
    pub fn set_buffer_size(&mut self, size: usize) {
        self.detach_buffer();
        self.runtime.attached.lock().capacity = size;
    }

    /// Bytes of the attached buffer (0 when none is attached).
    pub fn buffer_size(&self) -> usize {
        self.runtime.attached.lock().capacity
    }

    /// Waits until every buffered message has left this rank, then detaches
    /// the buffer (MPI_Buffer_detach, MPI 4.1 §3.6.1).
    pub fn detach_buffer(&mut self) {
        let runtime = &self.runtime;
        let mut attached = runtime.attached.lock();
        runtime.progress.wait_for(|s| {
            attached.reap(&mut s.engine);
            attached.in_flight.is_empty().then_some(())
        });
        attached.capacity = 0;
    }

    /// This rank's counters: messages sent eagerly, by rendezvous and
    /// buffered; bytes held in each buffer now and at most.
    pub fn stats(&self) -> Stats {
        let runtime = &self.runtime;
        let mut attached = runtime.attached.lock();
        let engine_stats = runtime.progress.with_state(|s| {
            attached.reap(&mut s.engine);
            (s.engine.stats(), s.engine.limits())
        });
        let (e, limits) = engine_stats;
        Stats {
            eager_sends: e.eager_sends,
            rendezvous_sends: e.rendezvous_sends,
            buffered_sends: attached.buffered_sends,
            attached_bytes: attached.capacity,
            attached_used: attached.used,
            attached_used_max: attached.used_max,
            staged_bytes: e.staged_bytes,
            staged_bytes_max: e.staged_bytes_max,
            unexpected_bytes: e.unexpected_bytes,
            unexpected_bytes_max: e.unexpected_bytes_max,
            unexpected_messages_max: e.unexpected_messages_max,
            eager_limit: limits.eager_limit,
            remote_buffer: limits.remote_buffer,
        }
    }
}
