//! Scatter down a binomial tree (MPICH's `scatter_intra_binomial`).
//!
//! Cost: `⌈lg p⌉·α + n·(p − 1)/p·β` for `n` bytes scattered, against
//! `(p − 1)·α` for the linear scatter; inner ranks pass their subtree's blocks
//! through a scratch buffer, so the linear form is preferred for long blocks.
//! Equal blocks only (the varcount form is linear).
//!
//! The mirror of `gather_binomial.rs`: a rank with lowest set bit `2^k`
//! (relative to the root) receives the blocks of relative ranks `r .. r + 2^k`
//! and hands each child `r + 2^j`, `j < k`, its subtree's blocks. On 7 ranks,
//! root 0:
//! ```text
//! step 0: 0→4 [4,5,6]
//! step 1: 0→2 [2,3]  4→6 [6]
//! step 2: 0→1 [1]  2→3 [3]  4→5 [5]
//! ```

use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Sends block `i` of the root's `send` (`p × receive.len()` bytes) to rank `i`'s
/// `receive`; non-roots pass `None` (`MPI_Scatter`, MPI 4.0 §6.6).
pub fn scatter<T: PointToPoint>(
    transport: &T,
    send: Option<&[u8]>,
    receive: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "scatter (binomial tree)");
    comm.check_root(root)?;
    let (size, block) = (comm.size, receive.len());
    let relative = (comm.rank + size - root) % size;
    let absolute = |relative: usize| (relative + root) % size;

    // A leaf receives its own block and is done.
    if relative % 2 == 1 {
        return comm.receive(absolute(relative - 1), tags::SCATTER, receive);
    }
    let lowest_bit = if relative == 0 {
        size.next_power_of_two()
    } else {
        1 << relative.trailing_zeros()
    };
    let subtree = lowest_bit.min(size - relative);
    // Blocks of relative ranks `relative..relative + subtree`, in that order.
    let mut blocks = vec![0u8; subtree * block];
    if relative == 0 {
        let send = send.ok_or_else(|| comm.invalid("the root needs a send buffer"))?;
        if send.len() != block * size {
            return Err(comm.invalid(format!(
                "send buffer has {} bytes, expected {size} ranks × {block}",
                send.len()
            )));
        }
        // Rotate rank order into relative order, starting at the root.
        let split = (size - root) * block;
        blocks[..split].copy_from_slice(&send[root * block..]);
        blocks[split..].copy_from_slice(&send[..root * block]);
    } else {
        comm.receive(absolute(relative - lowest_bit), tags::SCATTER, &mut blocks)?;
    }
    let mut mask = lowest_bit >> 1;
    while mask > 0 {
        let child = relative + mask;
        if child < size {
            let child_blocks = mask.min(size - child);
            let range = mask * block..(mask + child_blocks) * block;
            comm.send(absolute(child), tags::SCATTER, &blocks[range])?;
        }
        mask >>= 1;
    }
    receive.copy_from_slice(&blocks[..block]);
    Ok(())
}
