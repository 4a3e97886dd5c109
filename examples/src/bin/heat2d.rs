//! heat2d: steady heat in a square plate by Jacobi iteration. The N×N
//! interior of an (N+2)×(N+2) grid starts at 0; the boundary is held fixed
//! (top edge 1.0, left edge 0.5, the others 0.0); each step replaces every
//! interior point by the mean of its four neighbours.
//!
//! The grid is cut into blocks over a pr×pc process grid (pr ≤ pc, pr the
//! largest divisor of p with pr² ≤ p, as MPI_Dims_create would choose).
//! `split_by_color` gives each rank a row communicator (its process row,
//! ranked by process column) and a column communicator (its process
//! column, ranked by process row); halos travel north/south on the column
//! communicator and east/west on the row communicator, with `PROC_NULL` as
//! the neighbour beyond the plate's edge. Two halo exchanges:
//!
//! - `--halo sendrecv` (default): `send_receive_into` in each direction,
//!   then the whole block is updated;
//! - `--halo immediate`: immediate receives and sends inside
//!   `request::scope`, the block's interior (which needs no halo) updated
//!   while they are in flight, then its edge strip.
//!
//! Every `--check-every` steps the largest change of any point is agreed by
//! `all_reduce_into` (max); below `--tol` the iteration stops. Rank 0 then
//! gathers the blocks (`gather_varcount_into_root`), runs the same number
//! of Jacobi steps serially on the whole grid, and requires the largest
//! difference to be below 1e-9 (the arithmetic is the same, point by
//! point, so it is 0 in practice); otherwise it exits with status 1.
//!
//! `--timing` prints the slowest rank's wall time, split into compute and
//! communication (halo exchange, including packing columns, and the
//! convergence all-reduce).
//!
//! Usage: heat2d [--n N] [--steps S] [--tol T] [--check-every K]
//!               [--halo sendrecv|immediate] [--timing]
//!   defaults: N 256, S 1000, T 1e-8, K 10, sendrecv
//!   mpirun -n 4 target/release/heat2d --n 1024 --steps 500 --halo immediate --timing
use std::ops::Range;

use mpirt::collective::SystemOperation;
use mpirt::datatype::PartitionMut;
use mpirt::point_to_point::send_receive_into_with_tags;
use mpirt::request;
use mpirt::topology::{Color, Process, SimpleCommunicator};
use mpirt::traits::*;
use mpirt::{Count, Rank, PROC_NULL};

/// Largest |parallel - serial| accepted at any grid point.
const TOLERANCE: f64 = 1e-9;

/// Tags name the direction a halo travels in.
const NORTHWARD: i32 = 1;
const SOUTHWARD: i32 = 2;
const WESTWARD: i32 = 3;
const EASTWARD: i32 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Halo {
    SendReceive,
    Immediate,
}

struct Options {
    n: usize,
    steps: usize,
    tol: f64,
    check_every: usize,
    halo: Halo,
    timing: bool,
}

const USAGE: &str = "usage: heat2d [--n N] [--steps S] [--tol T] [--check-every K] [--halo sendrecv|immediate] [--timing]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        n: 256,
        steps: 1000,
        tol: 1e-8,
        check_every: 10,
        halo: Halo::SendReceive,
        timing: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--n" => options.n = number(&arg, &value()?)?,
            "--steps" => options.steps = number(&arg, &value()?)?,
            "--tol" => options.tol = number(&arg, &value()?)?,
            "--check-every" => options.check_every = number(&arg, &value()?)?,
            "--halo" => {
                options.halo = match value()?.as_str() {
                    "sendrecv" => Halo::SendReceive,
                    "immediate" => Halo::Immediate,
                    other => return Err(format!("--halo {other}: use sendrecv or immediate")),
                }
            }
            "--timing" => options.timing = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.n == 0 || options.check_every == 0 {
        return Err("--n and --check-every must be at least 1".into());
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{option} {value}: not a number"))
}

/// The value of point (i, j) of the full (n+2)×(n+2) grid at the start.
fn initial(i: usize, j: usize, n: usize) -> f64 {
    if i == 0 {
        1.0
    } else if j == 0 && i <= n {
        0.5
    } else {
        0.0
    }
}

/// The process grid for `p` ranks: (rows, columns), rows ≤ columns.
fn process_grid(p: usize) -> (usize, usize) {
    let rows = (1..=p)
        .filter(|r| p.is_multiple_of(*r) && r * r <= p)
        .max()
        .unwrap_or(1);
    (rows, p / rows)
}

/// Part `k` of `0..n` cut into `parts` blocks.
fn block(n: usize, parts: usize, k: usize) -> Range<usize> {
    k * n / parts..(k + 1) * n / parts
}

/// One rank's block of the interior: interior rows `rows` and columns
/// `cols` (0-based), stored with a one-point halo all round.
struct Block {
    rows: Range<usize>,
    cols: Range<usize>,
}

impl Block {
    fn of(rank: usize, n: usize, grid: (usize, usize)) -> Block {
        let (row, col) = (rank / grid.1, rank % grid.1);
        Block {
            rows: block(n, grid.0, row),
            cols: block(n, grid.1, col),
        }
    }
    fn nr(&self) -> usize {
        self.rows.len()
    }
    fn nc(&self) -> usize {
        self.cols.len()
    }
    /// Row stride of the stored block (interior plus two halo columns).
    fn width(&self) -> usize {
        self.nc() + 2
    }
    /// The stored block at the start: local (i, j) is grid point
    /// (rows.start + i, cols.start + j).
    fn initial(&self, n: usize) -> Vec<f64> {
        let mut u = Vec::with_capacity((self.nr() + 2) * self.width());
        for i in 0..self.nr() + 2 {
            for j in 0..self.width() {
                u.push(initial(self.rows.start + i, self.cols.start + j, n));
            }
        }
        u
    }
}

/// Jacobi update of local row `i`, columns `cols`, of a grid of row stride
/// `w`: the mean of the four neighbours, always added in the same order.
fn relax_row(u: &[f64], out: &mut [f64], w: usize, i: usize, cols: Range<usize>) {
    let above = &u[(i - 1) * w..i * w];
    let row = &u[i * w..(i + 1) * w];
    let below = &u[(i + 1) * w..(i + 2) * w];
    let out = &mut out[i * w..(i + 1) * w];
    for j in cols {
        out[j] = 0.25 * (above[j] + below[j] + row[j - 1] + row[j + 1]);
    }
}

/// Updates the points of an nr×nc block that need no halo.
fn relax_inner(u: &[f64], out: &mut [f64], nr: usize, nc: usize) {
    for i in 2..nr {
        relax_row(u, out, nc + 2, i, 2..nc);
    }
}

/// Updates the points of an nr×nc block next to its halo.
fn relax_edges(u: &[f64], out: &mut [f64], nr: usize, nc: usize) {
    let w = nc + 2;
    for i in 1..=nr {
        if i == 1 || i == nr {
            relax_row(u, out, w, i, 1..nc + 1);
        } else {
            relax_row(u, out, w, i, 1..2);
            relax_row(u, out, w, i, nc..nc + 1);
        }
    }
}

/// Largest |a - b| over the interior of an nr×nc block.
fn largest_change(a: &[f64], b: &[f64], nr: usize, nc: usize) -> f64 {
    let w = nc + 2;
    (1..=nr)
        .flat_map(|i| (1..=nc).map(move |j| i * w + j))
        .map(|k| (a[k] - b[k]).abs())
        .fold(0.0, f64::max)
}

/// Communication time, accumulated around each communicating call.
#[derive(Default)]
struct Clock {
    communication: f64,
}

impl Clock {
    fn communicate<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let start = mpirt::time();
        let result = f();
        self.communication += mpirt::time() - start;
        result
    }
}

/// This rank's neighbours and the communicators that reach them.
struct Neighbours {
    row_comm: SimpleCommunicator,
    col_comm: SimpleCommunicator,
    /// Ranks in `col_comm` (north, south) and `row_comm` (west, east);
    /// `PROC_NULL` beyond the plate's edge.
    north: Rank,
    south: Rank,
    west: Rank,
    east: Rank,
}

impl Neighbours {
    fn north(&self) -> Process<'_> {
        self.col_comm.process_at_rank(self.north)
    }
    fn south(&self) -> Process<'_> {
        self.col_comm.process_at_rank(self.south)
    }
    fn west(&self) -> Process<'_> {
        self.row_comm.process_at_rank(self.west)
    }
    fn east(&self) -> Process<'_> {
        self.row_comm.process_at_rank(self.east)
    }
}

/// Column `j` of an nr×nc block (rows 1..=nr) into `column`.
fn pack_column(u: &[f64], w: usize, j: usize, column: &mut [f64]) {
    for (i, value) in column.iter_mut().enumerate() {
        *value = u[(i + 1) * w + j];
    }
}

fn unpack_column(u: &mut [f64], w: usize, j: usize, column: &[f64]) {
    for (i, value) in column.iter().enumerate() {
        u[(i + 1) * w + j] = *value;
    }
}

/// Scratch for the halo columns (and, for the immediate exchange, rows).
struct HaloBuffers {
    send_west: Vec<f64>,
    send_east: Vec<f64>,
    from_west: Vec<f64>,
    from_east: Vec<f64>,
    from_north: Vec<f64>,
    from_south: Vec<f64>,
}

impl HaloBuffers {
    fn new(nr: usize, nc: usize) -> HaloBuffers {
        HaloBuffers {
            send_west: vec![0.0; nr],
            send_east: vec![0.0; nr],
            from_west: vec![0.0; nr],
            from_east: vec![0.0; nr],
            from_north: vec![0.0; nc],
            from_south: vec![0.0; nc],
        }
    }
}

/// Fills the halo of `u` with `send_receive_into`: rows north and south on
/// the column communicator, packed columns west and east on the row
/// communicator.
fn exchange_send_receive(
    u: &mut [f64],
    nr: usize,
    nc: usize,
    at: &Neighbours,
    b: &mut HaloBuffers,
) {
    let w = nc + 2;
    let (north, south, west, east) = (at.north(), at.south(), at.west(), at.east());
    // My first row goes north; the southern halo row comes from the south.
    let (upper, lower) = u.split_at_mut((nr + 1) * w);
    send_receive_into_with_tags(
        &upper[w + 1..w + 1 + nc],
        &north,
        NORTHWARD,
        &mut lower[1..1 + nc],
        &south,
        NORTHWARD,
    );
    // My last row goes south; the northern halo row comes from the north.
    let (upper, lower) = u.split_at_mut(nr * w);
    send_receive_into_with_tags(
        &lower[1..1 + nc],
        &south,
        SOUTHWARD,
        &mut upper[1..1 + nc],
        &north,
        SOUTHWARD,
    );
    pack_column(u, w, 1, &mut b.send_west);
    pack_column(u, w, nc, &mut b.send_east);
    send_receive_into_with_tags(
        &b.send_west[..],
        &west,
        WESTWARD,
        &mut b.from_east[..],
        &east,
        WESTWARD,
    );
    send_receive_into_with_tags(
        &b.send_east[..],
        &east,
        EASTWARD,
        &mut b.from_west[..],
        &west,
        EASTWARD,
    );
    if at.east != PROC_NULL {
        unpack_column(u, w, nc + 1, &b.from_east);
    }
    if at.west != PROC_NULL {
        unpack_column(u, w, 0, &b.from_west);
    }
}

/// One step with immediate operations: receives and sends are posted, the
/// interior is updated while they travel, then the halo is unpacked and the
/// edge strip updated.
fn step_immediate(
    u: &mut [f64],
    next: &mut [f64],
    nr: usize,
    nc: usize,
    at: &Neighbours,
    b: &mut HaloBuffers,
    clock: &mut Clock,
) {
    let w = nc + 2;
    let posted = mpirt::time();
    pack_column(u, w, 1, &mut b.send_west);
    pack_column(u, w, nc, &mut b.send_east);
    let (north, south, west, east) = (at.north(), at.south(), at.west(), at.east());
    let shared: &[f64] = u;
    request::scope(|scope| {
        let requests = [
            north.immediate_receive_into_with_tag(scope, &mut b.from_north[..], SOUTHWARD),
            south.immediate_receive_into_with_tag(scope, &mut b.from_south[..], NORTHWARD),
            west.immediate_receive_into_with_tag(scope, &mut b.from_west[..], EASTWARD),
            east.immediate_receive_into_with_tag(scope, &mut b.from_east[..], WESTWARD),
            north.immediate_send_with_tag(scope, &shared[w + 1..w + 1 + nc], NORTHWARD),
            south.immediate_send_with_tag(scope, &shared[nr * w + 1..nr * w + 1 + nc], SOUTHWARD),
            west.immediate_send_with_tag(scope, &b.send_west[..], WESTWARD),
            east.immediate_send_with_tag(scope, &b.send_east[..], EASTWARD),
        ];
        let computing = mpirt::time();
        clock.communication += computing - posted;
        relax_inner(shared, next, nr, nc);
        clock.communicate(|| {
            for request in requests {
                request.wait();
            }
        });
    });
    clock.communicate(|| {
        if at.north != PROC_NULL {
            u[1..1 + nc].copy_from_slice(&b.from_north);
        }
        if at.south != PROC_NULL {
            u[(nr + 1) * w + 1..(nr + 1) * w + 1 + nc].copy_from_slice(&b.from_south);
        }
        if at.west != PROC_NULL {
            unpack_column(u, w, 0, &b.from_west);
        }
        if at.east != PROC_NULL {
            unpack_column(u, w, nc + 1, &b.from_east);
        }
    });
    relax_edges(u, next, nr, nc);
}

/// Serial Jacobi on the whole (n+2)×(n+2) grid for `steps` steps.
fn serial_jacobi(n: usize, steps: usize) -> Vec<f64> {
    let whole = Block {
        rows: 0..n,
        cols: 0..n,
    };
    let mut u = whole.initial(n);
    let mut next = u.clone();
    for _ in 0..steps {
        for i in 1..=n {
            relax_row(&u, &mut next, n + 2, i, 1..n + 1);
        }
        std::mem::swap(&mut u, &mut next);
    }
    u
}

fn main() {
    let options = parse_options().unwrap_or_else(|e| {
        eprintln!("heat2d: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let universe = mpirt::initialize().expect("mpirt initialized once");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let n = options.n;
    let grid = process_grid(size);
    if n < grid.1 {
        if rank == 0 {
            eprintln!(
                "heat2d: --n {n} is too small for a {}x{} process grid",
                grid.0, grid.1
            );
        }
        std::process::exit(2);
    }
    let (prow, pcol) = (rank / grid.1, rank % grid.1);
    let row_comm = world
        .split_by_color(Color::with_value(prow as i32))
        .expect("every rank has a process row");
    let col_comm = world
        .split_by_color(Color::with_value(pcol as i32))
        .expect("every rank has a process column");
    assert_eq!(row_comm.rank() as usize, pcol);
    assert_eq!(col_comm.rank() as usize, prow);
    let beside = |k: usize, delta: isize, parts: usize| -> Rank {
        let other = k as isize + delta;
        if (0..parts as isize).contains(&other) {
            other as Rank
        } else {
            PROC_NULL
        }
    };
    let neighbours = Neighbours {
        north: beside(prow, -1, grid.0),
        south: beside(prow, 1, grid.0),
        west: beside(pcol, -1, grid.1),
        east: beside(pcol, 1, grid.1),
        row_comm,
        col_comm,
    };

    let mine = Block::of(rank, n, grid);
    let (nr, nc) = (mine.nr(), mine.nc());
    let mut u = mine.initial(n);
    let mut next = u.clone();
    let mut buffers = HaloBuffers::new(nr, nc);
    let mut clock = Clock::default();
    let mut steps_done = 0;
    let mut change = f64::INFINITY;

    world.barrier();
    let started = mpirt::time();
    for step in 1..=options.steps {
        match options.halo {
            Halo::SendReceive => {
                clock.communicate(|| {
                    exchange_send_receive(&mut u, nr, nc, &neighbours, &mut buffers)
                });
                relax_inner(&u, &mut next, nr, nc);
                relax_edges(&u, &mut next, nr, nc);
            }
            Halo::Immediate => step_immediate(
                &mut u,
                &mut next,
                nr,
                nc,
                &neighbours,
                &mut buffers,
                &mut clock,
            ),
        }
        std::mem::swap(&mut u, &mut next);
        steps_done = step;
        if step % options.check_every == 0 || step == options.steps {
            let local = largest_change(&u, &next, nr, nc);
            clock
                .communicate(|| world.all_reduce_into(&local, &mut change, SystemOperation::max()));
            if change < options.tol {
                break;
            }
        }
    }
    let wall = mpirt::time() - started;

    if options.timing {
        let mine = [wall, wall - clock.communication, clock.communication];
        let mut slowest = [0.0f64; 3];
        world.all_reduce_into(&mine[..], &mut slowest[..], SystemOperation::max());
        if rank == 0 {
            println!(
                "heat2d timing: {size} ranks, wall {:.6} s, compute {:.6} s, communication {:.6} s (max over ranks)",
                slowest[0], slowest[1], slowest[2]
            );
        }
    }

    // Gather every block's interior at rank 0.
    let interior: Vec<f64> = (1..=nr)
        .flat_map(|i| u[i * (nc + 2) + 1..i * (nc + 2) + 1 + nc].iter().copied())
        .collect();
    let root = world.process_at_rank(0);
    if rank != 0 {
        root.gather_varcount_into(&interior[..]);
        return;
    }
    let blocks: Vec<Block> = (0..size).map(|r| Block::of(r, n, grid)).collect();
    let counts: Vec<Count> = blocks.iter().map(|b| (b.nr() * b.nc()) as Count).collect();
    let displs: Vec<Count> = counts
        .iter()
        .scan(0, |offset, &c| {
            let here = *offset;
            *offset += c;
            Some(here)
        })
        .collect();
    let mut gathered = vec![0.0f64; n * n];
    root.gather_varcount_into_root(
        &interior[..],
        &mut PartitionMut::new(&mut gathered[..], &counts[..], &displs[..]),
    );
    let halo = match options.halo {
        Halo::SendReceive => "sendrecv",
        Halo::Immediate => "immediate",
    };
    let converged = if change < options.tol {
        "converged"
    } else {
        "not converged"
    };
    println!(
        "heat2d: {n}x{n} grid on {size} ranks ({}x{} process grid), halo {halo}: {steps_done} steps, largest change {change:.3e} ({converged}, tol {:.1e})",
        grid.0, grid.1, options.tol
    );

    let serial = serial_jacobi(n, steps_done);
    let mut difference = 0.0f64;
    for (b, offset) in blocks.iter().zip(&displs) {
        for (k, value) in gathered[*offset as usize..][..b.nr() * b.nc()]
            .iter()
            .enumerate()
        {
            let (i, j) = (b.rows.start + k / b.nc() + 1, b.cols.start + k % b.nc() + 1);
            difference = difference.max((value - serial[i * (n + 2) + j]).abs());
        }
    }
    if difference >= TOLERANCE {
        eprintln!(
            "heat2d: FAILED: max |parallel - serial| = {difference:.3e} after {steps_done} steps (allowed {TOLERANCE:.0e})"
        );
        std::process::exit(1);
    }
    println!(
        "heat2d: check: max |parallel - serial| = {difference:.1e} < {TOLERANCE:.0e} after {steps_done} steps: ok"
    );
}
