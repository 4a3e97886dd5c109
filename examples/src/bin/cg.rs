//! cg: conjugate gradient (Hestenes and Stiefel, 1952) on a distributed
//! sparse symmetric positive definite system A x = b, where A is the
//! Laplacian with zero Dirichlet boundary:
//!
//! - `--problem 1d`: the n×n tridiagonal matrix (−1, 2, −1);
//! - `--problem 2d` (default): the 5-point stencil (4 on the diagonal, −1
//!   for each of the four neighbours) on an n×n grid, n² unknowns.
//!
//! The grid's rows are split into one contiguous block per rank (the 1-D
//! problem is a grid one point wide). Each product A·p first fetches the
//! row just above and just below the block from the neighbouring ranks
//! with `send_receive_into` (`PROC_NULL` beyond the ends); the dot
//! products are local sums combined by `all_reduce_into`. The right-hand
//! side is b = A·x* for a known x*, and rank 0 prints the relative
//! residual ‖r‖/‖b‖ of every iteration until it is below `--tol`.
//!
//! Checks, on rank 0 after gathering x (`gather_varcount_into_root`), each
//! exiting with status 1 when it fails: x agrees with the same number of
//! CG iterations done serially on the whole system to within 1e-8·max|x*|
//! (only the order of the additions in the dot products differs), and
//! with the known solution x* to within 1e-6·max|x*|.
//!
//! `--timing` prints the slowest rank's wall time, split into compute and
//! communication (halo rows and the dot products' all-reduce).
//!
//! Usage: cg [--problem 1d|2d] [--n N] [--tol T] [--max-iterations K]
//!           [--quiet] [--timing]
//!   defaults: 2d, N 64, T 1e-10, K 100000; --quiet prints no
//!   per-iteration lines
//!   mpirun -n 4 target/release/cg --problem 2d --n 128 --timing
use std::ops::Range;

use mpirt::collective::SystemOperation;
use mpirt::datatype::PartitionMut;
use mpirt::point_to_point::send_receive_into_with_tags;
use mpirt::topology::SimpleCommunicator;
use mpirt::traits::*;
use mpirt::{Count, Rank, PROC_NULL};

/// max|x - x_serial| allowed, relative to max|x*|.
const SERIAL_TOLERANCE: f64 = 1e-8;
/// max|x - x*| allowed, relative to max|x*|.
const SOLUTION_TOLERANCE: f64 = 1e-6;

/// Tags name the direction a halo row travels in.
const UPWARD: i32 = 1;
const DOWNWARD: i32 = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Problem {
    OneD,
    TwoD,
}

struct Options {
    problem: Problem,
    n: usize,
    tol: f64,
    max_iterations: usize,
    quiet: bool,
    timing: bool,
}

const USAGE: &str =
    "usage: cg [--problem 1d|2d] [--n N] [--tol T] [--max-iterations K] [--quiet] [--timing]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        problem: Problem::TwoD,
        n: 64,
        tol: 1e-10,
        max_iterations: 100_000,
        quiet: false,
        timing: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--problem" => {
                options.problem = match value()?.as_str() {
                    "1d" => Problem::OneD,
                    "2d" => Problem::TwoD,
                    other => return Err(format!("--problem {other}: use 1d or 2d")),
                }
            }
            "--n" => options.n = number(&arg, &value()?)?,
            "--tol" => options.tol = number(&arg, &value()?)?,
            "--max-iterations" => options.max_iterations = number(&arg, &value()?)?,
            "--quiet" => options.quiet = true,
            "--timing" => options.timing = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.n == 0 {
        return Err("--n must be at least 1".into());
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{option} {value}: not a number"))
}

/// The grid: `rows` rows of `width` points (width 1 for the 1-D problem).
#[derive(Clone, Copy)]
struct Grid {
    rows: usize,
    width: usize,
}

impl Grid {
    fn of(options: &Options) -> Grid {
        match options.problem {
            Problem::OneD => Grid {
                rows: options.n,
                width: 1,
            },
            Problem::TwoD => Grid {
                rows: options.n,
                width: options.n,
            },
        }
    }

    /// The diagonal of the Laplacian: 2 per dimension.
    fn diagonal(&self) -> f64 {
        if self.width == 1 {
            2.0
        } else {
            4.0
        }
    }

    /// The known solution x* at grid point (i, j): small integers over 10,
    /// rough enough to involve every eigenvector.
    fn known(&self, i: usize, j: usize) -> f64 {
        ((i * 31 + j * 17) % 11) as f64 / 10.0 - 0.5
    }

    /// Rank `rank`'s rows.
    fn rows_of(&self, rank: usize, size: usize) -> Range<usize> {
        rank * self.rows / size..(rank + 1) * self.rows / size
    }
}

/// y = A·p for the rows of `p_ext` between its two halo rows (row 0 and
/// row nr+1, which hold the neighbours' rows, or zeros at the boundary).
fn apply_laplacian(grid: Grid, p_ext: &[f64], y: &mut [f64]) {
    let w = grid.width;
    let diagonal = grid.diagonal();
    for (i, out) in y.chunks_mut(w).enumerate() {
        let above = &p_ext[i * w..(i + 1) * w];
        let row = &p_ext[(i + 1) * w..(i + 2) * w];
        let below = &p_ext[(i + 2) * w..(i + 3) * w];
        for j in 0..w {
            let mut value = diagonal * row[j] - above[j] - below[j];
            if j > 0 {
                value -= row[j - 1];
            }
            if j + 1 < w {
                value -= row[j + 1];
            }
            out[j] = value;
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// What CG needs beyond local arithmetic: halo rows and global sums.
trait Communication {
    /// Fills rows 0 and nr+1 of `p_ext` from the neighbouring blocks.
    fn exchange_halo(&mut self, p_ext: &mut [f64]);
    /// The sum of `local` over all blocks.
    fn sum(&mut self, local: f64) -> f64;
}

/// The whole system in one block: the halo rows stay zero.
struct Serial;

impl Communication for Serial {
    fn exchange_halo(&mut self, _: &mut [f64]) {}
    fn sum(&mut self, local: f64) -> f64 {
        local
    }
}

/// A block of rows on one rank of `world`.
struct Distributed<'w> {
    world: &'w SimpleCommunicator,
    /// The ranks holding the rows above and below (`PROC_NULL` at the ends).
    up: Rank,
    down: Rank,
    width: usize,
    rows: usize,
    /// Seconds spent communicating.
    communication: f64,
}

impl Communication for Distributed<'_> {
    fn exchange_halo(&mut self, p_ext: &mut [f64]) {
        let start = mpirt::time();
        let (w, nr) = (self.width, self.rows);
        let (up, down) = (
            self.world.process_at_rank(self.up),
            self.world.process_at_rank(self.down),
        );
        // My first row goes up; the lower halo row comes from below.
        let (upper, lower) = p_ext.split_at_mut((nr + 1) * w);
        send_receive_into_with_tags(
            &upper[w..2 * w],
            &up,
            UPWARD,
            &mut lower[..w],
            &down,
            UPWARD,
        );
        // My last row goes down; the upper halo row comes from above.
        let (upper, lower) = p_ext.split_at_mut(nr * w);
        send_receive_into_with_tags(&lower[..w], &down, DOWNWARD, &mut upper[..w], &up, DOWNWARD);
        self.communication += mpirt::time() - start;
    }

    fn sum(&mut self, local: f64) -> f64 {
        let start = mpirt::time();
        let mut global = 0.0;
        self.world
            .all_reduce_into(&local, &mut global, SystemOperation::sum());
        self.communication += mpirt::time() - start;
        global
    }
}

/// The result of a CG run.
struct Solution {
    x: Vec<f64>,
    iterations: usize,
    relative_residual: f64,
}

/// CG from x = 0 on the block of `b` (rows of `grid.width` points), until
/// ‖r‖/‖b‖ < `tol` or `max_iterations`; `report` sees each iteration's
/// relative residual.
fn conjugate_gradient(
    grid: Grid,
    b: &[f64],
    tol: f64,
    max_iterations: usize,
    comm: &mut impl Communication,
    mut report: impl FnMut(usize, f64),
) -> Solution {
    let w = grid.width;
    let n = b.len();
    let mut x = vec![0.0; n];
    let mut r = b.to_vec();
    // p with a halo row above and below.
    let mut p_ext = vec![0.0; n + 2 * w];
    p_ext[w..w + n].copy_from_slice(&r);
    let mut q = vec![0.0; n];
    let b_norm = comm.sum(dot(b, b)).sqrt();
    let mut rr = comm.sum(dot(&r, &r));
    let mut relative_residual = rr.sqrt() / b_norm;
    let mut iterations = 0;
    while iterations < max_iterations && relative_residual >= tol {
        comm.exchange_halo(&mut p_ext);
        apply_laplacian(grid, &p_ext, &mut q);
        let p = &p_ext[w..w + n];
        let alpha = rr / comm.sum(dot(p, &q));
        for k in 0..n {
            x[k] += alpha * p[k];
            r[k] -= alpha * q[k];
        }
        let rr_next = comm.sum(dot(&r, &r));
        let beta = rr_next / rr;
        for (pk, rk) in p_ext[w..w + n].iter_mut().zip(&r) {
            *pk = rk + beta * *pk;
        }
        rr = rr_next;
        iterations += 1;
        relative_residual = rr.sqrt() / b_norm;
        report(iterations, relative_residual);
    }
    Solution {
        x,
        iterations,
        relative_residual,
    }
}

/// b = A·x* for `rows` of the grid (x* is zero beyond the boundary).
fn right_hand_side(grid: Grid, rows: Range<usize>) -> Vec<f64> {
    let w = grid.width;
    let known_row = |i: isize| -> Vec<f64> {
        if i < 0 || i as usize >= grid.rows {
            vec![0.0; w]
        } else {
            (0..w).map(|j| grid.known(i as usize, j)).collect()
        }
    };
    let x_ext: Vec<f64> = (rows.start as isize - 1..rows.end as isize + 1)
        .flat_map(known_row)
        .collect();
    let mut b = vec![0.0; rows.len() * w];
    apply_laplacian(grid, &x_ext, &mut b);
    b
}

fn main() {
    let options = parse_options().unwrap_or_else(|e| {
        eprintln!("cg: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let universe = mpirt::initialize().expect("mpirt initialized once");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let grid = Grid::of(&options);
    if grid.rows < size {
        if rank == 0 {
            eprintln!(
                "cg: --n {} gives fewer grid rows than the {size} ranks",
                options.n
            );
        }
        std::process::exit(2);
    }
    let rows = grid.rows_of(rank, size);
    let b = right_hand_side(grid, rows.clone());
    let mut comm = Distributed {
        world: &world,
        up: if rank > 0 {
            rank as Rank - 1
        } else {
            PROC_NULL
        },
        down: if rank + 1 < size {
            rank as Rank + 1
        } else {
            PROC_NULL
        },
        width: grid.width,
        rows: rows.len(),
        communication: 0.0,
    };
    let problem = match options.problem {
        Problem::OneD => format!("1-D Laplacian, {} unknowns", grid.rows),
        Problem::TwoD => format!(
            "2-D 5-point Laplacian on {0}x{0}, {1} unknowns",
            grid.rows,
            grid.rows * grid.width
        ),
    };
    if rank == 0 {
        println!("cg: {problem}, {size} ranks, tol {:.1e}", options.tol);
    }

    world.barrier();
    let started = mpirt::time();
    let verbose = rank == 0 && !options.quiet;
    let solution = conjugate_gradient(
        grid,
        &b,
        options.tol,
        options.max_iterations,
        &mut comm,
        |k, residual| {
            if verbose {
                println!("cg: iteration {k}: relative residual {residual:.6e}");
            }
        },
    );
    let wall = mpirt::time() - started;

    if options.timing {
        let mine = [wall, wall - comm.communication, comm.communication];
        let mut slowest = [0.0f64; 3];
        world.all_reduce_into(&mine[..], &mut slowest[..], SystemOperation::max());
        if rank == 0 {
            println!(
                "cg timing: {size} ranks, wall {:.6} s, compute {:.6} s, communication {:.6} s (max over ranks)",
                slowest[0], slowest[1], slowest[2]
            );
        }
    }

    let root = world.process_at_rank(0);
    if rank != 0 {
        root.gather_varcount_into(&solution.x[..]);
        return;
    }
    let counts: Vec<Count> = (0..size)
        .map(|r| (grid.rows_of(r, size).len() * grid.width) as Count)
        .collect();
    let displs: Vec<Count> = (0..size)
        .map(|r| (grid.rows_of(r, size).start * grid.width) as Count)
        .collect();
    let mut x = vec![0.0f64; grid.rows * grid.width];
    root.gather_varcount_into_root(
        &solution.x[..],
        &mut PartitionMut::new(&mut x[..], &counts[..], &displs[..]),
    );
    println!(
        "cg: {} iterations, relative residual {:.3e}",
        solution.iterations, solution.relative_residual
    );
    if solution.relative_residual >= options.tol {
        eprintln!(
            "cg: FAILED: not converged to {:.1e} in {} iterations",
            options.tol, options.max_iterations
        );
        std::process::exit(1);
    }

    let whole = right_hand_side(grid, 0..grid.rows);
    let serial = conjugate_gradient(
        grid,
        &whole,
        0.0,
        solution.iterations,
        &mut Serial,
        |_, _| {},
    );
    let known: Vec<f64> = (0..grid.rows)
        .flat_map(|i| (0..grid.width).map(move |j| grid.known(i, j)))
        .collect();
    let scale = known.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let largest_difference = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (u, v)| m.max((u - v).abs()))
    };
    let from_serial = largest_difference(&x, &serial.x) / scale;
    let from_known = largest_difference(&x, &known) / scale;
    if from_serial > SERIAL_TOLERANCE || from_known > SOLUTION_TOLERANCE {
        eprintln!(
            "cg: FAILED: max|x - x_serial|/max|x*| = {from_serial:.3e} (allowed {SERIAL_TOLERANCE:.0e}), max|x - x*|/max|x*| = {from_known:.3e} (allowed {SOLUTION_TOLERANCE:.0e})"
        );
        std::process::exit(1);
    }
    println!(
        "cg: check: max|x - x_serial|/max|x*| = {from_serial:.1e} < {SERIAL_TOLERANCE:.0e}, max|x - x*|/max|x*| = {from_known:.1e} < {SOLUTION_TOLERANCE:.0e}: ok"
    );
}
