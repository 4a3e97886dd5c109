//! The error every collective returns: the transport's own error, or an
//! argument that cannot be right, each naming the operation and the rank.

/// An error from a collective operation on one rank.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError<E: std::error::Error + 'static> {
    /// The transport failed (length mismatch, peer lost, timeout...).
    #[error("{operation} on rank {rank}: {source}")]
    Transport {
        /// The collective and algorithm, e.g. `"allreduce (recursive doubling)"`.
        operation: &'static str,
        /// The rank that saw the failure.
        rank: usize,
        /// The transport's error.
        #[source]
        source: E,
    },
    /// The arguments are inconsistent (MPI's `MPI_ERR_ARG`, `MPI_ERR_ROOT`,
    /// `MPI_ERR_COUNT`, `MPI_ERR_BUFFER`, `MPI_ERR_OP`).
    #[error("{operation} on rank {rank}: {reason}")]
    InvalidArgument {
        /// The collective and algorithm.
        operation: &'static str,
        /// The rank that was given the arguments.
        rank: usize,
        /// What is wrong with them.
        reason: String,
    },
}

/// The result of a collective over a transport whose error type is `E`.
pub type Result<T, E> = std::result::Result<T, CollectiveError<E>>;
