//! Broadcast down a binomial tree (MPICH's `bcast_intra_binomial`).
//!
//! Cost: `⌈lg p⌉·α + n·⌈lg p⌉·β`. Best for short messages; no restriction.
//!
//! Ranks are renumbered relative to the root. A rank whose lowest set bit is
//! `2^k` receives from the rank without that bit, then sends to `r + 2^j` for
//! `j < k`. On 7 ranks, root 0:
//! ```text
//! step 0: 0→4
//! step 1: 0→2 4→6
//! step 2: 0→1 2→3 4→5
//! ```

use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Copies `buffer` of `root` into `buffer` on every rank (`MPI_Bcast`, MPI 4.0 §6.4).
pub fn broadcast<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "broadcast (binomial tree)");
    comm.check_root(root)?;
    let size = comm.size;
    let relative = (comm.rank + size - root) % size;
    let absolute = |relative: usize| (relative + root) % size;

    // Receive from the parent: the rank without our lowest set bit.
    let mut mask = 1;
    while mask < size {
        if relative & mask != 0 {
            comm.receive(absolute(relative - mask), tags::BROADCAST, buffer)?;
            break;
        }
        mask <<= 1;
    }
    // Send to the children, farthest subtree first.
    mask >>= 1;
    while mask > 0 {
        if relative + mask < size {
            comm.send(absolute(relative + mask), tags::BROADCAST, buffer)?;
        }
        mask >>= 1;
    }
    Ok(())
}
