//! osu_bcast: latency of MPI_Bcast from rank 0, as OSU's `osu_bcast`
//! measures it. Every rank times each call on its own, with a barrier
//! between calls that is not timed; rank 0 prints the average over ranks
//! of their average call.
//!
//! Run: `mpirun -n N osu_bcast [-m [MIN:]MAX] [-i ITERS] [-x WARMUP]
//! [--csv FILE] [--plot FILE.svg]`.
use mpirt::topology::Communicator;
use mpirt::traits::{CommunicatorCollectives, Root};
use mpirt_benches::osu::{self, Ranks, Report, Spec, COLLECTIVE_ITERATIONS};
use mpirt_benches::series::Metric;

const SPEC: Spec = Spec {
    program: "osu_bcast",
    title: "Broadcast Latency",
    metric: Metric::AverageLatency,
    default_sizes: (1, 1 << 20),
    smallest: 1,
    granularity: 1,
    iterations: COLLECTIVE_ITERATIONS,
    ranks: Ranks::AtLeast(2),
};

fn main() {
    let (universe, options) = SPEC.start();
    let world = universe.world();
    let mut report = Report::new(&SPEC, &options, &world);
    let largest = options.sizes.last().copied().unwrap_or(0);
    let mut buffer = vec![b'a'; largest];
    let root = world.process_at_rank(0);
    for &bytes in &options.sizes {
        let (iterations, warmup) = SPEC.rounds(&options, bytes);
        world.barrier();
        let mut timed = 0.0;
        for i in 0..warmup + iterations {
            let start = mpirt::time();
            root.broadcast_into(&mut buffer[..bytes]);
            if i >= warmup {
                timed += mpirt::time() - start;
            }
            world.barrier();
        }
        let average = osu::average_over_ranks(&world, timed * 1e6 / iterations as f64);
        report.row(bytes, average);
    }
    drop(universe);
    report.finish();
}
