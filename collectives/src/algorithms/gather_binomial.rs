//! Gather up a binomial tree (MPICH's `gather_intra_binomial`).
//!
//! Cost: `⌈lg p⌉·α + n·(p − 1)/p·β` for `n` bytes gathered, against
//! `(p − 1)·α` for the linear gather; inner ranks copy their subtree's blocks
//! through a scratch buffer, so the linear form is preferred for long blocks.
//! Equal blocks only (the varcount form is linear).
//!
//! Ranks are renumbered relative to the root; a rank with lowest set bit
//! `2^k` collects the blocks of relative ranks `r .. r + 2^k`, in order, then
//! sends them to `r − 2^k`. On 7 ranks, root 0:
//! ```text
//! step 0: 1→0 [1]  3→2 [3]  5→4 [5]
//! step 1: 2→0 [2,3]  6→4 [6]
//! step 2: 4→0 [4,5,6]
//! ```

use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Gathers `send` of every rank into block `rank` of `receive` at `root`,
/// which passes `p × send.len()` bytes; others pass `None` (`MPI_Gather`, MPI 4.0 §6.5).
pub fn gather<T: PointToPoint>(
    transport: &T,
    send: &[u8],
    receive: Option<&mut [u8]>,
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "gather (binomial tree)");
    comm.check_root(root)?;
    let (size, block) = (comm.size, send.len());
    let receive = if comm.rank == root {
        let receive = receive.ok_or_else(|| comm.invalid("the root needs a receive buffer"))?;
        if receive.len() != block * size {
            return Err(comm.invalid(format!(
                "receive buffer has {} bytes, expected {size} ranks × {block}",
                receive.len()
            )));
        }
        Some(receive)
    } else {
        None
    };
    let relative = (comm.rank + size - root) % size;
    let absolute = |relative: usize| (relative + root) % size;

    // A leaf sends its own block and is done.
    if relative % 2 == 1 {
        return comm.send(absolute(relative - 1), tags::GATHER, send);
    }
    // Blocks of relative ranks `relative..relative + subtree`, in that order.
    let lowest_bit = if relative == 0 {
        size.next_power_of_two()
    } else {
        1 << relative.trailing_zeros()
    };
    let subtree = lowest_bit.min(size - relative);
    let mut collected = vec![0u8; subtree * block];
    collected[..block].copy_from_slice(send);
    let mut mask = 1;
    while mask < lowest_bit && relative + mask < size {
        let child = relative + mask;
        let child_blocks = mask.min(size - child);
        let into = &mut collected[mask * block..(mask + child_blocks) * block];
        comm.receive(absolute(child), tags::GATHER, into)?;
        mask <<= 1;
    }
    match receive {
        None => comm.send(absolute(relative - lowest_bit), tags::GATHER, &collected),
        Some(receive) => {
            // Relative order starts at the root: rotate into rank order.
            let split = (size - root) * block;
            receive[root * block..].copy_from_slice(&collected[..split]);
            receive[..root * block].copy_from_slice(&collected[split..]);
            Ok(())
        }
    }
}
