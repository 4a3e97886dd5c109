//! The protocol engine: matching, eager and rendezvous protocols, synchronous
//! acknowledgements, credits and the request table — and no I/O.
//!
//! Like quinn-proto, the engine is driven from outside. Inputs are the
//! `post_*` calls of the API layer and the `handle_*` calls of the progress
//! layer (a frame arrived, a frame left, a peer was lost); outputs are frames
//! taken with [`Engine::poll_transmit`] and request outcomes taken with
//! [`Engine::take_outcome`]. Calling order for a received frame: `Data`
//! frames go through [`Engine::data_destination`] (where to put the payload)
//! then [`Engine::handle_data_done`]; every other frame through
//! [`Engine::handle_frame`] with its payload. A transport calls
//! [`Engine::handle_transmitted`] once a frame taken from `poll_transmit` has
//! been written whole.
//!
//! Protocols (DESIGN.md, "Point-to-point"):
//! - eager: messages up to `eager_limit` travel whole in one `Eager` frame,
//!   while the sender has credit at that receiver: at most `remote_buffer`
//!   bytes (payload plus a header each) unacknowledged. The receiver returns
//!   credit with `Credit` frames as receives consume messages, so its memory
//!   for unexpected messages stays bounded whatever senders do.
//! - rendezvous: otherwise `RequestToSend`; the matching receive answers
//!   `ClearToSend` with its request id and the bytes it can take; the sender
//!   then writes one `Data` frame straight from the user's buffer, which the
//!   receiver's transport reads straight into the posted buffer.
//! - synchronous: eager frames carry `FLAG_SYNC` and complete on `SyncAck`,
//!   sent by the receiver when a receive matches; rendezvous is synchronous
//!   by construction.

pub mod matching;
mod requests;

use std::collections::VecDeque;

pub use matching::Envelope;
use matching::{Matcher, UnexpectedBody, UnexpectedMessage};

use crate::error::Error;
use crate::wire::{FrameKind, Header, FLAG_SYNC, HEADER_LEN};

pub use requests::RequestId;

/// The sizes of the buffers the protocols use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message sent eagerly.
    pub eager_limit: usize,
    /// Eager bytes (payload plus [`HEADER_LEN`] per message) a sender may
    /// have unacknowledged at one receiver.
    pub remote_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            eager_limit: 64 * 1024,
            remote_buffer: 4 * 1024 * 1024,
        }
    }
}

/// How a send completes (MPI 4.1 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// Completes once the data is copied out of the caller's buffer (eager)
    /// or delivered (rendezvous).
    Standard,
    /// Completes once the matching receive has started.
    Synchronous,
}

/// The bytes of a send.
pub enum SendData {
    /// The caller's memory, valid until the request completes.
    Borrowed(UserBuffer),
    /// Bytes the engine owns (a buffered send's copy).
    Owned(Vec<u8>),
}

impl SendData {
    fn len(&self) -> usize {
        match self {
            SendData::Borrowed(b) => b.len,
            SendData::Owned(v) => v.len(),
        }
    }

    fn as_ptr(&self) -> *const u8 {
        match self {
            SendData::Borrowed(b) => b.ptr,
            SendData::Owned(v) => v.as_ptr(),
        }
    }
}

/// A region of a caller's memory. Whoever creates one promises it stays
/// valid (and, for receives, unaliased) until the request completes: the API
/// layer keeps that promise with blocking calls and `request::scope`.
#[derive(Debug, Clone, Copy)]
pub struct UserBuffer {
    /// First byte.
    pub ptr: *mut u8,
    /// Bytes.
    pub len: usize,
}

// SAFETY: a UserBuffer is only an address; the API layer guarantees the
// memory outlives the request, whichever thread progresses it.
unsafe impl Send for UserBuffer {}

impl UserBuffer {
    /// A buffer to send from.
    pub fn from_slice(bytes: &[u8]) -> UserBuffer {
        UserBuffer {
            ptr: bytes.as_ptr() as *mut u8,
            len: bytes.len(),
        }
    }

    /// The bytes of a buffer.
    ///
    /// # Safety
    /// The memory must still be valid: its request has not completed.
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        // SAFETY: the caller guarantees the memory is valid.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// A buffer to receive into.
    pub fn from_mut_slice(bytes: &mut [u8]) -> UserBuffer {
        UserBuffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
        }
    }
}

/// Copies `len` bytes, between one and two `T`s, as two `T`s: the first
/// and the last, which may overlap each other.
///
/// # Safety
/// As for [`copy_bytes`], and `size_of::<T>() <= len`.
#[inline(always)]
unsafe fn copy_ends<T: Copy>(source: *const u8, destination: *mut u8, len: usize) {
    use std::ptr::{read_unaligned, write_unaligned};
    let last = len - std::mem::size_of::<T>();
    // SAFETY: both `T`s lie within the first `len` bytes of each region;
    // both are read before either is written.
    unsafe {
        let (head, tail) = (
            read_unaligned(source.cast::<T>()),
            read_unaligned(source.add(last).cast::<T>()),
        );
        write_unaligned(destination.cast::<T>(), head);
        write_unaligned(destination.add(last).cast::<T>(), tail);
    }
}

/// What a completed receive (or send) reports (MPI_Status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Sender (world numbering) for receives; destination for sends.
    pub source: i32,
    /// Tag.
    pub tag: i32,
    /// Bytes received (or sent).
    pub bytes: usize,
    /// The request was cancelled before it matched.
    pub cancelled: bool,
}

/// A message taken out of matching by a matched probe, waiting to be
/// received.
#[derive(Debug)]
pub struct MatchedMessage(UnexpectedMessage);

impl MatchedMessage {
    /// The message's length in bytes.
    pub fn length(&self) -> usize {
        self.0.length
    }
}

/// A frame leaving the engine, with its payload.
pub struct Transmit {
    /// The header, sequence number set.
    pub header: Header,
    /// The payload: exactly `header.payload_len()` bytes.
    pub payload: Payload,
}

/// The bytes that follow a header.
pub enum Payload {
    /// No payload.
    None,
    /// A small eager copy, held in the frame itself: no allocation.
    Inline {
        /// The copy, in the first `len` bytes.
        bytes: [u8; INLINE_PAYLOAD],
        /// How many bytes are the copy.
        len: u8,
    },
    /// Bytes the frame owns (an eager copy).
    Owned(Vec<u8>),
    /// A sender's buffer, valid until `handle_transmitted` for this frame.
    Borrowed(UserBuffer),
}

/// The largest eager copy a frame holds inline.
pub const INLINE_PAYLOAD: usize = 64;

/// Copies `len` bytes from `source` to `destination`. Up to 16 bytes (the
/// common small message) are copied inline with two overlapping loads and
/// stores: a call to `memcpy` costs more than the copy.
///
/// # Safety
/// As for [`std::ptr::copy_nonoverlapping`]: both regions valid for `len`
/// bytes, not overlapping.
#[inline]
pub(crate) unsafe fn copy_bytes(source: *const u8, destination: *mut u8, len: usize) {
    // SAFETY (all arms): every access lies within the first `len` bytes of
    // its region, which the caller guarantees.
    unsafe {
        if len > 16 {
            std::ptr::copy_nonoverlapping(source, destination, len);
        } else if len >= 8 {
            copy_ends::<u64>(source, destination, len);
        } else if len >= 4 {
            copy_ends::<u32>(source, destination, len);
        } else {
            for i in 0..len {
                *destination.add(i) = *source.add(i);
            }
        }
    }
}

impl Payload {
    /// A copy of `bytes`: inline when small enough, else on the heap.
    fn copy_of(bytes: &[u8]) -> Payload {
        if bytes.len() <= INLINE_PAYLOAD {
            let mut inline = [0; INLINE_PAYLOAD];
            // SAFETY: `bytes.len()` fits the array (checked above); distinct
            // memory.
            unsafe { copy_bytes(bytes.as_ptr(), inline.as_mut_ptr(), bytes.len()) };
            Payload::Inline {
                bytes: inline,
                len: bytes.len() as u8,
            }
        } else {
            Payload::Owned(bytes.to_vec())
        }
    }

    /// The payload bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::None => &[],
            Payload::Inline { bytes, len } => &bytes[..*len as usize],
            Payload::Owned(v) => v,
            // SAFETY: a Borrowed payload points at a send buffer (or a
            // buffered send's copy) that stays valid until the frame is
            // transmitted, which is after every use of this slice.
            Payload::Borrowed(b) => unsafe { std::slice::from_raw_parts(b.ptr, b.len) },
        }
    }
}

/// Per-rank counters of what the protocols did (see `stats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Messages sent in one eager frame.
    pub eager_sends: u64,
    /// Messages sent by rendezvous.
    pub rendezvous_sends: u64,
    /// Bytes of eager frames staged for transports now.
    pub staged_bytes: usize,
    /// Most staged bytes ever.
    pub staged_bytes_max: usize,
    /// Bytes of the remote buffer held by unexpected eager messages now
    /// (payload plus a header each).
    pub unexpected_bytes: usize,
    /// Most unexpected bytes ever.
    pub unexpected_bytes_max: usize,
    /// Most unexpected messages queued at once.
    pub unexpected_messages_max: usize,
}

enum SendState {
    /// An eager frame of engine-owned data waits to be written.
    Staged,
    /// A synchronous eager frame waits for the receiver's acknowledgement.
    AwaitingAck,
    /// A rendezvous announcement waits for clear-to-send.
    AwaitingClearToSend,
    /// The data frame is being written.
    Transmitting,
}

enum ReceiveState {
    Posted,
    /// Clear-to-send went out; a data frame of `expected` bytes will come.
    AwaitingData {
        source: i32,
        tag: i32,
        message_bytes: usize,
        expected: usize,
    },
}

enum RequestKind {
    Send {
        peer: i32,
        tag: i32,
        /// Message length (an eager `Owned` send's bytes move to its frame).
        len: usize,
        data: SendData,
        state: SendState,
    },
    Receive {
        buffer: UserBuffer,
        state: ReceiveState,
    },
}

struct Request {
    kind: RequestKind,
    outcome: Option<Result<Status, Error>>,
}

#[derive(Default)]
struct Peer {
    /// Frames waiting for the transport (the local staging queue; bounded
    /// because eager frames need credit).
    outgoing: VecDeque<Transmit>,
    next_send_sequence: u64,
    next_receive_sequence: u64,
    /// Eager bytes this rank may still send to the peer.
    credit: usize,
    /// Eager bytes received from the peer and not yet credited back.
    received_uncredited: usize,
    /// Of those, bytes already consumed by receives.
    consumed_uncredited: usize,
    fin_queued: bool,
    fin_sent: bool,
    fin_received: bool,
    lost: Option<String>,
}

impl Peer {
    /// Takes the credit for an eager message of `len` bytes, if it is within
    /// `eager_limit` and the credit left; false (nothing taken) otherwise.
    fn take_eager_credit(&mut self, len: usize, eager_limit: usize) -> bool {
        let cost = len + HEADER_LEN;
        if len > eager_limit || self.credit < cost {
            return false;
        }
        self.credit -= cost;
        true
    }

    /// The sequence number of the next frame to this peer, taken.
    fn take_send_sequence(&mut self) -> u64 {
        let sequence = self.next_send_sequence;
        self.next_send_sequence += 1;
        sequence
    }
}

/// One rank's protocol state. See the module doc.
pub struct Engine {
    rank: i32,
    limits: Limits,
    matcher: Matcher,
    requests: requests::Table<Request>,
    peers: Vec<Peer>,
    /// Frames in all peers' `outgoing` queues.
    queued_frames: usize,
    stats: EngineStats,
}

impl Engine {
    /// An engine for `rank` of a job of `size` ranks.
    pub fn new(rank: i32, size: i32, limits: Limits) -> Engine {
        let peers = (0..size)
            .map(|_| Peer {
                credit: limits.remote_buffer,
                ..Peer::default()
            })
            .collect();
        Engine {
            rank,
            limits,
            matcher: Matcher::default(),
            requests: requests::Table::default(),
            peers,
            queued_frames: 0,
            stats: EngineStats::default(),
        }
    }

    /// This engine's rank.
    pub fn rank(&self) -> i32 {
        self.rank
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Starts a send. The request completes as `mode` says; take its outcome
    /// with [`Engine::take_outcome`]. A send to a lost peer fails at once.
    pub fn post_send(
        &mut self,
        peer: i32,
        context: u32,
        tag: i32,
        mut data: SendData,
        mode: SendMode,
    ) -> RequestId {
        let id = self.new_request_id();
        let len = data.len();
        let p = &mut self.peers[peer as usize];
        if let Some(reason) = &p.lost {
            let error = Error::PeerLost {
                peer,
                reason: reason.clone(),
            };
            self.requests.insert_at(
                id,
                Request {
                    kind: RequestKind::Send {
                        peer,
                        tag,
                        len,
                        data,
                        state: SendState::Staged,
                    },
                    outcome: Some(Err(error)),
                },
            );
            return id;
        }
        let mut header = Header::new(FrameKind::Eager, self.rank);
        header.context = context;
        header.tag = tag;
        header.length = len as u64;
        header.sender_request = id;
        let done = Status {
            source: peer,
            tag,
            bytes: len,
            cancelled: false,
        };
        let (state, outcome) = if p.take_eager_credit(len, self.limits.eager_limit) {
            self.stats.eager_sends += 1;
            let sync = mode == SendMode::Synchronous;
            if sync {
                header.flags |= FLAG_SYNC;
            }
            let owned = matches!(data, SendData::Owned(_));
            let copy = match &mut data {
                // A buffered send's copy moves into the frame as it is.
                SendData::Owned(bytes) => Payload::Owned(std::mem::take(bytes)),
                // SAFETY: the caller's buffer is valid for `len` bytes until
                // this request completes; we copy it now, before returning.
                SendData::Borrowed(b) => {
                    Payload::copy_of(unsafe { std::slice::from_raw_parts(b.ptr, len) })
                }
            };
            self.enqueue(peer, header, copy);
            match (sync, owned) {
                (true, _) => (SendState::AwaitingAck, None),
                (false, true) => (SendState::Staged, None),
                (false, false) => (SendState::Staged, Some(Ok(done))),
            }
        } else {
            self.stats.rendezvous_sends += 1;
            header.kind = FrameKind::RequestToSend;
            self.enqueue(peer, header, Payload::None);
            (SendState::AwaitingClearToSend, None)
        };
        self.requests.insert_at(
            id,
            Request {
                kind: RequestKind::Send {
                    peer,
                    tag,
                    len,
                    data,
                    state,
                },
                outcome,
            },
        );
        id
    }

    /// A standard send of `len` bytes that the caller's link writes at once,
    /// past the frame queue and the request table (see `State::send_now`):
    /// takes its credit and its sequence number, and returns true. False
    /// when it must go the usual way: the peer is lost or finished, frames
    /// wait ahead of it, or it is over the eager limit or the credit.
    pub fn eager_now(&mut self, peer: i32, len: usize) -> bool {
        let p = &mut self.peers[peer as usize];
        // Credit is taken last, once nothing else refuses.
        if p.lost.is_some()
            || p.fin_queued
            || !p.outgoing.is_empty()
            || !p.take_eager_credit(len, self.limits.eager_limit)
        {
            return false;
        }
        p.take_send_sequence();
        self.stats.eager_sends += 1;
        true
    }

    /// Posts a receive into `buffer`. Matches the first unexpected message
    /// the envelope accepts, else waits in the posted queue.
    pub fn post_receive(&mut self, envelope: Envelope, buffer: UserBuffer) -> RequestId {
        // A receive naming a lost peer fails at once.
        let outcome = envelope.source.and_then(|peer| {
            let reason = self.peers[peer as usize].lost.clone()?;
            Some(Err(Error::PeerLost { peer, reason }))
        });
        let failed = outcome.is_some();
        let id = self.requests.insert(Request {
            kind: RequestKind::Receive {
                buffer,
                state: ReceiveState::Posted,
            },
            outcome,
        });
        if failed {
            return id;
        }
        match self.matcher.take_unexpected(&envelope) {
            Some(message) => {
                self.stats.unexpected_bytes -= message.held_bytes();
                self.deliver(id, message);
            }
            None => self.matcher.post(envelope, id),
        }
        id
    }

    /// The first unexpected message an envelope accepts, as a status (probe).
    pub fn probe(&self, envelope: &Envelope) -> Option<Status> {
        self.matcher.peek_unexpected(envelope).map(|m| Status {
            source: m.source,
            tag: m.tag,
            bytes: m.length,
            cancelled: false,
        })
    }

    /// A request that is complete from the start (an operation on
    /// `PROC_NULL`, or a buffered send whose copy is made).
    pub fn post_completed(&mut self, status: Status) -> RequestId {
        self.post_bufferless(Some(Ok(status)))
    }

    /// A request that something outside the engine completes with
    /// [`Engine::complete_external`] (a non-blocking collective running on
    /// its own thread).
    pub fn post_external(&mut self) -> RequestId {
        self.post_bufferless(None)
    }

    /// A request with no buffer and no frames: only its outcome matters.
    fn post_bufferless(&mut self, outcome: Option<Result<Status, Error>>) -> RequestId {
        let id = self.new_request_id();
        let buffer = UserBuffer {
            ptr: std::ptr::null_mut(),
            len: 0,
        };
        let kind = RequestKind::Receive {
            buffer,
            state: ReceiveState::Posted,
        };
        self.requests.insert_at(id, Request { kind, outcome });
        id
    }

    /// Completes a request made by [`Engine::post_external`].
    pub fn complete_external(&mut self, id: RequestId, outcome: Result<Status, Error>) {
        if let Some(request) = self.requests.get_mut(id) {
            request.outcome = Some(outcome);
        }
    }

    /// Takes the first unexpected message an envelope accepts, so that only
    /// [`Engine::receive_matched`] can receive it (MPI_Mprobe).
    pub fn matched_probe(&mut self, envelope: &Envelope) -> Option<(Status, MatchedMessage)> {
        let message = self.matcher.take_unexpected(envelope)?;
        self.stats.unexpected_bytes -= message.held_bytes();
        let status = Status {
            source: message.source,
            tag: message.tag,
            bytes: message.length,
            cancelled: false,
        };
        Some((status, MatchedMessage(message)))
    }

    /// Receives a message taken by [`Engine::matched_probe`] (MPI_Mrecv).
    pub fn receive_matched(&mut self, message: MatchedMessage, buffer: UserBuffer) -> RequestId {
        let id = self.new_request_id();
        self.requests.insert_at(
            id,
            Request {
                kind: RequestKind::Receive {
                    buffer,
                    state: ReceiveState::Posted,
                },
                outcome: None,
            },
        );
        self.deliver(id, message.0);
        id
    }

    /// Cancels a receive that has not matched yet. Returns whether it was
    /// cancelled (then its outcome is a status with `cancelled` set).
    pub fn cancel(&mut self, id: RequestId) -> bool {
        if !self.matcher.unpost(id) {
            return false;
        }
        if let Some(request) = self.requests.get_mut(id) {
            request.outcome = Some(Ok(Status {
                source: crate::ANY_SOURCE,
                tag: crate::ANY_TAG,
                bytes: 0,
                cancelled: true,
            }));
        }
        true
    }

    /// Whether a request has completed.
    pub fn is_complete(&self, id: RequestId) -> bool {
        self.requests.get(id).is_none_or(|r| r.outcome.is_some())
    }

    /// Removes a completed request and returns its outcome; `None` while it
    /// is still in flight.
    pub fn take_outcome(&mut self, id: RequestId) -> Option<Result<Status, Error>> {
        let request = self.requests.get(id)?;
        request.outcome.as_ref()?;
        self.requests.remove(id).and_then(|r| r.outcome)
    }

    /// Sends (of any state) not yet complete.
    pub fn pending_sends(&self) -> usize {
        self.requests
            .values()
            .filter(|r| r.outcome.is_none() && matches!(r.kind, RequestKind::Send { .. }))
            .count()
    }

    /// The next frame for `peer`'s transport, if any.
    pub fn poll_transmit(&mut self, peer: i32) -> Option<Transmit> {
        let t = self.peers[peer as usize].outgoing.pop_front()?;
        self.queued_frames -= 1;
        if t.header.kind == FrameKind::Eager {
            self.stats.staged_bytes -= t.header.length as usize;
        }
        Some(t)
    }

    /// Whether frames wait for any peer's transport.
    pub fn has_queued_frames(&self) -> bool {
        self.queued_frames > 0
    }

    /// Whether frames wait for `peer`'s transport.
    pub fn has_transmit(&self, peer: i32) -> bool {
        !self.peers[peer as usize].outgoing.is_empty()
    }

    /// A frame from `poll_transmit` has been written whole.
    pub fn handle_transmitted(&mut self, peer: i32, header: &Header) {
        match header.kind {
            FrameKind::Fin => self.peers[peer as usize].fin_sent = true,
            FrameKind::Eager | FrameKind::Data => {
                let id = header.sender_request;
                if let Some(request) = self.requests.get_mut(id) {
                    if let RequestKind::Send {
                        state: state @ (SendState::Staged | SendState::Transmitting),
                        tag,
                        ..
                    } = &mut request.kind
                    {
                        if request.outcome.is_none() {
                            request.outcome = Some(Ok(Status {
                                source: peer,
                                tag: *tag,
                                bytes: header.length as usize,
                                cancelled: false,
                            }));
                        }
                        *state = SendState::Staged;
                    }
                }
            }
            _ => {}
        }
    }

    /// A frame other than `Data` arrived from `peer` with its payload.
    pub fn handle_frame(
        &mut self,
        peer: i32,
        header: &Header,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.check_arrival(peer, header)?;
        let protocol = |detail: String| Error::Protocol { peer, detail };
        match header.kind {
            FrameKind::Eager => {
                if payload.len() as u64 != header.length {
                    return Err(protocol(format!(
                        "eager frame of {} bytes came with {} bytes",
                        header.length,
                        payload.len()
                    )));
                }
                self.eager_arrived(peer, &EagerEnvelope::of(header), payload)?;
            }
            FrameKind::RequestToSend => {
                let message = UnexpectedMessage {
                    context: header.context,
                    source: peer,
                    tag: header.tag,
                    length: usize::try_from(header.length)
                        .map_err(|_| protocol("message length overflows".into()))?,
                    body: UnexpectedBody::Rendezvous {
                        sender_request: header.sender_request,
                    },
                };
                match self.matcher.take_posted(header.context, peer, header.tag) {
                    Some(id) => self.deliver(id, message),
                    None => self.push_unexpected(message),
                }
            }
            FrameKind::ClearToSend => {
                let rank = self.rank;
                let request = self.requests.get_mut(header.sender_request);
                let Some(Request {
                    kind:
                        RequestKind::Send {
                            peer: to,
                            data,
                            state,
                            ..
                        },
                    outcome: None,
                }) = request
                else {
                    return Err(protocol(format!(
                        "clear-to-send for unknown send request {}",
                        header.sender_request
                    )));
                };
                if *to != peer
                    || !matches!(state, SendState::AwaitingClearToSend)
                    || header.length > data.len() as u64
                {
                    return Err(protocol(format!(
                        "clear-to-send for {} bytes does not fit send request {}",
                        header.length, header.sender_request
                    )));
                }
                *state = SendState::Transmitting;
                let mut data_header = Header::new(FrameKind::Data, rank);
                data_header.length = header.length;
                data_header.sender_request = header.sender_request;
                data_header.receiver_request = header.receiver_request;
                let payload = Payload::Borrowed(UserBuffer {
                    ptr: data.as_ptr() as *mut u8,
                    len: header.length as usize,
                });
                self.enqueue(peer, data_header, payload);
            }
            FrameKind::SyncAck => {
                let request = self.requests.get_mut(header.sender_request);
                let Some(Request {
                    kind:
                        RequestKind::Send {
                            peer: to,
                            tag,
                            len,
                            state: state @ SendState::AwaitingAck,
                            ..
                        },
                    outcome,
                }) = request
                else {
                    return Err(protocol(format!(
                        "sync acknowledgement for unknown request {}",
                        header.sender_request
                    )));
                };
                if *to != peer {
                    return Err(protocol(format!(
                        "sync acknowledgement for a send to rank {to}"
                    )));
                }
                *state = SendState::Staged;
                *outcome = Some(Ok(Status {
                    source: peer,
                    tag: *tag,
                    bytes: *len,
                    cancelled: false,
                }));
            }
            FrameKind::Credit => {
                let p = &mut self.peers[peer as usize];
                p.credit += header.length as usize;
                if p.credit > self.limits.remote_buffer {
                    return Err(protocol(format!(
                        "returned more credit than was used ({} > {})",
                        p.credit, self.limits.remote_buffer
                    )));
                }
            }
            FrameKind::Fin => self.peers[peer as usize].fin_received = true,
            FrameKind::Data => return Err(protocol("data frame passed to handle_frame".into())),
        }
        Ok(())
    }

    /// A `Data` frame's header arrived: where its `header.length` bytes go.
    /// The returned memory belongs to a posted receive and stays valid until
    /// [`Engine::handle_data_done`].
    pub fn data_destination(&mut self, peer: i32, header: &Header) -> Result<UserBuffer, Error> {
        self.check_arrival(peer, header)?;
        match self.requests.get(header.receiver_request) {
            Some(Request {
                kind:
                    RequestKind::Receive {
                        buffer,
                        state:
                            ReceiveState::AwaitingData {
                                source, expected, ..
                            },
                    },
                outcome: None,
            }) if *source == peer && *expected as u64 == header.length => Ok(UserBuffer {
                ptr: buffer.ptr,
                len: *expected,
            }),
            _ => Err(Error::Protocol {
                peer,
                detail: format!(
                    "data frame of {} bytes for no waiting receive ({})",
                    header.length, header.receiver_request
                ),
            }),
        }
    }

    /// The payload of a `Data` frame is in place.
    pub fn handle_data_done(&mut self, header: &Header) {
        if let Some(Request {
            kind:
                RequestKind::Receive {
                    buffer,
                    state:
                        ReceiveState::AwaitingData {
                            source,
                            tag,
                            message_bytes,
                            expected,
                        },
                },
            outcome,
        }) = self.requests.get_mut(header.receiver_request)
        {
            *outcome = Some(receive_outcome(
                *source,
                *tag,
                *message_bytes,
                buffer.len,
                *expected,
            ));
        }
    }

    /// The connection to `peer` is gone: every request that needs it fails.
    pub fn handle_peer_lost(&mut self, peer: i32, reason: &str) {
        let p = &mut self.peers[peer as usize];
        if p.lost.is_some() || (p.fin_received && p.fin_sent) {
            return;
        }
        p.lost = Some(reason.to_string());
        self.queued_frames -= p.outgoing.len();
        p.outgoing.clear();
        let error = Error::PeerLost {
            peer,
            reason: reason.to_string(),
        };
        let stranded = self.matcher.take_posted_from(peer);
        for (id, request) in self.requests.iter_mut() {
            let involved = match &request.kind {
                RequestKind::Send { peer: to, .. } => *to == peer,
                RequestKind::Receive {
                    state: ReceiveState::AwaitingData { source, .. },
                    ..
                } => *source == peer,
                RequestKind::Receive { .. } => stranded.contains(&id),
            };
            if involved && request.outcome.is_none() {
                request.outcome = Some(Err(error.clone()));
            }
        }
    }

    /// The link to `peer` closed after its `Fin`: control frames still
    /// queued for it (credit, acknowledgements) have nowhere to go, and
    /// would keep waits pumping. Frames of messages stay, as before (only
    /// an erroneous program sends to a rank that finished).
    pub fn handle_peer_closed(&mut self, peer: i32) {
        let p = &mut self.peers[peer as usize];
        let before = p.outgoing.len();
        p.outgoing.retain(|t| {
            !matches!(
                t.header.kind,
                FrameKind::Credit | FrameKind::SyncAck | FrameKind::Fin
            )
        });
        self.queued_frames -= before - p.outgoing.len();
    }

    /// Queues `Fin` to every peer still connected: this rank sends nothing
    /// more. Call once every send has completed.
    pub fn start_finalize(&mut self) {
        for peer in 0..self.peers.len() as i32 {
            let p = &self.peers[peer as usize];
            if peer != self.rank && p.lost.is_none() && !p.fin_queued {
                self.peers[peer as usize].fin_queued = true;
                self.enqueue(peer, Header::new(FrameKind::Fin, self.rank), Payload::None);
            }
        }
    }

    /// Whether every peer has said `Fin` (or is lost) and every `Fin` of ours
    /// has been written: the connections may close.
    pub fn finalize_done(&self) -> bool {
        self.peers.iter().enumerate().all(|(i, p)| {
            i as i32 == self.rank || p.lost.is_some() || (p.fin_received && p.fin_sent)
        })
    }

    /// Whether `peer` said `Fin`: its connection closing is no loss.
    pub fn peer_finished(&self, peer: i32) -> bool {
        self.peers[peer as usize].fin_received
    }

    fn new_request_id(&mut self) -> RequestId {
        self.requests.next_id()
    }

    fn enqueue(&mut self, peer: i32, mut header: Header, payload: Payload) {
        let p = &mut self.peers[peer as usize];
        header.sequence = p.take_send_sequence();
        if header.kind == FrameKind::Eager {
            self.stats.staged_bytes += header.length as usize;
            self.stats.staged_bytes_max = self.stats.staged_bytes_max.max(self.stats.staged_bytes);
        }
        p.outgoing.push_back(Transmit { header, payload });
        self.queued_frames += 1;
    }

    /// An eager message from `peer` whose link keeps frames in order and
    /// carries no header (a shared-memory ring's compact record): it is
    /// the frame due next. Otherwise as [`Engine::handle_frame`].
    pub fn handle_eager(
        &mut self,
        peer: i32,
        envelope: &EagerEnvelope,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.peers[peer as usize].next_receive_sequence += 1;
        self.eager_arrived(peer, envelope, payload)
    }

    /// An eager message arrived (its sequence counted): it meets a posted
    /// receive or joins the unexpected messages.
    fn eager_arrived(
        &mut self,
        peer: i32,
        envelope: &EagerEnvelope,
        payload: &[u8],
    ) -> Result<(), Error> {
        let length = payload.len();
        let p = &mut self.peers[peer as usize];
        p.received_uncredited += length + HEADER_LEN;
        if p.received_uncredited > self.limits.remote_buffer {
            return Err(Error::Protocol {
                peer,
                detail: format!(
                    "sent {} eager bytes without credit (remote buffer is {})",
                    p.received_uncredited, self.limits.remote_buffer
                ),
            });
        }
        let sync_request = (envelope.flags & FLAG_SYNC != 0).then_some(envelope.sender_request);
        let arrived = Arrival {
            source: peer,
            tag: envelope.tag,
            length,
            sync_request,
        };
        match self
            .matcher
            .take_posted(envelope.context, peer, envelope.tag)
        {
            Some(id) => self.deliver_eager(id, arrived, payload),
            None => self.push_unexpected(UnexpectedMessage {
                context: envelope.context,
                source: peer,
                tag: envelope.tag,
                length,
                body: UnexpectedBody::Eager {
                    data: payload.to_vec(),
                    sync_request,
                },
            }),
        }
        Ok(())
    }

    fn check_arrival(&mut self, peer: i32, header: &Header) -> Result<(), Error> {
        if header.source != peer {
            return Err(Error::Protocol {
                peer,
                detail: format!("frame claims to come from rank {}", header.source),
            });
        }
        let p = &mut self.peers[peer as usize];
        if header.sequence != p.next_receive_sequence {
            return Err(Error::Protocol {
                peer,
                detail: format!(
                    "frame sequence {} where {} was due",
                    header.sequence, p.next_receive_sequence
                ),
            });
        }
        p.next_receive_sequence += 1;
        Ok(())
    }

    fn push_unexpected(&mut self, message: UnexpectedMessage) {
        self.stats.unexpected_bytes += message.held_bytes();
        self.stats.unexpected_bytes_max = self
            .stats
            .unexpected_bytes_max
            .max(self.stats.unexpected_bytes);
        self.matcher.push_unexpected(message);
        self.stats.unexpected_messages_max = self
            .stats
            .unexpected_messages_max
            .max(self.matcher.unexpected_len());
    }

    /// A matched message meets receive `id`.
    fn deliver(&mut self, id: RequestId, message: UnexpectedMessage) {
        let UnexpectedMessage {
            context,
            source,
            tag,
            length,
            body,
        } = message;
        match body {
            UnexpectedBody::Eager { data, sync_request } => self.deliver_eager(
                id,
                Arrival {
                    source,
                    tag,
                    length,
                    sync_request,
                },
                &data,
            ),
            UnexpectedBody::Rendezvous { sender_request } => {
                let Some(Request {
                    kind: RequestKind::Receive { buffer, state },
                    ..
                }) = self.requests.get_mut(id)
                else {
                    return;
                };
                let expected = length.min(buffer.len);
                *state = ReceiveState::AwaitingData {
                    source,
                    tag,
                    message_bytes: length,
                    expected,
                };
                let mut cts = Header::new(FrameKind::ClearToSend, self.rank);
                cts.context = context;
                cts.tag = tag;
                cts.length = expected as u64;
                cts.sender_request = sender_request;
                cts.receiver_request = id;
                self.enqueue(source, cts, Payload::None);
            }
        }
    }

    /// Copies an eager message into receive `id`, acknowledges a synchronous
    /// one and returns credit.
    fn deliver_eager(&mut self, id: RequestId, arrived: Arrival, payload: &[u8]) {
        if let Some(Request {
            kind: RequestKind::Receive { buffer, .. },
            outcome,
        }) = self.requests.get_mut(id)
        {
            let copied = payload.len().min(buffer.len);
            // SAFETY: the receive's buffer is valid and unaliased for
            // `buffer.len` bytes until the request completes (now).
            unsafe { copy_bytes(payload.as_ptr(), buffer.ptr, copied) };
            *outcome = Some(receive_outcome(
                arrived.source,
                arrived.tag,
                arrived.length,
                buffer.len,
                copied,
            ));
        }
        if let Some(sender_request) = arrived.sync_request {
            let mut ack = Header::new(FrameKind::SyncAck, self.rank);
            ack.sender_request = sender_request;
            self.enqueue(arrived.source, ack, Payload::None);
        }
        self.return_credit(arrived.source, arrived.length + HEADER_LEN);
    }

    fn return_credit(&mut self, peer: i32, bytes: usize) {
        let p = &mut self.peers[peer as usize];
        p.consumed_uncredited += bytes;
        // Batch credit: one frame per quarter of the remote buffer consumed.
        if p.consumed_uncredited >= self.limits.remote_buffer / 4 && p.lost.is_none() {
            let amount = p.consumed_uncredited;
            p.consumed_uncredited = 0;
            p.received_uncredited -= amount;
            let mut credit = Header::new(FrameKind::Credit, self.rank);
            credit.length = amount as u64;
            self.enqueue(peer, credit, Payload::None);
        }
    }
}

/// What an eager message carries besides its payload (a wire header's
/// fields that matter to it).
#[derive(Debug, Clone, Copy)]
pub struct EagerEnvelope {
    /// Context id.
    pub context: u32,
    /// Tag.
    pub tag: i32,
    /// Wire flags (`FLAG_SYNC`).
    pub flags: u8,
    /// The sender's request, for a synchronous send's acknowledgement.
    pub sender_request: u64,
}

impl EagerEnvelope {
    /// The envelope of an `Eager` frame's header.
    pub fn of(header: &Header) -> EagerEnvelope {
        EagerEnvelope {
            context: header.context,
            tag: header.tag,
            flags: header.flags,
            sender_request: header.sender_request,
        }
    }
}

/// An eager message's envelope as it meets its receive.
struct Arrival {
    source: i32,
    tag: i32,
    length: usize,
    sync_request: Option<u64>,
}

fn receive_outcome(
    source: i32,
    tag: i32,
    message_bytes: usize,
    buffer_bytes: usize,
    received: usize,
) -> Result<Status, Error> {
    if message_bytes > buffer_bytes {
        Err(Error::Truncate {
            sender: source,
            tag,
            message_bytes,
            buffer_bytes,
        })
    } else {
        Ok(Status {
            source,
            tag,
            bytes: received,
            cancelled: false,
        })
    }
}

#[cfg(test)]
mod tests;
