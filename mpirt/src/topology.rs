//! Communicators and processes (MPI 4.1 chapter 7): who is in a group, and
//! handles naming one rank of it.

use std::sync::Arc;

use crate::environment::Runtime;
use crate::error::{Error, Operation};
use crate::{Rank, ANY_SOURCE};

/// The context id of the world communicator's point-to-point traffic.
const WORLD_CONTEXT: u32 = 0;

/// A communicator: a group of ranks and a context that keeps its messages
/// apart from every other communicator's (rsmpi's `SimpleCommunicator`).
#[derive(Clone)]
pub struct SimpleCommunicator {
    runtime: Arc<Runtime>,
    context: u32,
}

impl SimpleCommunicator {
    pub(crate) fn world(runtime: Arc<Runtime>) -> SimpleCommunicator {
        SimpleCommunicator {
            runtime,
            context: WORLD_CONTEXT,
        }
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub(crate) fn context(&self) -> u32 {
        self.context
    }

    /// The world rank of this communicator's rank `rank`.
    pub(crate) fn world_rank(&self, rank: Rank) -> i32 {
        rank
    }

    /// This communicator's rank of world rank `world`.
    pub(crate) fn local_rank(&self, world: i32) -> Rank {
        world
    }

    /// Checks that `rank` names a member.
    pub(crate) fn check_rank(&self, rank: Rank) -> Result<(), Error> {
        if (0..self.size()).contains(&rank) {
            Ok(())
        } else {
            Err(Error::InvalidRank {
                rank,
                size: self.size(),
            })
        }
    }

    /// Errors carry world ranks from the engine; users see this
    /// communicator's.
    pub(crate) fn localize(&self, error: Error) -> Error {
        match error {
            Error::Truncate {
                sender,
                tag,
                message_bytes,
                buffer_bytes,
            } => Error::Truncate {
                sender: self.local_rank(sender),
                tag,
                message_bytes,
                buffer_bytes,
            },
            other => other,
        }
    }

    /// Ends with MPI's default error handler (errors are fatal).
    pub(crate) fn fatal(&self, operation: Operation<'_>, error: Error) -> ! {
        self.runtime.fatal(operation, error)
    }
}

/// What every communicator offers (rsmpi's `Communicator` trait).
pub trait Communicator {
    /// The communicator behind this handle.
    fn as_simple(&self) -> &SimpleCommunicator;

    /// This process's rank (MPI_Comm_rank, MPI 4.1 §6.4.1).
    fn rank(&self) -> Rank {
        let comm = self.as_simple();
        comm.local_rank(comm.runtime().rank)
    }

    /// Number of ranks (MPI_Comm_size, MPI 4.1 §6.4.1).
    fn size(&self) -> Rank {
        self.as_simple().runtime().size
    }

    /// The process of rank `rank`, to send to or receive from. A rank out of
    /// range is reported by the operation that uses it.
    fn process_at_rank(&self, rank: Rank) -> Process<'_> {
        Process {
            comm: self.as_simple(),
            rank,
        }
    }

    /// Any process: the source of a receive with `ANY_SOURCE`.
    fn any_process(&self) -> AnyProcess<'_> {
        AnyProcess {
            comm: self.as_simple(),
        }
    }

    /// This process.
    fn this_process(&self) -> Process<'_> {
        self.process_at_rank(self.rank())
    }

    /// Ends every rank of the job with `errorcode` (MPI_Abort, MPI 4.1
    /// §11.3).
    fn abort(&self, errorcode: i32) -> ! {
        let comm = self.as_simple();
        let message = format!("rank {} called abort({errorcode})", comm.rank());
        comm.runtime().abort(errorcode, &message)
    }
}

impl Communicator for SimpleCommunicator {
    fn as_simple(&self) -> &SimpleCommunicator {
        self
    }
}

/// One rank of a communicator.
#[derive(Clone, Copy)]
pub struct Process<'a> {
    comm: &'a SimpleCommunicator,
    rank: Rank,
}

impl<'a> Process<'a> {
    /// Its rank in the communicator.
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// The communicator.
    pub fn communicator(&self) -> &'a SimpleCommunicator {
        self.comm
    }
}

/// Any rank of a communicator (the `ANY_SOURCE` wildcard).
#[derive(Clone, Copy)]
pub struct AnyProcess<'a> {
    comm: &'a SimpleCommunicator,
}

impl<'a> AnyProcess<'a> {
    /// The communicator.
    pub fn communicator(&self) -> &'a SimpleCommunicator {
        self.comm
    }

    /// Always [`ANY_SOURCE`].
    pub fn rank(&self) -> Rank {
        ANY_SOURCE
    }
}
