//! Bootstrap: rank, size and a key-value exchange with the process manager.
pub mod pmi;
