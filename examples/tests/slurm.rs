//! Slurm launches mpirt programs: `srun --mpi=pmi2`, whose agent answers
//! PMI-1 on `PMI_FD`, on a one-node Slurm that `scripts/slurm/one-node.sh`
//! starts on loopback under a temporary directory. The tests share that
//! cluster and run one at a time; it is stopped and its files removed when
//! the last test is done, or (a test binary killed or filtered) by the
//! script's watchdog once this process has exited.
//!
//! Needs root and Debian's `slurm-wlm` and `munge`: `.ci/run` installs them
//! and sets `MPIRT_SLURM_REQUIRED=1`, so there a missing Slurm fails; a
//! developer without them sees a skip message.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds any one `srun` may take; the jobs here take a few.
const SRUN_DEADLINE_SECONDS: u64 = 120;

/// Tests in this file: the last one to finish stops the cluster.
const TESTS: usize = 4;
static TESTS_LEFT: AtomicUsize = AtomicUsize::new(TESTS);

/// The running cluster's directory and slurm.conf, if one is up.
static CLUSTER: Mutex<Option<Cluster>> = Mutex::new(None);

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/slurm/one-node.sh");

struct Cluster {
    dir: String,
    conf: String,
}

impl Cluster {
    fn start() -> Cluster {
        let output = Command::new("timeout")
            .args(["180", SCRIPT, "start", "--owner"])
            .arg(std::process::id().to_string())
            .output()
            .expect("timeout and bash run");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "one-node.sh start failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .unwrap_or_else(|| panic!("one-node.sh start printed no {key}: {stdout}"))
                .to_string()
        };
        Cluster {
            dir: value("SLURM_DIR="),
            conf: value("SLURM_CONF="),
        }
    }

    /// Stops the daemons and removes the directory. Called from a `Drop`,
    /// perhaps while a test panics: it reports, never panics.
    fn stop(self) {
        let status = Command::new("timeout")
            .args(["60", SCRIPT, "stop", &self.dir])
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) || Path::new(&self.dir).exists() {
            eprintln!("one-node.sh stop {} failed: {status:?}", self.dir);
        }
    }
}

/// Holds the cluster for one test; the last test's guard stops it, also
/// when that test fails.
struct Guard {
    cluster: std::sync::MutexGuard<'static, Option<Cluster>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if TESTS_LEFT.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(cluster) = self.cluster.take() {
                cluster.stop();
            }
        }
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The cluster, started on first use; `None` (the test is skipped) when
/// Slurm cannot run here and `MPIRT_SLURM_REQUIRED` is not set.
fn cluster() -> Option<Guard> {
    let missing: Vec<&str> = ["srun", "sinfo", "slurmctld", "slurmd", "munged"]
        .into_iter()
        .filter(|tool| !have(tool))
        .collect();
    let reason = if !missing.is_empty() {
        Some(format!(
            "{} missing: install Debian's slurm-wlm and munge (.ci/run does)",
            missing.join(", ")
        ))
    } else if !is_root() {
        Some("a one-node Slurm needs root".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        let required = std::env::var("MPIRT_SLURM_REQUIRED").is_ok_and(|v| v == "1");
        assert!(!required, "MPIRT_SLURM_REQUIRED=1 but {reason}");
        // Straight to stderr: the test harness would swallow eprintln!.
        let _ = writeln!(std::io::stderr(), "slurm test skipped: {reason}");
        TESTS_LEFT.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    // A test that failed while holding the lock leaves the cluster usable.
    let mut cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if cluster.is_none() {
        *cluster = Some(Cluster::start());
    }
    Some(Guard { cluster })
}

struct Srun {
    output: Output,
    elapsed: Duration,
}

impl Srun {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "{} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.output.status,
            self.elapsed,
            self.stdout(),
            self.stderr()
        )
    }
}

/// Runs `srun --mpi=MPI -n N --overcommit PROGRAM ARGS` on the cluster with
/// a deadline (4 tasks on this 2-CPU node need `--overcommit`).
fn srun(guard: &Guard, mpi: &str, n: usize, program: &str, args: &[&str]) -> Srun {
    let cluster = guard.cluster.as_ref().expect("the cluster is up");
    let started = Instant::now();
    let output = Command::new("timeout")
        .arg(SRUN_DEADLINE_SECONDS.to_string())
        .arg("srun")
        .arg(format!("--mpi={mpi}"))
        .args(["-n", &n.to_string(), "--overcommit", program])
        .args(args)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .expect("timeout and srun run");
    Srun {
        output,
        elapsed: started.elapsed(),
    }
}

fn expect_success(run: &Srun) {
    assert!(
        run.output.status.success(),
        "srun failed: {}",
        run.describe()
    );
}

#[test]
fn srun_pmi2_runs_the_ring_at_4_ranks() {
    let Some(guard) = cluster() else { return };
    let run = srun(&guard, "pmi2", 4, env!("CARGO_BIN_EXE_ring"), &["20"]);
    expect_success(&run);
    assert!(
        run.stdout()
            .contains("ring: 20 laps around 4 ranks, token 120: ok"),
        "{}",
        run.describe()
    );
}

#[test]
fn srun_pmi2_runs_the_collective_checks_at_4_ranks() {
    let Some(guard) = cluster() else { return };
    let run = srun(
        &guard,
        "pmi2",
        4,
        env!("CARGO_BIN_EXE_collective_check"),
        &[],
    );
    expect_success(&run);
    assert!(
        run.stdout().contains("all: ok at 4 ranks"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_rank_killed_under_srun_ends_the_job_promptly() {
    let Some(guard) = cluster() else { return };
    // Rank 3 kills itself with SIGKILL; the others wait on a receive from it.
    let run = srun(
        &guard,
        "pmi2",
        4,
        env!("CARGO_BIN_EXE_conformance"),
        &["kill"],
    );
    assert!(!run.output.status.success(), "{}", run.describe());
    assert_ne!(
        run.output.status.code(),
        Some(124),
        "srun hit its deadline: {}",
        run.describe()
    );
    assert!(run.elapsed < Duration::from_secs(60), "{}", run.describe());
    let stderr = run.stderr();
    assert!(
        stderr.contains("lost rank 3") && stderr.contains("task 3: Killed"),
        "{}",
        run.describe()
    );
}

#[test]
fn srun_without_pmi_fails_with_advice_instead_of_running_singletons() {
    let Some(guard) = cluster() else { return };
    let run = srun(&guard, "none", 4, env!("CARGO_BIN_EXE_ring"), &["3"]);
    assert!(!run.output.status.success(), "{}", run.describe());
    assert!(!run.stdout().contains("ok"), "{}", run.describe());
    let stderr = run.stderr();
    for task in 0..4 {
        assert!(
            stderr.contains(&format!("task {task} of 4 in Slurm job step")),
            "{}",
            run.describe()
        );
    }
    assert!(
        stderr.contains("launch with `srun --mpi=pmi2`"),
        "{}",
        run.describe()
    );
}
