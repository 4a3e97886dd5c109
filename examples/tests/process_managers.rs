//! Foreign process managers and foreign programs: MPICH's Hydra
//! (`mpiexec.mpich`) launches mpirt programs over PMI-1, and mpirt's launcher
//! runs programs built against MPICH. `.ci/run` installs Debian's `mpich`
//! and `libmpich-dev`; without them these tests fail with that advice.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use launcher::{Job, Output};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn require(tool: &str) {
    assert!(
        have(tool),
        "{tool} is missing: install Debian's mpich and libmpich-dev (.ci/run does)"
    );
}

/// Runs `mpiexec.mpich -n N PROGRAM ARGS` with a deadline; returns stdout.
fn hydra(n: usize, program: &str, args: &[&str]) -> String {
    require("mpiexec.mpich");
    let output = Command::new("timeout")
        .arg("120")
        .arg("mpiexec.mpich")
        .args(["-n", &n.to_string(), program])
        .args(args)
        .output()
        .expect("mpiexec.mpich runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "mpiexec.mpich -n {n} {program} {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn hydra_launches_the_ring_at_1_2_4_and_7_ranks() {
    for n in [1, 2, 4, 7] {
        let out = hydra(n, env!("CARGO_BIN_EXE_ring"), &["20"]);
        let sum: usize = (0..n).sum::<usize>() * 20;
        assert!(out.contains(&format!("token {sum}: ok")), "{out}");
    }
}

#[test]
fn hydra_launches_point_to_point_and_collective_checks() {
    for n in [2, 4] {
        let out = hydra(n, env!("CARGO_BIN_EXE_conformance"), &["all-pairs"]);
        assert!(
            out.contains(&format!("all-pairs: ok at {n} ranks")),
            "{out}"
        );
        let out = hydra(n, env!("CARGO_BIN_EXE_collective_check"), &[]);
        assert!(out.contains(&format!("all: ok at {n} ranks")), "{out}");
    }
}

/// Compiles a small MPICH ring program with mpicc.mpich.
fn mpich_ring() -> PathBuf {
    require("mpicc.mpich");
    let dir = std::env::temp_dir().join(format!("mpirt-mpich-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let source = dir.join("ring.c");
    std::fs::write(
        &source,
        r#"#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, token = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) {
        MPI_Send(&token, 1, MPI_INT, 1 % size, 0, MPI_COMM_WORLD);
        MPI_Recv(&token, 1, MPI_INT, size - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        int sum = 0;
        MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        printf("mpich ring: token %d sum %d size %d\n", token, sum, size);
    } else {
        MPI_Recv(&token, 1, MPI_INT, rank - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        token += rank;
        MPI_Send(&token, 1, MPI_INT, (rank + 1) % size, 0, MPI_COMM_WORLD);
        int sum = 0;
        MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
"#,
    )
    .expect("write ring.c");
    let binary = dir.join("ring.mpich");
    let status = Command::new("mpicc.mpich")
        .arg("-O2")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("mpicc");
    assert!(status.success(), "mpicc.mpich failed");
    binary
}

#[test]
fn mpirun_runs_an_mpich_program_at_4_ranks() {
    let binary = mpich_ring();
    let outcome = Job::new(&binary)
        .ranks(4)
        .timeout(Duration::from_secs(120))
        .output(Output::Capture)
        .run()
        .expect("starts");
    assert!(
        outcome.success(),
        "{:?}\n{}\n{}",
        outcome.message,
        outcome.stdout_text(0),
        outcome.stderr_text(0)
    );
    assert_eq!(
        outcome.stdout_text(0).trim(),
        "mpich ring: token 6 sum 6 size 4"
    );
    let _ = std::fs::remove_dir_all(binary.parent().expect("dir"));
}
