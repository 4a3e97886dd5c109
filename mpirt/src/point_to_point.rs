//! Point-to-point communication (MPI 4.1 chapter 3), in rsmpi's shape:
//! [`Destination`] for processes one sends to, [`Source`] for processes (or
//! any process) one receives from.
//!
//! Every operation has two forms. The rsmpi form (`send`, `receive_into`,
//! ...) treats errors as fatal, as MPI does by default: it prints one line
//! naming this rank, the operation, the peer, the tag and the sizes, and ends
//! the job. The `try_` form returns the [`Error`] instead.

use std::mem::MaybeUninit;

use crate::datatype::{Buffer, BufferMut, Datatype, Equivalence};
use crate::engine::{Envelope, SendData, SendMode, UserBuffer};
use crate::error::{Error, Operation};
use crate::topology::{AnyProcess, Process, SimpleCommunicator};
use crate::{Count, Rank, Tag, ANY_SOURCE, ANY_TAG};

/// The largest valid tag (MPI_TAG_UB).
pub const TAG_UB: Tag = i32::MAX;

/// What a receive or probe found (MPI_Status, MPI 4.1 §3.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    source: Rank,
    tag: Tag,
    bytes: usize,
    cancelled: bool,
}

impl Status {
    pub(crate) fn from_engine(comm: &SimpleCommunicator, s: crate::engine::Status) -> Status {
        let source = if s.source < 0 {
            s.source
        } else {
            comm.local_rank(s.source)
        };
        Status {
            source,
            tag: s.tag,
            bytes: s.bytes,
            cancelled: s.cancelled,
        }
    }

    /// The sender's rank in the communicator (MPI_SOURCE).
    pub fn source_rank(&self) -> Rank {
        self.source
    }

    /// The message's tag (MPI_TAG).
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// Number of elements of `datatype` in the message (MPI_Get_count,
    /// MPI 4.1 §3.2.5); `Count::MAX` stands for MPI_UNDEFINED when the bytes
    /// are not a whole number of elements.
    pub fn count<D: Datatype>(&self, datatype: D) -> Count {
        let size = datatype.size_in_bytes();
        match size {
            0 => 0,
            _ if !self.bytes.is_multiple_of(size) => Count::MAX,
            _ => Count::try_from(self.bytes / size).unwrap_or(Count::MAX),
        }
    }

    /// The message's length in bytes.
    pub fn byte_count(&self) -> usize {
        self.bytes
    }

    /// Whether the request was cancelled (MPI_Test_cancelled).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

fn check_send_tag(tag: Tag) -> Result<(), Error> {
    if (0..=TAG_UB).contains(&tag) {
        Ok(())
    } else {
        Err(Error::InvalidTag { tag, max: TAG_UB })
    }
}

fn check_receive_tag(tag: Tag) -> Result<(), Error> {
    if tag == ANY_TAG {
        Ok(())
    } else {
        check_send_tag(tag)
    }
}

/// Sends `bytes` and waits as `mode` says.
pub(crate) fn send_bytes(
    comm: &SimpleCommunicator,
    dest: Rank,
    tag: Tag,
    bytes: &[u8],
    mode: SendMode,
) -> Result<(), Error> {
    comm.runtime().check_live()?;
    comm.check_rank(dest)?;
    check_send_tag(tag)?;
    let world_dest = comm.world_rank(dest);
    let data = SendData::Borrowed(UserBuffer::from_slice(bytes));
    let runtime = comm.runtime();
    let id = runtime.progress.with_state(|s| {
        s.engine
            .post_send(world_dest, comm.context(), tag, data, mode)
    });
    // `bytes` stays borrowed until the request completes here.
    runtime.wait(id).map(|_| ())
}

fn envelope(comm: &SimpleCommunicator, source: Rank, tag: Tag) -> Result<Envelope, Error> {
    comm.runtime().check_live()?;
    if source != ANY_SOURCE {
        comm.check_rank(source)?;
    }
    check_receive_tag(tag)?;
    Ok(Envelope {
        context: comm.context(),
        source: (source != ANY_SOURCE).then(|| comm.world_rank(source)),
        tag: (tag != ANY_TAG).then_some(tag),
    })
}

/// Receives into `buffer` and waits for the data.
pub(crate) fn receive_bytes(
    comm: &SimpleCommunicator,
    source: Rank,
    tag: Tag,
    buffer: &mut [u8],
) -> Result<Status, Error> {
    let envelope = envelope(comm, source, tag)?;
    let runtime = comm.runtime();
    let target = UserBuffer::from_mut_slice(buffer);
    let id = runtime
        .progress
        .with_state(|s| s.engine.post_receive(envelope, target));
    // `buffer` stays borrowed until the request completes here.
    let status = runtime.wait(id).map_err(|e| localize(comm, e))?;
    Ok(Status::from_engine(comm, status))
}

/// Errors carry world ranks from the engine; users see their communicator's.
fn localize(comm: &SimpleCommunicator, error: Error) -> Error {
    match error {
        Error::Truncate {
            sender,
            tag,
            message_bytes,
            buffer_bytes,
        } => Error::Truncate {
            sender: comm.local_rank(sender),
            tag,
            message_bytes,
            buffer_bytes,
        },
        other => other,
    }
}

fn probe_status(comm: &SimpleCommunicator, source: Rank, tag: Tag) -> Result<Status, Error> {
    let envelope = envelope(comm, source, tag)?;
    let status = comm
        .runtime()
        .progress
        .wait_for(|s| s.engine.probe(&envelope));
    Ok(Status::from_engine(comm, status))
}

/// Receives a whole message of unknown length into a new vector (matched
/// probe, then receive: no other receive can take the message in between).
fn receive_vec_of<T: Equivalence>(
    comm: &SimpleCommunicator,
    source: Rank,
    tag: Tag,
) -> Result<(Vec<T>, Status), Error> {
    let envelope = envelope(comm, source, tag)?;
    let runtime = comm.runtime();
    let (status, message) = runtime
        .progress
        .wait_for(|s| s.engine.matched_probe(&envelope));
    let element = T::equivalent_datatype().size();
    if element == 0 || status.bytes % element != 0 {
        // Receive it anyway so the message does not linger, then report.
        let mut sink = vec![0u8; status.bytes];
        let id = runtime.progress.with_state(|s| {
            s.engine
                .receive_matched(message, UserBuffer::from_mut_slice(&mut sink))
        });
        runtime.wait(id)?;
        return Err(Error::Datatype {
            message_bytes: status.bytes,
            element_bytes: element,
        });
    }
    let count = status.bytes / element;
    let mut elements: Vec<T> = Vec::with_capacity(count);
    let target = UserBuffer {
        ptr: elements.as_mut_ptr().cast(),
        len: status.bytes,
    };
    let id = runtime
        .progress
        .with_state(|s| s.engine.receive_matched(message, target));
    let done = runtime.wait(id).map_err(|e| localize(comm, e))?;
    // SAFETY: the receive wrote exactly `count * element` bytes of elements
    // sent as T into the vector's capacity.
    unsafe { elements.set_len(count) };
    Ok((elements, Status::from_engine(comm, done)))
}

/// Receives one value of `T`; the message must hold exactly one.
fn receive_value<T: Equivalence>(
    comm: &SimpleCommunicator,
    source: Rank,
    tag: Tag,
) -> Result<(T, Status), Error> {
    let mut value = MaybeUninit::<T>::uninit();
    let size = std::mem::size_of::<T>();
    // SAFETY: the receive writes bytes into the value's storage; it is read
    // as T only when all `size` bytes arrived.
    let bytes = unsafe { std::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size) };
    let status = receive_bytes(comm, source, tag, bytes)?;
    if status.bytes != size {
        return Err(Error::Datatype {
            message_bytes: status.bytes,
            element_bytes: size,
        });
    }
    // SAFETY: all `size` bytes were written by a sender of T.
    Ok((unsafe { value.assume_init() }, status))
}

/// A process one can send to (rsmpi's `Destination`).
pub trait Destination {
    /// The communicator and rank of the destination.
    fn destination(&self) -> (&SimpleCommunicator, Rank);

    /// [`send_with_tag`](Self::send_with_tag) returning errors.
    fn try_send_with_tag<B: Buffer + ?Sized>(&self, buf: &B, tag: Tag) -> Result<(), Error> {
        let (comm, rank) = self.destination();
        send_bytes(comm, rank, tag, buf.as_bytes(), SendMode::Standard)
    }

    /// Standard-mode blocking send (MPI_Send, MPI 4.1 §3.2.1): returns once
    /// the data is copied out (eager) or delivered (rendezvous).
    fn send_with_tag<B: Buffer + ?Sized>(&self, buf: &B, tag: Tag) {
        if let Err(e) = self.try_send_with_tag(buf, tag) {
            let (comm, rank) = self.destination();
            let op = Operation {
                name: "send",
                peer: Some(rank),
                tag: Some(tag),
                bytes: Some(buf.as_bytes().len()),
            };
            comm.fatal(op, e)
        }
    }

    /// [`send`](Self::send) returning errors.
    fn try_send<B: Buffer + ?Sized>(&self, buf: &B) -> Result<(), Error> {
        self.try_send_with_tag(buf, 0)
    }

    /// MPI_Send with tag 0.
    fn send<B: Buffer + ?Sized>(&self, buf: &B) {
        self.send_with_tag(buf, 0)
    }

    /// [`synchronous_send_with_tag`](Self::synchronous_send_with_tag)
    /// returning errors.
    fn try_synchronous_send_with_tag<B: Buffer + ?Sized>(
        &self,
        buf: &B,
        tag: Tag,
    ) -> Result<(), Error> {
        let (comm, rank) = self.destination();
        send_bytes(comm, rank, tag, buf.as_bytes(), SendMode::Synchronous)
    }

    /// Synchronous-mode blocking send (MPI_Ssend, MPI 4.1 §3.4): returns only
    /// once the matching receive has started.
    fn synchronous_send_with_tag<B: Buffer + ?Sized>(&self, buf: &B, tag: Tag) {
        if let Err(e) = self.try_synchronous_send_with_tag(buf, tag) {
            let (comm, rank) = self.destination();
            let op = Operation {
                name: "synchronous_send",
                peer: Some(rank),
                tag: Some(tag),
                bytes: Some(buf.as_bytes().len()),
            };
            comm.fatal(op, e)
        }
    }

    /// [`synchronous_send`](Self::synchronous_send) returning errors.
    fn try_synchronous_send<B: Buffer + ?Sized>(&self, buf: &B) -> Result<(), Error> {
        self.try_synchronous_send_with_tag(buf, 0)
    }

    /// MPI_Ssend with tag 0.
    fn synchronous_send<B: Buffer + ?Sized>(&self, buf: &B) {
        self.synchronous_send_with_tag(buf, 0)
    }
}

impl Destination for Process<'_> {
    fn destination(&self) -> (&SimpleCommunicator, Rank) {
        (self.communicator(), self.rank())
    }
}

/// A process (or any process) one can receive from (rsmpi's `Source`).
pub trait Source {
    /// The communicator and the source rank (or [`ANY_SOURCE`]).
    fn source(&self) -> (&SimpleCommunicator, Rank);

    /// [`receive_into_with_tag`](Self::receive_into_with_tag) returning
    /// errors; a message longer than `buf` is [`Error::Truncate`].
    fn try_receive_into_with_tag<B: BufferMut + ?Sized>(
        &self,
        buf: &mut B,
        tag: Tag,
    ) -> Result<Status, Error> {
        let (comm, rank) = self.source();
        receive_bytes(comm, rank, tag, buf.as_bytes_mut())
    }

    /// Blocking receive into `buf` of a message with `tag` (or [`ANY_TAG`])
    /// (MPI_Recv, MPI 4.1 §3.2.4).
    fn receive_into_with_tag<B: BufferMut + ?Sized>(&self, buf: &mut B, tag: Tag) -> Status {
        match self.try_receive_into_with_tag(buf, tag) {
            Ok(status) => status,
            Err(e) => {
                let (comm, rank) = self.source();
                let op = Operation {
                    name: "receive_into",
                    peer: Some(rank),
                    tag: Some(tag),
                    bytes: Some(buf.as_bytes_mut().len()),
                };
                comm.fatal(op, e)
            }
        }
    }

    /// [`receive_into`](Self::receive_into) returning errors.
    fn try_receive_into<B: BufferMut + ?Sized>(&self, buf: &mut B) -> Result<Status, Error> {
        self.try_receive_into_with_tag(buf, ANY_TAG)
    }

    /// MPI_Recv of any tag into `buf`.
    fn receive_into<B: BufferMut + ?Sized>(&self, buf: &mut B) -> Status {
        self.receive_into_with_tag(buf, ANY_TAG)
    }

    /// [`receive_with_tag`](Self::receive_with_tag) returning errors.
    fn try_receive_with_tag<T: Equivalence>(&self, tag: Tag) -> Result<(T, Status), Error> {
        let (comm, rank) = self.source();
        receive_value(comm, rank, tag)
    }

    /// Receives one value of `T` with `tag` (MPI_Recv of count 1).
    fn receive_with_tag<T: Equivalence>(&self, tag: Tag) -> (T, Status) {
        match self.try_receive_with_tag(tag) {
            Ok(r) => r,
            Err(e) => {
                let (comm, rank) = self.source();
                let op = Operation {
                    name: "receive",
                    peer: Some(rank),
                    tag: Some(tag),
                    bytes: Some(std::mem::size_of::<T>()),
                };
                comm.fatal(op, e)
            }
        }
    }

    /// [`receive`](Self::receive) returning errors.
    fn try_receive<T: Equivalence>(&self) -> Result<(T, Status), Error> {
        self.try_receive_with_tag(ANY_TAG)
    }

    /// Receives one value of `T` with any tag.
    fn receive<T: Equivalence>(&self) -> (T, Status) {
        self.receive_with_tag(ANY_TAG)
    }

    /// [`receive_vec_with_tag`](Self::receive_vec_with_tag) returning errors.
    fn try_receive_vec_with_tag<T: Equivalence>(
        &self,
        tag: Tag,
    ) -> Result<(Vec<T>, Status), Error> {
        let (comm, rank) = self.source();
        receive_vec_of(comm, rank, tag)
    }

    /// Receives a whole message of any length into a new vector (MPI_Mprobe
    /// then MPI_Mrecv, MPI 4.1 §3.8.2).
    fn receive_vec_with_tag<T: Equivalence>(&self, tag: Tag) -> (Vec<T>, Status) {
        match self.try_receive_vec_with_tag(tag) {
            Ok(r) => r,
            Err(e) => {
                let (comm, rank) = self.source();
                comm.fatal(
                    Operation {
                        name: "receive_vec",
                        peer: Some(rank),
                        tag: Some(tag),
                        bytes: None,
                    },
                    e,
                )
            }
        }
    }

    /// [`receive_vec`](Self::receive_vec) returning errors.
    fn try_receive_vec<T: Equivalence>(&self) -> Result<(Vec<T>, Status), Error> {
        self.try_receive_vec_with_tag(ANY_TAG)
    }

    /// Receives a whole message of any tag into a new vector.
    fn receive_vec<T: Equivalence>(&self) -> (Vec<T>, Status) {
        self.receive_vec_with_tag(ANY_TAG)
    }

    /// [`probe_with_tag`](Self::probe_with_tag) returning errors.
    fn try_probe_with_tag(&self, tag: Tag) -> Result<Status, Error> {
        let (comm, rank) = self.source();
        probe_status(comm, rank, tag)
    }

    /// Waits until a message with `tag` can be received and describes it
    /// without receiving it (MPI_Probe, MPI 4.1 §3.8.1).
    fn probe_with_tag(&self, tag: Tag) -> Status {
        match self.try_probe_with_tag(tag) {
            Ok(s) => s,
            Err(e) => {
                let (comm, rank) = self.source();
                comm.fatal(
                    Operation {
                        name: "probe",
                        peer: Some(rank),
                        tag: Some(tag),
                        bytes: None,
                    },
                    e,
                )
            }
        }
    }

    /// [`probe`](Self::probe) returning errors.
    fn try_probe(&self) -> Result<Status, Error> {
        self.try_probe_with_tag(ANY_TAG)
    }

    /// MPI_Probe with any tag.
    fn probe(&self) -> Status {
        self.probe_with_tag(ANY_TAG)
    }
}

impl Source for Process<'_> {
    fn source(&self) -> (&SimpleCommunicator, Rank) {
        (self.communicator(), self.rank())
    }
}

impl Source for AnyProcess<'_> {
    fn source(&self) -> (&SimpleCommunicator, Rank) {
        (self.communicator(), ANY_SOURCE)
    }
}
