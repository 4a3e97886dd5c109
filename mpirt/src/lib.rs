//! mpirt: an MPI-style message-passing runtime written in Rust, with the API
//! shape of rsmpi (the `mpi` crate) and no C MPI underneath.
#![deny(missing_docs)]

pub mod bootstrap;
pub mod engine;
pub mod error;
pub mod wire;

pub use error::Error;

/// A rank within a communicator (MPI uses `int`).
pub type Rank = i32;
/// A tag.
pub type Tag = i32;
/// A number of elements (MPI uses `int`).
pub type Count = i32;

/// Wildcard source of a receive or probe (MPI_ANY_SOURCE).
pub const ANY_SOURCE: Rank = -2;
/// Wildcard tag of a receive or probe (MPI_ANY_TAG).
pub const ANY_TAG: Tag = -1;
