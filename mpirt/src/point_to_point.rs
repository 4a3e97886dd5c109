//! Point-to-point communication (MPI 4.1 chapter 3), in rsmpi's shape:
//! [`Destination`] for processes one sends to, [`Source`] for processes (or
//! any process) one receives from, and the `send_receive*` functions.
//!
//! Every operation has two forms. The rsmpi form (`send`, `receive_into`,
//! ...) hands an error to the communicator's [`ErrorHandler`](crate::ErrorHandler):
//! by default errors are fatal, as in MPI: one line naming this rank, the
//! operation, the peer, the tag and the sizes, and the job ends. The `try_`
//! form returns the [`Error`] instead.
//!
//! When each send mode completes (DESIGN.md, "Point-to-point"):
//!
//! | mode | blocking | returns / completes when |
//! |---|---|---|
//! | standard | `send` | the data is copied out (eager, credit allowing) or delivered (rendezvous) |
//! | buffered | `buffered_send` | the data is copied into the attached buffer (`BufferExhausted` if it does not fit) |
//! | synchronous | `synchronous_send` | the matching receive has started |
//! | ready | `ready_send` | as standard (a receive must already be posted) |
//!
//! The `immediate_*` forms return at once with a [`Request`] that completes
//! as the blocking form would return.

use std::mem::MaybeUninit;

use crate::buffered;
use crate::datatype::{Buffer, BufferMut, Datatype, Equivalence};
use crate::engine::{Envelope, MatchedMessage, RequestId, SendData, SendMode, UserBuffer};
use crate::error::{Error, Operation};
use crate::progress::State;
use crate::request::{Purpose, ReceiveFuture, Request, Scope, StaticScope};
use crate::topology::{AnyProcess, Process, SimpleCommunicator};
use crate::{Count, Rank, Tag, ANY_SOURCE, ANY_TAG, PROC_NULL};

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

    /// Whether the request was cancelled (MPI_Test_cancelled, MPI 4.1
    /// §3.8.4).
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

/// The four send modes (MPI 4.1 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Standard,
    Buffered,
    Synchronous,
    Ready,
}

impl Mode {
    fn name(self, immediate: bool) -> &'static str {
        match (self, immediate) {
            (Mode::Standard, false) => "send",
            (Mode::Buffered, false) => "buffered_send",
            (Mode::Synchronous, false) => "synchronous_send",
            (Mode::Ready, false) => "ready_send",
            (Mode::Standard, true) => "immediate_send",
            (Mode::Buffered, true) => "immediate_buffered_send",
            (Mode::Synchronous, true) => "immediate_synchronous_send",
            (Mode::Ready, true) => "immediate_ready_send",
        }
    }
}

/// Which of a communicator's two contexts a message travels on: the user's,
/// or the collective algorithms' own (where no user receive can match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    User,
    Collective,
}

impl Traffic {
    fn context(self, comm: &SimpleCommunicator) -> u32 {
        match self {
            Traffic::User => comm.context(),
            Traffic::Collective => comm.context() + 1,
        }
    }
}

/// An operation checked and ready to hand to the engine: what the
/// immediate forms post (then return a request) and the blocking forms post
/// inside their wait (see [`Progress::start_then_wait`]).
///
/// [`Progress::start_then_wait`]: crate::progress::Progress::start_then_wait
pub(crate) enum Post {
    /// Nothing to move (`PROC_NULL`, or a buffered send already copied).
    Completed(crate::engine::Status),
    Send {
        dest: i32,
        context: u32,
        tag: Tag,
        data: SendData,
        mode: SendMode,
    },
    Receive {
        envelope: Envelope,
        buffer: UserBuffer,
    },
}

/// What posting an operation did.
pub(crate) enum Started {
    /// It completed at once, and the engine keeps nothing of it.
    Done(crate::engine::Status),
    /// The engine's request for it.
    Request(RequestId),
}

impl Started {
    /// Whether the operation has completed (its outcome is there to take).
    fn is_complete(&self, state: &State) -> bool {
        match *self {
            Started::Done(_) => true,
            Started::Request(id) => state.engine.is_complete(id),
        }
    }

    /// The operation's outcome once it has one (a request's is taken out of
    /// the engine, so ask until the first answer only).
    fn outcome(&self, state: &mut State) -> Option<Result<crate::engine::Status, Error>> {
        match *self {
            Started::Done(status) => Some(Ok(status)),
            Started::Request(id) => state.engine.take_outcome(id),
        }
    }
}

impl Post {
    /// Hands the operation to the engine (a small standard send over
    /// shared memory goes straight into the peer's ring: see
    /// [`State::send_now`]).
    fn start(self, state: &mut State) -> Started {
        match self {
            Post::Completed(status) => Started::Done(status),
            Post::Send {
                dest,
                context,
                tag,
                data: SendData::Borrowed(buffer),
                mode: SendMode::Standard,
                // SAFETY: the caller of `start` keeps the send buffer
                // borrowed until the request completes.
            } if state.send_now(dest, context, tag, unsafe { buffer.as_slice() }) => {
                Started::Done(crate::engine::Status {
                    source: dest,
                    tag,
                    bytes: buffer.len,
                    cancelled: false,
                })
            }
            Post::Send {
                dest,
                context,
                tag,
                data,
                mode,
            } => Started::Request(state.engine.post_send(dest, context, tag, data, mode)),
            Post::Receive { envelope, buffer } => {
                Started::Request(state.engine.post_receive(envelope, buffer))
            }
        }
    }

    /// Hands the operation to the engine and returns a request for it
    /// (one that is complete already if the operation is).
    fn start_request(self, state: &mut State) -> RequestId {
        match self.start(state) {
            Started::Done(status) => state.engine.post_completed(status),
            Started::Request(id) => id,
        }
    }
}

/// Checks a send of `bytes` (a buffered one is copied into the attached
/// buffer here); the request it posts completes as `mode` says. The caller
/// keeps `bytes` borrowed until then.
pub(crate) fn prepare_send(
    comm: &SimpleCommunicator,
    traffic: Traffic,
    dest: Rank,
    tag: Tag,
    bytes: &[u8],
    mode: Mode,
) -> Result<Post, Error> {
    let runtime = comm.runtime();
    runtime.check_live()?;
    check_send_tag(tag)?;
    let done = crate::engine::Status {
        source: dest,
        tag,
        bytes: bytes.len(),
        cancelled: false,
    };
    if dest == PROC_NULL {
        return Ok(Post::Completed(done));
    }
    comm.check_rank(dest)?;
    let world_dest = comm.world_rank(dest);
    let mode = match mode {
        Mode::Buffered => {
            buffered::buffered_send(runtime, world_dest, traffic.context(comm), tag, bytes)?;
            return Ok(Post::Completed(done));
        }
        Mode::Standard | Mode::Ready => SendMode::Standard,
        Mode::Synchronous => SendMode::Synchronous,
    };
    Ok(Post::Send {
        dest: world_dest,
        context: traffic.context(comm),
        tag,
        data: SendData::Borrowed(UserBuffer::from_slice(bytes)),
        mode,
    })
}

/// Checks a receive into `buffer`; the caller keeps it borrowed until the
/// request completes.
pub(crate) fn prepare_receive(
    comm: &SimpleCommunicator,
    traffic: Traffic,
    source: Rank,
    tag: Tag,
    buffer: UserBuffer,
) -> Result<Post, Error> {
    if source == PROC_NULL {
        comm.runtime().check_live()?;
        return Ok(Post::Completed(crate::engine::Status {
            source: PROC_NULL,
            tag: ANY_TAG,
            bytes: 0,
            cancelled: false,
        }));
    }
    let envelope = envelope(comm, traffic, source, tag)?;
    Ok(Post::Receive { envelope, buffer })
}

/// Starts a send (see [`prepare_send`]) and returns its request.
pub(crate) fn start_send(
    comm: &SimpleCommunicator,
    traffic: Traffic,
    dest: Rank,
    tag: Tag,
    bytes: &[u8],
    mode: Mode,
) -> Result<RequestId, Error> {
    let post = prepare_send(comm, traffic, dest, tag, bytes, mode)?;
    Ok(start(comm, post))
}

/// Posts a receive (see [`prepare_receive`]) and returns its request.
pub(crate) fn start_receive(
    comm: &SimpleCommunicator,
    traffic: Traffic,
    source: Rank,
    tag: Tag,
    buffer: UserBuffer,
) -> Result<RequestId, Error> {
    let post = prepare_receive(comm, traffic, source, tag, buffer)?;
    Ok(start(comm, post))
}

fn start(comm: &SimpleCommunicator, post: Post) -> RequestId {
    comm.runtime()
        .progress
        .with_state(|s| post.start_request(s))
}

fn envelope(
    comm: &SimpleCommunicator,
    traffic: Traffic,
    source: Rank,
    tag: Tag,
) -> Result<Envelope, Error> {
    comm.runtime().check_live()?;
    if source != ANY_SOURCE {
        comm.check_rank(source)?;
    }
    if tag != ANY_TAG {
        check_send_tag(tag)?;
    }
    Ok(Envelope {
        context: traffic.context(comm),
        source: (source != ANY_SOURCE).then(|| comm.world_rank(source)),
        tag: (tag != ANY_TAG).then_some(tag),
    })
}

pub(crate) fn wait(comm: &SimpleCommunicator, id: RequestId) -> Result<Status, Error> {
    finish(comm, comm.runtime().wait(id))
}

fn finish(
    comm: &SimpleCommunicator,
    outcome: Result<crate::engine::Status, Error>,
) -> Result<Status, Error> {
    outcome
        .map(|s| Status::from_engine(comm, s))
        .map_err(|e| comm.localize(e))
}

/// Posts `post` and waits for it, in one hold of the progress lock while
/// it completes at once (see [`Progress::start_then_wait`]).
///
/// [`Progress::start_then_wait`]: crate::progress::Progress::start_then_wait
pub(crate) fn post_and_wait(comm: &SimpleCommunicator, post: Post) -> Result<Status, Error> {
    let outcome = comm
        .runtime()
        .progress
        .start_then_wait(|s| post.start(s), |s, started| started.outcome(s));
    finish(comm, outcome)
}

/// Posts a send and a receive (a send-receive's halves, each with its
/// communicator) and waits for both in one progress loop. The send is
/// posted first, the receive before anything is read: ours is out a little
/// sooner, and the peer's message meets a posted receive.
pub(crate) fn send_receive_posts(
    send: (&SimpleCommunicator, Post),
    receive: (&SimpleCommunicator, Post),
) -> (Result<Status, Error>, Result<Status, Error>) {
    let ((send_comm, send_post), (receive_comm, receive_post)) = (send, receive);
    let (sent, received) = send_comm.runtime().progress.start_then_wait(
        |s| {
            let send = send_post.start(s);
            (send, receive_post.start(s))
        },
        // Both outcomes are taken together, once both are there.
        |s, (send, receive)| {
            if !(send.is_complete(s) && receive.is_complete(s)) {
                return None;
            }
            send.outcome(s).zip(receive.outcome(s))
        },
    );
    (finish(send_comm, sent), finish(receive_comm, received))
}

/// Sends `bytes` and waits as `mode` says.
fn send_bytes(
    comm: &SimpleCommunicator,
    dest: Rank,
    tag: Tag,
    bytes: &[u8],
    mode: Mode,
) -> Result<(), Error> {
    let post = prepare_send(comm, Traffic::User, dest, tag, bytes, mode)?;
    post_and_wait(comm, post).map(|_| ())
}

/// Receives into `buffer` and waits for the data.
fn receive_bytes(
    comm: &SimpleCommunicator,
    source: Rank,
    tag: Tag,
    buffer: &mut [u8],
) -> Result<Status, Error> {
    let post = prepare_receive(
        comm,
        Traffic::User,
        source,
        tag,
        UserBuffer::from_mut_slice(buffer),
    )?;
    post_and_wait(comm, post)
}

/// Receives one value of `T` with `receive` (given the value's bytes to
/// fill); the message must hold exactly one.
fn receive_one<T: Equivalence>(
    receive: impl FnOnce(&mut [u8]) -> Result<Status, Error>,
) -> Result<(T, Status), Error> {
    let mut value = MaybeUninit::<T>::uninit();
    let size = std::mem::size_of::<T>();
    // SAFETY: the receive writes bytes into the value's storage; it is read
    // as T only when all `size` bytes arrived.
    let bytes = unsafe { std::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size) };
    let status = receive(bytes)?;
    if status.bytes != size {
        return Err(Error::Datatype {
            message_bytes: status.bytes,
            element_bytes: size,
        });
    }
    // SAFETY: all `size` bytes were written by a sender of T.
    Ok((unsafe { value.assume_init() }, status))
}

/// Receives one value of `T`; the message must hold exactly one.
fn receive_value<T: Equivalence>(
    comm: &SimpleCommunicator,
    source: Rank,
    tag: Tag,
) -> Result<(T, Status), Error> {
    receive_one(|bytes| receive_bytes(comm, source, tag, bytes))
}

fn or_handle<T>(
    comm: &SimpleCommunicator,
    name: &str,
    peer: Rank,
    tag: Tag,
    bytes: Option<usize>,
    result: Result<T, Error>,
) -> T {
    result
        .unwrap_or_else(|e| comm.handle_error(Operation::point_to_point(name, peer, tag, bytes), e))
}

macro_rules! blocking_send {
    ($(#[$doc:meta])* $name:ident, $with_tag:ident, $try_name:ident, $try_with_tag:ident, $mode:expr, $($unsafety:ident)?) => {
        /// The `Result` form of the tagged send below.
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $try_with_tag<B: Buffer + ?Sized>(&self, buf: &B, tag: Tag) -> Result<(), Error> {
            let (comm, rank) = self.destination();
            send_bytes(comm, rank, tag, buf.as_bytes(), $mode)
        }

        $(#[$doc])*
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $with_tag<B: Buffer + ?Sized>(&self, buf: &B, tag: Tag) {
            let (comm, rank) = self.destination();
            let bytes = buf.as_bytes();
            or_handle(comm, $mode.name(false), rank, tag, Some(bytes.len()), send_bytes(comm, rank, tag, bytes, $mode))
        }

        /// The `Result` form, with tag 0.
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $try_name<B: Buffer + ?Sized>(&self, buf: &B) -> Result<(), Error> {
            let (comm, rank) = self.destination();
            send_bytes(comm, rank, 0, buf.as_bytes(), $mode)
        }

        /// The same with tag 0.
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $name<B: Buffer + ?Sized>(&self, buf: &B) {
            let (comm, rank) = self.destination();
            let bytes = buf.as_bytes();
            or_handle(comm, $mode.name(false), rank, 0, Some(bytes.len()), send_bytes(comm, rank, 0, bytes, $mode))
        }
    };
}

macro_rules! immediate_send {
    ($(#[$doc:meta])* $name:ident, $with_tag:ident, $try_with_tag:ident, $mode:expr, $($unsafety:ident)?) => {
        /// The `Result` form of the tagged immediate send below.
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $try_with_tag<'a, S: Scope<'a>, B: Buffer + ?Sized + 'a>(
            &self,
            scope: S,
            buf: &'a B,
            tag: Tag,
        ) -> Result<Request<'a, B, S>, Error> {
            let (comm, rank) = self.destination();
            let bytes = buf.as_bytes();
            let id = start_send(comm, Traffic::User, rank, tag, bytes, $mode)?;
            let purpose = Purpose { name: $mode.name(true), peer: rank, tag, bytes: bytes.len() };
            Ok(Request::new(id, comm, scope, buf, purpose))
        }

        $(#[$doc])*
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $with_tag<'a, S: Scope<'a>, B: Buffer + ?Sized + 'a>(
            &self,
            scope: S,
            buf: &'a B,
            tag: Tag,
        ) -> Request<'a, B, S> {
            let (comm, rank) = self.destination();
            let len = Some(buf.as_bytes().len());
            or_handle(comm, $mode.name(true), rank, tag, len, self.$try_with_tag(scope, buf, tag))
        }

        /// The same with tag 0.
        #[allow(clippy::missing_safety_doc)]
        $($unsafety)? fn $name<'a, S: Scope<'a>, B: Buffer + ?Sized + 'a>(&self, scope: S, buf: &'a B) -> Request<'a, B, S> {
            self.$with_tag(scope, buf, 0)
        }
    };
}

/// A process one can send to (rsmpi's `Destination`).
pub trait Destination {
    /// The communicator and rank of the destination.
    fn destination(&self) -> (&SimpleCommunicator, Rank);

    blocking_send!(
        /// Standard-mode blocking send (MPI_Send, MPI 4.1 §3.2.1): returns
        /// once the data is copied out (eager) or delivered (rendezvous).
        send, send_with_tag, try_send, try_send_with_tag, Mode::Standard,
    );

    blocking_send!(
        /// Buffered-mode send (MPI_Bsend, MPI 4.1 §3.4): copies the message
        /// into the attached buffer (`Universe::set_buffer_size`) and returns
        /// at once; `Error::BufferExhausted` if it does not fit.
        buffered_send, buffered_send_with_tag, try_buffered_send, try_buffered_send_with_tag, Mode::Buffered,
    );

    blocking_send!(
        /// Synchronous-mode send (MPI_Ssend, MPI 4.1 §3.4): returns only once
        /// the matching receive has started.
        synchronous_send, synchronous_send_with_tag, try_synchronous_send, try_synchronous_send_with_tag,
        Mode::Synchronous,
    );

    blocking_send!(
        /// Ready-mode send (MPI_Rsend, MPI 4.1 §3.4). Unsafe as in rsmpi:
        /// the matching receive must already be posted. mpirt sends it as a
        /// standard send, which the standard allows.
        ready_send, ready_send_with_tag, try_ready_send, try_ready_send_with_tag, Mode::Ready, unsafe
    );

    immediate_send!(
        /// Non-blocking standard send (MPI_Isend, MPI 4.1 §3.7.2): the
        /// request completes as `send` would return.
        immediate_send, immediate_send_with_tag, try_immediate_send_with_tag, Mode::Standard,
    );

    immediate_send!(
        /// Non-blocking buffered send (MPI_Ibsend, MPI 4.1 §3.7.2): copies
        /// into the attached buffer; the request is complete on return.
        immediate_buffered_send, immediate_buffered_send_with_tag, try_immediate_buffered_send_with_tag,
        Mode::Buffered,
    );

    immediate_send!(
        /// Non-blocking synchronous send (MPI_Issend, MPI 4.1 §3.7.2): the
        /// request completes once the matching receive has started.
        immediate_synchronous_send, immediate_synchronous_send_with_tag,
        try_immediate_synchronous_send_with_tag, Mode::Synchronous,
    );

    immediate_send!(
        /// Non-blocking ready send (MPI_Irsend, MPI 4.1 §3.7.2); unsafe as
        /// `ready_send`.
        immediate_ready_send, immediate_ready_send_with_tag, try_immediate_ready_send_with_tag, Mode::Ready,
        unsafe
    );
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
        let (comm, rank) = self.source();
        let bytes = buf.as_bytes_mut();
        let len = bytes.len();
        or_handle(
            comm,
            "receive_into",
            rank,
            tag,
            Some(len),
            receive_bytes(comm, rank, tag, bytes),
        )
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
        let (comm, rank) = self.source();
        or_handle(
            comm,
            "receive",
            rank,
            tag,
            Some(std::mem::size_of::<T>()),
            receive_value(comm, rank, tag),
        )
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
        self.try_matched_probe_with_tag(tag)?
            .0
            .try_matched_receive_vec()
    }

    /// Receives a whole message of any length into a new vector (MPI_Mprobe
    /// then MPI_Mrecv, MPI 4.1 §3.8.2).
    fn receive_vec_with_tag<T: Equivalence>(&self, tag: Tag) -> (Vec<T>, Status) {
        let (comm, rank) = self.source();
        or_handle(
            comm,
            "receive_vec",
            rank,
            tag,
            None,
            self.try_receive_vec_with_tag(tag),
        )
    }

    /// [`receive_vec`](Self::receive_vec) returning errors.
    fn try_receive_vec<T: Equivalence>(&self) -> Result<(Vec<T>, Status), Error> {
        self.try_receive_vec_with_tag(ANY_TAG)
    }

    /// Receives a whole message of any tag into a new vector.
    fn receive_vec<T: Equivalence>(&self) -> (Vec<T>, Status) {
        self.receive_vec_with_tag(ANY_TAG)
    }

    /// [`immediate_receive_into_with_tag`](Self::immediate_receive_into_with_tag)
    /// returning errors.
    fn try_immediate_receive_into_with_tag<'a, S: Scope<'a>, B: BufferMut + ?Sized + 'a>(
        &self,
        scope: S,
        buf: &'a mut B,
        tag: Tag,
    ) -> Result<Request<'a, B, S>, Error> {
        let (comm, rank) = self.source();
        let target = UserBuffer::from_mut_slice(buf.as_bytes_mut());
        let id = start_receive(comm, Traffic::User, rank, tag, target)?;
        let purpose = Purpose {
            name: "immediate_receive_into",
            peer: rank,
            tag,
            bytes: target.len,
        };
        Ok(Request::new(id, comm, scope, buf as *const B, purpose))
    }

    /// Non-blocking receive into `buf` (MPI_Irecv, MPI 4.1 §3.7.2): the
    /// request completes when the data is in `buf`; truncation surfaces at
    /// `wait`.
    fn immediate_receive_into_with_tag<'a, S: Scope<'a>, B: BufferMut + ?Sized + 'a>(
        &self,
        scope: S,
        buf: &'a mut B,
        tag: Tag,
    ) -> Request<'a, B, S> {
        let (comm, rank) = self.source();
        let result = self.try_immediate_receive_into_with_tag(scope, buf, tag);
        or_handle(comm, "immediate_receive_into", rank, tag, None, result)
    }

    /// MPI_Irecv of any tag into `buf`.
    fn immediate_receive_into<'a, S: Scope<'a>, B: BufferMut + ?Sized + 'a>(
        &self,
        scope: S,
        buf: &'a mut B,
    ) -> Request<'a, B, S> {
        self.immediate_receive_into_with_tag(scope, buf, ANY_TAG)
    }

    /// Non-blocking receive of one value of `T` with `tag`; `get` waits for
    /// it (MPI_Irecv).
    fn immediate_receive_with_tag<T: Equivalence>(&self, tag: Tag) -> ReceiveFuture<T> {
        let (comm, rank) = self.source();
        let mut value = Box::new(MaybeUninit::<T>::uninit());
        let size = std::mem::size_of::<T>();
        let target = UserBuffer {
            ptr: value.as_mut_ptr().cast(),
            len: size,
        };
        let id = or_handle(
            comm,
            "immediate_receive",
            rank,
            tag,
            Some(size),
            start_receive(comm, Traffic::User, rank, tag, target),
        );
        let purpose = Purpose {
            name: "immediate_receive",
            peer: rank,
            tag,
            bytes: size,
        };
        // The box's heap memory stays put while the future owns it.
        let bytes: *const [u8] = std::ptr::slice_from_raw_parts(target.ptr, size);
        ReceiveFuture::new(value, Request::new(id, comm, StaticScope, bytes, purpose))
    }

    /// Non-blocking receive of one value of `T` with any tag.
    fn immediate_receive<T: Equivalence>(&self) -> ReceiveFuture<T> {
        self.immediate_receive_with_tag(ANY_TAG)
    }

    /// [`probe_with_tag`](Self::probe_with_tag) returning errors.
    fn try_probe_with_tag(&self, tag: Tag) -> Result<Status, Error> {
        let (comm, rank) = self.source();
        if rank == PROC_NULL {
            return Ok(Status {
                source: PROC_NULL,
                tag: ANY_TAG,
                bytes: 0,
                cancelled: false,
            });
        }
        let envelope = envelope(comm, Traffic::User, rank, tag)?;
        let status = comm
            .runtime()
            .progress
            .wait_for(|s| s.engine.probe(&envelope));
        Ok(Status::from_engine(comm, status))
    }

    /// Waits until a message with `tag` can be received and describes it
    /// without receiving it (MPI_Probe, MPI 4.1 §3.8.1).
    fn probe_with_tag(&self, tag: Tag) -> Status {
        let (comm, rank) = self.source();
        or_handle(comm, "probe", rank, tag, None, self.try_probe_with_tag(tag))
    }

    /// [`probe`](Self::probe) returning errors.
    fn try_probe(&self) -> Result<Status, Error> {
        self.try_probe_with_tag(ANY_TAG)
    }

    /// MPI_Probe with any tag.
    fn probe(&self) -> Status {
        self.probe_with_tag(ANY_TAG)
    }

    /// [`immediate_probe_with_tag`](Self::immediate_probe_with_tag)
    /// returning errors.
    fn try_immediate_probe_with_tag(&self, tag: Tag) -> Result<Option<Status>, Error> {
        let (comm, rank) = self.source();
        let envelope = envelope(comm, Traffic::User, rank, tag)?;
        let found = comm
            .runtime()
            .progress
            .poll_once_then(|s| s.engine.probe(&envelope));
        Ok(found.map(|s| Status::from_engine(comm, s)))
    }

    /// Whether a message with `tag` can be received now, without receiving
    /// it (MPI_Iprobe, MPI 4.1 §3.8.1). Makes progress once.
    fn immediate_probe_with_tag(&self, tag: Tag) -> Option<Status> {
        let (comm, rank) = self.source();
        or_handle(
            comm,
            "immediate_probe",
            rank,
            tag,
            None,
            self.try_immediate_probe_with_tag(tag),
        )
    }

    /// MPI_Iprobe with any tag.
    fn immediate_probe(&self) -> Option<Status> {
        self.immediate_probe_with_tag(ANY_TAG)
    }

    /// [`matched_probe_with_tag`](Self::matched_probe_with_tag) returning
    /// errors.
    fn try_matched_probe_with_tag(&self, tag: Tag) -> Result<(Message, Status), Error> {
        let (comm, rank) = self.source();
        let envelope = envelope(comm, Traffic::User, rank, tag)?;
        let (status, matched) = comm
            .runtime()
            .progress
            .wait_for(|s| s.engine.matched_probe(&envelope));
        Ok((
            Message {
                comm: comm.clone(),
                matched: Some(matched),
            },
            Status::from_engine(comm, status),
        ))
    }

    /// Waits for a message with `tag` and takes it out of matching, so only
    /// the returned [`Message`] can receive it (MPI_Mprobe, MPI 4.1 §3.8.2).
    fn matched_probe_with_tag(&self, tag: Tag) -> (Message, Status) {
        let (comm, rank) = self.source();
        or_handle(
            comm,
            "matched_probe",
            rank,
            tag,
            None,
            self.try_matched_probe_with_tag(tag),
        )
    }

    /// MPI_Mprobe with any tag.
    fn matched_probe(&self) -> (Message, Status) {
        self.matched_probe_with_tag(ANY_TAG)
    }

    /// Takes a message with `tag` out of matching if one is there now
    /// (MPI_Improbe, MPI 4.1 §3.8.2).
    fn immediate_matched_probe_with_tag(&self, tag: Tag) -> Option<(Message, Status)> {
        let (comm, rank) = self.source();
        let result = envelope(comm, Traffic::User, rank, tag).map(|envelope| {
            comm.runtime()
                .progress
                .poll_once_then(|s| s.engine.matched_probe(&envelope))
                .map(|(status, matched)| {
                    (
                        Message {
                            comm: comm.clone(),
                            matched: Some(matched),
                        },
                        Status::from_engine(comm, status),
                    )
                })
        });
        or_handle(comm, "immediate_matched_probe", rank, tag, None, result)
    }

    /// MPI_Improbe with any tag.
    fn immediate_matched_probe(&self) -> Option<(Message, Status)> {
        self.immediate_matched_probe_with_tag(ANY_TAG)
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

/// A message taken out of matching by a matched probe; only it can receive
/// the message (MPI_Message, MPI 4.1 §3.8.2).
pub struct Message {
    comm: SimpleCommunicator,
    matched: Option<MatchedMessage>,
}

impl Message {
    fn receive_bytes(&mut self, buffer: UserBuffer) -> Result<Status, Error> {
        let matched = self.matched.take().ok_or(Error::Finalized)?;
        let id = self
            .comm
            .runtime()
            .progress
            .with_state(|s| s.engine.receive_matched(matched, buffer));
        wait(&self.comm, id)
    }

    /// [`matched_receive_into`](Self::matched_receive_into) returning errors.
    pub fn try_matched_receive_into<B: BufferMut + ?Sized>(
        mut self,
        buf: &mut B,
    ) -> Result<Status, Error> {
        self.receive_bytes(UserBuffer::from_mut_slice(buf.as_bytes_mut()))
    }

    /// Receives the message into `buf` (MPI_Mrecv, MPI 4.1 §3.8.3).
    pub fn matched_receive_into<B: BufferMut + ?Sized>(self, buf: &mut B) -> Status {
        let comm = self.comm.clone();
        let len = buf.as_bytes_mut().len();
        let result = self.try_matched_receive_into(buf);
        or_handle(
            &comm,
            "matched_receive_into",
            ANY_SOURCE,
            ANY_TAG,
            Some(len),
            result,
        )
    }

    /// [`matched_receive_vec`](Self::matched_receive_vec) returning errors.
    pub fn try_matched_receive_vec<T: Equivalence>(mut self) -> Result<(Vec<T>, Status), Error> {
        let bytes = self.matched.as_ref().map_or(0, |m| m.length());
        let element = T::equivalent_datatype().size();
        if element == 0 || !bytes.is_multiple_of(element) {
            // Receive it anyway so it does not linger, then report.
            let mut sink = vec![0u8; bytes];
            self.receive_bytes(UserBuffer::from_mut_slice(&mut sink))?;
            return Err(Error::Datatype {
                message_bytes: bytes,
                element_bytes: element,
            });
        }
        let count = bytes / element;
        let mut elements: Vec<T> = Vec::with_capacity(count);
        let status = self.receive_bytes(UserBuffer {
            ptr: elements.as_mut_ptr().cast(),
            len: bytes,
        })?;
        // SAFETY: the receive wrote exactly `count * element` bytes of
        // elements sent as T into the vector's capacity.
        unsafe { elements.set_len(count) };
        Ok((elements, status))
    }

    /// Receives the message into a new vector of `T`.
    pub fn matched_receive_vec<T: Equivalence>(self) -> (Vec<T>, Status) {
        let comm = self.comm.clone();
        or_handle(
            &comm,
            "matched_receive_vec",
            ANY_SOURCE,
            ANY_TAG,
            None,
            self.try_matched_receive_vec(),
        )
    }

    /// Receives one value of `T`.
    pub fn matched_receive<T: Equivalence>(mut self) -> (T, Status) {
        let comm = self.comm.clone();
        let size = std::mem::size_of::<T>();
        let result = receive_one(|bytes| self.receive_bytes(UserBuffer::from_mut_slice(bytes)));
        or_handle(
            &comm,
            "matched_receive",
            ANY_SOURCE,
            ANY_TAG,
            Some(size),
            result,
        )
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if self.matched.is_some() {
            eprintln!(
                "mpirt: rank {}: a matched message was dropped without being received; it is lost",
                self.comm.runtime().rank
            );
            // Receive it into nothing so its sender (rendezvous) completes.
            let mut sink = vec![0u8; self.matched.as_ref().map_or(0, |m| m.length())];
            let _ = self.receive_bytes(UserBuffer::from_mut_slice(&mut sink));
        }
    }
}

/// Sends `msg` to `destination` with `sendtag` and receives into `buf` from
/// `source` with `receivetag`, as one operation that cannot deadlock in a
/// ring or to self (MPI_Sendrecv, MPI 4.1 §3.10): both halves are started,
/// then both waited for.
pub fn try_send_receive_into_with_tags<M, D, B, S>(
    msg: &M,
    destination: &D,
    sendtag: Tag,
    buf: &mut B,
    source: &S,
    receivetag: Tag,
) -> Result<Status, Error>
where
    M: Buffer + ?Sized,
    D: Destination,
    B: BufferMut + ?Sized,
    S: Source,
{
    let (send_comm, to) = destination.destination();
    let (receive_comm, from) = source.source();
    let receive = prepare_receive(
        receive_comm,
        Traffic::User,
        from,
        receivetag,
        UserBuffer::from_mut_slice(buf.as_bytes_mut()),
    )?;
    let send = prepare_send(
        send_comm,
        Traffic::User,
        to,
        sendtag,
        msg.as_bytes(),
        Mode::Standard,
    )?;
    let (sent, received) = send_receive_posts((send_comm, send), (receive_comm, receive));
    sent?;
    received
}

/// MPI_Sendrecv; see [`try_send_receive_into_with_tags`].
pub fn send_receive_into_with_tags<M, D, B, S>(
    msg: &M,
    destination: &D,
    sendtag: Tag,
    buf: &mut B,
    source: &S,
    receivetag: Tag,
) -> Status
where
    M: Buffer + ?Sized,
    D: Destination,
    B: BufferMut + ?Sized,
    S: Source,
{
    let result =
        try_send_receive_into_with_tags(msg, destination, sendtag, buf, source, receivetag);
    let (comm, to) = destination.destination();
    or_handle(
        comm,
        "send_receive_into",
        to,
        sendtag,
        Some(msg.as_bytes().len()),
        result,
    )
}

/// MPI_Sendrecv with tag 0 both ways.
pub fn send_receive_into<M, D, B, S>(msg: &M, destination: &D, buf: &mut B, source: &S) -> Status
where
    M: Buffer + ?Sized,
    D: Destination,
    B: BufferMut + ?Sized,
    S: Source,
{
    send_receive_into_with_tags(msg, destination, 0, buf, source, ANY_TAG)
}

/// MPI_Sendrecv of one value each way, with tags.
pub fn send_receive_with_tags<M, D, R, S>(
    msg: &M,
    destination: &D,
    sendtag: Tag,
    source: &S,
    receivetag: Tag,
) -> (R, Status)
where
    M: Equivalence,
    D: Destination,
    R: Equivalence,
    S: Source,
{
    let result = receive_one(|bytes| {
        try_send_receive_into_with_tags(msg, destination, sendtag, bytes, source, receivetag)
    });
    let (comm, to) = destination.destination();
    or_handle(
        comm,
        "send_receive",
        to,
        sendtag,
        Some(std::mem::size_of::<R>()),
        result,
    )
}

/// MPI_Sendrecv of one value each way, tag 0.
pub fn send_receive<R, M, D, S>(msg: &M, destination: &D, source: &S) -> (R, Status)
where
    M: Equivalence,
    D: Destination,
    R: Equivalence,
    S: Source,
{
    send_receive_with_tags(msg, destination, 0, source, ANY_TAG)
}

/// Sends the contents of `buf` and receives into the same buffer
/// (MPI_Sendrecv_replace, MPI 4.1 §3.10).
pub fn send_receive_replace_into_with_tags<B, D, S>(
    buf: &mut B,
    destination: &D,
    sendtag: Tag,
    source: &S,
    receivetag: Tag,
) -> Status
where
    B: BufferMut + ?Sized,
    D: Destination,
    S: Source,
{
    let outgoing = buf.as_bytes_mut().to_vec();
    send_receive_into_with_tags(
        &outgoing[..],
        destination,
        sendtag,
        buf.as_bytes_mut(),
        source,
        receivetag,
    )
}

/// MPI_Sendrecv_replace with tag 0 both ways.
pub fn send_receive_replace_into<B, D, S>(buf: &mut B, destination: &D, source: &S) -> Status
where
    B: BufferMut + ?Sized,
    D: Destination,
    S: Source,
{
    send_receive_replace_into_with_tags(buf, destination, 0, source, ANY_TAG)
}
