//! osu_latency: one-way latency between two ranks, as OSU's `osu_latency`
//! measures it. Rank 0 sends a message with a blocking send and waits for
//! rank 1 to send it back; the latency is half the average round trip.
//!
//! Run: `mpirun -n 2 osu_latency [-m [MIN:]MAX] [-i ITERS] [-x WARMUP]
//! [--csv FILE] [--plot FILE.svg]`.
use mpirt::point_to_point::{Destination, Source};
use mpirt::topology::Communicator;
use mpirt::traits::CommunicatorCollectives;
use mpirt_benches::osu::{Ranks, Report, Spec, LATENCY_ITERATIONS};
use mpirt_benches::series::Metric;

const SPEC: Spec = Spec {
    program: "osu_latency",
    title: "Latency",
    metric: Metric::Latency,
    default_sizes: (1, 4 << 20),
    smallest: 0,
    granularity: 1,
    iterations: LATENCY_ITERATIONS,
    ranks: Ranks::Exactly(2),
};

fn main() {
    let (universe, options) = SPEC.start();
    let world = universe.world();
    let mut report = Report::new(&SPEC, &options, &world);
    let largest = options.sizes.last().copied().unwrap_or(0);
    let send = vec![b'a'; largest];
    let mut receive = vec![b'b'; largest];
    let rank = world.rank();
    let peer = world.process_at_rank(1 - rank);
    for &size in &options.sizes {
        let (iterations, warmup) = SPEC.rounds(&options, size);
        let (send, receive) = (&send[..size], &mut receive[..size]);
        world.barrier();
        let mut start = 0.0;
        for i in 0..warmup + iterations {
            if i == warmup {
                start = mpirt::time();
            }
            if rank == 0 {
                peer.send(send);
                peer.receive_into(receive);
            } else {
                peer.receive_into(receive);
                peer.send(send);
            }
        }
        let elapsed = mpirt::time() - start;
        report.row(size, elapsed * 1e6 / (2.0 * iterations as f64));
    }
    drop(universe);
    report.finish();
}
