//! Allreduce for long messages by Rabenseifner's algorithm: reduce-scatter by
//! recursive halving, then allgather by recursive doubling (Thakur,
//! Rabenseifner and Gropp 2005; MPICH's `allreduce_intra_reduce_scatter_allgather`).
//!
//! Cost: `2·⌈lg p⌉·α + 2·n·(p − 1)/p·β + n·(p − 1)/p·γ` for a power of two,
//! plus the fold's `2·α + 2·n·β + n·γ` otherwise (see `fold.rs`). Correct for
//! non-commutative operations: the distance doubles from 1, so after step `k`
//! a rank's blocks hold the result of an aligned run of `2^k` ranks, and
//! partners combine `lower run ∘ higher run`. Blocks are whole elements; with
//! fewer elements than `p'` some blocks are empty (correct, but then recursive
//! doubling is cheaper).
//!
//! On 4 ranks, blocks `A B C D`:
//! ```text
//! halving, distance 1: 0↔1, 2↔3: ranks 0,2 keep AB, ranks 1,3 keep CD
//! halving, distance 2: 0↔2 (0 keeps A, 2 keeps B), 1↔3 (1 keeps C, 3 keeps D)
//! doubling, distance 2 then 1: the same exchanges in reverse, swapping what was kept
//! ```

use crate::algorithms::fold::Fold;
use crate::blocks::{check_elements, partition, send_and_receive_parts, span};
use crate::error::Result;
use crate::op::Operation;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Replaces `buffer` on every rank by the combination of all ranks' buffers
/// (in-place `MPI_Allreduce`, MPI 4.0 §6.9.6).
pub fn all_reduce<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    element_size: usize,
    op: &dyn Operation,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "allreduce (Rabenseifner)");
    check_elements(buffer.len(), element_size).map_err(|e| comm.invalid(e))?;
    let fold = Fold::new(comm.size);
    let mut incoming = vec![0u8; buffer.len()];
    let tag = tags::ALL_REDUCE;

    if let Some(new_rank) = fold.fold_in(&comm, buffer, &mut incoming, op, tag)? {
        let blocks = partition(buffer.len(), element_size, fold.power);
        // The blocks this rank is responsible for, `mine.0..mine.1`, and the
        // ranges it held before each halving step (replayed by the allgather).
        let mut mine = (0, fold.power);
        let mut before = Vec::new();

        let mut mask = 1;
        while mask < fold.power {
            let partner_new = new_rank ^ mask;
            let partner = fold.old_rank(partner_new);
            let middle = mine.0 + (mine.1 - mine.0) / 2;
            let (keep, give) = if new_rank < partner_new {
                ((mine.0, middle), (middle, mine.1))
            } else {
                ((middle, mine.1), (mine.0, middle))
            };
            let keep_bytes = span(&blocks, keep.0, keep.1);
            let give_bytes = span(&blocks, give.0, give.1);
            let incoming = &mut incoming[..keep_bytes.len()];
            comm.send_receive(partner, &buffer[give_bytes], partner, incoming, tag)?;
            if partner_new < new_rank {
                op.apply(incoming, &mut buffer[keep_bytes]);
            } else {
                op.apply_left(&mut buffer[keep_bytes], incoming);
            }
            before.push(mine);
            mine = keep;
            mask <<= 1;
        }

        while let Some(parent) = before.pop() {
            mask >>= 1;
            let partner = fold.old_rank(new_rank ^ mask);
            // The partner kept the other half of `parent`.
            let theirs = if mine.0 == parent.0 {
                (mine.1, parent.1)
            } else {
                (parent.0, mine.0)
            };
            let (outgoing, incoming) = send_and_receive_parts(
                buffer,
                span(&blocks, mine.0, mine.1),
                span(&blocks, theirs.0, theirs.1),
            );
            comm.send_receive(partner, outgoing, partner, incoming, tag)?;
            mine = parent;
        }
    }
    fold.fold_out(&comm, buffer, tag)
}
