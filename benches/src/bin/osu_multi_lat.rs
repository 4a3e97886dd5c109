//! osu_multi_lat: latency of many pairs at once, as OSU's `osu_multi_lat`
//! measures it. Rank r < n/2 ping-pongs with rank r + n/2; every paired rank
//! times its half of the exchange, and rank 0 prints the average over them.
//! With an odd number of ranks the last one has no partner and only joins
//! the barriers.
//!
//! Run: `mpirun -n N osu_multi_lat [-m [MIN:]MAX] [-i ITERS] [-x WARMUP]
//! [--csv FILE] [--plot FILE.svg]`.
use mpirt::collective::SystemOperation;
use mpirt::point_to_point::{Destination, Source};
use mpirt::topology::Communicator;
use mpirt::traits::{CommunicatorCollectives, Root};
use mpirt_benches::osu::{Ranks, Report, Spec, LATENCY_ITERATIONS};
use mpirt_benches::series::Metric;

const SPEC: Spec = Spec {
    program: "osu_multi_lat",
    title: "Multi Latency",
    metric: Metric::Latency,
    default_sizes: (1, 4 << 20),
    smallest: 0,
    granularity: 1,
    iterations: LATENCY_ITERATIONS,
    ranks: Ranks::AtLeast(2),
};

fn main() {
    let (universe, options) = SPEC.start();
    let world = universe.world();
    let mut report = Report::new(&SPEC, &options, &world);
    let largest = options.sizes.last().copied().unwrap_or(0);
    let (rank, size) = (world.rank(), world.size());
    let pairs = size / 2;
    // (partner, whether this rank sends first), if it has a partner.
    let role = if rank < pairs {
        Some((rank + pairs, true))
    } else if rank < 2 * pairs {
        Some((rank - pairs, false))
    } else {
        None
    };
    let send = vec![b'a'; largest];
    let mut receive = vec![b'b'; largest];
    let root = world.process_at_rank(0);
    for &bytes in &options.sizes {
        let (iterations, warmup) = SPEC.rounds(&options, bytes);
        let (send, receive) = (&send[..bytes], &mut receive[..bytes]);
        world.barrier();
        let mut latency = 0.0f64;
        if let Some((partner, first)) = role {
            let peer = world.process_at_rank(partner);
            let mut start = 0.0;
            for i in 0..warmup + iterations {
                if i == warmup {
                    start = mpirt::time();
                }
                if first {
                    peer.send(send);
                    peer.receive_into(receive);
                } else {
                    peer.receive_into(receive);
                    peer.send(send);
                }
            }
            latency = (mpirt::time() - start) * 1e6 / (2.0 * iterations as f64);
        }
        if rank == 0 {
            let mut sum = 0.0f64;
            root.reduce_into_root(&latency, &mut sum, SystemOperation::sum());
            report.row(bytes, sum / (2 * pairs) as f64);
        } else {
            root.reduce_into(&latency, SystemOperation::sum());
        }
    }
    drop(universe);
    report.finish();
}
