//! samplesort: parallel sort of random 64-bit keys by sample sort with
//! regular sampling (Shi and Schaeffer's PSRS, 1992). Rank r draws its
//! share of the keys from an xorshift64* generator seeded from (seed, r);
//! then every rank
//!
//! 1. sorts its keys and takes `--samples` evenly spaced samples of them;
//! 2. gathers every rank's samples (`all_gather_into`), sorts them and
//!    takes p−1 evenly spaced splitters (all ranks choose the same ones);
//! 3. cuts its sorted keys into p buckets at the splitters, tells each rank
//!    how many keys it will get (`all_to_all_into` of the counts), and
//!    sends the buckets (`all_to_all_varcount_into`);
//! 4. merges the p sorted runs it received: bucket r, on rank r, holds the
//!    keys between splitters r−1 and r.
//!
//! Checks, each exiting with status 1 when it fails: every rank's keys are
//! in order and no key on rank r exceeds the first key on the next
//! non-empty rank (first and last keys gathered with `all_gather_into`);
//! the count, wrapping sum and xor of all keys (`all_reduce_into`) are
//! what they were before the sort; and rank 0, which replays every rank's
//! generator and sorts the lot serially, finds the gathered result
//! (`gather_varcount_into_root`) identical, key for key.
//!
//! `--timing` prints the slowest rank's wall time for steps 1-4, split
//! into compute and communication.
//!
//! Usage: samplesort [--keys TOTAL] [--seed S] [--samples K] [--timing]
//!   defaults: TOTAL 1048576 (split evenly over the ranks), S 1, K 64
//!   mpirun -n 4 target/release/samplesort --keys 8000000 --timing
use std::ops::Range;

use mpirt::collective::SystemOperation;
use mpirt::datatype::{Partition, PartitionMut};
use mpirt::topology::SimpleCommunicator;
use mpirt::traits::*;
use mpirt::Count;

struct Options {
    keys: usize,
    seed: u64,
    samples: usize,
    timing: bool,
}

const USAGE: &str = "usage: samplesort [--keys TOTAL] [--seed S] [--samples K] [--timing]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        keys: 1 << 20,
        seed: 1,
        samples: 64,
        timing: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--keys" => options.keys = number(&arg, &value()?)?,
            "--seed" => options.seed = number(&arg, &value()?)?,
            "--samples" => options.samples = number(&arg, &value()?)?,
            "--timing" => options.timing = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{option} {value}: not a number"))
}

macro_rules! check {
    ($rank:expr, $cond:expr, $($fmt:tt)*) => {
        if !$cond {
            eprintln!("samplesort: rank {}: FAILED: {}", $rank, format!($($fmt)*));
            std::process::exit(1);
        }
    };
}

/// Marsaglia's xorshift64 with Vigna's multiplied output (xorshift64*).
struct XorShift64Star {
    /// Never 0 (0 is the generator's fixed point).
    state: u64,
}

impl XorShift64Star {
    /// The generator of rank `rank`: its seed is `seed` and the rank mixed
    /// by one splitmix64 step, so neighbouring ranks' streams differ.
    fn for_rank(seed: u64, rank: usize) -> XorShift64Star {
        let mut z = seed ^ (rank as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64Star {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Part `k` of `0..n` cut into `parts` blocks.
fn block(n: usize, parts: usize, k: usize) -> Range<usize> {
    k * n / parts..(k + 1) * n / parts
}

/// Rank `rank`'s keys before the sort.
fn keys_of(options: &Options, rank: usize, size: usize) -> Vec<u64> {
    let mut generator = XorShift64Star::for_rank(options.seed, rank);
    (0..block(options.keys, size, rank).len())
        .map(|_| generator.next())
        .collect()
}

/// Count, wrapping sum and xor of every rank's `keys`.
fn fingerprint(world: &SimpleCommunicator, keys: &[u64]) -> [u64; 3] {
    let local = [
        keys.len() as u64,
        keys.iter().fold(0u64, |s, &k| s.wrapping_add(k)),
        keys.iter().fold(0u64, |x, &k| x ^ k),
    ];
    let mut sums = [0u64; 2];
    world.all_reduce_into(&local[..2], &mut sums[..], SystemOperation::sum());
    let mut xor = 0u64;
    world.all_reduce_into(&local[2], &mut xor, SystemOperation::bitwise_xor());
    [sums[0], sums[1], xor]
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

/// Offsets of blocks of `counts` laid end to end.
fn displacements(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |offset, &c| {
            let here = *offset;
            *offset += c;
            Some(here)
        })
        .collect()
}

/// Steps 1-4 of the header: returns this rank's bucket, sorted.
fn sample_sort(
    world: &SimpleCommunicator,
    mut keys: Vec<u64>,
    samples: usize,
    clock: &mut Clock,
) -> Vec<u64> {
    let p = world.size() as usize;
    // 1. Local sort and regular samples (the middle of each of `samples`
    //    equal parts; u64::MAX from a rank without keys).
    keys.sort_unstable();
    let n = keys.len();
    let mine: Vec<u64> = (0..samples)
        .map(|i| {
            keys.get((2 * i + 1) * n / (2 * samples))
                .copied()
                .unwrap_or(u64::MAX)
        })
        .collect();
    // 2. Everyone's samples; p-1 splitters evenly spaced among them.
    let mut everyone = vec![0u64; p * samples];
    clock.communicate(|| world.all_gather_into(&mine[..], &mut everyone[..]));
    everyone.sort_unstable();
    let splitters: Vec<u64> = (1..p).map(|k| everyone[k * samples]).collect();
    // 3. Bucket k gets the keys in (splitter k-1, splitter k].
    let mut ends: Vec<usize> = splitters
        .iter()
        .map(|&s| keys.partition_point(|&key| key <= s))
        .collect();
    ends.push(n);
    let send_counts: Vec<Count> = ends
        .iter()
        .scan(0, |start, &end| {
            let count = end - *start;
            *start = end;
            Some(count as Count)
        })
        .collect();
    let mut receive_counts = vec![0 as Count; p];
    clock.communicate(|| world.all_to_all_into(&send_counts[..], &mut receive_counts[..]));
    let total: usize = receive_counts.iter().map(|&c| c as usize).sum();
    let mut bucket = vec![0u64; total];
    let (send_displs, receive_displs) =
        (displacements(&send_counts), displacements(&receive_counts));
    clock.communicate(|| {
        world.all_to_all_varcount_into(
            &Partition::new(&keys[..], &send_counts[..], &send_displs[..]),
            &mut PartitionMut::new(&mut bucket[..], &receive_counts[..], &receive_displs[..]),
        )
    });
    // 4. The bucket arrives as p sorted runs, one from each rank.
    let runs: Vec<usize> = receive_counts.iter().map(|&c| c as usize).collect();
    merge_runs(bucket, &runs)
}

/// Merges the sorted runs of `keys` (of lengths `runs`, end to end) into
/// one, adjacent pairs at a time: ⌈log₂ p⌉ passes over the keys, where a
/// full sort would take log₂ n.
fn merge_runs(mut keys: Vec<u64>, runs: &[usize]) -> Vec<u64> {
    // Run k is keys[bounds[k]..bounds[k + 1]].
    let mut bounds: Vec<usize> = std::iter::once(0)
        .chain(runs.iter().scan(0, |end, &length| {
            *end += length;
            Some(*end)
        }))
        .collect();
    let mut scratch = vec![0u64; keys.len()];
    while bounds.len() > 2 {
        let mut merged = vec![0];
        for k in (0..bounds.len() - 1).step_by(2) {
            let (start, middle) = (bounds[k], bounds[k + 1]);
            let end = bounds.get(k + 2).copied().unwrap_or(middle);
            merge(
                &keys[start..middle],
                &keys[middle..end],
                &mut scratch[start..end],
            );
            merged.push(end);
        }
        std::mem::swap(&mut keys, &mut scratch);
        bounds = merged;
    }
    keys
}

/// Merges sorted `left` and `right` into `out`.
fn merge(left: &[u64], right: &[u64], out: &mut [u64]) {
    let (mut i, mut j) = (0, 0);
    for slot in out.iter_mut() {
        if j == right.len() || (i < left.len() && left[i] <= right[j]) {
            *slot = left[i];
            i += 1;
        } else {
            *slot = right[j];
            j += 1;
        }
    }
}

fn main() {
    let options = parse_options().unwrap_or_else(|e| {
        eprintln!("samplesort: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let universe = mpirt::initialize().expect("mpirt initialized once");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);

    let keys = keys_of(&options, rank, size);
    let before = fingerprint(&world, &keys);
    let mut clock = Clock::default();
    world.barrier();
    let started = mpirt::time();
    let sorted = sample_sort(&world, keys, options.samples, &mut clock);
    let wall = mpirt::time() - started;

    if options.timing {
        let mine = [wall, wall - clock.communication, clock.communication];
        let mut slowest = [0.0f64; 3];
        world.all_reduce_into(&mine[..], &mut slowest[..], SystemOperation::max());
        if rank == 0 {
            println!(
                "samplesort timing: {size} ranks, wall {:.6} s, compute {:.6} s, communication {:.6} s (max over ranks)",
                slowest[0], slowest[1], slowest[2]
            );
        }
    }

    // Order within the rank, and across ranks: (count, first, last) of
    // every rank, gathered.
    check!(
        rank,
        sorted.windows(2).all(|w| w[0] <= w[1]),
        "keys out of order"
    );
    let bounds = [
        sorted.len() as u64,
        sorted.first().copied().unwrap_or(0),
        sorted.last().copied().unwrap_or(0),
    ];
    let mut all_bounds = vec![0u64; 3 * size];
    world.all_gather_into(&bounds[..], &mut all_bounds[..]);
    let mut previous: Option<(usize, u64)> = None;
    for (r, b) in all_bounds.chunks(3).enumerate() {
        if b[0] == 0 {
            continue;
        }
        if let Some((q, last)) = previous {
            check!(
                rank,
                last <= b[1],
                "rank {q} ends with {last:#x} but rank {r} starts with {:#x}",
                b[1]
            );
        }
        previous = Some((r, b[2]));
    }
    let after = fingerprint(&world, &sorted);
    check!(
        rank,
        after == before,
        "keys lost or changed: count {} sum {:#x} xor {:#x} before the sort, count {} sum {:#x} xor {:#x} after",
        before[0],
        before[1],
        before[2],
        after[0],
        after[1],
        after[2]
    );

    let root = world.process_at_rank(0);
    if rank != 0 {
        root.gather_varcount_into(&sorted[..]);
        return;
    }
    let counts: Vec<Count> = all_bounds.chunks(3).map(|b| b[0] as Count).collect();
    let mut gathered = vec![0u64; options.keys];
    root.gather_varcount_into_root(
        &sorted[..],
        &mut PartitionMut::new(&mut gathered[..], &counts[..], &displacements(&counts)[..]),
    );
    let largest = counts.iter().copied().max().unwrap_or(0);
    println!(
        "samplesort: {} keys (seed {}) on {size} ranks, {} samples per rank: largest bucket {largest} keys ({:.2}x the mean)",
        options.keys,
        options.seed,
        options.samples,
        largest as f64 * size as f64 / options.keys.max(1) as f64
    );
    let mut serial: Vec<u64> = (0..size).flat_map(|r| keys_of(&options, r, size)).collect();
    serial.sort_unstable();
    if let Some(at) = (0..serial.len()).find(|&i| gathered[i] != serial[i]) {
        check!(
            rank,
            false,
            "position {at}: parallel {:#x}, serial {:#x}",
            gathered[at],
            serial[at]
        );
    }
    println!(
        "samplesort: check: ordered across ranks, count {} sum {:#x} xor {:#x} kept, identical to the serial sort: ok",
        after[0], after[1], after[2]
    );
}
