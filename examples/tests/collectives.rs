//! Collectives and communicators through real jobs: every collective and
//! operation against a reference, rooted ones at every root, split/dup and
//! isolation (`examples/src/bin/collective_check.rs`), at 1, 2, 3, 4, 5, 7
//! and 8 ranks over each transport, each job with a deadline.

use std::time::Duration;

use launcher::{Job, Outcome, Output, Transport};

const RANKS: [usize; 7] = [1, 2, 3, 4, 5, 7, 8];
const DEADLINE: Duration = Duration::from_secs(120);

fn run(mode: &str, n: usize, transport: Transport) -> Outcome {
    Job::new(env!("CARGO_BIN_EXE_collective_check"))
        .arg(mode)
        .ranks(n)
        .transport(transport)
        .timeout(DEADLINE)
        .output(Output::Capture)
        .run()
        .expect("job starts")
}

macro_rules! collectives_suite {
    ($module:ident, $transport:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn every_collective_matches_its_reference() {
                for n in RANKS {
                    let outcome = run("all", n, $transport);
                    assert!(
                        outcome.success(),
                        "at {n} ranks: {:?}\n{}",
                        outcome.message,
                        outcome.report()
                    );
                    assert!(outcome
                        .stdout_text(0)
                        .contains(&format!("collective_check all: ok at {n} ranks")));
                }
            }

            #[test]
            fn mismatched_lengths_end_the_job_with_a_clear_error() {
                for n in [2, 3, 5] {
                    let outcome = run("mismatch", n, $transport);
                    assert!(
                        !outcome.success(),
                        "mismatched lengths at {n} ranks succeeded"
                    );
                    let stderr: String = (0..n).map(|r| outcome.stderr_text(r)).collect();
                    assert!(
                        stderr.contains("buffer lengths differ"),
                        "{}",
                        outcome.report()
                    );
                    assert!(outcome.elapsed < Duration::from_secs(60));
                }
            }
        }
    };
}

collectives_suite!(tcp, Transport::Tcp);
collectives_suite!(shm, Transport::Shm);

#[test]
fn gossip_reaches_every_rank_and_matches_the_formula() {
    for (n, transport) in [
        (1, Transport::Tcp),
        (3, Transport::Tcp),
        (5, Transport::Shm),
    ] {
        let outcome = Job::new(env!("CARGO_BIN_EXE_gossip"))
            .arg("20000")
            .ranks(n)
            .transport(transport)
            .timeout(DEADLINE)
            .output(Output::Capture)
            .run()
            .expect("job starts");
        assert!(
            outcome.success(),
            "{:?}\n{}",
            outcome.message,
            outcome.report()
        );
        let text = outcome.stdout_text(0);
        assert_eq!(
            text.matches(&format!("{n} of {n} reached")).count(),
            4,
            "{text}"
        );
        // The k = 3 line: measured s within a point of the formula, under 3%.
        let k3: Vec<f64> = text
            .lines()
            .find(|l| l.trim_start().starts_with("3 "))
            .expect("a k = 3 line")
            .split_whitespace()
            .map(|f| f.parse().expect("number"))
            .collect();
        assert!((k3[1] - k3[2]).abs() < 0.01 && k3[1] < 0.03, "{text}");
    }
}
