//! MPI collective operations written against a small point-to-point trait,
//! with no knowledge of sockets or of the runtime that carries them.
//!
//! - [`PointToPoint`] is the contract a transport provides (`transport.rs`).
//! - One function per collective below takes the transport, byte buffers
//!   (counts and displacements in bytes for the varcount forms), the root,
//!   and for reductions the element size and an [`Operation`]; it picks an
//!   algorithm through [`select`]. Each algorithm is also public in
//!   [`algorithms`], one file each, opening with its cost.
//! - [`epidemic`] spreads an update by gossip, over a transport or in a
//!   simulator, and compares rumor spreading with its analytic residue.
//! - [`memory`] is an in-memory transport (threads and channels) for tests.
//!
//! Mismatched lengths between ranks come out as an error on the rank that
//! receives the wrong length (the transport's exact-length receive); see
//! `transport.rs` for what that means for the other ranks.

#![deny(missing_docs)]

pub mod algorithms;
mod blocks;
pub mod epidemic;
mod error;
pub mod memory;
mod op;
pub mod select;
mod tags;
mod transport;

use algorithms::*;
pub use blocks::{Partition, PartitionMut};
pub use error::{CollectiveError, Result};
pub use op::{
    Operation, Primitive, SystemOp, SystemOperation, UnsupportedOperation, UserOperation,
};
pub use transport::PointToPoint;

/// Blocks until all ranks have called it (`MPI_Barrier`, MPI 4.0 §6.3).
pub fn barrier<T: PointToPoint>(transport: &T) -> Result<(), T::Error> {
    barrier_dissemination::barrier(transport)
}

/// Copies the root's `buffer` into `buffer` on every rank (`MPI_Bcast`, MPI 4.0 §6.4).
pub fn broadcast<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    match select::broadcast(buffer.len(), transport.size()) {
        select::Broadcast::Binomial => bcast_binomial::broadcast(transport, buffer, root),
        select::Broadcast::ScatterAllgather => {
            bcast_scatter_allgather::broadcast(transport, buffer, root)
        }
    }
}

/// Combines `send` of all ranks, in rank order, into the root's `receive`
/// (as long as `send`); other ranks pass `None` (`MPI_Reduce`, MPI 4.0 §6.9.1).
pub fn reduce<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<&mut [u8]>,
    element_size: usize,
    op: &dyn Operation,
    root: usize,
) -> Result<(), T::Error> {
    match select::reduce(send.len(), element_size, transport.size()) {
        select::Reduce::Binomial => {
            reduce_binomial::reduce(transport, send, receive, element_size, op, root)
        }
        select::Reduce::Rabenseifner => {
            reduce_rabenseifner::reduce(transport, send, receive, element_size, op, root)
        }
    }
}

/// Combines `send` of all ranks, in rank order, into `receive` on every rank
/// (`MPI_Allreduce`, MPI 4.0 §6.9.6).
pub fn all_reduce<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    if send.len() != receive.len() {
        return Err(CollectiveError::InvalidArgument {
            operation: "allreduce",
            rank: transport.rank(),
            reason: format!(
                "send buffer has {} bytes, receive buffer {}",
                send.len(),
                receive.len()
            ),
        });
    }
    receive.copy_from_slice(send);
    all_reduce_in_place(transport, receive, element_size, op)
}

/// [`all_reduce`] with the result replacing `buffer` (`MPI_IN_PLACE`).
pub fn all_reduce_in_place<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let choice = select::all_reduce(
        buffer.len(),
        element_size,
        transport.size(),
        op.is_commutative(),
    );
    match choice {
        select::AllReduce::RecursiveDoubling => {
            allreduce_recursive_doubling::all_reduce(transport, buffer, element_size, op)
        }
        select::AllReduce::Rabenseifner => {
            allreduce_rabenseifner::all_reduce(transport, buffer, element_size, op)
        }
        select::AllReduce::Ring => allreduce_ring::all_reduce(transport, buffer, element_size, op),
    }
}

/// Gathers `send` of every rank into block `rank` of the root's `receive`
/// (`p × send.len()` bytes); others pass `None` (`MPI_Gather`, MPI 4.0 §6.5).
pub fn gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<&mut [u8]>,
    root: usize,
) -> Result<(), T::Error> {
    match select::gather_scatter(send.len()) {
        select::GatherScatter::Binomial => gather_binomial::gather(transport, send, receive, root),
        select::GatherScatter::Linear => gather_linear::gather(transport, send, receive, root),
    }
}

/// Gathers `send` of every rank into block `rank` of the root's partition;
/// others pass `None` (`MPI_Gatherv`, MPI 4.0 §6.5).
pub fn gather_varcount<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<PartitionMut<'_>>,
    root: usize,
) -> Result<(), T::Error> {
    gather_linear::gather_varcount(transport, send, receive, root)
}

/// Sends block `i` of the root's `send` (`p × receive.len()` bytes) to rank
/// `i`; others pass `None` (`MPI_Scatter`, MPI 4.0 §6.6).
pub fn scatter<T: PointToPoint>(
    transport: &T,
    send: Option<&[u8]>,
    receive: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    match select::gather_scatter(receive.len()) {
        select::GatherScatter::Binomial => {
            scatter_binomial::scatter(transport, send, receive, root)
        }
        select::GatherScatter::Linear => scatter_linear::scatter(transport, send, receive, root),
    }
}

/// Sends block `i` of the root's partition to rank `i`; others pass `None`
/// (`MPI_Scatterv`, MPI 4.0 §6.6).
pub fn scatter_varcount<T: PointToPoint>(
    transport: &T,
    send: Option<Partition<'_>>,
    receive: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    scatter_linear::scatter_varcount(transport, send, receive, root)
}

/// Gathers `send` of every rank into block `rank` of `receive` (`p × send.len()`
/// bytes) on every rank (`MPI_Allgather`, MPI 4.0 §6.7).
pub fn all_gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    match select::all_gather(receive.len(), transport.size()) {
        select::AllGather::RecursiveDoubling => {
            allgather_recursive_doubling::all_gather(transport, send, receive)
        }
        select::AllGather::Bruck => allgather_bruck::all_gather(transport, send, receive),
        select::AllGather::Ring => allgather_ring::all_gather(transport, send, receive),
    }
}

/// Gathers `send` of every rank into block `rank` of the `receive` partition
/// on every rank (`MPI_Allgatherv`, MPI 4.0 §6.7).
pub fn all_gather_varcount<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: PartitionMut<'_>,
) -> Result<(), T::Error> {
    allgather_ring::all_gather_varcount(transport, send, receive)
}

/// Sends block `i` of `send` to rank `i` and receives rank `i`'s block into
/// block `i` of `receive` (`MPI_Alltoall`, MPI 4.0 §6.8).
pub fn all_to_all<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    alltoall_pairwise::all_to_all(transport, send, receive)
}

/// The varcount form of [`all_to_all`] (`MPI_Alltoallv`, MPI 4.0 §6.8).
pub fn all_to_all_varcount<T: PointToPoint>(
    transport: &T,
    send: Partition<'_>,
    receive: PartitionMut<'_>,
) -> Result<(), T::Error> {
    alltoall_pairwise::all_to_all_varcount(transport, send, receive)
}

/// Leaves `send(0) ∘ ... ∘ send(rank)` in `receive` (`MPI_Scan`, MPI 4.0 §6.11.1).
pub fn scan<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    scan_recursive_doubling::scan(transport, send, receive, element_size, op)
}

/// Leaves `send(0) ∘ ... ∘ send(rank − 1)` in `receive`; rank 0's is left
/// untouched (`MPI_Exscan`, MPI 4.0 §6.11.2).
pub fn exclusive_scan<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    scan_recursive_doubling::exclusive_scan(transport, send, receive, element_size, op)
}

/// Combines `send` (`p` blocks of `receive.len()` bytes) of all ranks and leaves
/// block `rank` of the result in `receive` (`MPI_Reduce_scatter_block`, MPI 4.0 §6.10.1).
pub fn reduce_scatter_block<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    match select::reduce_scatter_block(send.len(), op.is_commutative()) {
        select::ReduceScatterBlock::Ring => reduce_scatter_block_ring::reduce_scatter_block(
            transport,
            send,
            receive,
            element_size,
            op,
        ),
        select::ReduceScatterBlock::ReduceThenScatter => {
            reduce_scatter_block_reduce_then_scatter::reduce_scatter_block(
                transport,
                send,
                receive,
                element_size,
                op,
            )
        }
    }
}

/// `receive ← send ∘ receive` locally, no communication (`MPI_Reduce_local`,
/// MPI 4.0 §6.9.7); the buffers must be equally long (the caller checks).
pub fn reduce_local(send: &[u8], receive: &mut [u8], op: &dyn Operation) {
    op.apply(send, receive)
}
