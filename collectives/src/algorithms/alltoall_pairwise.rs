//! All-to-all and all-to-allv by pairwise exchange (MPICH's
//! `alltoall_intra_pairwise` with the modular pairing, which needs no power of two).
//!
//! Cost: `(p − 1)·α + n·(p − 1)/p·β` for `n` bytes sent by each rank.
//! No restriction; varcount blocks may be empty.
//!
//! At step `s` rank `r` sends its block for `r + s` and receives the block
//! from `r − s`, so every step is a set of disjoint rings. On 5 ranks:
//! ```text
//! step 1: r→r+1   step 2: r→r+2   step 3: r→r+3   step 4: r→r+4
//! ```

use std::ops::Range;

use crate::blocks::{equal_blocks, layout, Partition, PartitionMut};
use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Sends block `i` of `send` to rank `i` and receives rank `i`'s block for us
/// into block `i` of `receive`; both hold `p` equal blocks (`MPI_Alltoall`, MPI 4.0 §6.8).
pub fn all_to_all<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "alltoall (pairwise)");
    if send.len() != receive.len() || send.len() % comm.size != 0 {
        return Err(comm.invalid(format!(
            "send ({} bytes) and receive ({} bytes) must be equal and split into {} blocks",
            send.len(),
            receive.len(),
            comm.size
        )));
    }
    let blocks = equal_blocks(send.len() / comm.size, comm.size);
    exchange(&comm, send, &blocks, receive, &blocks)
}

/// Sends block `i` of the `send` partition to rank `i` and receives rank `i`'s
/// block into block `i` of the `receive` partition (`MPI_Alltoallv`, MPI 4.0 §6.8).
pub fn all_to_all_varcount<T: PointToPoint>(
    transport: &T,
    send: Partition<'_>,
    receive: PartitionMut<'_>,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "alltoallv (pairwise)");
    let size = comm.size;
    let send_blocks = layout(
        send.buffer.len(),
        send.counts,
        send.displacements,
        size,
        false,
    )
    .map_err(|e| comm.invalid(format!("send: {e}")))?;
    let receive_blocks = layout(
        receive.buffer.len(),
        receive.counts,
        receive.displacements,
        size,
        true,
    )
    .map_err(|e| comm.invalid(format!("receive: {e}")))?;
    exchange(
        &comm,
        send.buffer,
        &send_blocks,
        receive.buffer,
        &receive_blocks,
    )
}

fn exchange<T: PointToPoint>(
    comm: &Comm<'_, T>,
    send: &[u8],
    send_blocks: &[Range<usize>],
    receive: &mut [u8],
    receive_blocks: &[Range<usize>],
) -> Result<(), T::Error> {
    let (rank, size) = (comm.rank, comm.size);
    let (own_send, own_receive) = (send_blocks[rank].clone(), receive_blocks[rank].clone());
    if own_send.len() != own_receive.len() {
        return Err(comm.invalid(format!(
            "sends itself {} bytes but expects {}",
            own_send.len(),
            own_receive.len()
        )));
    }
    receive[own_receive].copy_from_slice(&send[own_send]);
    for step in 1..size {
        let to = (rank + step) % size;
        let from = (rank + size - step) % size;
        comm.send_receive(
            to,
            &send[send_blocks[to].clone()],
            from,
            &mut receive[receive_blocks[from].clone()],
            tags::ALL_TO_ALL,
        )?;
    }
    Ok(())
}
