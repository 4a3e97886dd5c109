//! Allgather by recursive doubling (MPICH's `allgather_intra_recursive_doubling`).
//!
//! Cost: `lg p·α + n·(p − 1)/p·β` for `n` bytes gathered in all.
//! Restriction: `p` must be a power of two (others are refused; the ring or
//! `select` handles them), and all blocks have the same length.
//!
//! At step `k` rank `r` swaps the `2^k` blocks of its aligned group with
//! partner `r xor 2^k`. On 4 ranks:
//! ```text
//! step 0: 0↔1 (blocks 0 | 1), 2↔3 (2 | 3)
//! step 1: 0↔2 (01 | 23), 1↔3 (01 | 23)
//! ```

use crate::blocks::send_and_receive_parts;
use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Gathers `send` of every rank into block `rank` of `receive` on every rank
/// (`MPI_Allgather`, MPI 4.0 §6.7); `p` must be a power of two.
pub fn all_gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allgather (recursive doubling)");
    let (rank, size, block) = (comm.rank, comm.size, send.len());
    if !size.is_power_of_two() {
        return Err(comm.invalid(format!(
            "recursive doubling needs a power-of-two rank count, not {size}"
        )));
    }
    if receive.len() != block * size {
        return Err(comm.invalid(format!(
            "receive buffer has {} bytes, expected {size} ranks × {block}",
            receive.len()
        )));
    }
    receive[rank * block..(rank + 1) * block].copy_from_slice(send);
    let mut mask = 1;
    while mask < size {
        let partner = rank ^ mask;
        let group = |r: usize| {
            let first = r & !(mask - 1);
            first * block..(first + mask) * block
        };
        let (outgoing, incoming) = send_and_receive_parts(receive, group(rank), group(partner));
        comm.send_receive(partner, outgoing, partner, incoming, tags::ALL_GATHER)?;
        mask <<= 1;
    }
    Ok(())
}
