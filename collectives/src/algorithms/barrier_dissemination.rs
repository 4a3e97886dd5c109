//! Barrier by dissemination (Hensgen, Finkel and Manber, 1988; MPICH's
//! `barrier_intra_dissemination`).
//!
//! Cost: `⌈lg p⌉·α` (zero-byte messages). No restriction on `p`.
//!
//! In round `k` rank `r` signals `r + 2^k` and waits for `r − 2^k` (mod `p`);
//! after `⌈lg p⌉` rounds every rank has heard, directly or not, from all others.
//! On 5 ranks:
//! ```text
//! round 0: 0→1 1→2 2→3 3→4 4→0
//! round 1: 0→2 1→3 2→4 3→0 4→1
//! round 2: 0→4 1→0 2→1 3→2 4→3
//! ```

use crate::error::Result;
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Blocks until every rank has entered the barrier (`MPI_Barrier`, MPI 4.0 §6.3).
pub fn barrier<T: PointToPoint>(transport: &T) -> Result<(), T::Error> {
    let comm = Comm::new(transport, "barrier (dissemination)");
    let (rank, size) = (comm.rank, comm.size);
    let mut distance = 1;
    while distance < size {
        let to = (rank + distance) % size;
        let from = (rank + size - distance) % size;
        comm.send_receive(to, &[], from, &mut [], tags::BARRIER)?;
        distance *= 2;
    }
    Ok(())
}
