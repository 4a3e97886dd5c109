//! Collective operations (MPI 4.1 chapter 6) in rsmpi's shape: barrier,
//! broadcast, gather/scatter (and varcount forms), all-gather, all-to-all,
//! reductions and scans, on every communicator.
//!
//! The algorithms live in the `collectives` crate, written against its
//! `PointToPoint` trait; here a communicator implements that trait on its
//! collective context (`context + 1`), so collective traffic never matches a
//! user's receive. Every receive of an algorithm expects an exact length, so
//! buffers of different lengths on different ranks come out as a clear
//! `Error::Collective` (or `Truncate`), never a hang or garbage.
//!
//! As everywhere in mpirt, each operation hands its errors to the
//! communicator's [`ErrorHandler`](crate::ErrorHandler) (fatal by default)
//! and has a `try_` form returning them. Non-blocking forms (`immediate_barrier`,
//! `immediate_broadcast_into`, `immediate_all_reduce_into`,
//! `immediate_all_gather_into`) run the blocking algorithm on a thread of
//! their own, so it progresses while the caller computes; start no other
//! collective on the same communicator until it completes.

use std::marker::PhantomData;

use collectives::{CollectiveError, PointToPoint, SystemOp};

use crate::datatype::{Buffer, BufferMut, DatatypeRef, Equivalence, Partition, PartitionMut};
use crate::engine::UserBuffer;
use crate::error::{Error, Operation as OperationContext};
use crate::point_to_point::{
    post_and_wait, prepare_receive, prepare_send, send_receive_posts, Mode, Post, Status, Traffic,
};
use crate::request::{Purpose, Request, Scope, StaticScope};
use crate::topology::{Communicator, Process, SimpleCommunicator};
use crate::{Rank, Tag, ANY_SOURCE};

/// A communicator's collective context, as the algorithms see it.
struct Channel<'c> {
    comm: &'c SimpleCommunicator,
}

impl Channel<'_> {
    fn of(comm: &SimpleCommunicator) -> Channel<'_> {
        Channel { comm }
    }
}

/// A received length must be the expected one: otherwise the ranks were
/// given buffers of different lengths.
fn exact(result: Result<Status, Error>, expected: usize, from: usize) -> Result<(), Error> {
    let mismatch = |got: usize| {
        Error::Collective(format!(
            "rank {from} sent {got} bytes where this rank expected {expected}: the ranks' buffer lengths differ"
        ))
    };
    match result {
        Ok(status) if status.byte_count() == expected => Ok(()),
        Ok(status) => Err(mismatch(status.byte_count())),
        Err(Error::Truncate { message_bytes, .. }) => Err(mismatch(message_bytes)),
        Err(e) => Err(e),
    }
}

impl PointToPoint for Channel<'_> {
    type Error = Error;

    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    fn send(&self, to: usize, tag: u32, data: &[u8]) -> Result<(), Error> {
        post_and_wait(self.comm, self.send_post(to, tag, data)?).map(|_| ())
    }

    fn receive(&self, from: usize, tag: u32, into: &mut [u8]) -> Result<(), Error> {
        let expected = into.len();
        let post = self.receive_post(from, tag, into)?;
        exact(post_and_wait(self.comm, post), expected, from)
    }

    fn send_receive(
        &self,
        to: usize,
        send_tag: u32,
        data: &[u8],
        from: usize,
        receive_tag: u32,
        into: &mut [u8],
    ) -> Result<(), Error> {
        let expected = into.len();
        let send = self.send_post(to, send_tag, data)?;
        let receive = self.receive_post(from, receive_tag, into)?;
        let (sent, received) = send_receive_posts((self.comm, send), (self.comm, receive));
        sent?;
        exact(received, expected, from)
    }
}

impl Channel<'_> {
    /// A standard send of `data` on the collective context.
    fn send_post(&self, to: usize, tag: u32, data: &[u8]) -> Result<Post, Error> {
        let (to, tag) = (to as Rank, tag as Tag);
        prepare_send(
            self.comm,
            Traffic::Collective,
            to,
            tag,
            data,
            Mode::Standard,
        )
    }

    /// A receive into `into` on the collective context.
    fn receive_post(&self, from: usize, tag: u32, into: &mut [u8]) -> Result<Post, Error> {
        let buffer = UserBuffer::from_mut_slice(into);
        prepare_receive(
            self.comm,
            Traffic::Collective,
            from as Rank,
            tag as Tag,
            buffer,
        )
    }
}

/// An algorithm's error, with the transport's own error kept as it was.
fn lift(error: CollectiveError<Error>) -> Error {
    match error {
        CollectiveError::Transport {
            source: Error::Collective(detail),
            operation,
            ..
        } => Error::Collective(format!("{operation}: {detail}")),
        CollectiveError::Transport { source, .. } => source,
        invalid @ CollectiveError::InvalidArgument { .. } => Error::Collective(invalid.to_string()),
    }
}

/// The maximum of `value` over the members of `comm` (for agreeing on
/// context ids).
pub(crate) fn max_u32(comm: &SimpleCommunicator, value: u32) -> Result<u32, Error> {
    let op = collectives::SystemOperation::new(SystemOp::Max, collectives::Primitive::U32)
        .map_err(|e| Error::Collective(e.to_string()))?;
    let mut result = [0u8; 4];
    collectives::all_reduce(
        &Channel::of(comm),
        &value.to_ne_bytes(),
        &mut result,
        4,
        &op,
    )
    .map_err(lift)?;
    Ok(u32::from_ne_bytes(result))
}

/// All-gather of raw bytes over `comm` (for splitting).
pub(crate) fn all_gather_bytes(
    comm: &SimpleCommunicator,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), Error> {
    collectives::all_gather(&Channel::of(comm), send, receive).map_err(lift)
}

/// A reduction operation (MPI_Op, MPI 4.1 §6.9): a predefined
/// [`SystemOperation`] or a [`UserOperation`].
pub trait Operation {
    /// The operation for elements of `datatype`, as the algorithms apply it.
    fn for_datatype(&self, datatype: DatatypeRef) -> Result<Reduction<'_>, Error>;
}

impl<O: Operation + ?Sized> Operation for &O {
    fn for_datatype(&self, datatype: DatatypeRef) -> Result<Reduction<'_>, Error> {
        (**self).for_datatype(datatype)
    }
}

/// An [`Operation`] bound to a datatype: what the algorithms apply. A
/// predefined one is held as it is, not boxed: an 8-byte allreduce is
/// short enough for an allocation to show.
pub enum Reduction<'o> {
    /// A predefined operation on a primitive type.
    System(collectives::SystemOperation),
    /// Any other.
    Other(Box<dyn collectives::Operation + 'o>),
}

impl<'o> std::ops::Deref for Reduction<'o> {
    type Target = dyn collectives::Operation + 'o;

    fn deref(&self) -> &Self::Target {
        match self {
            Reduction::System(op) => op,
            Reduction::Other(op) => &**op,
        }
    }
}

/// MPI's predefined reductions (MPI 4.1 §6.9.2), on the primitive numeric
/// types and `bool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemOperation(SystemOp);

impl SystemOperation {
    /// MPI_MAX.
    pub fn max() -> Self {
        SystemOperation(SystemOp::Max)
    }
    /// MPI_MIN.
    pub fn min() -> Self {
        SystemOperation(SystemOp::Min)
    }
    /// MPI_SUM.
    pub fn sum() -> Self {
        SystemOperation(SystemOp::Sum)
    }
    /// MPI_PROD.
    pub fn product() -> Self {
        SystemOperation(SystemOp::Product)
    }
    /// MPI_LAND.
    pub fn logical_and() -> Self {
        SystemOperation(SystemOp::LogicalAnd)
    }
    /// MPI_LOR.
    pub fn logical_or() -> Self {
        SystemOperation(SystemOp::LogicalOr)
    }
    /// MPI_LXOR.
    pub fn logical_xor() -> Self {
        SystemOperation(SystemOp::LogicalXor)
    }
    /// MPI_BAND.
    pub fn bitwise_and() -> Self {
        SystemOperation(SystemOp::BitwiseAnd)
    }
    /// MPI_BOR.
    pub fn bitwise_or() -> Self {
        SystemOperation(SystemOp::BitwiseOr)
    }
    /// MPI_BXOR.
    pub fn bitwise_xor() -> Self {
        SystemOperation(SystemOp::BitwiseXor)
    }
}

impl Operation for SystemOperation {
    fn for_datatype(&self, datatype: DatatypeRef) -> Result<Reduction<'_>, Error> {
        let primitive = datatype.primitive().ok_or_else(|| {
            Error::Collective(format!(
                "no predefined {:?} for elements of type {}",
                self.0,
                datatype.name()
            ))
        })?;
        let op = collectives::SystemOperation::new(self.0, primitive)
            .map_err(|e| Error::Collective(e.to_string()))?;
        Ok(Reduction::System(op))
    }
}

/// A reduction from a closure `f(earlier, later)` that leaves
/// `earlier ∘ later` in `later`, element by element (MPI_Op_create,
/// MPI 4.1 §6.9.5). rsmpi passes untyped buffers; here the closure sees
/// typed slices of `T`.
pub struct UserOperation<T, F> {
    function: F,
    commutative: bool,
    _elements: PhantomData<fn(&[T])>,
}

impl<T: Equivalence, F: Fn(&[T], &mut [T])> UserOperation<T, F> {
    /// A commutative operation: algorithms may combine in any order.
    pub fn commutative(function: F) -> Self {
        UserOperation {
            function,
            commutative: true,
            _elements: PhantomData,
        }
    }

    /// An associative, non-commutative operation: results combine in rank
    /// order.
    pub fn associative(function: F) -> Self {
        UserOperation {
            function,
            commutative: false,
            _elements: PhantomData,
        }
    }
}

/// Copies bytes into properly aligned elements (the algorithms' scratch
/// buffers are bytes, with no alignment).
fn elements_of<T: Equivalence>(bytes: &[u8]) -> Vec<T> {
    let count = bytes.len() / std::mem::size_of::<T>();
    let mut out: Vec<T> = Vec::with_capacity(count);
    // SAFETY: `count` whole elements of T fit in `bytes` and in the capacity;
    // the bytes are T's as a sender of T wrote them.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            out.as_mut_ptr().cast::<u8>(),
            count * std::mem::size_of::<T>(),
        );
        out.set_len(count);
    }
    out
}

struct TypedOperation<'o, T, F> {
    op: &'o UserOperation<T, F>,
}

impl<T: Equivalence, F: Fn(&[T], &mut [T])> collectives::Operation for TypedOperation<'_, T, F> {
    fn apply(&self, earlier: &[u8], later: &mut [u8]) {
        let earlier_elements = elements_of::<T>(earlier);
        let mut later_elements = elements_of::<T>(later);
        (self.op.function)(&earlier_elements, &mut later_elements);
        later.copy_from_slice(later_elements.as_bytes());
    }

    fn is_commutative(&self) -> bool {
        self.op.commutative
    }
}

impl<T: Equivalence, F: Fn(&[T], &mut [T])> Operation for UserOperation<T, F> {
    fn for_datatype(&self, datatype: DatatypeRef) -> Result<Reduction<'_>, Error> {
        let mine = T::equivalent_datatype();
        if datatype.size() != mine.size() {
            return Err(Error::Collective(format!(
                "an operation on {} used on elements of type {}",
                mine.name(),
                datatype.name()
            )));
        }
        Ok(Reduction::Other(Box::new(TypedOperation { op: self })))
    }
}

/// Applies `op` to `inbuf` and `inoutbuf`, leaving the result in
/// `inoutbuf`, with no communication (MPI_Reduce_local, MPI 4.1 §6.9.7).
pub fn reduce_local_into<S, R, O>(inbuf: &S, inoutbuf: &mut R, op: O)
where
    S: Buffer + ?Sized,
    R: BufferMut + ?Sized,
    O: Operation,
{
    let op = op
        .for_datatype(inoutbuf.datatype())
        .unwrap_or_else(|e| panic!("reduce_local_into: {e}"));
    collectives::reduce_local(inbuf.as_bytes(), inoutbuf.as_bytes_mut(), &*op);
}

fn context(name: &'static str, root: Option<Rank>, bytes: usize) -> OperationContext<'static> {
    OperationContext::collective(name, root, bytes)
}

fn reduction<'o, R: BufferMut + ?Sized, O: Operation>(
    receive: &R,
    op: &'o O,
) -> Result<(Reduction<'o>, usize), Error> {
    let datatype = receive.datatype();
    Ok((op.for_datatype(datatype)?, datatype.size()))
}

/// Collectives every communicator offers (rsmpi's
/// `CommunicatorCollectives`). Each is collective: every rank of the
/// communicator calls it, with matching arguments.
pub trait CommunicatorCollectives: Communicator {
    /// [`barrier`](Self::barrier) returning errors.
    fn try_barrier(&self) -> Result<(), Error> {
        collectives::barrier(&Channel::of(self.as_simple())).map_err(lift)
    }

    /// Waits until every rank has called it (MPI_Barrier, MPI 4.1 §6.3).
    fn barrier(&self) {
        let comm = self.as_simple();
        self.try_barrier()
            .unwrap_or_else(|e| comm.handle_error(context("barrier", None, 0), e))
    }

    /// [`all_gather_into`](Self::all_gather_into) returning errors.
    fn try_all_gather_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) -> Result<(), Error> {
        collectives::all_gather(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.as_bytes_mut(),
        )
        .map_err(lift)
    }

    /// Every rank's `send`, in rank order, into every rank's `receive`
    /// (MPI_Allgather, MPI 4.1 §6.7).
    fn all_gather_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_all_gather_into(send, receive)
            .unwrap_or_else(|e| comm.handle_error(context("all_gather_into", None, bytes), e))
    }

    /// [`all_gather_varcount_into`](Self::all_gather_varcount_into)
    /// returning errors.
    fn try_all_gather_varcount_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut PartitionMut<'_, R>,
    ) -> Result<(), Error> {
        collectives::all_gather_varcount(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.bytes(),
        )
        .map_err(lift)
    }

    /// Every rank's `send` into its block of every rank's `receive`
    /// (MPI_Allgatherv, MPI 4.1 §6.7).
    fn all_gather_varcount_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut PartitionMut<'_, R>,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_all_gather_varcount_into(send, receive)
            .unwrap_or_else(|e| {
                comm.handle_error(context("all_gather_varcount_into", None, bytes), e)
            })
    }

    /// [`all_to_all_into`](Self::all_to_all_into) returning errors.
    fn try_all_to_all_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) -> Result<(), Error> {
        collectives::all_to_all(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.as_bytes_mut(),
        )
        .map_err(lift)
    }

    /// Block `j` of rank `i`'s `send` into block `i` of rank `j`'s
    /// `receive` (MPI_Alltoall, MPI 4.1 §6.8).
    fn all_to_all_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_all_to_all_into(send, receive)
            .unwrap_or_else(|e| comm.handle_error(context("all_to_all_into", None, bytes), e))
    }

    /// [`all_to_all_varcount_into`](Self::all_to_all_varcount_into)
    /// returning errors.
    fn try_all_to_all_varcount_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &Partition<'_, S>,
        receive: &mut PartitionMut<'_, R>,
    ) -> Result<(), Error> {
        collectives::all_to_all_varcount(
            &Channel::of(self.as_simple()),
            send.bytes(),
            receive.bytes(),
        )
        .map_err(lift)
    }

    /// All-to-all with a block size per pair (MPI_Alltoallv, MPI 4.1 §6.8).
    fn all_to_all_varcount_into<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &Partition<'_, S>,
        receive: &mut PartitionMut<'_, R>,
    ) {
        let comm = self.as_simple();
        self.try_all_to_all_varcount_into(send, receive)
            .unwrap_or_else(|e| comm.handle_error(context("all_to_all_varcount_into", None, 0), e))
    }

    /// [`all_reduce_into`](Self::all_reduce_into) returning errors.
    fn try_all_reduce_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) -> Result<(), Error> {
        let (op, element) = reduction(receive, &op)?;
        collectives::all_reduce(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.as_bytes_mut(),
            element,
            &*op,
        )
        .map_err(lift)
    }

    /// Every rank's `send` combined by `op` in rank order, into every rank's
    /// `receive` (MPI_Allreduce, MPI 4.1 §6.9.6).
    fn all_reduce_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_all_reduce_into(send, receive, op)
            .unwrap_or_else(|e| comm.handle_error(context("all_reduce_into", None, bytes), e))
    }

    /// [`reduce_scatter_block_into`](Self::reduce_scatter_block_into)
    /// returning errors.
    fn try_reduce_scatter_block_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) -> Result<(), Error> {
        let (op, element) = reduction(receive, &op)?;
        collectives::reduce_scatter_block(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.as_bytes_mut(),
            element,
            &*op,
        )
        .map_err(lift)
    }

    /// Reduces `send` (p blocks) and leaves block `rank` of the result in
    /// `receive` (MPI_Reduce_scatter_block, MPI 4.1 §6.10.1).
    fn reduce_scatter_block_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_reduce_scatter_block_into(send, receive, op)
            .unwrap_or_else(|e| {
                comm.handle_error(context("reduce_scatter_block_into", None, bytes), e)
            })
    }

    /// [`scan_into`](Self::scan_into) returning errors.
    fn try_scan_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) -> Result<(), Error> {
        let (op, element) = reduction(receive, &op)?;
        collectives::scan(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.as_bytes_mut(),
            element,
            &*op,
        )
        .map_err(lift)
    }

    /// Inclusive prefix reduction: rank `i` gets `send(0) ∘ ... ∘ send(i)`
    /// (MPI_Scan, MPI 4.1 §6.11.1).
    fn scan_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_scan_into(send, receive, op)
            .unwrap_or_else(|e| comm.handle_error(context("scan_into", None, bytes), e))
    }

    /// [`exclusive_scan_into`](Self::exclusive_scan_into) returning errors.
    fn try_exclusive_scan_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) -> Result<(), Error> {
        let (op, element) = reduction(receive, &op)?;
        collectives::exclusive_scan(
            &Channel::of(self.as_simple()),
            send.as_bytes(),
            receive.as_bytes_mut(),
            element,
            &*op,
        )
        .map_err(lift)
    }

    /// Exclusive prefix reduction: rank `i > 0` gets `send(0) ∘ ... ∘
    /// send(i-1)`; rank 0's `receive` is left as it was (MPI_Exscan,
    /// MPI 4.1 §6.11.2).
    fn exclusive_scan_into<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) {
        let comm = self.as_simple();
        let bytes = send.as_bytes().len();
        self.try_exclusive_scan_into(send, receive, op)
            .unwrap_or_else(|e| comm.handle_error(context("exclusive_scan_into", None, bytes), e))
    }

    /// Non-blocking barrier (MPI_Ibarrier, MPI 4.1 §6.12.1): the request
    /// completes once every rank has started it.
    fn immediate_barrier(&self) -> Request<'static, (), StaticScope> {
        static NOTHING: () = ();
        let comm = self.as_simple();
        spawn(
            comm,
            StaticScope,
            &NOTHING,
            "immediate_barrier",
            None,
            0,
            |channel| collectives::barrier(channel).map_err(lift),
        )
    }

    /// Non-blocking all-reduce (MPI_Iallreduce, MPI 4.1 §6.12.7).
    fn immediate_all_reduce_into<'a, Sc, S, R, O>(
        &self,
        scope: Sc,
        send: &'a S,
        receive: &'a mut R,
        op: O,
    ) -> Request<'a, R, Sc>
    where
        Sc: Scope<'a>,
        S: Buffer + ?Sized + 'a,
        R: BufferMut + ?Sized + 'a,
        O: Operation + Send + 'static,
    {
        let comm = self.as_simple();
        let (send_bytes, receive_bytes) = (
            Raw::of(send.as_bytes()),
            Raw::of_mut(receive.as_bytes_mut()),
        );
        let datatype = receive.datatype();
        spawn(
            comm,
            scope,
            receive,
            "immediate_all_reduce_into",
            None,
            send_bytes.len,
            move |channel| {
                let op = op.for_datatype(datatype)?;
                // SAFETY: the request keeps both buffers borrowed until it
                // completes, which is after this closure returns.
                let (send, receive) = unsafe { (send_bytes.slice(), receive_bytes.slice_mut()) };
                collectives::all_reduce(channel, send, receive, datatype.size(), &*op).map_err(lift)
            },
        )
    }

    /// Non-blocking all-gather (MPI_Iallgather, MPI 4.1 §6.12.5).
    fn immediate_all_gather_into<'a, Sc, S, R>(
        &self,
        scope: Sc,
        send: &'a S,
        receive: &'a mut R,
    ) -> Request<'a, R, Sc>
    where
        Sc: Scope<'a>,
        S: Buffer + ?Sized + 'a,
        R: BufferMut + ?Sized + 'a,
    {
        let comm = self.as_simple();
        let (send_bytes, receive_bytes) = (
            Raw::of(send.as_bytes()),
            Raw::of_mut(receive.as_bytes_mut()),
        );
        spawn(
            comm,
            scope,
            receive,
            "immediate_all_gather_into",
            None,
            send_bytes.len,
            move |channel| {
                // SAFETY: as in immediate_all_reduce_into.
                let (send, receive) = unsafe { (send_bytes.slice(), receive_bytes.slice_mut()) };
                collectives::all_gather(channel, send, receive).map_err(lift)
            },
        )
    }
}

impl CommunicatorCollectives for SimpleCommunicator {}

/// A buffer's address, carried to a collective's thread. The request that
/// thread completes keeps the buffer borrowed until then.
#[derive(Clone, Copy)]
struct Raw {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: only an address; see the type's doc for why it stays valid.
unsafe impl Send for Raw {}

impl Raw {
    fn of(bytes: &[u8]) -> Raw {
        Raw {
            ptr: bytes.as_ptr() as *mut u8,
            len: bytes.len(),
        }
    }

    fn of_mut(bytes: &mut [u8]) -> Raw {
        Raw {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
        }
    }

    /// # Safety
    /// The buffer must still be borrowed for the collective.
    unsafe fn slice<'x>(self) -> &'x [u8] {
        // SAFETY: the caller guarantees the borrow.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// # Safety
    /// The buffer must still be borrowed mutably for the collective.
    unsafe fn slice_mut<'x>(self) -> &'x mut [u8] {
        // SAFETY: the caller guarantees the borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Runs a blocking collective on a thread; the returned request completes
/// when it is done.
fn spawn<'a, D: ?Sized, Sc: Scope<'a>>(
    comm: &SimpleCommunicator,
    scope: Sc,
    data: *const D,
    name: &'static str,
    root: Option<Rank>,
    bytes: usize,
    job: impl FnOnce(&Channel) -> Result<(), Error> + Send + 'static,
) -> Request<'a, D, Sc> {
    let id = comm
        .runtime()
        .progress
        .with_state(|s| s.engine.post_external());
    let done = crate::engine::Status {
        source: ANY_SOURCE,
        tag: 0,
        bytes,
        cancelled: false,
    };
    let owner = comm.clone();
    std::thread::spawn(move || {
        let outcome = job(&Channel::of(&owner)).map(|_| done);
        owner
            .runtime()
            .progress
            .with_state(|s| s.engine.complete_external(id, outcome));
    });
    let purpose = Purpose {
        name,
        peer: root.unwrap_or(ANY_SOURCE),
        tag: 0,
        bytes,
    };
    Request::new(id, comm, scope, data, purpose)
}

/// Checks that the caller is (or is not) the root, as the call says.
fn check_root(
    comm: &SimpleCommunicator,
    root: Rank,
    caller_is_root: bool,
    name: &str,
) -> Result<usize, Error> {
    comm.check_rank(root)?;
    if (comm.rank() == root) != caller_is_root {
        let role = if caller_is_root {
            "by the root only"
        } else {
            "by ranks other than the root"
        };
        return Err(Error::Collective(format!(
            "{name} is called {role}; rank {} called it with root {root}",
            comm.rank()
        )));
    }
    Ok(root as usize)
}

/// Rooted collectives, called on the root's process (rsmpi's `Root`):
/// `world.process_at_rank(root).broadcast_into(&mut buf)`.
pub trait Root {
    /// The communicator and the root's rank.
    fn root(&self) -> (&SimpleCommunicator, Rank);

    /// [`broadcast_into`](Self::broadcast_into) returning errors.
    fn try_broadcast_into<B: BufferMut + ?Sized>(&self, buffer: &mut B) -> Result<(), Error> {
        let (comm, root) = self.root();
        comm.check_rank(root)?;
        collectives::broadcast(&Channel::of(comm), buffer.as_bytes_mut(), root as usize)
            .map_err(lift)
    }

    /// The root's `buffer` into every rank's `buffer` (MPI_Bcast, MPI 4.1
    /// §6.4).
    fn broadcast_into<B: BufferMut + ?Sized>(&self, buffer: &mut B) {
        let (comm, root) = self.root();
        let bytes = buffer.as_bytes_mut().len();
        self.try_broadcast_into(buffer)
            .unwrap_or_else(|e| comm.handle_error(context("broadcast_into", Some(root), bytes), e))
    }

    /// [`gather_into`](Self::gather_into) returning errors.
    fn try_gather_into<S: Buffer + ?Sized>(&self, send: &S) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, false, "gather_into")?;
        collectives::gather(&Channel::of(comm), send.as_bytes(), None, root).map_err(lift)
    }

    /// Sends `send` to the root of a gather (MPI_Gather, MPI 4.1 §6.5),
    /// on ranks other than the root.
    fn gather_into<S: Buffer + ?Sized>(&self, send: &S) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_gather_into(send)
            .unwrap_or_else(|e| comm.handle_error(context("gather_into", Some(root), bytes), e))
    }

    /// [`gather_into_root`](Self::gather_into_root) returning errors.
    fn try_gather_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, true, "gather_into_root")?;
        collectives::gather(
            &Channel::of(comm),
            send.as_bytes(),
            Some(receive.as_bytes_mut()),
            root,
        )
        .map_err(lift)
    }

    /// Every rank's `send`, in rank order, into the root's `receive`
    /// (MPI_Gather, MPI 4.1 §6.5), on the root.
    fn gather_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_gather_into_root(send, receive)
            .unwrap_or_else(|e| {
                comm.handle_error(context("gather_into_root", Some(root), bytes), e)
            })
    }

    /// [`gather_varcount_into`](Self::gather_varcount_into) returning errors.
    fn try_gather_varcount_into<S: Buffer + ?Sized>(&self, send: &S) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, false, "gather_varcount_into")?;
        collectives::gather_varcount(&Channel::of(comm), send.as_bytes(), None, root).map_err(lift)
    }

    /// Sends `send` to the root of a varcount gather (MPI_Gatherv, MPI 4.1
    /// §6.5), on ranks other than the root.
    fn gather_varcount_into<S: Buffer + ?Sized>(&self, send: &S) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_gather_varcount_into(send).unwrap_or_else(|e| {
            comm.handle_error(context("gather_varcount_into", Some(root), bytes), e)
        })
    }

    /// [`gather_varcount_into_root`](Self::gather_varcount_into_root)
    /// returning errors.
    fn try_gather_varcount_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut PartitionMut<'_, R>,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, true, "gather_varcount_into_root")?;
        collectives::gather_varcount(
            &Channel::of(comm),
            send.as_bytes(),
            Some(receive.bytes()),
            root,
        )
        .map_err(lift)
    }

    /// Every rank's `send` into its block of the root's partition
    /// (MPI_Gatherv), on the root.
    fn gather_varcount_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut PartitionMut<'_, R>,
    ) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_gather_varcount_into_root(send, receive)
            .unwrap_or_else(|e| {
                comm.handle_error(context("gather_varcount_into_root", Some(root), bytes), e)
            })
    }

    /// [`scatter_into`](Self::scatter_into) returning errors.
    fn try_scatter_into<R: BufferMut + ?Sized>(&self, receive: &mut R) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, false, "scatter_into")?;
        collectives::scatter(&Channel::of(comm), None, receive.as_bytes_mut(), root).map_err(lift)
    }

    /// Receives this rank's block of a scatter (MPI_Scatter, MPI 4.1 §6.6),
    /// on ranks other than the root.
    fn scatter_into<R: BufferMut + ?Sized>(&self, receive: &mut R) {
        let (comm, root) = self.root();
        let bytes = receive.as_bytes_mut().len();
        self.try_scatter_into(receive)
            .unwrap_or_else(|e| comm.handle_error(context("scatter_into", Some(root), bytes), e))
    }

    /// [`scatter_into_root`](Self::scatter_into_root) returning errors.
    fn try_scatter_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, true, "scatter_into_root")?;
        collectives::scatter(
            &Channel::of(comm),
            Some(send.as_bytes()),
            receive.as_bytes_mut(),
            root,
        )
        .map_err(lift)
    }

    /// Block `i` of the root's `send` to rank `i` (MPI_Scatter), on the root.
    fn scatter_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &S,
        receive: &mut R,
    ) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_scatter_into_root(send, receive)
            .unwrap_or_else(|e| {
                comm.handle_error(context("scatter_into_root", Some(root), bytes), e)
            })
    }

    /// [`scatter_varcount_into`](Self::scatter_varcount_into) returning
    /// errors.
    fn try_scatter_varcount_into<R: BufferMut + ?Sized>(
        &self,
        receive: &mut R,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, false, "scatter_varcount_into")?;
        collectives::scatter_varcount(&Channel::of(comm), None, receive.as_bytes_mut(), root)
            .map_err(lift)
    }

    /// Receives this rank's block of a varcount scatter (MPI_Scatterv,
    /// MPI 4.1 §6.6), on ranks other than the root.
    fn scatter_varcount_into<R: BufferMut + ?Sized>(&self, receive: &mut R) {
        let (comm, root) = self.root();
        let bytes = receive.as_bytes_mut().len();
        self.try_scatter_varcount_into(receive).unwrap_or_else(|e| {
            comm.handle_error(context("scatter_varcount_into", Some(root), bytes), e)
        })
    }

    /// [`scatter_varcount_into_root`](Self::scatter_varcount_into_root)
    /// returning errors.
    fn try_scatter_varcount_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &Partition<'_, S>,
        receive: &mut R,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, true, "scatter_varcount_into_root")?;
        collectives::scatter_varcount(
            &Channel::of(comm),
            Some(send.bytes()),
            receive.as_bytes_mut(),
            root,
        )
        .map_err(lift)
    }

    /// Block `i` of the root's partition to rank `i` (MPI_Scatterv), on the
    /// root.
    fn scatter_varcount_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
        &self,
        send: &Partition<'_, S>,
        receive: &mut R,
    ) {
        let (comm, root) = self.root();
        let bytes = receive.as_bytes_mut().len();
        self.try_scatter_varcount_into_root(send, receive)
            .unwrap_or_else(|e| {
                comm.handle_error(context("scatter_varcount_into_root", Some(root), bytes), e)
            })
    }

    /// [`reduce_into`](Self::reduce_into) returning errors.
    fn try_reduce_into<S: Buffer + ?Sized, O: Operation>(
        &self,
        send: &S,
        op: O,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, false, "reduce_into")?;
        let datatype = send.datatype();
        let op = op.for_datatype(datatype)?;
        collectives::reduce(
            &Channel::of(comm),
            send.as_bytes(),
            None,
            datatype.size(),
            &*op,
            root,
        )
        .map_err(lift)
    }

    /// Contributes `send` to a reduction at the root (MPI_Reduce, MPI 4.1
    /// §6.9.1), on ranks other than the root.
    fn reduce_into<S: Buffer + ?Sized, O: Operation>(&self, send: &S, op: O) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_reduce_into(send, op)
            .unwrap_or_else(|e| comm.handle_error(context("reduce_into", Some(root), bytes), e))
    }

    /// [`reduce_into_root`](Self::reduce_into_root) returning errors.
    fn try_reduce_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) -> Result<(), Error> {
        let (comm, root) = self.root();
        let root = check_root(comm, root, true, "reduce_into_root")?;
        let (op, element) = reduction(receive, &op)?;
        collectives::reduce(
            &Channel::of(comm),
            send.as_bytes(),
            Some(receive.as_bytes_mut()),
            element,
            &*op,
            root,
        )
        .map_err(lift)
    }

    /// Every rank's `send` combined by `op` in rank order, into the root's
    /// `receive` (MPI_Reduce), on the root.
    fn reduce_into_root<S: Buffer + ?Sized, R: BufferMut + ?Sized, O: Operation>(
        &self,
        send: &S,
        receive: &mut R,
        op: O,
    ) {
        let (comm, root) = self.root();
        let bytes = send.as_bytes().len();
        self.try_reduce_into_root(send, receive, op)
            .unwrap_or_else(|e| {
                comm.handle_error(context("reduce_into_root", Some(root), bytes), e)
            })
    }

    /// Non-blocking broadcast (MPI_Ibcast, MPI 4.1 §6.12.2).
    fn immediate_broadcast_into<'a, Sc: Scope<'a>, B: BufferMut + ?Sized + 'a>(
        &self,
        scope: Sc,
        buffer: &'a mut B,
    ) -> Request<'a, B, Sc> {
        let (comm, root) = self.root();
        let bytes = Raw::of_mut(buffer.as_bytes_mut());
        let checked = comm.check_rank(root);
        spawn(
            comm,
            scope,
            buffer,
            "immediate_broadcast_into",
            Some(root),
            bytes.len,
            move |channel| {
                checked?;
                // SAFETY: the request keeps the buffer borrowed until it completes.
                collectives::broadcast(channel, unsafe { bytes.slice_mut() }, root as usize)
                    .map_err(lift)
            },
        )
    }
}

impl Root for Process<'_> {
    fn root(&self) -> (&SimpleCommunicator, Rank) {
        (self.communicator(), self.rank())
    }
}

/// Spreads an update from rank 0 to every rank of `comm` by gossip
/// (anti-entropy push, pull or push-pull, or rumor spreading that loses
/// interest with probability 1/k), over real messages; every rank returns
/// the same outcome: rounds taken and ranks reached. Collective.
pub fn gossip(
    comm: &SimpleCommunicator,
    protocol: crate::epidemic::Protocol,
    seed: u64,
) -> Result<crate::epidemic::Outcome, Error> {
    collectives::epidemic::spread(&Channel::of(comm), protocol, seed).map_err(lift)
}
