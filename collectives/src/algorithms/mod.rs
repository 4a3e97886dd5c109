//! Every algorithm, one file each, callable directly (tests, benches, or a
//! caller that knows better than `select`). Each file opens with its cost in
//! the α (latency per message), β (time per byte) and γ (compute per byte)
//! model for `p` ranks and `n` bytes, and its restrictions.

pub mod allgather_bruck;
pub mod allgather_recursive_doubling;
pub mod allgather_ring;
pub mod allreduce_rabenseifner;
pub mod allreduce_recursive_doubling;
pub mod allreduce_ring;
pub mod alltoall_pairwise;
pub mod barrier_dissemination;
pub mod bcast_binomial;
pub mod bcast_scatter_allgather;
pub(crate) mod fold;
pub mod gather_binomial;
pub mod gather_linear;
pub mod reduce_binomial;
pub mod reduce_rabenseifner;
pub mod reduce_scatter_block_reduce_then_scatter;
pub mod reduce_scatter_block_ring;
pub mod scan_recursive_doubling;
pub mod scatter_binomial;
pub mod scatter_linear;
