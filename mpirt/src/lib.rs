//! mpirt: an MPI-style message-passing runtime written in Rust, with the API
//! shape of rsmpi (the `mpi` crate) and no C MPI underneath.
//!
//! ```no_run
//! use mpirt::traits::*;
//!
//! let universe = mpirt::initialize().unwrap();
//! let world = universe.world();
//! if world.rank() == 0 {
//!     world.process_at_rank(1).send(&[1.0f64, 2.0, 3.0][..]);
//! } else if world.rank() == 1 {
//!     let (data, status) = world.process_at_rank(0).receive_vec::<f64>();
//!     println!("got {data:?} from rank {}", status.source_rank());
//! }
//! ```
//!
//! Layers, bottom to top (see DESIGN.md): `bootstrap` (PMI-1), `wire`
//! (frames), `transport` (bytes to one peer), `engine` (matching and
//! protocols, no I/O), `progress` (pumps transports into the engine), and
//! the rsmpi-shaped API: [`environment`], [`topology`], [`point_to_point`],
//! [`datatype`], [`error`].
#![deny(missing_docs)]

pub mod bootstrap;
pub mod buffered;
pub mod collective;
pub mod datatype;
pub mod engine;
pub mod environment;
pub mod error;
mod membarrier;
pub mod point_to_point;
pub mod progress;
pub mod request;
pub mod topology;
pub mod transport;
pub mod wire;

pub use buffered::{Stats, BSEND_OVERHEAD};
pub use environment::{
    initialize, initialize_with_threading, processor_name, time, time_resolution, try_initialize,
    LinkKind, Threading, Universe,
};
pub use error::{Error, ErrorHandler};

/// A rank within a communicator (MPI uses `int`).
pub type Rank = i32;
/// A tag.
pub type Tag = i32;
/// A number of elements (MPI uses `int`).
pub type Count = i32;

/// Wildcard source of a receive or probe (MPI_ANY_SOURCE).
pub const ANY_SOURCE: Rank = -2;
/// The null process (MPI_PROC_NULL): sends to it and receives from it
/// complete at once and move no data.
pub const PROC_NULL: Rank = -3;
/// Wildcard tag of a receive or probe (MPI_ANY_TAG).
pub const ANY_TAG: Tag = -1;

/// Epidemic dissemination (gossip): protocols, the in-memory simulator and
/// the analytic residue of rumor spreading, from the `collectives` crate;
/// run it over a communicator with [`collective::gossip`].
pub mod epidemic {
    pub use collectives::epidemic::*;
}

/// The traits a program imports to use communicators and processes, as
/// `use mpi::traits::*;` does with rsmpi.
pub mod traits {
    pub use crate::collective::{CommunicatorCollectives, Operation, Root};
    pub use crate::datatype::{Buffer, BufferMut, Datatype, Equivalence};
    pub use crate::point_to_point::{Destination, Source};
    pub use crate::request::Scope;
    pub use crate::topology::Communicator;
}
