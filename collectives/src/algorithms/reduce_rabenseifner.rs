//! Reduce for long messages by Rabenseifner's algorithm: reduce-scatter by
//! recursive halving, then a binomial gather of the blocks (Thakur,
//! Rabenseifner and Gropp 2005; MPICH's `reduce_intra_reduce_scatter_gather`).
//!
//! Cost: `2·⌈lg p⌉·α + 2·n·(p − 1)/p·β + n·(p − 1)/p·γ` for a power of two,
//! against `n·⌈lg p⌉·(β + γ)` for the binomial tree; plus the fold's
//! `2·α + 2·n·β + n·γ` otherwise (`fold.rs`; only the fold in, the result
//! is not sent back), and `α + n·β` when the root is not the folded group's
//! rank 0. Correct for non-commutative operations, for the reasons given in
//! `allreduce_rabenseifner.rs`.
//!
//! The gather replays the halving backwards towards new rank 0: at each
//! distance the rank whose bit is set sends everything it holds to its
//! partner and drops out. On 4 ranks, blocks `A B C D` after the halving are
//! held by 0, 2, 1, 3:
//! ```text
//! distance 2: 2→0 [B], 3→1 [D]      (0 holds AB, 1 holds CD)
//! distance 1: 1→0 [CD]              (0 holds ABCD)
//! ```

use crate::algorithms::fold::Fold;
use crate::blocks::{check_elements, partition, span};
use crate::error::Result;
use crate::op::Operation;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Combines `send` of all ranks with `op` into `receive` at `root`, which must
/// pass a buffer as long as `send`; other ranks pass `None` (`MPI_Reduce`, MPI 4.0 §6.9.1).
pub fn reduce<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<&mut [u8]>,
    element_size: usize,
    op: &dyn Operation,
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "reduce (Rabenseifner)");
    comm.check_root(root)?;
    check_elements(send.len(), element_size).map_err(|e| comm.invalid(e))?;
    let receive = if comm.rank == root {
        match receive {
            Some(buffer) if buffer.len() == send.len() => Some(buffer),
            _ => return Err(comm.invalid("the root needs a receive buffer as long as send")),
        }
    } else {
        None
    };
    let tag = tags::REDUCE;
    let fold = Fold::new(comm.size);
    let gatherer = fold.old_rank(0);
    let mut buffer = send.to_vec();
    let mut incoming = vec![0u8; send.len()];

    if let Some(new_rank) = fold.fold_in(&comm, &mut buffer, &mut incoming, op, tag)? {
        let blocks = partition(buffer.len(), element_size, fold.power);
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

        // Gather towards new rank 0: the partner with the bit set hands over.
        while let Some(parent) = before.pop() {
            mask >>= 1;
            let partner = fold.old_rank(new_rank ^ mask);
            if new_rank & mask != 0 {
                comm.send(partner, tag, &buffer[span(&blocks, mine.0, mine.1)])?;
                break;
            }
            let theirs = if mine.0 == parent.0 {
                (mine.1, parent.1)
            } else {
                (parent.0, mine.0)
            };
            comm.receive(partner, tag, &mut buffer[span(&blocks, theirs.0, theirs.1)])?;
            mine = parent;
        }
    }

    if comm.rank == gatherer && gatherer != root {
        comm.send(root, tag, &buffer)?;
    }
    if let Some(receive) = receive {
        if root == gatherer {
            receive.copy_from_slice(&buffer);
        } else {
            comm.receive(gatherer, tag, receive)?;
        }
    }
    Ok(())
}
