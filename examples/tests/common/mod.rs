//! Helpers shared by the integration tests: running a job with its output
//! captured and checking what rank 0 printed; for the fault and stranger
//! tests, a job of the `fault` program, its markers, and checking that a
//! job left no process and no shared-memory segment behind.

#![allow(dead_code)] // Each test file uses its own part.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use launcher::{Job, Outcome, Output, Transport};

/// Deadline of a job that is expected to end by itself (a hang fails).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The `fault` program.
pub fn fault_program() -> &'static str {
    env!("CARGO_BIN_EXE_fault")
}

/// A job of `ranks` ranks of `program ARGS` over `transport`, output
/// captured, failing after `deadline`.
pub fn captured_job(
    program: &str,
    args: &[&str],
    ranks: usize,
    transport: Transport,
    deadline: Duration,
) -> Job {
    Job::new(program)
        .args(args.iter().copied())
        .ranks(ranks)
        .transport(transport)
        .timeout(deadline)
        .output(Output::Capture)
}

/// Runs [`captured_job`]; the job must succeed and rank 0 must print
/// `expected`.
pub fn run_expecting(
    program: &str,
    args: &[&str],
    ranks: usize,
    transport: Transport,
    deadline: Duration,
    expected: &str,
) {
    let outcome = captured_job(program, args, ranks, transport, deadline)
        .run()
        .expect("job starts");
    let report = outcome.report();
    assert!(
        outcome.success(),
        "{program} {args:?} at {ranks} ranks over {transport:?} failed:\n{report}"
    );
    assert!(
        outcome.stdout_text(0).contains(expected),
        "rank 0 did not print {expected:?}:\n{report}"
    );
}

/// A job of `ranks` ranks of `fault ARGS` over `transport`, output captured.
pub fn fault_job(args: &[&str], ranks: usize, transport: Transport) -> Job {
    captured_job(fault_program(), args, ranks, transport, DEADLINE)
}

/// Now, as nanoseconds since the Unix epoch (the clock of the markers).
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The moment a rank printed `fault: rank R faulting at NANOS`, if one did.
pub fn fault_moment(lines: &[String]) -> Option<u128> {
    lines.iter().find_map(|line| {
        line.strip_prefix("fault: rank ")?
            .split_once(" faulting at ")?
            .1
            .trim()
            .parse()
            .ok()
    })
}

/// Pids whose `/proc` entry still exists and is not a zombie.
pub fn still_alive(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().next().map(|state| state != "Z")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Names in `/dev/shm` that mpirt made for one of `pids`
/// (`mpirt-<pid namespace>-<pid>-<random>`, see `transport/shm/segment.rs`).
pub fn segments_of(pids: &[u32]) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let mut parts = name.split('-');
            parts.next() == Some("mpirt")
                && parts
                    .nth(1)
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|pid| pids.contains(&pid))
        })
        .collect()
}

/// Pids the ranks printed as `fault: rank R pid P`.
pub fn printed_pids(outcome: &Outcome) -> Vec<u32> {
    outcome
        .stdout
        .iter()
        .flatten()
        .filter_map(|line| {
            line.strip_prefix("fault: rank ")?
                .split_once(" pid ")?
                .1
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

/// The `mpirun` binary beside this package's binaries, built if missing
/// (a `cargo test` of this package alone does not build it).
pub fn mpirun() -> PathBuf {
    let directory = PathBuf::from(fault_program())
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();
    let mpirun = directory.join("mpirun");
    if !mpirun.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = directory.ends_with("release");
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "launcher", "--bin", "mpirun"]);
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building mpirun failed");
    }
    mpirun
}
