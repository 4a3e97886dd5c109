//! Reduce up a binomial tree (MPICH's `reduce_intra_binomial`).
//!
//! Cost: `⌈lg p⌉·α + n·⌈lg p⌉·β + n·⌈lg p⌉·γ`. No restriction on `p`.
//!
//! A rank with lowest set bit `2^k` first receives and combines the partial
//! results of ranks `r + 2^j`, `j < k` (each covering the next contiguous run
//! of ranks), then sends its own to `r − 2^k`. For a commutative operation the
//! tree is rooted at `root` (ranks renumbered relative to it); for a
//! non-commutative one it is rooted at rank 0 so every combination is
//! `lower ranks ∘ higher ranks`, and rank 0 then sends the result to `root`
//! (one more `α + n·β`). On 7 ranks:
//! ```text
//! step 0: 1→0 3→2 5→4          (0 holds 0∘1, 2 holds 2∘3, 4 holds 4∘5)
//! step 1: 2→0 6→4              (0 holds 0..3, 4 holds 4..6)
//! step 2: 4→0                  (0 holds 0..6)
//! ```

use crate::blocks::check_elements;
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
    let comm = Comm::new(transport, "reduce (binomial tree)");
    comm.check_root(root)?;
    check_elements(send.len(), element_size).map_err(|e| comm.invalid(e))?;
    let receive = if comm.rank == root {
        match receive {
            Some(buffer) if buffer.len() == send.len() => Some(buffer),
            Some(buffer) => {
                return Err(comm.invalid(format!(
                    "root receive buffer has {} bytes, send buffer {}",
                    buffer.len(),
                    send.len()
                )))
            }
            None => return Err(comm.invalid("the root needs a receive buffer")),
        }
    } else {
        None
    };

    let size = comm.size;
    let tree_root = if op.is_commutative() { root } else { 0 };
    let relative = (comm.rank + size - tree_root) % size;
    let absolute = |relative: usize| (relative + tree_root) % size;

    let mut accumulated = send.to_vec();
    let mut incoming = vec![0u8; send.len()];
    let mut mask = 1;
    while mask < size {
        if relative & mask == 0 {
            let child = relative | mask;
            if child < size {
                comm.receive(absolute(child), tags::REDUCE, &mut incoming)?;
                // The child's run of ranks follows ours.
                op.apply_left(&mut accumulated, &incoming);
            }
        } else {
            comm.send(absolute(relative & !mask), tags::REDUCE, &accumulated)?;
            break;
        }
        mask <<= 1;
    }

    if tree_root != root {
        if comm.rank == tree_root {
            comm.send(root, tags::REDUCE, &accumulated)?;
        } else if let Some(receive) = receive {
            comm.receive(tree_root, tags::REDUCE, receive)?;
        }
    } else if let Some(receive) = receive {
        receive.copy_from_slice(&accumulated);
    }
    Ok(())
}
