//! Dissemination simulated in memory, node states in one array: the rules of
//! `mod.rs` with no transport, for up to hundreds of thousands of nodes.

use super::{NodeState, Outcome, Protocol, SplitMix64, MAX_ROUNDS};

/// Spreads an update from node 0 among `nodes` nodes with `protocol`; the
/// run is fixed by `seed`.
pub fn simulate(protocol: Protocol, nodes: usize, seed: u64) -> Outcome {
    let mut rng = SplitMix64::new(seed);
    let mut state = vec![NodeState::Susceptible; nodes];
    if let Some(first) = state.first_mut() {
        *first = NodeState::Infective;
    }
    let mut next = state.clone();
    let mut rounds = 0;
    loop {
        let informed = state.iter().filter(|s| s.informed()).count();
        let infective = state.iter().filter(|s| **s == NodeState::Infective).count();
        if nodes < 2 || protocol.finished(nodes, informed, infective) || rounds == MAX_ROUNDS {
            return Outcome {
                nodes,
                informed,
                rounds,
            };
        }
        rounds += 1;
        next.copy_from_slice(&state);
        for caller in 0..nodes {
            if !protocol.calls(state[caller]) {
                continue;
            }
            let callee = rng.other_than(caller, nodes);
            let contact = protocol.contact(state[caller], state[callee], next[callee]);
            if contact.callee_learns {
                next[callee].learn();
            }
            if contact.caller_learns {
                next[caller].learn();
            }
            if contact.caller_may_lose_interest && protocol.loses_interest(&mut rng) {
                next[caller] = NodeState::Removed;
            }
        }
        std::mem::swap(&mut state, &mut next);
    }
}
