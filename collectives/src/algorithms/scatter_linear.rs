//! Scatter and scatterv, linear: the root sends each rank its block in turn
//! (MPICH's `scatter_intra_linear`/`scatterv_allcomm_linear`).
//!
//! Cost: `(p − 1)·α + n·(p − 1)/p·β` at the root for `n` bytes scattered.
//! No restriction; varcount blocks may be empty.

use crate::blocks::{equal_blocks, layout, Partition};
use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Sends block `i` of the root's `send` (`p × receive.len()` bytes) to rank `i`'s
/// `receive`; non-roots pass `None` (`MPI_Scatter`, MPI 4.0 §6.6).
pub fn scatter<T: PointToPoint>(
    transport: &T,
    send: Option<&[u8]>,
    receive: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "scatter (linear)");
    comm.check_root(root)?;
    if comm.rank != root {
        return comm.receive(root, tags::SCATTER, receive);
    }
    let send = send.ok_or_else(|| comm.invalid("the root needs a send buffer"))?;
    if send.len() != receive.len() * comm.size {
        return Err(comm.invalid(format!(
            "send buffer has {} bytes, expected {} ranks × {}",
            send.len(),
            comm.size,
            receive.len()
        )));
    }
    send_blocks(
        &comm,
        send,
        &equal_blocks(receive.len(), comm.size),
        receive,
    )
}

/// Sends block `i` of the root's `send` partition to rank `i`'s `receive`,
/// which must be exactly that long; non-roots pass `None` (`MPI_Scatterv`, MPI 4.0 §6.6).
pub fn scatter_varcount<T: PointToPoint>(
    transport: &T,
    send: Option<Partition<'_>>,
    receive: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "scatterv (linear)");
    comm.check_root(root)?;
    if comm.rank != root {
        return comm.receive(root, tags::SCATTER, receive);
    }
    let send = send.ok_or_else(|| comm.invalid("the root needs a send partition"))?;
    let blocks = layout(
        send.buffer.len(),
        send.counts,
        send.displacements,
        comm.size,
        false,
    )
    .map_err(|e| comm.invalid(e))?;
    send_blocks(&comm, send.buffer, &blocks, receive)
}

fn send_blocks<T: PointToPoint>(
    comm: &Comm<'_, T>,
    send: &[u8],
    blocks: &[std::ops::Range<usize>],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    for (rank, block) in blocks.iter().enumerate() {
        if rank == comm.rank {
            if block.len() != receive.len() {
                return Err(comm.invalid(format!(
                    "receive buffer has {} bytes, but the root's count is {}",
                    receive.len(),
                    block.len()
                )));
            }
            receive.copy_from_slice(&send[block.clone()]);
        } else {
            comm.send(rank, tags::SCATTER, &send[block.clone()])?;
        }
    }
    Ok(())
}
