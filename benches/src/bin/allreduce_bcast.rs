//! allreduce_bcast: `all_reduce_into` (sum of `f64`) and `broadcast_into`
//! from rank 0 over every rank of the world, 8 B and 1 MiB, timed with the
//! same loops as `benches/anchors/collectives.c` (and pingpong.c's
//! allreduce), printing the same `RESULT` lines, so that
//! `shared/anchors/compare.py` sets mpirt at N ranks beside a C MPI at N:
//!
//! ```text
//! RESULT allreduce <bytes> <avg us> <min us> <max us>
//! RESULT bcast     <bytes> <avg us> <min us> <max us>
//! ```
//!
//! Run: `mpirun -n N allreduce_bcast [-x SCALE]` (SCALE multiplies the
//! iteration counts, as pingpong.c's `-x`).
use mpirt::collective::SystemOperation;
use mpirt::topology::SimpleCommunicator;
use mpirt::traits::*;

/// Sends per size: 1 double (8 B) and 131072 (1 MiB), as the C program.
const COUNTS: [usize; 2] = [1, 131072];

/// Times `call` as collectives.c does: a barrier, `skip` untimed calls,
/// then the average of `iters`; prints avg/min/max over ranks on rank 0.
fn timed(world: &SimpleCommunicator, test: &str, n: usize, scale: f64, mut call: impl FnMut()) {
    let scaled = |k: usize, min: usize| ((k as f64 * scale) as usize).max(min);
    let (iters, skip) = if n == 1 {
        (scaled(10000, 10), scaled(1000, 2))
    } else {
        (scaled(300, 10), scaled(30, 2))
    };
    world.barrier();
    let mut start = 0.0;
    for i in 0..iters + skip {
        if i == skip {
            start = mpirt::time();
        }
        call();
    }
    let micros = (mpirt::time() - start) * 1e6 / iters as f64;
    let root = world.process_at_rank(0);
    if world.rank() == 0 {
        let (mut sum, mut min, mut max) = (0f64, 0f64, 0f64);
        root.reduce_into_root(&micros, &mut sum, SystemOperation::sum());
        root.reduce_into_root(&micros, &mut min, SystemOperation::min());
        root.reduce_into_root(&micros, &mut max, SystemOperation::max());
        let avg = sum / world.size() as f64;
        println!("RESULT {test:<9} {} {avg:.3} {min:.3} {max:.3}", n * 8);
    } else {
        root.reduce_into(&micros, SystemOperation::sum());
        root.reduce_into(&micros, SystemOperation::min());
        root.reduce_into(&micros, SystemOperation::max());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scale = args
        .windows(2)
        .find(|w| w[0] == "-x")
        .and_then(|w| w[1].parse::<f64>().ok())
        .unwrap_or(1.0);
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let send = vec![rank as f64 + 1.0; COUNTS[1]];
    let mut receive = vec![0f64; COUNTS[1]];
    for n in COUNTS {
        timed(&world, "allreduce", n, scale, || {
            world.all_reduce_into(&send[..n], &mut receive[..n], SystemOperation::sum())
        });
        let expected = (size * (size + 1) / 2) as f64;
        if receive[n - 1] != expected {
            eprintln!(
                "allreduce_bcast: allreduce gave {} instead of {expected}",
                receive[n - 1]
            );
            std::process::exit(1);
        }
    }
    // Rank 0 broadcasts ones; the others must end up with them.
    receive.fill(if rank == 0 { 1.0 } else { 0.0 });
    for n in COUNTS {
        timed(&world, "bcast", n, scale, || {
            world.process_at_rank(0).broadcast_into(&mut receive[..n])
        });
        if receive[n - 1] != 1.0 {
            eprintln!("allreduce_bcast: broadcast gave {}", receive[n - 1]);
            std::process::exit(1);
        }
    }
}
