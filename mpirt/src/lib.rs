//! mpirt: an MPI-style message-passing runtime written in Rust, with the API
//! shape of rsmpi (the `mpi` crate) and no C MPI underneath.
#![deny(missing_docs)]

pub mod bootstrap;
