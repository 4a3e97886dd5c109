//! Allreduce for long messages on a ring: ring reduce-scatter, then ring
//! allgather (Patarasuk and Yuan 2009; MPICH's `allreduce_intra_ring`).
//!
//! Cost: `2·(p − 1)·α + 2·n·(p − 1)/p·β + n·(p − 1)/p·γ`, with no fold, so it
//! beats Rabenseifner for long messages when `p` is not a power of two.
//! Restriction: commutative operations only (each block is combined in ring
//! order starting after its owner, not in rank order); others are refused.
//! See `reduce_scatter_block_ring.rs` for the reduce-scatter trace.

use crate::algorithms::{allgather_ring, reduce_scatter_block_ring};
use crate::blocks::{check_elements, partition};
use crate::error::Result;
use crate::op::Operation;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Replaces `buffer` on every rank by the combination of all ranks' buffers
/// (in-place `MPI_Allreduce`, MPI 4.0 §6.9.6); `op` must be commutative.
pub fn all_reduce<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allreduce (ring)");
    check_elements(buffer.len(), element_size).map_err(|e| comm.invalid(e))?;
    if !op.is_commutative() {
        return Err(comm.invalid("the ring allreduce needs a commutative operation"));
    }
    let blocks = partition(buffer.len(), element_size, comm.size);
    reduce_scatter_block_ring::ring_reduce_scatter(&comm, buffer, &blocks, op, tags::ALL_REDUCE)?;
    allgather_ring::ring_in_place(&comm, buffer, &blocks, comm.rank, tags::ALL_REDUCE)
}
