//! Reduce-scatter as a binomial reduce to rank 0 followed by a binomial scatter.
//!
//! Cost: `2·⌈lg p⌉·α + n·(⌈lg p⌉ + (p − 1)/p)·β + n·⌈lg p⌉·γ`.
//! Works for every operation, non-commutative ones included (the reduce keeps
//! rank order), and has the lower latency for short messages.

use crate::algorithms::{reduce_binomial, scatter_binomial};
use crate::blocks::check_elements;
use crate::error::Result;
use crate::op::Operation;
use crate::transport::{Comm, PointToPoint};

/// Combines the `send` buffers of all ranks and leaves block `rank` of the
/// result (`send.len() / p` bytes) in `receive` (`MPI_Reduce_scatter_block`,
/// MPI 4.0 §6.10.1).
pub fn reduce_scatter_block<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "reduce_scatter_block (reduce + scatter)");
    check_elements(receive.len(), element_size).map_err(|e| comm.invalid(e))?;
    if send.len() != receive.len() * comm.size {
        return Err(comm.invalid(format!(
            "send buffer has {} bytes, expected {} ranks × {}",
            send.len(),
            comm.size,
            receive.len()
        )));
    }
    if comm.rank == 0 {
        let mut reduced = vec![0u8; send.len()];
        reduce_binomial::reduce(transport, send, Some(&mut reduced), element_size, op, 0)?;
        scatter_binomial::scatter(transport, Some(&reduced), receive, 0)
    } else {
        reduce_binomial::reduce(transport, send, None, element_size, op, 0)?;
        scatter_binomial::scatter(transport, None, receive, 0)
    }
}
