//! Communicators, groups and processes (MPI 4.1 chapter 7): who is in a
//! group, the context that keeps a communicator's messages apart, and
//! handles naming one rank.
//!
//! Every communicator owns two context ids: `context` for its point-to-point
//! messages and `context + 1` for its collectives, so collective traffic can
//! never match a user's receive. New ids are agreed collectively: each rank
//! proposes the lowest id it has not used, the members (or the parent's
//! members) take the maximum, and every rank moves past it. A rank therefore
//! never reuses an id, so two communicators that share a member can never
//! share an id (disjoint groups from one split may, harmlessly, as in MPICH).

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

use crate::environment::Runtime;
use crate::error::{Error, ErrorHandler, Operation};
use crate::{Rank, ANY_SOURCE};

/// The world communicator's point-to-point context (its collectives use 1).
const WORLD_CONTEXT: u32 = 0;

/// The lowest context id this rank has not used yet (even: ids come in
/// pairs). One runtime per process, so one counter.
static NEXT_CONTEXT: AtomicU32 = AtomicU32::new(2);

/// Which world ranks make up a group, in group order.
#[derive(Debug, PartialEq, Eq)]
struct Members {
    /// World rank of each group rank.
    world_ranks: Vec<i32>,
}

impl Members {
    fn position(&self, world: i32) -> Option<Rank> {
        self.world_ranks
            .iter()
            .position(|&w| w == world)
            .map(|p| p as Rank)
    }
}

/// A communicator: a group of ranks and a context that keeps its messages
/// apart from every other communicator's (rsmpi's `SimpleCommunicator`).
/// Cheap to clone (one reference count: every request holds a handle, and
/// each count is an atomic read-modify-write, which waits for this core's
/// stores into a peer's ring); `Send + Sync`.
#[derive(Clone)]
pub struct SimpleCommunicator(Arc<Handle>);

/// What a communicator handle shares with its clones.
struct Handle {
    runtime: Arc<Runtime>,
    context: u32,
    members: Arc<Members>,
    /// This process's rank in the group.
    rank: Rank,
    /// The [`ErrorHandler`] (as `to_u8`), shared by every handle of this
    /// communicator; a derived communicator gets a copy of its own.
    error_handler: Arc<AtomicU8>,
}

impl SimpleCommunicator {
    pub(crate) fn world(runtime: Arc<Runtime>) -> SimpleCommunicator {
        let members = Members {
            world_ranks: (0..runtime.size).collect(),
        };
        let rank = runtime.rank;
        let error_handler = runtime.world_error_handler.clone();
        SimpleCommunicator(Arc::new(Handle {
            runtime,
            context: WORLD_CONTEXT,
            members: Arc::new(members),
            rank,
            error_handler,
        }))
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.0.runtime
    }

    pub(crate) fn context(&self) -> u32 {
        self.0.context
    }

    /// The world rank of this communicator's rank `rank`.
    pub(crate) fn world_rank(&self, rank: Rank) -> i32 {
        self.0.members.world_ranks[rank as usize]
    }

    /// This communicator's rank of world rank `world` (`world` itself if it
    /// is not a member, which the engine's matching never lets happen).
    pub(crate) fn local_rank(&self, world: i32) -> Rank {
        if self.0.context == WORLD_CONTEXT || self.0.context == WORLD_CONTEXT + 1 {
            return world;
        }
        self.0.members.position(world).unwrap_or(world)
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

    /// Hands an error that `operation` cannot return to this communicator's
    /// [`ErrorHandler`]: the job ends, or the calling thread unwinds.
    pub(crate) fn handle_error(&self, operation: Operation<'_>, error: Error) -> ! {
        match Communicator::error_handler(self) {
            ErrorHandler::Fatal => self.0.runtime.fatal(operation, error),
            ErrorHandler::Return => panic!("{}", self.0.runtime.describe(operation, &error)),
        }
    }

    /// A handle on a new communicator: inherits this one's error handler
    /// (MPI 4.1 §9.3) but no longer shares it.
    fn derived(&self, context: u32, members: Arc<Members>, rank: Rank) -> SimpleCommunicator {
        SimpleCommunicator(Arc::new(Handle {
            runtime: self.0.runtime.clone(),
            context,
            members,
            rank,
            error_handler: Arc::new(AtomicU8::new(Communicator::error_handler(self).to_u8())),
        }))
    }

    /// Agrees with the members of `self` on a fresh context id.
    fn agree_on_context(&self) -> Result<u32, Error> {
        let proposal = NEXT_CONTEXT.load(Ordering::Acquire);
        let agreed = crate::collective::max_u32(self, proposal)?;
        NEXT_CONTEXT.fetch_max(agreed + 2, Ordering::AcqRel);
        Ok(agreed)
    }

    fn with_members(&self, context: u32, world_ranks: Vec<i32>) -> Option<SimpleCommunicator> {
        let me = self.0.runtime.rank;
        let rank = world_ranks.iter().position(|&w| w == me)? as Rank;
        Some(self.derived(context, Arc::new(Members { world_ranks }), rank))
    }

    /// [`duplicate`](Self::duplicate) returning errors.
    pub fn try_duplicate(&self) -> Result<SimpleCommunicator, Error> {
        let context = self.agree_on_context()?;
        Ok(self.derived(context, self.0.members.clone(), self.0.rank))
    }

    /// A communicator with the same group and a new context (MPI_Comm_dup,
    /// MPI 4.1 §7.4.2). Collective.
    pub fn duplicate(&self) -> SimpleCommunicator {
        self.try_duplicate()
            .unwrap_or_else(|e| self.handle_error(Operation::named("duplicate"), e))
    }

    /// [`split_by_color_with_key`](Self::split_by_color_with_key) returning
    /// errors.
    pub fn try_split_by_color_with_key(
        &self,
        color: Color,
        key: i32,
    ) -> Result<Option<SimpleCommunicator>, Error> {
        let mine = [color.0, key];
        let mut all = vec![0i32; 2 * self.size() as usize];
        crate::collective::all_gather_bytes(self, as_bytes(&mine), as_bytes_mut(&mut all))?;
        let context = self.agree_on_context()?;
        let Some(my_color) = color.value() else {
            return Ok(None);
        };
        // Members of my color, ordered by key, then by rank in `self`.
        let mut chosen: Vec<(i32, Rank)> = all
            .chunks(2)
            .enumerate()
            .filter(|(_, ck)| ck[0] == my_color)
            .map(|(r, ck)| (ck[1], r as Rank))
            .collect();
        chosen.sort();
        let world_ranks = chosen
            .into_iter()
            .map(|(_, r)| self.world_rank(r))
            .collect();
        Ok(self.with_members(context, world_ranks))
    }

    /// Splits into one communicator per color, ordering each by `key` then
    /// by rank (MPI_Comm_split, MPI 4.1 §7.4.2). Collective; ranks with
    /// [`Color::undefined`] get `None`.
    pub fn split_by_color_with_key(&self, color: Color, key: i32) -> Option<SimpleCommunicator> {
        self.try_split_by_color_with_key(color, key)
            .unwrap_or_else(|e| self.handle_error(Operation::named("split_by_color_with_key"), e))
    }

    /// [`split_by_color_with_key`](Self::split_by_color_with_key) with the
    /// rank as key.
    pub fn split_by_color(&self, color: Color) -> Option<SimpleCommunicator> {
        self.split_by_color_with_key(color, self.0.rank)
    }

    /// [`split_by_subgroup_collective`](Self::split_by_subgroup_collective)
    /// returning errors.
    pub fn try_split_by_subgroup_collective(
        &self,
        group: &UserGroup,
    ) -> Result<Option<SimpleCommunicator>, Error> {
        let context = self.agree_on_context()?;
        Ok(self.with_members(context, group.members.world_ranks.clone()))
    }

    /// A communicator of `group`'s members, called by every rank of `self`
    /// (MPI_Comm_create, MPI 4.1 §7.4.2); non-members get `None`.
    pub fn split_by_subgroup_collective(&self, group: &UserGroup) -> Option<SimpleCommunicator> {
        self.try_split_by_subgroup_collective(group)
            .unwrap_or_else(|e| {
                self.handle_error(Operation::named("split_by_subgroup_collective"), e)
            })
    }

    /// [`split_by_subgroup`](Self::split_by_subgroup) returning errors.
    pub fn try_split_by_subgroup(
        &self,
        group: &UserGroup,
    ) -> Result<Option<SimpleCommunicator>, Error> {
        let Some(rank) = group.rank() else {
            return Ok(None);
        };
        // Only the members agree, over the parent's collective context.
        let scratch = SimpleCommunicator(Arc::new(Handle {
            runtime: self.0.runtime.clone(),
            context: self.0.context,
            members: group.members.clone(),
            rank,
            error_handler: self.0.error_handler.clone(),
        }));
        let context = scratch.agree_on_context()?;
        Ok(self.with_members(context, group.members.world_ranks.clone()))
    }

    /// A communicator of `group`'s members, called by the members only
    /// (MPI_Comm_create_group, MPI 4.1 §7.4.2).
    pub fn split_by_subgroup(&self, group: &UserGroup) -> Option<SimpleCommunicator> {
        self.try_split_by_subgroup(group)
            .unwrap_or_else(|e| self.handle_error(Operation::named("split_by_subgroup"), e))
    }
}

fn as_bytes(values: &[i32]) -> &[u8] {
    crate::datatype::Buffer::as_bytes(values)
}

fn as_bytes_mut(values: &mut [i32]) -> &mut [u8] {
    crate::datatype::BufferMut::as_bytes_mut(values)
}

/// The color of a split (rsmpi's `Color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(i32);

impl Color {
    /// A color; ranks with equal colors end up together. Must be ≥ 0.
    pub fn with_value(value: i32) -> Color {
        assert!(
            value >= 0,
            "colors are non-negative (MPI_UNDEFINED is Color::undefined())"
        );
        Color(value)
    }

    /// No communicator for this rank (MPI_UNDEFINED).
    pub fn undefined() -> Color {
        Color(-1)
    }

    fn value(self) -> Option<i32> {
        (self.0 >= 0).then_some(self.0)
    }
}

/// How two groups relate (MPI_Group_compare, MPI 4.1 §7.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRelation {
    /// Same members in the same order (MPI_IDENT).
    Identical,
    /// Same members, another order (MPI_SIMILAR).
    Similar,
    /// Different members (MPI_UNEQUAL).
    Unequal,
}

/// An ordered set of processes (MPI_Group, MPI 4.1 §7.3; rsmpi's
/// `UserGroup`).
#[derive(Debug, Clone)]
pub struct UserGroup {
    members: Arc<Members>,
    /// This process's world rank.
    me: i32,
}

impl UserGroup {
    /// Number of processes (MPI_Group_size).
    pub fn size(&self) -> Rank {
        self.members.world_ranks.len() as Rank
    }

    /// This process's rank in the group, if it is a member (MPI_Group_rank).
    pub fn rank(&self) -> Option<Rank> {
        self.members.position(self.me)
    }

    fn subset(&self, world_ranks: Vec<i32>) -> UserGroup {
        UserGroup {
            members: Arc::new(Members { world_ranks }),
            me: self.me,
        }
    }

    /// The processes of these ranks, in this order (MPI_Group_incl). Panics
    /// on a rank outside the group, as rsmpi does.
    pub fn include(&self, ranks: &[Rank]) -> UserGroup {
        let n = self.size();
        let world = ranks
            .iter()
            .map(|&r| {
                assert!(
                    (0..n).contains(&r),
                    "include: rank {r} is not in a group of {n}"
                );
                self.members.world_ranks[r as usize]
            })
            .collect();
        self.subset(world)
    }

    /// The group without these ranks (MPI_Group_excl).
    pub fn exclude(&self, ranks: &[Rank]) -> UserGroup {
        let world = self
            .members
            .world_ranks
            .iter()
            .enumerate()
            .filter(|(r, _)| !ranks.contains(&(*r as Rank)))
            .map(|(_, &w)| w)
            .collect();
        self.subset(world)
    }

    /// The rank in `other` of this group's rank `rank`
    /// (MPI_Group_translate_ranks).
    pub fn translate_rank(&self, rank: Rank, other: &UserGroup) -> Option<Rank> {
        let world = *self.members.world_ranks.get(usize::try_from(rank).ok()?)?;
        other.members.position(world)
    }

    /// [`translate_rank`](Self::translate_rank) for several ranks.
    pub fn translate_ranks(&self, ranks: &[Rank], other: &UserGroup) -> Vec<Option<Rank>> {
        ranks
            .iter()
            .map(|&r| self.translate_rank(r, other))
            .collect()
    }

    /// How this group relates to `other` (MPI_Group_compare).
    pub fn compare(&self, other: &UserGroup) -> GroupRelation {
        let (a, b) = (&self.members.world_ranks, &other.members.world_ranks);
        if a == b {
            return GroupRelation::Identical;
        }
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort_unstable();
        sb.sort_unstable();
        if sa == sb {
            GroupRelation::Similar
        } else {
            GroupRelation::Unequal
        }
    }
}

/// What every communicator offers (rsmpi's `Communicator` trait).
pub trait Communicator {
    /// The communicator behind this handle.
    fn as_simple(&self) -> &SimpleCommunicator;

    /// This process's rank (MPI_Comm_rank, MPI 4.1 §7.4.1).
    fn rank(&self) -> Rank {
        self.as_simple().0.rank
    }

    /// Number of ranks (MPI_Comm_size, MPI 4.1 §7.4.1).
    fn size(&self) -> Rank {
        self.as_simple().0.members.world_ranks.len() as Rank
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

    /// The group of this communicator (MPI_Comm_group, MPI 4.1 §7.3.2).
    fn group(&self) -> UserGroup {
        let comm = self.as_simple();
        UserGroup {
            members: comm.0.members.clone(),
            me: comm.0.runtime.rank,
        }
    }

    /// This communicator's error handler (MPI_Comm_get_errhandler, MPI 4.1
    /// §9.3.1).
    fn error_handler(&self) -> ErrorHandler {
        ErrorHandler::from_u8(self.as_simple().0.error_handler.load(Ordering::Relaxed))
    }

    /// Sets what the operations of this communicator (every handle of it)
    /// do with errors they cannot return (MPI_Comm_set_errhandler, MPI 4.1
    /// §9.3.1); communicators made from it later inherit the choice.
    fn set_error_handler(&self, handler: ErrorHandler) {
        self.as_simple()
            .0
            .error_handler
            .store(handler.to_u8(), Ordering::Relaxed);
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
