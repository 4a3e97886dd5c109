//! Inclusive and exclusive scan by recursive doubling (MPICH's
//! `scan_intra_recursive_doubling` and `exscan_intra_recursive_doubling`).
//!
//! Cost: `⌈lg p⌉·α + n·⌈lg p⌉·β + 2·n·⌈lg p⌉·γ`. No restriction on `p`;
//! correct for non-commutative operations.
//!
//! Each rank keeps `partial`, the combination over its aligned group of `2^k`
//! ranks, and its result over the part of that group up to itself. At step `k`
//! it swaps `partial` with `r xor 2^k` (if that rank exists); a partial from
//! below is prepended to both, one from above is appended to `partial` only.
//! On 5 ranks (`xi..j` is `xi ∘ ... ∘ xj`):
//! ```text
//! step 0: 0↔1 2↔3 (4 idle)  results: x0 x0..1 x2 x2..3 x4
//! step 1: 0↔2 1↔3 (4 idle)  results: x0 x0..1 x0..2 x0..3 x4
//! step 2: 0↔4 (1-3 idle)     results: x0 x0..1 x0..2 x0..3 x0..4
//! ```

use crate::blocks::check_elements;
use crate::error::Result;
use crate::op::Operation;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Leaves `send(0) ∘ ... ∘ send(rank)` in `receive` (`MPI_Scan`, MPI 4.0 §6.11.1).
pub fn scan<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "scan (recursive doubling)");
    check(&comm, send, receive, element_size)?;
    receive.copy_from_slice(send);
    let mut partial = send.to_vec();
    let mut incoming = vec![0u8; send.len()];
    let mut mask = 1;
    while mask < comm.size {
        let partner = comm.rank ^ mask;
        if partner < comm.size {
            comm.send_receive(partner, &partial, partner, &mut incoming, tags::SCAN)?;
            if partner < comm.rank {
                op.apply(&incoming, &mut partial);
                op.apply(&incoming, receive);
            } else {
                op.apply_left(&mut partial, &incoming);
            }
        }
        mask <<= 1;
    }
    Ok(())
}

/// Leaves `send(0) ∘ ... ∘ send(rank − 1)` in `receive`; rank 0's `receive`
/// is left untouched (`MPI_Exscan`, MPI 4.0 §6.11.2).
pub fn exclusive_scan<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "exclusive scan (recursive doubling)");
    check(&comm, send, receive, element_size)?;
    let mut partial = send.to_vec();
    let mut incoming = vec![0u8; send.len()];
    let mut have_result = false;
    let mut mask = 1;
    while mask < comm.size {
        let partner = comm.rank ^ mask;
        if partner < comm.size {
            comm.send_receive(
                partner,
                &partial,
                partner,
                &mut incoming,
                tags::EXCLUSIVE_SCAN,
            )?;
            if partner < comm.rank {
                op.apply(&incoming, &mut partial);
                if have_result {
                    op.apply(&incoming, receive);
                } else {
                    receive.copy_from_slice(&incoming);
                    have_result = true;
                }
            } else {
                op.apply_left(&mut partial, &incoming);
            }
        }
        mask <<= 1;
    }
    Ok(())
}

fn check<T: PointToPoint>(
    comm: &Comm<'_, T>,
    send: &[u8],
    receive: &[u8],
    element_size: usize,
) -> Result<(), T::Error> {
    check_elements(send.len(), element_size).map_err(|e| comm.invalid(e))?;
    if send.len() != receive.len() {
        return Err(comm.invalid(format!(
            "send buffer has {} bytes, receive buffer {}",
            send.len(),
            receive.len()
        )));
    }
    Ok(())
}
