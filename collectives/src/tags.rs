//! Tags of collective traffic: one per collective, shared by all its
//! algorithms, so that ranks that picked different algorithms (because they
//! were given different lengths) meet length errors rather than silence.
//! Collectives run on their own context, so these never meet user tags.

pub(crate) const BARRIER: u32 = 1;
pub(crate) const BROADCAST: u32 = 2;
pub(crate) const REDUCE: u32 = 3;
pub(crate) const ALL_REDUCE: u32 = 4;
pub(crate) const GATHER: u32 = 5;
pub(crate) const SCATTER: u32 = 6;
pub(crate) const ALL_GATHER: u32 = 7;
pub(crate) const ALL_TO_ALL: u32 = 8;
pub(crate) const SCAN: u32 = 9;
pub(crate) const EXCLUSIVE_SCAN: u32 = 10;
pub(crate) const REDUCE_SCATTER_BLOCK: u32 = 11;
pub(crate) const EPIDEMIC: u32 = 12;
