//! Multi-process tests: real jobs started through the launcher's library at
//! several rank counts, odd ones included. The same list runs over every
//! transport (a conformance matrix, as crossbeam-channel's tests share names
//! across flavors). Every job has a deadline after which the test fails.

use std::time::Duration;

use launcher::{Failure, Job, Outcome, Output, Transport};

/// Rank counts every case runs at.
const RANKS: [usize; 5] = [1, 2, 3, 4, 7];
/// Cases that need a partner skip 1.
const PAIR_RANKS: [usize; 4] = [2, 3, 4, 7];
/// A job slower than this fails its test (they take well under a second).
const DEADLINE: Duration = Duration::from_secs(120);

fn run(program: &str, args: &[&str], ranks: usize, transport: Transport) -> Outcome {
    Job::new(program)
        .args(args.iter().copied())
        .ranks(ranks)
        .transport(transport)
        .timeout(DEADLINE)
        .output(Output::Capture)
        .run()
        .unwrap_or_else(|e| panic!("{program} {args:?} at {ranks} ranks did not start: {e}"))
}

fn expect_success(program: &str, args: &[&str], ranks: usize, transport: Transport) -> Outcome {
    let outcome = run(program, args, ranks, transport);
    assert!(
        outcome.success(),
        "{program} {args:?} at {ranks} ranks over {transport:?} failed:\n{}",
        outcome.report()
    );
    outcome
}

fn case(name: &str, ranks: &[usize], transport: Transport) {
    for &n in ranks {
        let outcome = expect_success(env!("CARGO_BIN_EXE_conformance"), &[name], n, transport);
        let expected = format!("conformance {name}: ok at {n} ranks");
        assert!(
            outcome.stdout[0].contains(&expected),
            "no success line:\n{}",
            outcome.report()
        );
    }
}

macro_rules! conformance_suite {
    ($module:ident, $transport:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn ring() {
                for n in RANKS {
                    let outcome =
                        expect_success(env!("CARGO_BIN_EXE_ring"), &["50"], n, $transport);
                    let sum: usize = (0..n).sum::<usize>() * 50;
                    assert!(
                        outcome.stdout[0][0].ends_with(&format!("token {sum}: ok")),
                        "{}",
                        outcome.report()
                    );
                }
            }

            #[test]
            fn all_pairs_exchange_with_data_checks() {
                case("all-pairs", &RANKS, $transport);
            }

            #[test]
            fn any_source_with_any_tag() {
                case("any-source", &RANKS, $transport);
            }

            #[test]
            fn order_of_10000_messages_with_mixed_tags() {
                case("order", &RANKS, $transport);
            }

            #[test]
            fn message_of_64_mib() {
                case("big", &PAIR_RANKS, $transport);
            }

            #[test]
            fn truncation_is_an_error() {
                case("truncate", &RANKS, $transport);
            }

            #[test]
            fn strangers_at_a_ranks_port_are_refused() {
                for n in PAIR_RANKS {
                    let outcome = expect_success(
                        env!("CARGO_BIN_EXE_conformance"),
                        &["strangers"],
                        n,
                        $transport,
                    );
                    let refusals = outcome.stderr[0]
                        .iter()
                        .filter(|l| l.contains("refused a connection"))
                        .count();
                    assert!(
                        refusals >= 3,
                        "rank 0 logged {refusals} refusals:\n{}",
                        outcome.report()
                    );
                }
            }

            #[test]
            fn rank_killed_with_sigkill_ends_the_job() {
                for n in RANKS {
                    let outcome = run(env!("CARGO_BIN_EXE_conformance"), &["kill"], n, $transport);
                    let victim = n - 1;
                    match &outcome.failure {
                        Some(Failure::Signaled {
                            rank, signal: 9, ..
                        }) if *rank == victim => {}
                        other => panic!(
                            "expected rank {victim} killed by SIGKILL, got {other:?}\n{}",
                            outcome.report()
                        ),
                    }
                    assert_eq!(outcome.exit_code, 137);
                    let message = outcome.message.clone().unwrap_or_default();
                    assert!(
                        message.contains(&format!("rank {victim}")) && message.contains("SIGKILL"),
                        "{message}"
                    );
                }
            }

            #[test]
            fn rank_exiting_before_it_connects_ends_the_job() {
                for n in PAIR_RANKS {
                    let outcome = run(
                        env!("CARGO_BIN_EXE_conformance"),
                        &["exit-early"],
                        n,
                        $transport,
                    );
                    assert_eq!(
                        outcome.failure.as_ref().and_then(|f| f.rank()),
                        Some(n - 1),
                        "{}",
                        outcome.report()
                    );
                    assert!(!outcome.success());
                    assert!(
                        outcome.elapsed < Duration::from_secs(60),
                        "took {:?}",
                        outcome.elapsed
                    );
                }
            }
        }
    };
}

conformance_suite!(tcp, Transport::Tcp);

#[test]
fn hello_names_every_rank() {
    let outcome = expect_success(env!("CARGO_BIN_EXE_hello"), &[], 3, Transport::Auto);
    let mut ranks: Vec<String> = outcome.stdout.iter().flatten().cloned().collect();
    ranks.sort();
    assert_eq!(ranks.len(), 3);
    for (r, line) in ranks.iter().enumerate() {
        assert!(
            line.starts_with(&format!("hello from rank {r} of 3 on ")),
            "{line}"
        );
    }
}

#[test]
fn pingpong_prints_result_lines_for_every_size() {
    let outcome = expect_success(
        env!("CARGO_BIN_EXE_pingpong"),
        &["--result", "-t", "lat,ssend", "-x", "0.01"],
        2,
        Transport::Tcp,
    );
    for test in ["lat", "ssend"] {
        let lines: Vec<&String> = outcome.stdout[0]
            .iter()
            .filter(|l| l.starts_with(&format!("RESULT {test} ")))
            .collect();
        assert_eq!(lines.len(), 10, "{}", outcome.report());
        let mut last_size = -1i64;
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let size: i64 = fields[2].parse().unwrap();
            let micros: f64 = fields[3].parse().unwrap();
            assert!(size > last_size && micros > 0.0, "{line}");
            last_size = size;
        }
    }
}

#[test]
fn pingpong_bandwidth_lines() {
    let outcome = expect_success(
        env!("CARGO_BIN_EXE_pingpong"),
        &["--result", "-t", "bw", "-x", "0.01", "-m", "1:65536"],
        2,
        Transport::Tcp,
    );
    let lines: Vec<&String> = outcome.stdout[0]
        .iter()
        .filter(|l| l.starts_with("RESULT bw "))
        .collect();
    assert_eq!(lines.len(), 6, "{}", outcome.report());
    for line in lines {
        let fields: Vec<f64> = line
            .split_whitespace()
            .skip(2)
            .map(|f| f.parse().unwrap())
            .collect();
        assert!(
            fields[0] > 0.0 && fields[1] > 0.0 && fields[2] > 0.0,
            "{line}"
        );
    }
}

#[test]
fn pingpong_allreduce_lines_with_a_third_rank_waiting() {
    let outcome = expect_success(
        env!("CARGO_BIN_EXE_pingpong"),
        &["--result", "-t", "allreduce", "-x", "0.01"],
        3,
        Transport::Tcp,
    );
    let lines: Vec<&String> = outcome.stdout[0]
        .iter()
        .filter(|l| l.starts_with("RESULT allreduce "))
        .collect();
    assert_eq!(lines.len(), 2, "{}", outcome.report());
    for (line, bytes) in lines.iter().zip(["8", "1048576"]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[2], bytes);
        let (avg, min, max): (f64, f64, f64) = (
            fields[3].parse().unwrap(),
            fields[4].parse().unwrap(),
            fields[5].parse().unwrap(),
        );
        assert!(min > 0.0 && min <= avg && avg <= max, "{line}");
    }
}

#[test]
fn modes_shows_each_primitive_and_prints_stats() {
    let outcome = expect_success(env!("CARGO_BIN_EXE_modes"), &[], 2, Transport::Tcp);
    assert!(
        outcome.stdout_text(0).contains("sendrecv reply 42"),
        "{}",
        outcome.report()
    );
    assert!(
        outcome
            .stdout_text(1)
            .contains("irecv tag 4: 1048576 bytes"),
        "{}",
        outcome.report()
    );
    for rank in 0..2 {
        assert!(
            outcome
                .stdout_text(rank)
                .contains(&format!("rank {rank}: sent ")),
            "{}",
            outcome.report()
        );
    }
    assert!(
        outcome.stdout_text(0).contains("1 buffered"),
        "{}",
        outcome.report()
    );
}

#[test]
fn pingpong_table_by_default() {
    let outcome = expect_success(
        env!("CARGO_BIN_EXE_pingpong"),
        &["-x", "0.01"],
        2,
        Transport::Tcp,
    );
    assert!(outcome.stdout[0]
        .iter()
        .any(|l| l.starts_with("# Size") && l.contains("Latency (us)")));
    assert_eq!(
        outcome.stdout[0]
            .iter()
            .filter(|l| !l.starts_with('#'))
            .count(),
        10
    );
}
conformance_suite!(shm, Transport::Shm);
