//! Reduce-scatter on a ring (the first half of the ring allreduce).
//!
//! Cost: `(p − 1)·α + n·(p − 1)/p·β + n·(p − 1)/p·γ` for `n` bytes in all.
//! Restriction: commutative operations only (block `b` is combined in the
//! order `b+1, b+2, ..., b` around the ring); others are refused.
//!
//! At step `s` rank `r` sends its partial block `r − s − 1` to `r + 1` and
//! combines the partial block `r − s − 2` coming from `r − 1`; after `p − 1`
//! steps rank `r` holds block `r` complete. On 3 ranks, blocks `A B C`
//! (rank 0 owns A):
//! ```text
//! step 0: 0 sends C, 1 sends A, 2 sends B  → 0: B0+B2, 1: C1+C0, 2: A2+A1
//! step 1: 0 sends B, 1 sends C, 2 sends A  → 0: A, 1: B, 2: C complete
//! ```

use std::ops::Range;

use crate::blocks::{check_elements, equal_blocks};
use crate::error::Result;
use crate::op::Operation;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Combines the `send` buffers of all ranks and leaves block `rank` of the
/// result (`send.len() / p` bytes) in `receive` (`MPI_Reduce_scatter_block`,
/// MPI 4.0 §6.10.1); `op` must be commutative.
pub fn reduce_scatter_block<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "reduce_scatter_block (ring)");
    check_elements(receive.len(), element_size).map_err(|e| comm.invalid(e))?;
    if send.len() != receive.len() * comm.size {
        return Err(comm.invalid(format!(
            "send buffer has {} bytes, expected {} ranks × {}",
            send.len(),
            comm.size,
            receive.len()
        )));
    }
    if !op.is_commutative() {
        return Err(comm.invalid("the ring reduce-scatter needs a commutative operation"));
    }
    let mut buffer = send.to_vec();
    let blocks = equal_blocks(receive.len(), comm.size);
    ring_reduce_scatter(&comm, &mut buffer, &blocks, op, tags::REDUCE_SCATTER_BLOCK)?;
    receive.copy_from_slice(&buffer[blocks[comm.rank].clone()]);
    Ok(())
}

/// Leaves block `rank` of `buffer` combined over all ranks (other blocks hold
/// partial results); `blocks` are disjoint byte ranges, one per rank.
pub(crate) fn ring_reduce_scatter<T: PointToPoint>(
    comm: &Comm<'_, T>,
    buffer: &mut [u8],
    blocks: &[Range<usize>],
    op: &dyn Operation,
    tag: u32,
) -> Result<(), T::Error> {
    let (rank, size) = (comm.rank, comm.size);
    let right = (rank + 1) % size;
    let left = (rank + size - 1) % size;
    let longest = blocks.iter().map(|b| b.len()).max().unwrap_or(0);
    let mut incoming = vec![0u8; longest];
    for step in 0..size.saturating_sub(1) {
        let outgoing = blocks[(rank + 2 * size - step - 1) % size].clone();
        let combined = blocks[(rank + 2 * size - step - 2) % size].clone();
        let incoming = &mut incoming[..combined.len()];
        comm.send_receive(right, &buffer[outgoing], left, incoming, tag)?;
        op.apply(incoming, &mut buffer[combined]);
    }
    Ok(())
}
