//! Epidemic dissemination of one update (Demers et al., "Epidemic algorithms
//! for replicated database maintenance", PODC 1987).
//!
//! - **Anti-entropy**: every round every node contacts a random other node;
//!   with *push* an informed caller informs the callee, with *pull* an
//!   informed callee informs the caller, with *push-pull* both. Push needs
//!   about `log2 N + ln N` rounds, push-pull about `log3 N + O(ln ln N)`
//!   (Karp et al. 2000).
//! - **Rumor spreading** (push, feedback, coin): only *infective* nodes call;
//!   a caller whose callee already knew the rumor loses interest with
//!   probability `1/k`. The process stops when nobody is infective, leaving a
//!   fraction `s` of nodes never reached, with `s = e^{-(k+1)(1-s)}`
//!   ([`rumor_residue`]).
//!
//! Rounds are synchronous: what a node sends in a round is its state at the
//! start of the round. The rules live here, with no I/O; [`simulate`] runs
//! them on up to hundreds of thousands of nodes in memory, [`spread`] on the
//! ranks of a transport.

mod over_transport;
mod rng;
mod simulator;

pub use over_transport::spread;
pub use rng::SplitMix64;
pub use simulator::simulate;

/// The direction of anti-entropy exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The caller sends what it has.
    Push,
    /// The caller asks the callee for what it has.
    Pull,
    /// Both.
    PushPull,
}

/// A dissemination protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Every node calls every round, for ever (until all hold the update).
    AntiEntropy(Mode),
    /// Infective nodes push; a caller that reaches an informed node stops
    /// with probability `1/k`.
    Rumor {
        /// The inverse probability of losing interest (`k ≥ 1`).
        k: u32,
    },
}

/// A node's knowledge of the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Has not got the update.
    Susceptible,
    /// Has it and still spreads it.
    Infective,
    /// Has it and has lost interest (rumor spreading only).
    Removed,
}

impl NodeState {
    /// Whether the node holds the update.
    pub fn informed(self) -> bool {
        self != NodeState::Susceptible
    }

    fn to_byte(self) -> u8 {
        match self {
            NodeState::Susceptible => 0,
            NodeState::Infective => 1,
            NodeState::Removed => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(NodeState::Susceptible),
            1 => Some(NodeState::Infective),
            2 => Some(NodeState::Removed),
            _ => None,
        }
    }

    /// Becomes infective if it did not know.
    fn learn(&mut self) {
        if *self == NodeState::Susceptible {
            *self = NodeState::Infective;
        }
    }
}

/// What one call does, given both nodes' states at the start of the round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Contact {
    callee_learns: bool,
    caller_learns: bool,
    /// The callee already knew: a rumor-spreading caller tosses its coin.
    caller_may_lose_interest: bool,
}

impl Protocol {
    /// Whether a node in `state` places a call this round.
    fn calls(&self, state: NodeState) -> bool {
        match self {
            Protocol::AntiEntropy(_) => true,
            Protocol::Rumor { .. } => state == NodeState::Infective,
        }
    }

    /// The effect of a call, from the caller's state at the start of the
    /// round and the callee's at the start of the round and at the call.
    fn contact(&self, caller: NodeState, callee: NodeState, callee_now: NodeState) -> Contact {
        let push = caller.informed() && !callee.informed();
        let pull = callee.informed() && !caller.informed();
        match self {
            Protocol::AntiEntropy(Mode::Push) => Contact {
                callee_learns: push,
                ..Contact::default()
            },
            Protocol::AntiEntropy(Mode::Pull) => Contact {
                caller_learns: pull,
                ..Contact::default()
            },
            Protocol::AntiEntropy(Mode::PushPull) => Contact {
                callee_learns: push,
                caller_learns: pull,
                ..Contact::default()
            },
            // Feedback is about the moment of the call: a node reached
            // earlier this round already knows (as in the continuous model).
            Protocol::Rumor { .. } => Contact {
                callee_learns: caller.informed() && !callee_now.informed(),
                caller_may_lose_interest: callee_now.informed(),
                ..Contact::default()
            },
        }
    }

    /// The caller's coin: lose interest with probability `1/k`.
    fn loses_interest(&self, rng: &mut SplitMix64) -> bool {
        match self {
            Protocol::Rumor { k } => rng.below((*k).max(1) as usize) == 0,
            Protocol::AntiEntropy(_) => false,
        }
    }

    /// Whether the process is over, from the counts at the start of a round.
    fn finished(&self, nodes: usize, informed: usize, infective: usize) -> bool {
        match self {
            Protocol::AntiEntropy(_) => informed == nodes,
            Protocol::Rumor { .. } => infective == 0 || informed == nodes,
        }
    }
}

/// Rounds run beyond which a simulation gives up (anti-entropy always ends
/// long before, with probability 1 − 2^-hundreds).
pub const MAX_ROUNDS: u32 = 10_000;

/// How a dissemination ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Nodes taking part.
    pub nodes: usize,
    /// Nodes holding the update at the end.
    pub informed: usize,
    /// Rounds run until the process stopped (everyone informed, or, for
    /// rumor spreading, nobody infective any more).
    pub rounds: u32,
}

impl Outcome {
    /// The fraction `s` of nodes never reached.
    pub fn residue(&self) -> f64 {
        (self.nodes - self.informed) as f64 / self.nodes as f64
    }

    /// Whether every node holds the update.
    pub fn complete(&self) -> bool {
        self.informed == self.nodes
    }
}

/// The fraction of nodes that rumor spreading with loss of interest `1/k`
/// never reaches, as `N → ∞`: the root of `s = e^{-(k+1)(1-s)}` in `(0, 1)`.
///
/// Fixed-point iteration from `s = 0` climbs monotonically to the smallest
/// root, and converges since the slope there, `(k+1)·s`, is below 1.
pub fn rumor_residue(k: f64) -> f64 {
    let rate = k + 1.0;
    let mut s = 0.0f64;
    for _ in 0..10_000 {
        let next = (-rate * (1.0 - s)).exp();
        if (next - s).abs() < 1e-15 {
            return next;
        }
        s = next;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residue_formula_solves_its_equation_and_matches_the_seed_table() {
        for k in 1..=5 {
            let s = rumor_residue(k as f64);
            assert!((s - (-(k as f64 + 1.0) * (1.0 - s)).exp()).abs() < 1e-12);
            assert!(s > 0.0 && s < 1.0);
        }
        assert!((rumor_residue(1.0) - 0.2032).abs() < 1e-3);
        assert!(rumor_residue(3.0) < 0.02);
        assert!(rumor_residue(4.0) < 0.007);
    }

    #[test]
    fn rules_per_mode() {
        use NodeState::*;
        let push = Protocol::AntiEntropy(Mode::Push);
        assert!(
            push.contact(Infective, Susceptible, Susceptible)
                .callee_learns
        );
        assert!(
            !push
                .contact(Susceptible, Infective, Infective)
                .caller_learns
        );
        let pull = Protocol::AntiEntropy(Mode::Pull);
        assert!(
            pull.contact(Susceptible, Infective, Infective)
                .caller_learns
        );
        assert!(
            !pull
                .contact(Infective, Susceptible, Susceptible)
                .callee_learns
        );
        let rumor = Protocol::Rumor { k: 2 };
        assert!(
            rumor
                .contact(Infective, Removed, Removed)
                .caller_may_lose_interest
        );
        assert!(
            !rumor
                .contact(Infective, Susceptible, Susceptible)
                .caller_may_lose_interest
        );
        assert!(
            rumor
                .contact(Infective, Susceptible, Infective)
                .caller_may_lose_interest
        );
        assert!(!rumor.calls(Removed));
    }
}
