//! osu_bibw: bandwidth with both ranks sending at once, as OSU's
//! `osu_bibw` measures it. Each iteration both ranks post a window of 64
//! immediate receives, then 64 immediate sends, and wait for all of them;
//! bandwidth is the bytes moved in both directions per second (MB/s).
//!
//! Run: `mpirun -n 2 osu_bibw [-m [MIN:]MAX] [-i ITERS] [-x WARMUP]
//! [--csv FILE] [--plot FILE.svg]`.
use mpirt::point_to_point::{Destination, Source};
use mpirt::request::multiple_scope;
use mpirt::topology::Communicator;
use mpirt::traits::CommunicatorCollectives;
use mpirt_benches::osu::{Ranks, Report, Spec, BANDWIDTH_ITERATIONS, WINDOW_SIZE};
use mpirt_benches::series::Metric;

const SPEC: Spec = Spec {
    program: "osu_bibw",
    title: "Bi-Directional Bandwidth",
    metric: Metric::Bandwidth,
    default_sizes: (1, 4 << 20),
    smallest: 1,
    granularity: 1,
    iterations: BANDWIDTH_ITERATIONS,
    ranks: Ranks::Exactly(2),
};

const DATA_TAG: mpirt::Tag = 100;

fn main() {
    let (universe, options) = SPEC.start();
    let world = universe.world();
    let mut report = Report::new(&SPEC, &options, &world);
    let largest = options.sizes.last().copied().unwrap_or(0);
    let peer = world.process_at_rank(1 - world.rank());
    let send = vec![b'a'; largest];
    let mut slots = vec![0u8; largest * WINDOW_SIZE];
    for &size in &options.sizes {
        let (iterations, warmup) = SPEC.rounds(&options, size);
        world.barrier();
        let mut start = 0.0;
        for i in 0..warmup + iterations {
            if i == warmup {
                start = mpirt::time();
            }
            multiple_scope(2 * WINDOW_SIZE, |scope, requests| {
                for slot in slots.chunks_mut(size).take(WINDOW_SIZE) {
                    requests.add(peer.immediate_receive_into_with_tag(scope, slot, DATA_TAG));
                }
                for _ in 0..WINDOW_SIZE {
                    requests.add(peer.immediate_send_with_tag(scope, &send[..size], DATA_TAG));
                }
                requests.wait_all(&mut Vec::new());
            });
        }
        let elapsed = mpirt::time() - start;
        let bytes = (2 * size * WINDOW_SIZE * iterations) as f64;
        report.row(size, bytes / elapsed / 1e6);
    }
    drop(universe);
    report.finish();
}
