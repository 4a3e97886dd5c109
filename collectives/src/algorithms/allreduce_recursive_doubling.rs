//! Allreduce by recursive doubling (MPICH's `allreduce_intra_recursive_doubling`).
//!
//! Cost: `⌈lg p⌉·α + n·⌈lg p⌉·β + n·⌈lg p⌉·γ`, plus `2·α + 2·n·β + n·γ` for
//! the fold when `p` is not a power of two (see `fold.rs`). Best for short
//! messages. Correct for non-commutative operations: at step `k` each rank
//! holds the result of an aligned run of `2^k` ranks, and partners combine
//! `lower run ∘ higher run`.
//!
//! On 5 ranks (`p' = 4`): `0→1` folds; new ranks `{0,1} 2 3 4` → `0 1 2 3`;
//! step 0 pairs new ranks 0↔1, 2↔3; step 1 pairs 0↔2, 1↔3; `1→0` unfolds.

use crate::algorithms::fold::Fold;
use crate::blocks::check_elements;
use crate::error::Result;
use crate::op::Operation;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Messages up to this long use a scratch buffer on the stack.
const SHORT_SCRATCH_BYTES: usize = 256;

/// Replaces `buffer` on every rank by the combination of all ranks' buffers
/// (in-place `MPI_Allreduce`, MPI 4.0 §6.9.6).
pub fn all_reduce<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allreduce (recursive doubling)");
    check_elements(buffer.len(), element_size).map_err(|e| comm.invalid(e))?;
    let fold = Fold::new(comm.size);
    // Short messages (the common case) need no heap allocation.
    let mut short = [0u8; SHORT_SCRATCH_BYTES];
    let mut long = Vec::new();
    let incoming: &mut [u8] = if buffer.len() <= SHORT_SCRATCH_BYTES {
        &mut short[..buffer.len()]
    } else {
        long.resize(buffer.len(), 0);
        &mut long
    };
    let tag = tags::ALL_REDUCE;

    if let Some(new_rank) = fold.fold_in(&comm, buffer, incoming, op, tag)? {
        let mut mask = 1;
        while mask < fold.power {
            let partner_new = new_rank ^ mask;
            let partner = fold.old_rank(partner_new);
            comm.send_receive(partner, buffer, partner, incoming, tag)?;
            if partner_new < new_rank {
                op.apply(incoming, buffer);
            } else {
                op.apply_left(buffer, incoming);
            }
            mask <<= 1;
        }
    }
    fold.fold_out(&comm, buffer, tag)
}
