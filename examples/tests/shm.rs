//! The shared-memory transport under stress, on this loaded 2-core machine:
//! more ranks than cores, idle ranks that must not burn CPU, both
//! large-message paths forced, and `/dev/shm` left clean however a job
//! ends. (The point-to-point conformance list runs over shm in
//! `conformance.rs`.) Tests here run one at a time: the leak checks compare
//! `/dev/shm` before and after a job.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use launcher::{Failure, Job, Outcome, Output, Transport};

/// Jobs here take a few seconds; a slower one fails its test.
const DEADLINE: Duration = Duration::from_secs(120);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn job(program: &str, args: &[&str], ranks: usize) -> Job {
    Job::new(program)
        .args(args.iter().copied())
        .ranks(ranks)
        .transport(Transport::Shm)
        .timeout(DEADLINE)
        .output(Output::Capture)
}

fn run(job: Job) -> Outcome {
    job.run().expect("the job starts")
}

fn expect_success(job: Job) -> Outcome {
    let outcome = run(job);
    assert!(outcome.success(), "job failed:\n{}", outcome.report());
    outcome
}

/// Names in /dev/shm that mpirt made.
fn segments() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("mpirt"))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `job` and checks it left no segment behind.
fn run_leaving_nothing(job: Job) -> Outcome {
    let before = segments();
    let outcome = run(job);
    let left: Vec<String> = segments().difference(&before).cloned().collect();
    assert!(
        left.is_empty(),
        "left in /dev/shm: {left:?}\n{}",
        outcome.report()
    );
    outcome
}

#[test]
fn ring_of_1000_laps_at_8_ranks_on_2_cores() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let outcome = expect_success(job(env!("CARGO_BIN_EXE_ring"), &["1000"], 8));
    let sum: usize = (0..8).sum::<usize>() * 1000;
    assert!(
        outcome.stdout[0][0].ends_with(&format!("token {sum}: ok")),
        "{}",
        outcome.report()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn all_pairs_at_8_ranks_on_2_cores() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let outcome = expect_success(job(env!("CARGO_BIN_EXE_conformance"), &["all-pairs"], 8));
    assert!(outcome.stdout[0].contains(&"conformance all-pairs: ok at 8 ranks".to_string()));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_rank_blocked_for_3_s_uses_under_half_a_cpu_second() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = expect_success(job(env!("CARGO_BIN_EXE_idle"), &["wait", "3"], 2));
    let line = outcome.stdout[1]
        .iter()
        .find(|l| l.starts_with("idle: rank 1 waited"))
        .unwrap_or_else(|| panic!("no report:\n{}", outcome.report()));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let waited: f64 = fields[4].parse().unwrap();
    let cpu: f64 = fields[7].parse().unwrap();
    assert!(waited >= 2.9, "{line}");
    assert!(cpu < 0.5, "{line}");
}

/// Both large-message paths, forced, on the cases with large messages.
fn forced(copy: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for case in ["big", "all-pairs"] {
        for ranks in [2, 3] {
            let outcome = expect_success(
                job(env!("CARGO_BIN_EXE_conformance"), &[case], ranks).env("MPIRT_SHM_COPY", copy),
            );
            let expected = format!("conformance {case}: ok at {ranks} ranks");
            assert!(
                outcome.stdout[0].contains(&expected),
                "{}",
                outcome.report()
            );
        }
    }
}

#[test]
fn large_messages_by_single_copy() {
    forced("cma");
}

#[test]
fn large_messages_through_the_pipeline() {
    forced("pipeline");
}

#[test]
fn no_segment_left_after_a_normal_job() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run_leaving_nothing(job(env!("CARGO_BIN_EXE_ring"), &["10"], 4));
    assert!(outcome.success(), "{}", outcome.report());
}

#[test]
fn no_segment_left_after_a_rank_is_killed_mid_transfer() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run_leaving_nothing(job(env!("CARGO_BIN_EXE_idle"), &["kill"], 3));
    match &outcome.failure {
        Some(Failure::Signaled {
            rank: 2, signal: 9, ..
        }) => {}
        other => panic!(
            "expected rank 2 killed by SIGKILL, got {other:?}\n{}",
            outcome.report()
        ),
    }
}

#[test]
fn no_segment_left_after_a_job_ended_by_its_timeout() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run_leaving_nothing(
        job(env!("CARGO_BIN_EXE_idle"), &["hang"], 3).timeout(Duration::from_secs(3)),
    );
    assert!(!outcome.success());
    assert_eq!(outcome.exit_code, 124, "{}", outcome.report());
    assert!(
        outcome.stdout[0].contains(&"idle: hanging".to_string()),
        "{}",
        outcome.report()
    );
}

#[test]
fn no_segment_left_when_a_rank_exits_before_it_connects() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run_leaving_nothing(job(env!("CARGO_BIN_EXE_conformance"), &["exit-early"], 3));
    assert!(!outcome.success());
}

#[test]
fn forcing_shm_across_nodes_is_refused_at_start_up() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Each rank claims a node of its own.
    let script = format!(
        "MPIRT_NODE_ID=node$PMI_RANK exec {} 1",
        env!("CARGO_BIN_EXE_ring")
    );
    let outcome = run(job("sh", &["-c", &script], 2));
    assert!(!outcome.success());
    let stderr: String = (0..2).map(|r| outcome.stderr_text(r)).collect();
    assert!(
        stderr.contains("MPIRT_TRANSPORT=shm") && stderr.contains("another node"),
        "{}",
        outcome.report()
    );
}

/// Ranks split over two pretend nodes (`MPIRT_NODE_ID`): shared memory
/// within a node, TCP across, in one job.
#[test]
fn a_job_mixing_shm_and_tcp_peers() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for (program, arg, expected) in [
        (
            env!("CARGO_BIN_EXE_conformance"),
            "all-pairs",
            "conformance all-pairs: ok at 4 ranks",
        ),
        (
            env!("CARGO_BIN_EXE_conformance"),
            "big",
            "conformance big: ok at 4 ranks",
        ),
        (env!("CARGO_BIN_EXE_ring"), "200", "token 1200: ok"),
    ] {
        let script = format!("MPIRT_NODE_ID=node$((PMI_RANK / 2)) exec {program} {arg}");
        let outcome = expect_success(job("sh", &["-c", &script], 4).transport(Transport::Auto));
        assert!(
            outcome.stdout[0].iter().any(|l| l.contains(expected)),
            "{}",
            outcome.report()
        );
    }
}
