//! Dissemination over a transport, one node per rank.
//!
//! Every rank draws every node's callee from one generator seeded alike, so
//! each rank knows who calls it this round without being told; its coin for
//! losing interest is its own. Calls are carried out in caller order on every
//! rank (the caller sends its state, the callee answers with its state at the
//! start of the round and now), the order the simulator uses, which cannot
//! deadlock even if sends wait for receives: the lowest unfinished call always
//! has both ends ready for it. Every node calls in every round and
//! non-callers' calls carry no effect, so no rank needs to know another's
//! state beforehand. An allreduce of (informed, infective) counts ends the loop.

use super::{NodeState, Outcome, Protocol, SplitMix64, MAX_ROUNDS};
use crate::error::{CollectiveError, Result};
use crate::op::{Primitive, SystemOp, SystemOperation};
use crate::tags;
use crate::transport::{Comm, PointToPoint};

/// Spreads an update from rank 0 to all ranks with `protocol`; every rank
/// returns the same outcome. The callee sequence is fixed by `seed`.
pub fn spread<T: PointToPoint>(
    transport: &T,
    protocol: Protocol,
    seed: u64,
) -> Result<Outcome, T::Error> {
    let comm = Comm::new(transport, "epidemic dissemination");
    let (rank, size) = (comm.rank, comm.size);
    let sum = SystemOperation::new(SystemOp::Sum, Primitive::U64).expect("sum is defined on u64");
    let mut callees = SplitMix64::new(seed);
    let mut coin = SplitMix64::new(seed ^ (rank as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut state = if rank == 0 {
        NodeState::Infective
    } else {
        NodeState::Susceptible
    };
    let mut rounds = 0;
    loop {
        let mut counts = [0u8; 16];
        counts[..8].copy_from_slice(&u64::from(state.informed()).to_ne_bytes());
        counts[8..].copy_from_slice(&u64::from(state == NodeState::Infective).to_ne_bytes());
        crate::all_reduce_in_place(transport, &mut counts, 8, &sum)?;
        let informed = u64::from_ne_bytes(counts[..8].try_into().expect("8 bytes")) as usize;
        let infective = u64::from_ne_bytes(counts[8..].try_into().expect("8 bytes")) as usize;
        if size < 2 || protocol.finished(size, informed, infective) || rounds == MAX_ROUNDS {
            return Ok(Outcome {
                nodes: size,
                informed,
                rounds,
            });
        }
        rounds += 1;

        let start = state;
        for caller in 0..size {
            let callee = callees.other_than(caller, size);
            if caller == rank {
                // The callee answers with its state at the start of the round
                // and at the moment of the call.
                let mut answer = [0u8; 2];
                comm.send(callee, tags::EPIDEMIC, &[start.to_byte()])?;
                comm.receive(callee, tags::EPIDEMIC, &mut answer)?;
                let peer = decode(&comm, answer[0], callee)?;
                let peer_now = decode(&comm, answer[1], callee)?;
                if protocol.calls(start) {
                    let contact = protocol.contact(start, peer, peer_now);
                    if contact.caller_learns {
                        state.learn();
                    }
                    if contact.caller_may_lose_interest && protocol.loses_interest(&mut coin) {
                        state = NodeState::Removed;
                    }
                }
            } else if callee == rank {
                let mut call = [0u8];
                comm.receive(caller, tags::EPIDEMIC, &mut call)?;
                comm.send(caller, tags::EPIDEMIC, &[start.to_byte(), state.to_byte()])?;
                let peer = decode(&comm, call[0], caller)?;
                if protocol.calls(peer) && protocol.contact(peer, start, state).callee_learns {
                    state.learn();
                }
            }
        }
    }
}

fn decode<T: PointToPoint>(
    comm: &Comm<'_, T>,
    byte: u8,
    peer: usize,
) -> Result<NodeState, T::Error> {
    NodeState::from_byte(byte).ok_or_else(|| -> CollectiveError<T::Error> {
        comm.invalid(format!("rank {peer} sent an unknown node state {byte}"))
    })
}
