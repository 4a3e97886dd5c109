//! The HPC example programs (`pi`, `heat2d`, `samplesort`, `cg`) as
//! end-to-end tests: each at 1, 2, 3, 4 and 6 ranks over each transport, at
//! sizes small enough for a loaded 2-core machine. Every program checks its
//! own answer against a serial computation on rank 0 and exits non-zero
//! when it is wrong; a test requires success and the program's "ok" line.

use std::time::Duration;

use launcher::{Job, Outcome, Output, Transport};

const RANKS: [usize; 5] = [1, 2, 3, 4, 6];
const DEADLINE: Duration = Duration::from_secs(120);

fn run(program: &str, args: &str, ranks: usize, transport: Transport) -> Outcome {
    Job::new(program)
        .args(args.split_whitespace())
        .ranks(ranks)
        .transport(transport)
        .timeout(DEADLINE)
        .output(Output::Capture)
        .run()
        .expect("job starts")
}

/// Runs `program` with `args` (split at spaces) at every rank count of
/// [`RANKS`] and requires success and a line on rank 0 starting with
/// `check` and ending in "ok".
fn at_every_size(program: &str, args: &str, check: &str, transport: Transport) {
    for n in RANKS {
        let outcome = run(program, args, n, transport);
        assert!(
            outcome.success(),
            "{program} {args} at {n} ranks over {transport:?} failed:\n{}",
            outcome.report()
        );
        let ok = outcome.stdout[0]
            .iter()
            .any(|line| line.starts_with(check) && line.ends_with(": ok"));
        assert!(
            ok,
            "{program} {args} at {n} ranks over {transport:?}: no \"{check} ... ok\" line:\n{}",
            outcome.report()
        );
    }
}

macro_rules! hpc_suite {
    ($module:ident, $transport:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn pi_matches_the_serial_sum_and_pi() {
                at_every_size(
                    env!("CARGO_BIN_EXE_pi"),
                    "--intervals 100000",
                    "pi: check:",
                    $transport,
                );
            }

            #[test]
            fn heat2d_with_send_receive_matches_serial_jacobi() {
                at_every_size(
                    env!("CARGO_BIN_EXE_heat2d"),
                    "--n 30 --steps 200 --check-every 7",
                    "heat2d: check:",
                    $transport,
                );
            }

            #[test]
            fn heat2d_with_immediate_halos_converges_like_serial_jacobi() {
                at_every_size(
                    env!("CARGO_BIN_EXE_heat2d"),
                    "--n 13 --steps 5000 --tol 1e-6 --halo immediate",
                    "heat2d: check:",
                    $transport,
                );
            }

            #[test]
            fn heat2d_with_blocks_one_point_wide_matches_serial_jacobi() {
                for halo in ["sendrecv", "immediate"] {
                    at_every_size(
                        env!("CARGO_BIN_EXE_heat2d"),
                        &format!("--n 3 --steps 50 --halo {halo}"),
                        "heat2d: check:",
                        $transport,
                    );
                }
            }

            #[test]
            fn samplesort_is_identical_to_the_serial_sort() {
                at_every_size(
                    env!("CARGO_BIN_EXE_samplesort"),
                    "--keys 50000 --seed 7",
                    "samplesort: check:",
                    $transport,
                );
            }

            #[test]
            fn samplesort_with_fewer_keys_than_ranks_keeps_every_key() {
                at_every_size(
                    env!("CARGO_BIN_EXE_samplesort"),
                    "--keys 5 --samples 3",
                    "samplesort: check:",
                    $transport,
                );
            }

            #[test]
            fn cg_on_the_2d_stencil_matches_serial_cg_and_the_known_solution() {
                at_every_size(
                    env!("CARGO_BIN_EXE_cg"),
                    "--problem 2d --n 24",
                    "cg: check:",
                    $transport,
                );
            }

            #[test]
            fn cg_on_the_1d_laplacian_matches_serial_cg_and_the_known_solution() {
                at_every_size(
                    env!("CARGO_BIN_EXE_cg"),
                    "--problem 1d --n 60 --quiet",
                    "cg: check:",
                    $transport,
                );
            }
        }
    };
}

hpc_suite!(shm, Transport::Shm);
hpc_suite!(tcp, Transport::Tcp);
