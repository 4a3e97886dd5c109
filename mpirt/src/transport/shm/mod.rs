//! Shared memory: the link to a peer on the same host.
//!
//! Each rank owns one [`Segment`] holding a single-producer single-consumer
//! [`ring`] per sender: the "remote buffer" of DESIGN.md. A link writes into
//! the ring for this rank in the peer's segment and reads the ring for the
//! peer in this rank's segment. The rings carry link records:
//!
//! | record | body | meaning |
//! |---|---|---|
//! | `EAGER` | context, tag, sender request, payload | an `Eager` frame, compact so an 8-byte message fits one cache line |
//! | `FRAME` | wire header | any frame without payload |
//! | `CMA` | wire header of a `Data` frame, address | single copy: read `length` bytes at the address with `process_vm_readv` |
//! | `PIPE_START` | wire header of a `Data` frame, first chunk | pipelined double copy: the frame and its first bytes |
//! | `PIPE_CHUNK` | receiver request, offset, bytes | the next bytes of a pipelined `Data` frame |
//! | `CMA_DONE` | sender request | the reader copied a `CMA` frame: the sender's buffer is free |
//! | `CMA_REFUSED` | sender request | the kernel refused the read: stream it as chunks |
//!
//! Large messages (rendezvous `Data` frames) take one of two paths, chosen
//! by size ([`ShmSettings`], `MPIRT_SHM_COPY`): single copy, where the
//! sender's link announces its buffer and keeps the frame until `CMA_DONE`
//! (only then does the engine hear it was transmitted), or the pipeline,
//! where the sender copies chunks into the ring while the receiver copies
//! earlier chunks out. Where the kernel refuses cross-memory attach (EPERM,
//! ENOSYS) the receiver answers `CMA_REFUSED`, and both ends of that link use
//! the pipeline from then on.
//!
//! A small standard send may skip the engine's queue: when neither the link
//! nor the engine has anything waiting for the peer, `State::send_now`
//! reserves an `EAGER` record ([`ShmLink::reserve_eager`]) and writes it
//! at once, so order is kept. A frame that does not fit in the ring stays
//! in the link and goes first next time; the engine's staging queue behind
//! it is bounded by credits.
//! Reading never waits for room to write: acknowledgements that do not fit
//! wait in a small backlog, so two ranks flooding each other cannot
//! deadlock. After writing, a link rings the peer's doorbell, which costs a
//! system call only when the peer sleeps.

pub mod doorbell;
pub mod ring;
pub mod segment;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

pub use segment::Segment;

use self::ring::{Consumer, Producer, Record, Slot};
use super::LinkError;
use crate::engine::{copy_bytes, EagerEnvelope, Engine, Transmit, UserBuffer};
use crate::wire::{FrameKind, Header, HEADER_LEN};

const EAGER: u8 = 1;
const FRAME: u8 = 2;
const CMA: u8 = 3;
const PIPE_START: u8 = 4;
const PIPE_CHUNK: u8 = 5;
const CMA_DONE: u8 = 6;
const CMA_REFUSED: u8 = 7;

/// Bytes before an `EAGER` record's payload: context, tag, sender request.
const EAGER_PREFIX: usize = 16;
/// Bytes before a `PIPE_CHUNK` record's bytes: receiver request, offset.
const CHUNK_PREFIX: usize = 16;

/// How rendezvous data moves between ranks on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPath {
    /// By size: the pipeline below `ShmSettings::cma_threshold`, single
    /// copy from there on.
    Auto,
    /// Always single copy (`process_vm_readv`), where the kernel allows it.
    Cma,
    /// Always the pipelined double copy through the ring.
    Pipeline,
}

/// Tunables of the shared-memory transport (`MPIRT_SHM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmSettings {
    /// Large-message path (`MPIRT_SHM_COPY=auto|cma|pipeline`).
    pub copy: CopyPath,
    /// Bytes of each ring (`MPIRT_SHM_RING`), raised to hold two of the
    /// largest eager messages.
    pub ring_bytes: usize,
    /// With `CopyPath::Auto`, data frames of at least this many bytes use
    /// single copy.
    pub cma_threshold: usize,
    /// Largest pipeline chunk.
    pub chunk: usize,
}

impl Default for ShmSettings {
    fn default() -> Self {
        ShmSettings {
            copy: CopyPath::Auto,
            ring_bytes: 1 << 20,
            cma_threshold: usize::MAX,
            chunk: 64 << 10,
        }
    }
}

/// A `Data` frame being streamed through the ring.
struct Stream {
    transmit: Transmit,
    /// Payload bytes written so far.
    sent: usize,
    /// Whether the receiver knows the frame (`PIPE_START` went out, or it
    /// refused single copy and waits for chunks).
    started: bool,
}

/// A `Data` frame being received chunk by chunk.
struct Incoming {
    header: Header,
    destination: UserBuffer,
    filled: usize,
}

/// The link to one peer on this host.
pub struct ShmLink {
    /// Into the peer's segment: the ring for this rank.
    outbound: Producer,
    /// From this rank's segment: the ring for the peer.
    inbound: Consumer,
    peer_pid: libc::pid_t,
    settings: ShmSettings,
    /// The kernel refused cross-memory attach on this link.
    cma_refused: bool,
    /// Pretend the kernel refuses (tests of the fallback).
    refuse_cma: bool,
    /// An engine frame that did not fit; it goes first.
    pending: Option<Transmit>,
    /// The data frame being streamed; frames behind it wait.
    streaming: Option<Stream>,
    /// Data frames whose single copy was refused, to stream next.
    restream: VecDeque<Transmit>,
    /// Data frames announced for single copy, until `CMA_DONE`.
    awaiting_ack: Vec<Transmit>,
    /// Acknowledgements that did not fit yet: (kind, sender request).
    backlog: VecDeque<(u8, u64)>,
    /// Data frames arriving in chunks.
    incoming: Vec<Incoming>,
    /// Largest eager payload accepted.
    max_eager: u64,
    /// The peer's segment (keeps `outbound` mapped; its doorbell).
    theirs: Arc<Segment>,
    /// This rank's segment (keeps `inbound` mapped).
    _mine: Arc<Segment>,
}

impl ShmLink {
    /// The link from rank `me` to rank `peer` (process `peer_pid`), whose
    /// segment is `theirs`.
    pub fn new(
        me: usize,
        peer: usize,
        peer_pid: u32,
        mine: Arc<Segment>,
        theirs: Arc<Segment>,
        settings: ShmSettings,
        max_eager: usize,
    ) -> ShmLink {
        theirs.populate(me, true);
        mine.populate(peer, false);
        ShmLink {
            outbound: Producer::new(theirs.ring(me)),
            inbound: Consumer::new(mine.ring(peer)),
            peer_pid: peer_pid as libc::pid_t,
            settings,
            cma_refused: false,
            refuse_cma: false,
            pending: None,
            streaming: None,
            restream: VecDeque::new(),
            awaiting_ack: Vec::new(),
            backlog: VecDeque::new(),
            incoming: Vec::new(),
            max_eager: max_eager as u64,
            theirs,
            _mine: mine,
        }
    }

    /// Writes what the engine has for `peer`, reads what arrived, and
    /// writes the answers that reading queued. Returns whether anything
    /// moved.
    pub fn exchange(&mut self, peer: i32, engine: &mut Engine) -> Result<bool, LinkError> {
        let wrote = self.flush(peer, engine)?;
        let read = self.receive(peer, engine)?;
        // Only reading queues answers (a full ring stopped the first flush
        // and still is).
        let answered = read && self.flush(peer, engine)?;
        Ok(wrote || read || answered)
    }

    /// Writes what the engine has for `peer` until done or the ring is
    /// full. Returns whether anything was written.
    #[inline]
    pub fn flush(&mut self, peer: i32, engine: &mut Engine) -> Result<bool, LinkError> {
        if !self.has_output() && !engine.has_transmit(peer) {
            // Nothing to write, the common case: a few loads, inlined (the
            // writing below is a large function with a costly entry).
            return Ok(false);
        }
        self.write_queued(peer, engine)
    }

    #[inline(never)]
    fn write_queued(&mut self, peer: i32, engine: &mut Engine) -> Result<bool, LinkError> {
        let mut wrote = false;
        while let Some(&(kind, id)) = self.backlog.front() {
            if !self.write_id(kind, id) {
                break;
            }
            self.backlog.pop_front();
            wrote = true;
        }
        loop {
            if let Some(stream) = &mut self.streaming {
                let done = push_chunks(&mut self.outbound, stream, self.settings.chunk, &mut wrote);
                if !done {
                    break;
                }
                if let Some(stream) = self.streaming.take() {
                    engine.handle_transmitted(peer, &stream.transmit.header);
                }
                continue;
            }
            if let Some(transmit) = self.restream.pop_front() {
                self.streaming = Some(Stream {
                    transmit,
                    sent: 0,
                    started: true,
                });
                continue;
            }
            let Some(transmit) = self.pending.take().or_else(|| engine.poll_transmit(peer)) else {
                break;
            };
            let header = transmit.header;
            match header.kind {
                FrameKind::Data if self.single_copy(header.length) => {
                    let Some(mut slot) = self.outbound.reserve(HEADER_LEN + 8) else {
                        self.pending = Some(transmit);
                        break;
                    };
                    let address = transmit.payload.bytes().as_ptr() as u64;
                    let body = slot.body();
                    header.encode((&mut body[..HEADER_LEN]).try_into().expect("48 bytes"));
                    body[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&address.to_le_bytes());
                    self.outbound.commit(slot, HEADER_LEN + 8, CMA, 0);
                    self.awaiting_ack.push(transmit);
                    wrote = true;
                }
                FrameKind::Data => {
                    self.streaming = Some(Stream {
                        transmit,
                        sent: 0,
                        started: false,
                    });
                }
                FrameKind::Eager => {
                    let payload = transmit.payload.bytes();
                    if EAGER_PREFIX + payload.len() > self.outbound.max_body() {
                        return Err(LinkError::Lost(format!(
                            "an eager message of {} bytes does not fit the peer's {}-byte ring (MPIRT_EAGER_LIMIT and MPIRT_SHM_RING must be alike on every rank)",
                            payload.len(),
                            self.theirs.ring_capacity()
                        )));
                    }
                    let Some(slot) = self.outbound.reserve(EAGER_PREFIX + payload.len()) else {
                        self.pending = Some(transmit);
                        break;
                    };
                    self.write_eager(slot, &EagerEnvelope::of(&header), payload);
                    engine.handle_transmitted(peer, &header);
                    wrote = true;
                }
                _ => {
                    let Some(mut slot) = self.outbound.reserve(HEADER_LEN) else {
                        self.pending = Some(transmit);
                        break;
                    };
                    header.encode(
                        (&mut slot.body()[..HEADER_LEN])
                            .try_into()
                            .expect("48 bytes"),
                    );
                    self.outbound.commit(slot, HEADER_LEN, FRAME, 0);
                    engine.handle_transmitted(peer, &header);
                    wrote = true;
                }
            }
        }
        if wrote {
            self.theirs.doorbell().ring();
        }
        Ok(wrote)
    }

    /// Whether a pump of this link would do nothing: nothing of ours to
    /// write, no record arrived, no room owed to the peer. The engine's
    /// queue for the peer is the caller's to check. A few loads: what a
    /// spinning wait runs instead of a pump.
    pub fn quiet(&self) -> bool {
        !self.has_output() && !self.inbound.has_record() && !self.inbound.wants_publish()
    }

    /// Whether the link holds anything to write (acknowledgements, a
    /// stream, a frame that did not fit).
    fn has_output(&self) -> bool {
        !self.backlog.is_empty()
            || self.streaming.is_some()
            || !self.restream.is_empty()
            || self.pending.is_some()
    }

    /// Room for an eager message of `len` payload bytes to be written now:
    /// `None` if anything of ours waits to be written first, or the ring is
    /// too full. Write it with [`ShmLink::commit_eager`].
    pub fn reserve_eager(&mut self, len: usize) -> Option<Slot> {
        if self.has_output() || EAGER_PREFIX + len > self.outbound.max_body() {
            return None;
        }
        self.outbound.reserve(EAGER_PREFIX + len)
    }

    /// Writes an eager message into a slot from
    /// [`ShmLink::reserve_eager`], and wakes the peer if it sleeps.
    pub fn commit_eager(&mut self, slot: Slot, envelope: &EagerEnvelope, payload: &[u8]) {
        self.write_eager(slot, envelope, payload);
        self.theirs.doorbell().ring();
    }

    fn write_eager(&mut self, mut slot: Slot, envelope: &EagerEnvelope, payload: &[u8]) {
        let body = slot.body();
        assert!(
            EAGER_PREFIX + payload.len() <= body.len(),
            "reserved too little"
        );
        body[0..4].copy_from_slice(&envelope.context.to_le_bytes());
        body[4..8].copy_from_slice(&envelope.tag.to_le_bytes());
        body[8..16].copy_from_slice(&envelope.sender_request.to_le_bytes());
        // SAFETY: the slot holds the payload (asserted above); the payload
        // is the sender's memory, not the ring.
        unsafe {
            copy_bytes(
                payload.as_ptr(),
                body[EAGER_PREFIX..].as_mut_ptr(),
                payload.len(),
            )
        };
        self.outbound
            .commit(slot, EAGER_PREFIX + payload.len(), EAGER, envelope.flags);
    }

    fn single_copy(&self, bytes: u64) -> bool {
        !self.cma_refused
            && match self.settings.copy {
                CopyPath::Cma => true,
                CopyPath::Pipeline => false,
                CopyPath::Auto => bytes >= self.settings.cma_threshold as u64,
            }
    }

    /// Writes a link acknowledgement; false if the ring is full.
    fn write_id(&mut self, kind: u8, id: u64) -> bool {
        let Some(mut slot) = self.outbound.reserve(8) else {
            return false;
        };
        slot.body()[..8].copy_from_slice(&id.to_le_bytes());
        self.outbound.commit(slot, 8, kind, 0);
        true
    }

    fn acknowledge(&mut self, kind: u8, id: u64) {
        if self.backlog.is_empty() && self.write_id(kind, id) {
            self.theirs.doorbell().ring();
        } else {
            self.backlog.push_back((kind, id));
        }
    }

    /// Reads every record that arrived from `peer` and hands the frames to
    /// the engine. Returns whether anything arrived.
    pub fn receive(&mut self, peer: i32, engine: &mut Engine) -> Result<bool, LinkError> {
        let mut arrived = false;
        loop {
            let record = match self.inbound.peek() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(corrupt) => {
                    return Err(LinkError::Lost(format!("corrupt ring: {}", corrupt.0)))
                }
            };
            arrived = true;
            let handled = self.handle_record(peer, engine, &record);
            self.inbound.release(record);
            if let Err(e) = handled {
                self.inbound.publish();
                return Err(e);
            }
        }
        if self.inbound.publish_if_useful() {
            // The peer found its ring full and waits for room.
            self.theirs.doorbell().ring();
        }
        Ok(arrived)
    }

    /// Hands every consumed byte back to the peer (before this rank
    /// sleeps: a peer waiting for room must not wait for our wake-up).
    pub fn publish(&mut self) {
        if self.inbound.publish() {
            self.theirs.doorbell().ring();
        }
    }

    /// Whether the peer's process has exited (shared memory, unlike a
    /// socket, does not tell). Read what it sent before asking.
    pub fn peer_gone(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(self.peer_pid, 0) };
        rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    fn handle_record(
        &mut self,
        peer: i32,
        engine: &mut Engine,
        record: &Record,
    ) -> Result<(), LinkError> {
        let lost = |e: crate::Error| LinkError::Lost(e.to_string());
        let corrupt = |what: &str| LinkError::Lost(format!("corrupt {what} record"));
        let body = record.body();
        let u64_at = |i: usize| -> Result<u64, LinkError> {
            body.get(i..i + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| corrupt("short"))
        };
        match record.kind {
            EAGER => {
                if body.len() < EAGER_PREFIX {
                    return Err(corrupt("eager"));
                }
                let payload = &body[EAGER_PREFIX..];
                if payload.len() as u64 > self.max_eager {
                    return Err(LinkError::Lost(format!(
                        "eager frame of {} bytes is over the {}-byte remote buffer",
                        payload.len(),
                        self.max_eager
                    )));
                }
                let envelope = EagerEnvelope {
                    context: u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")),
                    tag: i32::from_le_bytes(body[4..8].try_into().expect("4 bytes")),
                    flags: record.flags,
                    sender_request: u64_at(8)?,
                };
                // The ring keeps order: the record is the frame due next.
                engine.handle_eager(peer, &envelope, payload).map_err(lost)
            }
            FRAME => {
                let header = self.header(body)?;
                if header.kind.carries_payload() {
                    return Err(corrupt("frame"));
                }
                engine.handle_frame(peer, &header, &[]).map_err(lost)
            }
            CMA => {
                let header = self.header(body)?;
                let address = u64_at(HEADER_LEN)?;
                if header.kind != FrameKind::Data {
                    return Err(corrupt("single-copy"));
                }
                let destination = engine.data_destination(peer, &header).map_err(lost)?;
                let copied = if self.refuse_cma {
                    Err(io::Error::from_raw_os_error(libc::EPERM))
                } else {
                    read_peer_memory(self.peer_pid, destination, address)
                };
                match copied {
                    Ok(()) => {
                        engine.handle_data_done(&header);
                        self.acknowledge(CMA_DONE, header.sender_request);
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
                        self.cma_refused = true;
                        self.incoming.push(Incoming {
                            header,
                            destination,
                            filled: 0,
                        });
                        self.acknowledge(CMA_REFUSED, header.sender_request);
                    }
                    Err(e) => {
                        return Err(LinkError::Lost(format!(
                            "process_vm_readv of {} bytes from pid {}: {e}",
                            header.length, self.peer_pid
                        )))
                    }
                }
                Ok(())
            }
            PIPE_START => {
                let header = self.header(body)?;
                if header.kind != FrameKind::Data {
                    return Err(corrupt("pipeline"));
                }
                let destination = engine.data_destination(peer, &header).map_err(lost)?;
                self.incoming.push(Incoming {
                    header,
                    destination,
                    filled: 0,
                });
                self.fill(self.incoming.len() - 1, 0, &body[HEADER_LEN..], engine)
            }
            PIPE_CHUNK => {
                let receiver_request = u64_at(0)?;
                let offset = u64_at(8)?;
                let index = self
                    .incoming
                    .iter()
                    .position(|i| i.header.receiver_request == receiver_request)
                    .ok_or_else(|| corrupt("chunk"))?;
                self.fill(index, offset, &body[CHUNK_PREFIX..], engine)
            }
            CMA_DONE | CMA_REFUSED => {
                let sender_request = u64_at(0)?;
                let index = self
                    .awaiting_ack
                    .iter()
                    .position(|t| t.header.sender_request == sender_request)
                    .ok_or_else(|| corrupt("acknowledgement"))?;
                let transmit = self.awaiting_ack.swap_remove(index);
                if record.kind == CMA_DONE {
                    engine.handle_transmitted(peer, &transmit.header);
                } else {
                    self.cma_refused = true;
                    self.restream.push_back(transmit);
                }
                Ok(())
            }
            other => Err(LinkError::Lost(format!("unknown record kind {other}"))),
        }
    }

    /// Decodes the wire header at the front of a body (the engine checks
    /// its sequence).
    fn header(&self, body: &[u8]) -> Result<Header, LinkError> {
        match Header::decode(body, self.max_eager) {
            Ok(Some(header)) => Ok(header),
            Ok(None) => Err(LinkError::Lost("corrupt record: short header".into())),
            Err(e) => Err(LinkError::Lost(format!("corrupt frame: {e}"))),
        }
    }

    /// Copies a chunk into incoming data frame `index`; completes it when
    /// full.
    fn fill(
        &mut self,
        index: usize,
        offset: u64,
        chunk: &[u8],
        engine: &mut Engine,
    ) -> Result<(), LinkError> {
        let incoming = &mut self.incoming[index];
        let room = incoming.destination.len - incoming.filled;
        if offset != incoming.filled as u64 || chunk.len() > room {
            return Err(LinkError::Lost(format!(
                "chunk of {} bytes at offset {offset} does not continue a data frame at {} of {}",
                chunk.len(),
                incoming.filled,
                incoming.destination.len
            )));
        }
        // SAFETY: the destination is a posted receive's buffer, valid and
        // unaliased until `handle_data_done`; the chunk lies in our ring
        // (another mapping), and `chunk.len()` fits (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                chunk.as_ptr(),
                incoming.destination.ptr.add(incoming.filled),
                chunk.len(),
            )
        };
        incoming.filled += chunk.len();
        if incoming.filled == incoming.destination.len {
            let done = self.incoming.swap_remove(index);
            engine.handle_data_done(&done.header);
        }
        Ok(())
    }
}

/// Writes as much of a streamed data frame as fits; true when all of it is
/// written.
fn push_chunks(
    outbound: &mut Producer,
    stream: &mut Stream,
    chunk: usize,
    wrote: &mut bool,
) -> bool {
    /// Below this much room, wait for the reader rather than write a sliver.
    const MIN_CHUNK: usize = 4096;
    let payload = stream.transmit.payload.bytes();
    loop {
        if stream.started && stream.sent == payload.len() {
            return true;
        }
        let prefix = if stream.started {
            CHUNK_PREFIX
        } else {
            HEADER_LEN
        };
        let want = (payload.len() - stream.sent).min(chunk);
        let Some(mut slot) = outbound.reserve_between(prefix + want.min(MIN_CHUNK), prefix + want)
        else {
            return false;
        };
        let n = (slot.len() - prefix).min(want);
        let (kind, body) = (
            if stream.started {
                PIPE_CHUNK
            } else {
                PIPE_START
            },
            slot.body(),
        );
        if stream.started {
            body[0..8].copy_from_slice(&stream.transmit.header.receiver_request.to_le_bytes());
            body[8..16].copy_from_slice(&(stream.sent as u64).to_le_bytes());
        } else {
            stream
                .transmit
                .header
                .encode((&mut body[..HEADER_LEN]).try_into().expect("48 bytes"));
        }
        body[prefix..prefix + n].copy_from_slice(&payload[stream.sent..stream.sent + n]);
        outbound.commit(slot, prefix + n, kind, 0);
        stream.sent += n;
        stream.started = true;
        *wrote = true;
    }
}

/// Copies `destination.len` bytes at `address` in process `pid` into
/// `destination` (Linux cross-memory attach).
fn read_peer_memory(pid: libc::pid_t, destination: UserBuffer, address: u64) -> io::Result<()> {
    let mut done = 0;
    while done < destination.len {
        let local = libc::iovec {
            // SAFETY: inside the destination buffer.
            iov_base: unsafe { destination.ptr.add(done) }.cast(),
            iov_len: destination.len - done,
        };
        let remote = libc::iovec {
            iov_base: (address as usize + done) as *mut libc::c_void,
            iov_len: destination.len - done,
        };
        // SAFETY: the kernel writes at most `iov_len` bytes into our posted
        // receive buffer, valid and unaliased until `handle_data_done`; the
        // remote side is checked by the kernel against the peer's mappings.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read nothing"));
        }
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
