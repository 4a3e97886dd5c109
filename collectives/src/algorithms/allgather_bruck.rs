//! Allgather by Bruck's algorithm (Bruck et al. 1997; MPICH's `allgather_intra_brucks`).
//!
//! Cost: `⌈lg p⌉·α + n·(p − 1)/p·β` for `n` bytes gathered in all, plus one
//! local rotation of the result. No restriction on `p`, which makes it the
//! short-message choice when `p` is not a power of two. Equal blocks only.
//!
//! Rank `r` keeps a scratch buffer whose block `i` is rank `r + i`'s. At step
//! `k` it sends its first `min(2^k, p − 2^k)` blocks to `r − 2^k` and appends
//! as many from `r + 2^k`. On 5 ranks, rank 0's scratch:
//! ```text
//! start:  [0]
//! step 0: [0 1]        (from 1)
//! step 1: [0 1 2 3]    (from 2: its [2 3])
//! step 2: [0 1 2 3 4]  (from 4: its first block)
//! ```

use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Gathers `send` of every rank into block `rank` of `receive` on every rank
/// (`MPI_Allgather`, MPI 4.0 §6.7).
pub fn all_gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allgather (Bruck)");
    let (rank, size, block) = (comm.rank, comm.size, send.len());
    if receive.len() != block * size {
        return Err(comm.invalid(format!(
            "receive buffer has {} bytes, expected {size} ranks × {block}",
            receive.len()
        )));
    }
    let mut scratch = vec![0u8; block * size];
    scratch[..block].copy_from_slice(send);
    let mut distance = 1;
    while distance < size {
        let count = distance.min(size - distance);
        let to = (rank + size - distance) % size;
        let from = (rank + distance) % size;
        let (held, incoming) = scratch.split_at_mut(distance * block);
        comm.send_receive(
            to,
            &held[..count * block],
            from,
            &mut incoming[..count * block],
            tags::ALL_GATHER,
        )?;
        distance *= 2;
    }
    // Scratch block i belongs to rank r + i: rotate into rank order.
    let split = (size - rank) * block;
    receive[rank * block..].copy_from_slice(&scratch[..split]);
    receive[..rank * block].copy_from_slice(&scratch[split..]);
    Ok(())
}
