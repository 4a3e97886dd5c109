//! pingpong: two ranks bounce messages of 0 B to 4 MiB with blocking send
//! and receive, as OSU's `osu_latency` does.
//!
//! By default it prints an OSU-style table. With `--result` it prints the
//! `RESULT` lines of `shared/anchors/pingpong.c`, so that
//! `shared/anchors/compare.py` can set it beside MPICH:
//!   RESULT lat   <bytes> <one-way us> <MB/s>
//!   RESULT ssend <bytes> <one-way us> <MB/s>
//! Options: `-t lat,ssend` (tests), `-x F` (scale iteration counts by F),
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
                println!("usage: pingpong [--result] [-t lat,ssend] [-x SCALE] [-m MIN:MAX]");
                std::process::exit(0);
            }
            other => {
                eprintln!("pingpong: unknown option {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    for t in &options.tests {
        if !["lat", "ssend"].contains(&t.as_str()) {
            eprintln!("pingpong: test {t:?} is not available (lat, ssend)");
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
    if rank < 2 {
        for test in &options.tests {
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
                // Both ranks start each size together.
                if rank == 0 {
                    world.process_at_rank(1).send(&0u8);
                } else {
                    world.process_at_rank(0).receive::<u8>();
                }
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
