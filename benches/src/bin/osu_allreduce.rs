//! osu_allreduce: latency of MPI_Allreduce (sum of `f32`), as OSU's
//! `osu_allreduce` measures it. Every rank times each call on its own,
//! with a barrier between calls that is not timed; rank 0 prints the
//! average over ranks of their average call.
//!
//! Run: `mpirun -n N osu_allreduce [-m [MIN:]MAX] [-i ITERS] [-x WARMUP]
//! [--csv FILE] [--plot FILE.svg]`. Sizes are bytes of `f32` (from 4).
use mpirt::collective::SystemOperation;
use mpirt::traits::CommunicatorCollectives;
use mpirt_benches::osu::{self, Ranks, Report, Spec, COLLECTIVE_ITERATIONS};
use mpirt_benches::series::Metric;

const SPEC: Spec = Spec {
    program: "osu_allreduce",
    title: "Allreduce Latency",
    metric: Metric::AverageLatency,
    default_sizes: (4, 1 << 20),
    smallest: 4,
    granularity: 4,
    iterations: COLLECTIVE_ITERATIONS,
    ranks: Ranks::AtLeast(2),
};

fn main() {
    let (universe, options) = SPEC.start();
    let world = universe.world();
    let mut report = Report::new(&SPEC, &options, &world);
    let largest = options.sizes.last().copied().unwrap_or(0) / 4;
    let send = vec![1.0f32; largest];
    let mut receive = vec![0.0f32; largest];
    for &bytes in &options.sizes {
        let (iterations, warmup) = SPEC.rounds(&options, bytes);
        let n = bytes / 4;
        let (send, receive) = (&send[..n], &mut receive[..n]);
        world.barrier();
        let mut timed = 0.0;
        for i in 0..warmup + iterations {
            let start = mpirt::time();
            world.all_reduce_into(send, receive, SystemOperation::sum());
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
