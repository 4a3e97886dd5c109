//! Allgather on a ring (MPICH's `allgather_intra_ring` and `allgatherv_intra_ring`).
//!
//! Cost: `(p − 1)·α + n·(p − 1)/p·β` for `n` bytes gathered in all. No
//! restriction on `p`; blocks may have different lengths (the varcount form).
//!
//! At step `s` rank `r` sends block `r − s` to `r + 1` and receives block
//! `r − s − 1` from `r − 1`. On 5 ranks, after step `s` rank `r` holds blocks
//! `r − s − 1 ..= r`:
//! ```text
//! step 0: 0→1 [0]  1→2 [1]  2→3 [2]  3→4 [3]  4→0 [4]
//! step 1: 0→1 [4]  1→2 [0]  2→3 [1]  3→4 [2]  4→0 [3]
//! step 2, 3: the same, two and three blocks back
//! ```

use std::ops::Range;

use crate::blocks::{equal_blocks, layout, send_and_receive_parts, PartitionMut};
use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Gathers `send` of every rank into block `rank` of `receive` on every rank
/// (`MPI_Allgather`, MPI 4.0 §6.7); `receive` holds `p × send.len()` bytes.
pub fn all_gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allgather (ring)");
    if receive.len() != send.len() * comm.size {
        return Err(comm.invalid(format!(
            "receive buffer has {} bytes, expected {} ranks × {}",
            receive.len(),
            comm.size,
            send.len()
        )));
    }
    let blocks = equal_blocks(send.len(), comm.size);
    receive[blocks[comm.rank].clone()].copy_from_slice(send);
    ring_in_place(&comm, receive, &blocks, comm.rank, tags::ALL_GATHER)
}

/// Gathers `send` of every rank into block `rank` of `receive` on every rank,
/// where block `i` is `counts[i]` bytes at `displacements[i]` (`MPI_Allgatherv`, MPI 4.0 §6.7).
pub fn all_gather_varcount<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: PartitionMut<'_>,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allgatherv (ring)");
    let blocks = layout(
        receive.buffer.len(),
        receive.counts,
        receive.displacements,
        comm.size,
        true,
    )
    .map_err(|e| comm.invalid(e))?;
    let own = blocks[comm.rank].clone();
    if own.len() != send.len() {
        return Err(comm.invalid(format!(
            "send buffer has {} bytes, but counts[{}] is {}",
            send.len(),
            comm.rank,
            own.len()
        )));
    }
    receive.buffer[own].copy_from_slice(send);
    ring_in_place(&comm, receive.buffer, &blocks, comm.rank, tags::ALL_GATHER)
}

/// Passes blocks around the ring until every rank holds all of them.
/// `position` is this rank's place on the ring (its rank, or its rank relative
/// to a root): block `position` must already be in `buffer`, and neighbours are
/// `rank ± 1`, which are `position ± 1` too.
pub(crate) fn ring_in_place<T: PointToPoint>(
    comm: &Comm<'_, T>,
    buffer: &mut [u8],
    blocks: &[Range<usize>],
    position: usize,
    tag: u32,
) -> Result<(), T::Error> {
    let (rank, size) = (comm.rank, comm.size);
    let right = (rank + 1) % size;
    let left = (rank + size - 1) % size;
    for step in 0..size.saturating_sub(1) {
        let outgoing = blocks[(position + size - step) % size].clone();
        let incoming = blocks[(position + 2 * size - step - 1) % size].clone();
        let (outgoing, incoming) = send_and_receive_parts(buffer, outgoing, incoming);
        comm.send_receive(right, outgoing, left, incoming, tag)?;
    }
    Ok(())
}
