//! Epidemic dissemination: the simulator against the analytic residue and
//! the `log2 N` round count, and the transport version on in-memory ranks.

use collectives::epidemic::{rumor_residue, simulate, spread, Mode, Protocol};
use collectives::memory::{run_with, SendMode};

mod common;

const NODES: usize = 100_000;

#[test]
fn rumor_residue_matches_the_formula_on_100_000_nodes() {
    for k in 1..=5u32 {
        let outcome = simulate(Protocol::Rumor { k }, NODES, 42 + u64::from(k));
        let formula = rumor_residue(f64::from(k));
        let measured = outcome.residue();
        println!(
            "k={k}: s measured {measured:.4}, formula {formula:.4}, {} rounds",
            outcome.rounds
        );
        assert!(
            (measured - formula).abs() < 0.01,
            "k={k}: measured {measured}, formula {formula}"
        );
    }
    // The seed's table.
    assert!(simulate(Protocol::Rumor { k: 3 }, NODES, 7).residue() < 0.02);
    assert!(simulate(Protocol::Rumor { k: 4 }, NODES, 7).residue() < 0.007);
}

#[test]
fn anti_entropy_reaches_everyone_in_about_log2_n_rounds() {
    let log2 = (NODES as f64).log2();
    let ln = (NODES as f64).ln();
    for mode in [Mode::Push, Mode::Pull, Mode::PushPull] {
        let outcome = simulate(Protocol::AntiEntropy(mode), NODES, 1);
        println!("{mode:?}: {} rounds, log2 N = {log2:.1}", outcome.rounds);
        assert!(outcome.complete());
        // Push alone needs log2 N + ln N + O(1) rounds (Pittel 1987).
        assert!(
            f64::from(outcome.rounds) <= log2 + ln + 5.0,
            "{mode:?}: {outcome:?}"
        );
    }
    let push_pull = simulate(Protocol::AntiEntropy(Mode::PushPull), NODES, 1);
    assert!(f64::from(push_pull.rounds) <= log2 + 3.0, "{push_pull:?}");
}

#[test]
fn spread_over_a_transport_agrees_on_every_rank() {
    for size in [1, 2, 7, 16, 33] {
        for protocol in [
            Protocol::AntiEntropy(Mode::Push),
            Protocol::AntiEntropy(Mode::Pull),
            Protocol::AntiEntropy(Mode::PushPull),
            Protocol::Rumor { k: 2 },
        ] {
            // Synchronous sends check that the call order cannot deadlock.
            let outcomes = run_with(SendMode::Synchronous, size, common::TIMEOUT, |t| {
                spread(t, protocol, 9).unwrap()
            });
            assert!(
                outcomes.iter().all(|o| *o == outcomes[0]),
                "{protocol:?}: {outcomes:?}"
            );
            let eager = run_with(SendMode::Eager, size, common::TIMEOUT, |t| {
                spread(t, protocol, 9).unwrap()
            });
            assert_eq!(
                eager, outcomes,
                "{protocol:?}: the send mode changed the outcome"
            );
            let outcome = outcomes[0];
            assert_eq!(outcome.nodes, size);
            if let Protocol::AntiEntropy(_) = protocol {
                assert!(outcome.complete(), "{protocol:?} on {size}: {outcome:?}");
                let log2 = (size as f64).log2();
                let bound = log2 + (size as f64).ln() + 6.0;
                assert!(
                    f64::from(outcome.rounds) <= bound,
                    "{protocol:?} on {size}: {outcome:?}"
                );
            }
        }
    }
}
