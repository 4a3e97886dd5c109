//! pingpong: two ranks bounce messages of 0 B to 4 MiB with blocking send
//! and receive, as OSU's `osu_latency` does.
//!
//! By default it prints an OSU-style table. With `--result` it prints the
//! `RESULT` lines of `shared/anchors/pingpong.c`, so that
//! `shared/anchors/compare.py` can set it beside MPICH:
//!   RESULT lat   <bytes> <one-way us> <MB/s>
//!   RESULT ssend <bytes> <one-way us> <MB/s>
//!   RESULT bw    <bytes> <us per message> <MB/s>  (64 immediate sends, then a 4-byte ack)
//!   RESULT allreduce <bytes> <avg us> <min us> <max us>  (sum of f64: 8 B and 1 MiB)
//! Options: `-t lat,bw,ssend` (tests), `-x F` (scale iteration counts by F),
//! `-m MIN:MAX` (only sizes in that range, in bytes).
//! Ranks other than 0 and 1 wait at the end.
use mpirt::point_to_point::{Destination, Source};
use mpirt::topology::{Communicator, SimpleCommunicator};

const SIZES: [usize; 10] = [0, 1, 8, 64, 512, 4096, 32768, 262144, 1 << 20, 4 << 20];

struct Options {
    result_lines: bool,
    tests: Vec<String>,
    scale: f64,
    sizes: (usize, usize),
}

fn parse_options() -> Options {
    let mut options = Options {
        result_lines: false,
        tests: vec!["lat".into()],
        scale: 1.0,
        sizes: (0, usize::MAX),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--result" => options.result_lines = true,
            "-t" => {
                options.tests = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "-x" => options.scale = args.next().and_then(|v| v.parse().ok()).unwrap_or(1.0),
            "-m" => {
                let range = args.next().unwrap_or_default();
                let (min, max) = range.split_once(':').unwrap_or(("0", &range));
                match (min.parse(), max.parse()) {
                    (Ok(min), Ok(max)) => options.sizes = (min, max),
                    _ => {
                        eprintln!("pingpong: -m wants MIN:MAX in bytes, not {range:?}");
                        std::process::exit(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("usage: pingpong [--result] [-t lat,bw,ssend,allreduce] [-x SCALE] [-m MIN:MAX]");
                std::process::exit(0);
            }
            other => {
                eprintln!("pingpong: unknown option {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    for t in &options.tests {
        if !["lat", "bw", "ssend", "allreduce"].contains(&t.as_str()) {
            eprintln!("pingpong: test {t:?} is not available (lat, bw, ssend, allreduce)");
            std::process::exit(2);
        }
    }
    options
}

/// Iterations and warm-up rounds as pingpong.c chooses them.
fn iterations(size: usize, scale: f64) -> (usize, usize) {
    let iters = if size <= 8192 {
        10000
    } else {
        ((64usize << 20) / size).clamp(100, 1000)
    };
    let skip = if size <= 8192 { 1000 } else { iters / 10 };
    let scaled = |n: usize, min: usize| ((n as f64 * scale) as usize).max(min);
    (scaled(iters, 10), scaled(skip, 2))
}

fn pingpong(
    world: &SimpleCommunicator,
    synchronous: bool,
    size: usize,
    scale: f64,
    buffers: &mut (Vec<u8>, Vec<u8>),
) -> f64 {
    let (iters, skip) = iterations(size, scale);
    let rank = world.rank();
    let peer = world.process_at_rank(1 - rank);
    let (send, receive) = (&buffers.0[..size], &mut buffers.1[..size]);
    let mut start = 0.0;
    for i in 0..iters + skip {
        if i == skip {
            start = mpirt::time();
        }
        let send_one = || {
            if synchronous {
                peer.synchronous_send(send)
            } else {
                peer.send(send)
            }
        };
        if rank == 0 {
            send_one();
            peer.receive_into(receive);
        } else {
            peer.receive_into(receive);
            send_one();
        }
    }
    (mpirt::time() - start) * 1e6 / (2 * iters) as f64
}

/// Window of the bandwidth test, as in osu_bw.
const WINDOW: usize = 64;
/// The most memory the bandwidth test's receiver spreads a window over
/// (2 MiB for 32 KiB, the largest of pingpong.c's sizes sent eagerly, so
/// that each is matched by a posted receive as in C, not queued as
/// unexpected and copied twice).
const SLOT_BYTES: usize = 4 << 20;

/// Iterations and warm-up rounds of the bandwidth test as pingpong.c
/// chooses them.
fn bw_iterations(size: usize, scale: f64) -> (usize, usize) {
    let iters = if size <= 8192 {
        1000
    } else {
        ((1024usize << 20) / (size * WINDOW)).clamp(10, 100)
    };
    let skip = if size <= 8192 {
        100
    } else {
        (iters / 10).max(2)
    };
    let scaled = |n: usize, min: usize| ((n as f64 * scale) as usize).max(min);
    (scaled(iters, 3), scaled(skip, 1))
}

/// 64 immediate sends of `size` bytes, waited for together, then a 4-byte
/// acknowledgement: microseconds per message. The C benchmark posts its 64
/// receives into one buffer, which Rust's borrows forbid; so that the
/// receiver touches about as much memory as it does, the receives go into
/// separate slots spread over at most [`SLOT_BYTES`], posted as many at a
/// time as fit: all 64 for small messages, four at a time for 1 MiB, one
/// at a time for 4 MiB.
fn bandwidth(
    world: &SimpleCommunicator,
    size: usize,
    scale: f64,
    send: &[u8],
    slots: &mut [u8],
) -> f64 {
    let (iters, skip) = bw_iterations(size, scale);
    let rank = world.rank();
    let peer = world.process_at_rank(1 - rank);
    let mut start = 0.0;
    for i in 0..iters + skip {
        if i == skip {
            start = mpirt::time();
        }
        if rank == 0 {
            mpirt::request::multiple_scope(WINDOW, |scope, requests| {
                for _ in 0..WINDOW {
                    requests.add(peer.immediate_send_with_tag(scope, &send[..size], 100));
                }
                requests.wait_all(&mut Vec::new());
            });
            peer.receive_with_tag::<i32>(101);
        } else {
            // As many receives posted at once as fit in the slots: all 64
            // for small messages, four at a time for 1 MiB.
            let posted = (slots.len() / size.max(1)).clamp(1, WINDOW);
            let mut left = WINDOW;
            while left > 0 {
                let count = posted.min(left);
                mpirt::request::multiple_scope(count, |scope, requests| {
                    for slot in slots.chunks_mut(size.max(1)).take(count) {
                        let slot = &mut slot[..size];
                        requests.add(peer.immediate_receive_into_with_tag(scope, slot, 100));
                    }
                    requests.wait_all(&mut Vec::new());
                });
                left -= count;
            }
            peer.send_with_tag(&0i32, 101);
        }
    }
    (mpirt::time() - start) * 1e6 / (iters * WINDOW) as f64
}

/// MPI_Allreduce of f64 sums over ranks 0 and 1, 8 bytes and 1 MiB, as
/// pingpong.c times it: the average per call, then avg/min/max over ranks.
fn allreduce(pair: &SimpleCommunicator, scale: f64, result_lines: bool) {
    use mpirt::collective::SystemOperation;
    use mpirt::traits::{CommunicatorCollectives, Root};
    let rank = pair.rank();
    let send = vec![rank as f64 + 1.0; 131072];
    let mut receive = vec![0f64; 131072];
    if rank == 0 && !result_lines {
        println!("# mpirt allreduce (sum of f64) over 2 ranks");
        println!("{:<10}{:>20}", "# Size", "Avg Latency(us)");
    }
    for n in [1usize, 131072] {
        let scaled = |k: usize, min: usize| ((k as f64 * scale) as usize).max(min);
        let (iters, skip) = if n == 1 {
            (scaled(10000, 10), scaled(1000, 2))
        } else {
            (scaled(300, 10), scaled(30, 2))
        };
        pair.barrier();
        let mut start = 0.0;
        for i in 0..iters + skip {
            if i == skip {
                start = mpirt::time();
            }
            pair.all_reduce_into(&send[..n], &mut receive[..n], SystemOperation::sum());
        }
        let micros = (mpirt::time() - start) * 1e6 / iters as f64;
        if receive[n - 1] != 3.0 {
            eprintln!("pingpong: allreduce gave {} instead of 3", receive[n - 1]);
            std::process::exit(1);
        }
        let (mut sum, mut min, mut max) = (0f64, 0f64, 0f64);
        let root = pair.process_at_rank(0);
        if rank == 0 {
            root.reduce_into_root(&micros, &mut sum, SystemOperation::sum());
            root.reduce_into_root(&micros, &mut min, SystemOperation::min());
            root.reduce_into_root(&micros, &mut max, SystemOperation::max());
            if result_lines {
                println!(
                    "RESULT {:<9} {} {:.3} {min:.3} {max:.3}",
                    "allreduce",
                    n * 8,
                    sum / 2.0
                );
            } else {
                println!("{:<10}{:>20.2}", n * 8, sum / 2.0);
            }
        } else {
            root.reduce_into(&micros, SystemOperation::sum());
            root.reduce_into(&micros, SystemOperation::min());
            root.reduce_into(&micros, SystemOperation::max());
        }
    }
}

/// Both ranks start each size together.
fn start_together(world: &SimpleCommunicator) {
    if world.rank() == 0 {
        world.process_at_rank(1).send(&0u8);
    } else {
        world.process_at_rank(0).receive::<u8>();
    }
}

fn main() {
    let options = parse_options();
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    if world.size() < 2 {
        eprintln!("pingpong: needs at least 2 ranks (mpirun -n 2 pingpong)");
        std::process::exit(2);
    }
    let rank = world.rank();
    let mut buffers = (vec![b'a'; 4 << 20], vec![0u8; 4 << 20]);
    // Ranks 0 and 1 on a communicator of their own, as pingpong.c does.
    let color = if rank < 2 {
        mpirt::topology::Color::with_value(0)
    } else {
        mpirt::topology::Color::undefined()
    };
    let pair = world.split_by_color(color);
    if let Some(pair) = pair {
        for test in &options.tests {
            if test == "allreduce" {
                allreduce(&pair, options.scale, options.result_lines);
                continue;
            }
            if test == "bw" {
                if rank == 0 && !options.result_lines {
                    println!("# mpirt bandwidth (window of {WINDOW})");
                    println!("{:<10}{:>20}", "# Size", "Bandwidth (MB/s)");
                }
                let max = SIZES
                    .iter()
                    .copied()
                    .filter(|&s| s <= options.sizes.1)
                    .max()
                    .unwrap_or(0);
                let mut slots = if rank == 1 {
                    vec![0u8; (max * WINDOW).min(SLOT_BYTES).max(max)]
                } else {
                    Vec::new()
                };
                for &size in SIZES
                    .iter()
                    .filter(|&&s| s > 0 && (options.sizes.0..=options.sizes.1).contains(&s))
                {
                    start_together(&world);
                    let per_message =
                        bandwidth(&world, size, options.scale, &buffers.0, &mut slots);
                    if rank == 0 {
                        let mb_per_s = size as f64 / per_message;
                        if options.result_lines {
                            println!("RESULT {test:<9} {size} {per_message:.3} {mb_per_s:.2}");
                        } else {
                            println!("{size:<10}{mb_per_s:>20.2}");
                        }
                    }
                }
                continue;
            }
            let synchronous = test == "ssend";
            if rank == 0 && !options.result_lines {
                println!(
                    "# mpirt {} ping-pong ({})",
                    if synchronous {
                        "synchronous"
                    } else {
                        "standard"
                    },
                    test
                );
                println!("{:<10}{:>20}", "# Size", "Latency (us)");
            }
            for &size in SIZES
                .iter()
                .filter(|&&s| (options.sizes.0..=options.sizes.1).contains(&s))
            {
                start_together(&world);
                let one_way = pingpong(&world, synchronous, size, options.scale, &mut buffers);
                if rank == 0 {
                    let mb_per_s = if one_way > 0.0 {
                        size as f64 / one_way
                    } else {
                        0.0
                    };
                    if options.result_lines {
                        println!("RESULT {test:<9} {size} {one_way:.3} {mb_per_s:.2}");
                    } else {
                        println!("{size:<10}{one_way:>20.2}");
                    }
                }
            }
        }
    }
    drop(universe);
}
