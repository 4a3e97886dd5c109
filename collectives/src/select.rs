//! The one place that chooses an algorithm, from the message size, the rank
//! count and whether the operation commutes. Thresholds follow MPICH's
//! defaults (`MPIR_CVAR_*_SHORT_MSG_SIZE`); every rank must make the same
//! choice, which it does when all ranks pass consistent lengths.
//!
//! Collectives with a single algorithm here (gatherv,
//! scatterv: linear; allgatherv: ring; alltoall(v): pairwise; scan and
//! exscan: recursive doubling) are called directly from `lib.rs`.

/// Broadcasts shorter than this use the binomial tree.
pub const BROADCAST_SHORT_BYTES: usize = 12 * 1024;
/// Broadcasts on fewer ranks than this use the binomial tree at any size.
pub const BROADCAST_MIN_RANKS_FOR_SCATTER: usize = 8;
/// Allreduces of at most this many bytes use recursive doubling.
pub const ALL_REDUCE_SHORT_BYTES: usize = 2048;
/// Allgathers of less than this many bytes in all use recursive doubling
/// (when `p` is a power of two).
pub const ALL_GATHER_LONG_BYTES: usize = 512 * 1024;
/// Allgathers of less than this many bytes in all use Bruck's algorithm
/// (when `p` is not a power of two).
pub const ALL_GATHER_SHORT_BYTES: usize = 80 * 1024;
/// Reduce-scatters of at least this many bytes in all use the ring (when the
/// operation commutes).
pub const REDUCE_SCATTER_LONG_BYTES: usize = 16 * 1024;

/// Gathers and scatters with blocks of at most this many bytes use the
/// binomial tree; longer blocks go straight to or from the root.
pub const GATHER_SCATTER_SHORT_BLOCK_BYTES: usize = 16 * 1024;

/// The gather and scatter algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatherScatter {
    /// `gather_binomial.rs`, `scatter_binomial.rs`
    Binomial,
    /// `gather_linear.rs`, `scatter_linear.rs`
    Linear,
}

/// Chooses a gather or scatter for blocks of `block_bytes` per rank.
pub fn gather_scatter(block_bytes: usize) -> GatherScatter {
    if block_bytes <= GATHER_SCATTER_SHORT_BLOCK_BYTES {
        GatherScatter::Binomial
    } else {
        GatherScatter::Linear
    }
}

/// The broadcast algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    /// `bcast_binomial.rs`
    Binomial,
    /// `bcast_scatter_allgather.rs`
    ScatterAllgather,
}

/// Chooses a broadcast for `bytes` on `size` ranks.
pub fn broadcast(bytes: usize, size: usize) -> Broadcast {
    if bytes < BROADCAST_SHORT_BYTES || size < BROADCAST_MIN_RANKS_FOR_SCATTER {
        Broadcast::Binomial
    } else {
        Broadcast::ScatterAllgather
    }
}

/// The reduce algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// `reduce_binomial.rs`
    Binomial,
    /// `reduce_rabenseifner.rs`
    Rabenseifner,
}

/// Chooses a reduce for `bytes` of `element_size`-byte elements on `size` ranks.
pub fn reduce(bytes: usize, element_size: usize, size: usize) -> Reduce {
    // The same threshold as the allreduce: halving pays once blocks are long.
    match all_reduce(bytes, element_size, size, false) {
        AllReduce::RecursiveDoubling => Reduce::Binomial,
        _ => Reduce::Rabenseifner,
    }
}

/// The allreduce algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllReduce {
    /// `allreduce_recursive_doubling.rs`
    RecursiveDoubling,
    /// `allreduce_rabenseifner.rs`
    Rabenseifner,
    /// `allreduce_ring.rs` (commutative operations only)
    Ring,
}

/// Chooses an allreduce for `bytes` of `element_size`-byte elements on `size` ranks.
pub fn all_reduce(bytes: usize, element_size: usize, size: usize, commutative: bool) -> AllReduce {
    let power_of_two = size.is_power_of_two();
    // Below one element per folded rank, halving has nothing to split.
    let elements = bytes / element_size.max(1);
    let folded = if size == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - size.leading_zeros())
    };
    if bytes <= ALL_REDUCE_SHORT_BYTES || elements < folded {
        AllReduce::RecursiveDoubling
    } else if commutative && !power_of_two {
        // The ring needs no fold, which would cost a whole extra n·β.
        AllReduce::Ring
    } else {
        AllReduce::Rabenseifner
    }
}

/// The allgather algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllGather {
    /// `allgather_recursive_doubling.rs` (power-of-two rank counts only)
    RecursiveDoubling,
    /// `allgather_bruck.rs`
    Bruck,
    /// `allgather_ring.rs`
    Ring,
}

/// Chooses an allgather gathering `total_bytes` in all on `size` ranks.
pub fn all_gather(total_bytes: usize, size: usize) -> AllGather {
    if size.is_power_of_two() && total_bytes < ALL_GATHER_LONG_BYTES {
        AllGather::RecursiveDoubling
    } else if total_bytes < ALL_GATHER_SHORT_BYTES {
        AllGather::Bruck
    } else {
        AllGather::Ring
    }
}

/// The reduce-scatter-block algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceScatterBlock {
    /// `reduce_scatter_block_ring.rs` (commutative operations only)
    Ring,
    /// `reduce_scatter_block_reduce_then_scatter.rs`
    ReduceThenScatter,
}

/// Chooses a reduce-scatter for `total_bytes` (the whole send buffer).
pub fn reduce_scatter_block(total_bytes: usize, commutative: bool) -> ReduceScatterBlock {
    if commutative && total_bytes >= REDUCE_SCATTER_LONG_BYTES {
        ReduceScatterBlock::Ring
    } else {
        ReduceScatterBlock::ReduceThenScatter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_commutative_operations_never_get_the_ring() {
        for size in 1..=64 {
            for bytes in [8, 4096, 1 << 20] {
                assert_ne!(all_reduce(bytes, 8, size, false), AllReduce::Ring);
            }
        }
        assert_ne!(
            reduce_scatter_block(1 << 20, false),
            ReduceScatterBlock::Ring
        );
    }

    #[test]
    fn recursive_doubling_allgather_only_on_powers_of_two() {
        assert_eq!(all_gather(64, 8), AllGather::RecursiveDoubling);
        assert_eq!(all_gather(64, 7), AllGather::Bruck);
        assert_eq!(all_gather(1 << 20, 7), AllGather::Ring);
    }
}
