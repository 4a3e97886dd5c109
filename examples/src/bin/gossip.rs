//! gossip: epidemic dissemination, as the seed describes it. On the job's
//! real ranks, an update spreads from rank 0 by anti-entropy (push, pull,
//! push-pull) and by rumor spreading; then, in memory, on up to 100,000
//! simulated nodes, the measured fraction `s` of nodes a rumor never
//! reaches is set beside the solution of s = e^{-(k+1)(1-s)} for k = 1..5,
//! and anti-entropy's rounds beside log2 N.
//!
//! Usage: gossip [NODES]   (simulated nodes, default 100000)
use mpirt::epidemic::{rumor_residue, simulate, Mode, Protocol};
use mpirt::traits::*;

fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("NODES must be a number"));
    let universe = mpirt::initialize().expect("initialized once");
    let world = universe.world();
    let protocols = [
        ("anti-entropy push", Protocol::AntiEntropy(Mode::Push)),
        ("anti-entropy pull", Protocol::AntiEntropy(Mode::Pull)),
        (
            "anti-entropy push-pull",
            Protocol::AntiEntropy(Mode::PushPull),
        ),
        ("rumor k=2", Protocol::Rumor { k: 2 }),
    ];
    for (name, protocol) in protocols {
        let outcome = mpirt::collective::gossip(&world, protocol, 42).unwrap_or_else(|e| {
            eprintln!("gossip: {name}: {e}");
            world.abort(1)
        });
        if world.rank() == 0 {
            println!(
                "{name:<24} on {} ranks: {} rounds, {} of {} reached",
                world.size(),
                outcome.rounds,
                outcome.informed,
                outcome.nodes
            );
        }
    }
    if world.rank() != 0 {
        return;
    }
    println!("\nrumor spreading on {nodes} simulated nodes");
    println!(
        "{:>3} {:>12} {:>12} {:>8}",
        "k", "measured s", "formula s", "rounds"
    );
    for k in 1..=5 {
        let outcome = simulate(Protocol::Rumor { k }, nodes, 7 + k as u64);
        println!(
            "{k:>3} {:>12.4} {:>12.4} {:>8}",
            outcome.residue(),
            rumor_residue(k as f64),
            outcome.rounds
        );
    }
    println!(
        "\nanti-entropy on {nodes} simulated nodes (log2 N = {:.1})",
        (nodes as f64).log2()
    );
    for (name, mode) in [
        ("push", Mode::Push),
        ("pull", Mode::Pull),
        ("push-pull", Mode::PushPull),
    ] {
        let outcome = simulate(Protocol::AntiEntropy(mode), nodes, 11);
        println!(
            "{name:<10} {:>4} rounds, all reached: {}",
            outcome.rounds,
            outcome.complete()
        );
    }
}
