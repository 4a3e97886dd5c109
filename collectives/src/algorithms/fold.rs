//! Folding `p` ranks onto the largest power of two `p' ≤ p`, for the
//! recursive-doubling and recursive-halving algorithms (MPICH's allreduce).
//!
//! Cost: `2·α + 2·n·β + n·γ` on the first `2·(p − p')` ranks, nothing elsewhere.
//!
//! Among the first `2·(p − p')` ranks, each even rank hands its data to the
//! next odd rank, which combines `even ∘ odd` and takes part as new rank
//! `odd / 2`; the others take part as `rank − (p − p')`. Each new rank stands
//! for a run of old ranks, in the same order, so a non-commutative operation
//! still combines in rank order. On 7 ranks (`p' = 4`, 3 extra):
//! ```text
//! fold:     0→1  2→3  4→5
//! new rank:  0    1    2    3
//! stands for {0,1} {2,3} {4,5} {6}
//! unfold:   1→0  3→2  5→4
//! ```

use crate::error::Result;
use crate::op::Operation;
use crate::transport::{Comm, PointToPoint};

/// The folded group: `power` ranks, the first `extra` of which stand for two.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fold {
    /// `p'`, the largest power of two not above `p`.
    pub power: usize,
    /// `p − p'`.
    pub extra: usize,
}

impl Fold {
    pub fn new(size: usize) -> Self {
        let power = if size == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - size.leading_zeros())
        };
        Fold {
            power,
            extra: size - power,
        }
    }

    /// The new rank of `rank`, or `None` if it sits out (an even rank among
    /// the first `2·extra`).
    pub fn new_rank(&self, rank: usize) -> Option<usize> {
        if rank < 2 * self.extra {
            (rank % 2 == 1).then_some(rank / 2)
        } else {
            Some(rank - self.extra)
        }
    }

    /// The old rank that acts for `new_rank`.
    pub fn old_rank(&self, new_rank: usize) -> usize {
        if new_rank < self.extra {
            2 * new_rank + 1
        } else {
            new_rank + self.extra
        }
    }

    /// Folds: even ranks among the first `2·extra` send `buffer` to the next
    /// rank, which combines it. Returns this rank's new rank, if it takes part.
    pub fn fold_in<T: PointToPoint>(
        &self,
        comm: &Comm<'_, T>,
        buffer: &mut [u8],
        scratch: &mut [u8],
        op: &dyn Operation,
        tag: u32,
    ) -> Result<Option<usize>, T::Error> {
        let rank = comm.rank;
        if rank < 2 * self.extra {
            if rank % 2 == 0 {
                comm.send(rank + 1, tag, buffer)?;
            } else {
                comm.receive(rank - 1, tag, scratch)?;
                op.apply(scratch, buffer);
            }
        }
        Ok(self.new_rank(rank))
    }

    /// Unfolds: the odd ranks among the first `2·extra` send the result back.
    pub fn fold_out<T: PointToPoint>(
        &self,
        comm: &Comm<'_, T>,
        buffer: &mut [u8],
        tag: u32,
    ) -> Result<(), T::Error> {
        let rank = comm.rank;
        if rank < 2 * self.extra {
            if rank % 2 == 0 {
                comm.receive(rank + 1, tag, buffer)?;
            } else {
                comm.send(rank - 1, tag, buffer)?;
            }
        }
        Ok(())
    }
}
