//! pi: π as the integral of 4/(1+x²) over [0, 1] by the midpoint rule on N
//! intervals, the intervals split into one contiguous block per rank; the
//! partial sums meet at rank 0 with `reduce_into_root` (MPI_Reduce, sum).
//!
//! Rank 0 prints the result and its error against π, then checks it twice:
//! against the same sum done serially on rank 0 (the two differ only in
//! the order of the additions: |difference| < 1e-12), and against the
//! midpoint rule's error bound h²/3 (h = 1/N; |f''| ≤ 8 on [0, 1]). A
//! failed check exits with status 1.
//!
//! Operations: `reduce_into_root` / `reduce_into`, `all_reduce_into` (max,
//! for the timing line).
//!
//! Usage: pi [--intervals N] [--timing]   (N defaults to 10000000)
//!   mpirun -n 4 target/release/pi --intervals 100000000 --timing
use mpirt::collective::SystemOperation;
use mpirt::traits::*;

/// |parallel - serial| allowed: the sums differ only in rounding.
const SERIAL_TOLERANCE: f64 = 1e-12;

struct Options {
    intervals: u64,
    timing: bool,
}

const USAGE: &str = "usage: pi [--intervals N] [--timing]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        intervals: 10_000_000,
        timing: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--intervals" => {
                let value = args.next().ok_or("--intervals needs a value")?;
                options.intervals = value
                    .parse()
                    .map_err(|_| format!("--intervals {value}: not a count"))?;
            }
            "--timing" => options.timing = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.intervals == 0 {
        return Err("--intervals must be at least 1".into());
    }
    Ok(options)
}

/// Σ 4/(1+x²) at the midpoints of intervals `first..end` of width `h`.
fn midpoint_sum(first: u64, end: u64, h: f64) -> f64 {
    (first..end)
        .map(|i| {
            let x = (i as f64 + 0.5) * h;
            4.0 / (1.0 + x * x)
        })
        .sum()
}

fn main() {
    let options = parse_options().unwrap_or_else(|e| {
        eprintln!("pi: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let universe = mpirt::initialize().expect("mpirt initialized once");
    let world = universe.world();
    let (rank, size) = (world.rank() as u64, world.size() as u64);
    let root = world.process_at_rank(0);
    let n = options.intervals;
    let h = 1.0 / n as f64;

    world.barrier();
    let started = mpirt::time();
    // Block distribution: rank r takes intervals [r·N/p, (r+1)·N/p).
    let (first, end) = (rank * n / size, (rank + 1) * n / size);
    let local = midpoint_sum(first, end, h);
    let computed = mpirt::time();
    let mut total = 0.0f64;
    if rank == 0 {
        root.reduce_into_root(&local, &mut total, SystemOperation::sum());
    } else {
        root.reduce_into(&local, SystemOperation::sum());
    }
    let finished = mpirt::time();

    if options.timing {
        let mine = [finished - started, computed - started, finished - computed];
        let mut slowest = [0.0f64; 3];
        world.all_reduce_into(&mine[..], &mut slowest[..], SystemOperation::max());
        if rank == 0 {
            println!(
                "pi timing: {size} ranks, wall {:.6} s, compute {:.6} s, communication {:.6} s (max over ranks)",
                slowest[0], slowest[1], slowest[2]
            );
        }
    }

    if rank == 0 {
        let pi = h * total;
        let error = (pi - std::f64::consts::PI).abs();
        println!("pi: {n} intervals on {size} ranks: pi = {pi:.16}, error {error:.3e} against π");
        let serial = h * midpoint_sum(0, n, h);
        let difference = (pi - serial).abs();
        let bound = h * h / 3.0 + SERIAL_TOLERANCE;
        if difference >= SERIAL_TOLERANCE {
            eprintln!(
                "pi: FAILED: parallel {pi:.17} and serial {serial:.17} differ by {difference:.3e} (allowed {SERIAL_TOLERANCE:.0e})"
            );
            std::process::exit(1);
        }
        if error > bound {
            eprintln!(
                "pi: FAILED: error {error:.3e} exceeds the midpoint bound h²/3 = {bound:.3e}"
            );
            std::process::exit(1);
        }
        println!(
            "pi: check: |parallel - serial| = {difference:.1e} < {SERIAL_TOLERANCE:.0e}, error within h²/3 = {bound:.1e}: ok"
        );
    }
}
