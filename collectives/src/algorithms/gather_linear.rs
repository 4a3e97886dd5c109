//! Gather and gatherv, linear: the root receives from each rank in turn
//! (MPICH's `gather_intra_linear`/`gatherv_allcomm_linear`).
//!
//! Cost: `(p − 1)·α + n·(p − 1)/p·β` at the root for `n` bytes gathered.
//! No restriction; varcount blocks may be empty (a zero-length message is
//! still sent, so the root can tell it from a missing one).

use crate::blocks::{equal_blocks, layout, PartitionMut};
use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Gathers `send` of every rank into block `rank` of `receive` at `root`,
/// which passes `p × send.len()` bytes; others pass `None` (`MPI_Gather`, MPI 4.0 §6.5).
pub fn gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<&mut [u8]>,
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "gather (linear)");
    comm.check_root(root)?;
    if comm.rank != root {
        return comm.send(root, tags::GATHER, send);
    }
    let receive = receive.ok_or_else(|| comm.invalid("the root needs a receive buffer"))?;
    if receive.len() != send.len() * comm.size {
        return Err(comm.invalid(format!(
            "receive buffer has {} bytes, expected {} ranks × {}",
            receive.len(),
            comm.size,
            send.len()
        )));
    }
    receive_blocks(&comm, send, receive, &equal_blocks(send.len(), comm.size))
}

/// Gathers `send` of every rank into block `rank` of the root's `receive`
/// partition; others pass `None` (`MPI_Gatherv`, MPI 4.0 §6.5).
pub fn gather_varcount<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<PartitionMut<'_>>,
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "gatherv (linear)");
    comm.check_root(root)?;
    if comm.rank != root {
        return comm.send(root, tags::GATHER, send);
    }
    let receive = receive.ok_or_else(|| comm.invalid("the root needs a receive partition"))?;
    let blocks = layout(
        receive.buffer.len(),
        receive.counts,
        receive.displacements,
        comm.size,
        true,
    )
    .map_err(|e| comm.invalid(e))?;
    receive_blocks(&comm, send, receive.buffer, &blocks)
}

fn receive_blocks<T: PointToPoint>(
    comm: &Comm<'_, T>,
    send: &[u8],
    receive: &mut [u8],
    blocks: &[std::ops::Range<usize>],
) -> Result<(), T::Error> {
    for (rank, block) in blocks.iter().enumerate() {
        if rank == comm.rank {
            if block.len() != send.len() {
                return Err(comm.invalid(format!(
                    "send buffer has {} bytes, but the root's count is {}",
                    send.len(),
                    block.len()
                )));
            }
            receive[block.clone()].copy_from_slice(send);
        } else {
            comm.receive(rank, tags::GATHER, &mut receive[block.clone()])?;
        }
    }
    Ok(())
}
