//! Broadcast for long messages: binomial scatter of `p` blocks, then a ring
//! allgather of them (van de Geijn; MPICH's `bcast_intra_scatter_ring_allgather`).
//!
//! Cost: `(⌈lg p⌉ + p − 1)·α + 2·n·(p − 1)/p·β`, against `n·⌈lg p⌉·β` for the
//! binomial tree. No restriction on `p` or `n` (blocks may be empty when
//! `n < p`, which only wastes messages).
//!
//! Relative rank `i` owns byte block `i`. In the scatter, a rank receives the
//! blocks of its whole binomial subtree and hands each child its subtree's
//! blocks; then `p − 1` ring steps pass every block around. On 5 ranks, root 0:
//! ```text
//! scatter: 0→4 [4]; 0→2 [2,3]; 0→1 [1], 2→3 [3]
//! ring step s: r sends block r−s to r+1, receives block r−s−1 from r−1
//! ```

use crate::algorithms::allgather_ring;
use crate::blocks::{partition, span};
use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Copies `buffer` of `root` into `buffer` on every rank (`MPI_Bcast`, MPI 4.0 §6.4).
pub fn broadcast<T: PointToPoint>(
    transport: &T,
    buffer: &mut [u8],
    root: usize,
) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "broadcast (scatter + ring allgather)");
    comm.check_root(root)?;
    let size = comm.size;
    let relative = (comm.rank + size - root) % size;
    let absolute = |relative: usize| (relative + root) % size;
    let blocks = partition(buffer.len(), 1, size);
    // Blocks of the subtree rooted at relative rank `first`, `width` ranks wide.
    let subtree = |first: usize, width: usize| span(&blocks, first, (first + width).min(size));

    let mut mask = 1;
    while mask < size {
        if relative & mask != 0 {
            let range = subtree(relative, mask);
            comm.receive(
                absolute(relative - mask),
                tags::BROADCAST,
                &mut buffer[range],
            )?;
            break;
        }
        mask <<= 1;
    }
    mask >>= 1;
    while mask > 0 {
        if relative + mask < size {
            let range = subtree(relative + mask, mask);
            comm.send(absolute(relative + mask), tags::BROADCAST, &buffer[range])?;
        }
        mask >>= 1;
    }

    allgather_ring::ring_in_place(&comm, buffer, &blocks, relative, tags::BROADCAST)
}
