//! osu_bw: bandwidth from rank 0 to rank 1, as OSU's `osu_bw` measures it.
//! Each iteration rank 0 starts a window of 64 immediate sends and waits for
//! them all, while rank 1 posts 64 immediate receives, waits for them and
//! answers with a 4-byte acknowledgement; bandwidth is the bytes sent per
//! second (MB/s, 10^6 bytes).
//!
//! The receives go to 64 separate slots: Rust's borrows forbid the 64
//! receives into one buffer that the C benchmark posts.
//!
//! Run: `mpirun -n 2 osu_bw [-m [MIN:]MAX] [-i ITERS] [-x WARMUP]
//! [--csv FILE] [--plot FILE.svg]`.
use mpirt::point_to_point::{Destination, Source};
use mpirt::request::multiple_scope;
use mpirt::topology::Communicator;
use mpirt::traits::CommunicatorCollectives;
use mpirt_benches::osu::{Ranks, Report, Spec, BANDWIDTH_ITERATIONS, WINDOW_SIZE};
use mpirt_benches::series::Metric;

const SPEC: Spec = Spec {
    program: "osu_bw",
    title: "Bandwidth",
    metric: Metric::Bandwidth,
    default_sizes: (1, 4 << 20),
    smallest: 1,
    granularity: 1,
    iterations: BANDWIDTH_ITERATIONS,
    ranks: Ranks::Exactly(2),
};

const DATA_TAG: mpirt::Tag = 100;
const ACK_TAG: mpirt::Tag = 101;

fn main() {
    let (universe, options) = SPEC.start();
    let world = universe.world();
    let mut report = Report::new(&SPEC, &options, &world);
    let largest = options.sizes.last().copied().unwrap_or(0);
    let rank = world.rank();
    let peer = world.process_at_rank(1 - rank);
    let send = if rank == 0 {
        vec![b'a'; largest]
    } else {
        Vec::new()
    };
    let mut slots = if rank == 1 {
        vec![0u8; largest * WINDOW_SIZE]
    } else {
        Vec::new()
    };
    for &size in &options.sizes {
        let (iterations, warmup) = SPEC.rounds(&options, size);
        world.barrier();
        let mut start = 0.0;
        for i in 0..warmup + iterations {
            if i == warmup {
                start = mpirt::time();
            }
            if rank == 0 {
                multiple_scope(WINDOW_SIZE, |scope, requests| {
                    for _ in 0..WINDOW_SIZE {
                        requests.add(peer.immediate_send_with_tag(scope, &send[..size], DATA_TAG));
                    }
                    requests.wait_all(&mut Vec::new());
                });
                peer.receive_with_tag::<i32>(ACK_TAG);
            } else {
                multiple_scope(WINDOW_SIZE, |scope, requests| {
                    for slot in slots.chunks_mut(size).take(WINDOW_SIZE) {
                        requests.add(peer.immediate_receive_into_with_tag(scope, slot, DATA_TAG));
                    }
                    requests.wait_all(&mut Vec::new());
                });
                peer.send_with_tag(&0i32, ACK_TAG);
            }
        }
        let elapsed = mpirt::time() - start;
        let bytes = (size * WINDOW_SIZE * iterations) as f64;
        report.row(size, bytes / elapsed / 1e6);
    }
    drop(universe);
    report.finish();
}
