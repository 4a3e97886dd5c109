//! collective_check: every collective against a reference computed locally,
//! plus communicators (dup, split, groups) and their isolation. Run by
//! `examples/tests/collectives.rs` at 1, 2, 3, 4, 5, 7 and 8 ranks over each
//! transport. Exits non-zero with a line on stderr at the first wrong result.
//!
//! Usage: collective_check [all | mismatch]
//!   all       every check below
//!   mismatch  ranks pass buffers of different lengths: the job must end
//!             with a clear error (errors are fatal), never hang
use mpirt::collective::{SystemOperation, UserOperation};
use mpirt::datatype::{Partition, PartitionMut};
use mpirt::request;
use mpirt::topology::{Color, GroupRelation, SimpleCommunicator};
use mpirt::traits::*;
use mpirt::Count;

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            eprintln!("collective_check: FAILED: {}", format!($($fmt)*));
            std::process::exit(1);
        }
    };
}

/// Rank `r`'s contribution: `len` values derived from `r` and a salt.
fn values(r: i32, len: usize, salt: i64) -> Vec<i64> {
    (0..len as i64)
        .map(|i| (r as i64 + 1) * 1000 + i * 7 + salt)
        .collect()
}

fn rooted(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    for root in 0..size {
        let at = world.process_at_rank(root);
        for len in [1usize, 1000, 70_000] {
            let mut buffer = if rank == root {
                values(root, len, 1)
            } else {
                vec![0; len]
            };
            at.broadcast_into(&mut buffer[..]);
            check!(
                buffer == values(root, len, 1),
                "broadcast of {len} from root {root}"
            );
        }
        // gather / scatter, fixed blocks
        let mine = values(rank, 3, 2);
        if rank == root {
            let mut all = vec![0i64; 3 * size as usize];
            at.gather_into_root(&mine[..], &mut all[..]);
            let expected: Vec<i64> = (0..size).flat_map(|r| values(r, 3, 2)).collect();
            check!(all == expected, "gather at root {root}");
            let mut back = vec![0i64; 3];
            at.scatter_into_root(&all[..], &mut back[..]);
            check!(back == mine, "scatter from root {root}");
        } else {
            at.gather_into(&mine[..]);
            let mut back = vec![0i64; 3];
            at.scatter_into(&mut back[..]);
            check!(back == mine, "scatter from root {root} to {rank}");
        }
        // varcount: rank r contributes r elements (rank 0: none)
        let counts: Vec<Count> = (0..size).collect();
        let displs: Vec<Count> = (0..size).map(|r| r * (r - 1) / 2).collect();
        let total = (size * (size - 1) / 2) as usize;
        let mine = values(rank, rank as usize, 3);
        if rank == root {
            let mut all = vec![0i64; total];
            at.gather_varcount_into_root(
                &mine[..],
                &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]),
            );
            let expected: Vec<i64> = (0..size).flat_map(|r| values(r, r as usize, 3)).collect();
            check!(all == expected, "gatherv at root {root}");
            let mut back = vec![0i64; rank as usize];
            at.scatter_varcount_into_root(
                &Partition::new(&all[..], &counts[..], &displs[..]),
                &mut back[..],
            );
            check!(back == mine, "scatterv from root {root}");
        } else {
            at.gather_varcount_into(&mine[..]);
            let mut back = vec![0i64; rank as usize];
            at.scatter_varcount_into(&mut back[..]);
            check!(back == mine, "scatterv from root {root} to {rank}");
        }
        // reduce: sum of i64 (exact) and max of f64
        let mine = values(rank, 5, 4);
        let contributions: Vec<Vec<i64>> = (0..size).map(|r| values(r, 5, 4)).collect();
        let sum: Vec<i64> = (0..5)
            .map(|i| contributions.iter().map(|c| c[i]).sum())
            .collect();
        let floats: Vec<f64> = mine.iter().map(|&v| v as f64 * 0.5).collect();
        if rank == root {
            let mut result = vec![0i64; 5];
            at.reduce_into_root(&mine[..], &mut result[..], SystemOperation::sum());
            check!(result == sum, "reduce sum at root {root}");
            let mut max = vec![0f64; 5];
            at.reduce_into_root(&floats[..], &mut max[..], SystemOperation::max());
            check!(
                max == values(size - 1, 5, 4)
                    .iter()
                    .map(|&v| v as f64 * 0.5)
                    .collect::<Vec<_>>(),
                "reduce max"
            );
        } else {
            at.reduce_into(&mine[..], SystemOperation::sum());
            at.reduce_into(&floats[..], SystemOperation::max());
        }
    }
}

fn everyone(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    let p = size as usize;
    world.barrier();
    // all-gather and its varcount form
    let mut all = vec![0i64; 4 * p];
    world.all_gather_into(&values(rank, 4, 5)[..], &mut all[..]);
    check!(
        all == (0..size).flat_map(|r| values(r, 4, 5)).collect::<Vec<_>>(),
        "all_gather"
    );
    let counts: Vec<Count> = (0..size).map(|r| r % 3).collect();
    let displs: Vec<Count> = counts
        .iter()
        .scan(0, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect();
    let mut allv = vec![0i64; counts.iter().sum::<Count>() as usize];
    world.all_gather_varcount_into(
        &values(rank, (rank % 3) as usize, 6)[..],
        &mut PartitionMut::new(&mut allv[..], &counts[..], &displs[..]),
    );
    check!(
        allv == (0..size)
            .flat_map(|r| values(r, (r % 3) as usize, 6))
            .collect::<Vec<_>>(),
        "all_gather_varcount"
    );
    // all-to-all: block j of rank i is (i, j)
    let send: Vec<i64> = (0..size).map(|j| (rank * 100 + j) as i64).collect();
    let mut receive = vec![0i64; p];
    world.all_to_all_into(&send[..], &mut receive[..]);
    check!(
        receive
            == (0..size)
                .map(|i| (i * 100 + rank) as i64)
                .collect::<Vec<_>>(),
        "all_to_all"
    );
    // all-to-all varcount: rank i sends j+1 copies of (i, j) to rank j
    let send_counts: Vec<Count> = (0..size).map(|j| j + 1).collect();
    let send_displs: Vec<Count> = (0..size).map(|j| j * (j + 1) / 2).collect();
    let sendv: Vec<i64> = (0..size)
        .flat_map(|j| vec![(rank * 100 + j) as i64; (j + 1) as usize])
        .collect();
    let receive_counts: Vec<Count> = vec![rank + 1; p];
    let receive_displs: Vec<Count> = (0..size).map(|i| i * (rank + 1)).collect();
    let mut receivev = vec![0i64; p * (rank as usize + 1)];
    world.all_to_all_varcount_into(
        &Partition::new(&sendv[..], &send_counts[..], &send_displs[..]),
        &mut PartitionMut::new(&mut receivev[..], &receive_counts[..], &receive_displs[..]),
    );
    let expected: Vec<i64> = (0..size)
        .flat_map(|i| vec![(i * 100 + rank) as i64; rank as usize + 1])
        .collect();
    check!(receivev == expected, "all_to_all_varcount");
    // all-reduce: small and large, integers exact and floats
    for len in [1usize, 10, 100_000] {
        let mut sum = vec![0i64; len];
        world.all_reduce_into(
            &values(rank, len, 7)[..],
            &mut sum[..],
            SystemOperation::sum(),
        );
        let contributions: Vec<Vec<i64>> = (0..size).map(|r| values(r, len, 7)).collect();
        let expected: Vec<i64> = (0..len)
            .map(|i| contributions.iter().map(|c| c[i]).sum())
            .collect();
        check!(sum == expected, "all_reduce sum of {len}");
        let floats: Vec<f64> = values(rank, len, 7).iter().map(|&v| v as f64).collect();
        let mut fsum = vec![0f64; len];
        world.all_reduce_into(&floats[..], &mut fsum[..], SystemOperation::sum());
        check!(
            fsum.iter().zip(&expected).all(|(a, &b)| *a == b as f64),
            "all_reduce f64 sum of {len}"
        );
    }
    let mut min = 0i32;
    world.all_reduce_into(&(rank + 10), &mut min, SystemOperation::min());
    check!(min == 10, "all_reduce min");
    let mut product = 0u64;
    world.all_reduce_into(&(rank as u64 + 1), &mut product, SystemOperation::product());
    check!(
        product == (1..=size as u64).product::<u64>(),
        "all_reduce product"
    );
    let (mut land, mut lor, mut lxor) = (false, false, false);
    world.all_reduce_into(&(rank >= 0), &mut land, SystemOperation::logical_and());
    world.all_reduce_into(&(rank == size - 1), &mut lor, SystemOperation::logical_or());
    world.all_reduce_into(&true, &mut lxor, SystemOperation::logical_xor());
    check!(land && lor && lxor == (size % 2 == 1), "logical ops");
    let (mut band, mut bor, mut bxor) = (0u32, 0u32, 0u32);
    world.all_reduce_into(
        &(0xff00u32 | 1 << rank),
        &mut band,
        SystemOperation::bitwise_and(),
    );
    world.all_reduce_into(&(1u32 << rank), &mut bor, SystemOperation::bitwise_or());
    world.all_reduce_into(&(1u32 << rank), &mut bxor, SystemOperation::bitwise_xor());
    check!(
        band == if size == 1 { 0xff01 } else { 0xff00 } && bor == (1 << size) - 1 && bxor == bor,
        "bitwise ops"
    );
    // non-commutative: 2x2 matrix products mod a prime, in rank order
    let matrix = |r: i32| [r as u64 + 1, 2, 3 * r as u64 % 7, 1];
    let multiply = |a: &[u64; 4], b: &[u64; 4]| {
        const P: u64 = 1_000_003;
        [
            (a[0] * b[0] + a[1] * b[2]) % P,
            (a[0] * b[1] + a[1] * b[3]) % P,
            (a[2] * b[0] + a[3] * b[2]) % P,
            (a[2] * b[1] + a[3] * b[3]) % P,
        ]
    };
    let op = UserOperation::associative(|earlier: &[[u64; 4]], later: &mut [[u64; 4]]| {
        for (e, l) in earlier.iter().zip(later.iter_mut()) {
            *l = multiply(e, l);
        }
    });
    let mut product = [[0u64; 4]; 1];
    world.all_reduce_into(&[matrix(rank)][..], &mut product[..], &op);
    let expected = (1..size).fold(matrix(0), |acc, r| multiply(&acc, &matrix(r)));
    check!(product[0] == expected, "non-commutative all_reduce");
    // scans and reduce-scatter
    let mut scan = 0i64;
    world.scan_into(&(rank as i64 + 1), &mut scan, SystemOperation::sum());
    check!(scan == (1..=rank as i64 + 1).sum::<i64>(), "scan");
    let mut exscan = -1i64;
    world.exclusive_scan_into(&(rank as i64 + 1), &mut exscan, SystemOperation::sum());
    check!(
        rank == 0 || exscan == (1..=rank as i64).sum::<i64>(),
        "exclusive_scan"
    );
    let mut prefix = [[0u64; 4]; 1];
    world.scan_into(&[matrix(rank)][..], &mut prefix[..], &op);
    check!(
        prefix[0] == (1..=rank).fold(matrix(0), |acc, r| multiply(&acc, &matrix(r))),
        "non-commutative scan"
    );
    let blocks: Vec<i64> = (0..size * 2).map(|i| (i + rank) as i64).collect();
    let mut mine = [0i64; 2];
    world.reduce_scatter_block_into(&blocks[..], &mut mine[..], SystemOperation::sum());
    let expected: Vec<i64> = (0..2)
        .map(|k| (0..size).map(|r| (rank * 2 + k + r) as i64).sum())
        .collect();
    check!(mine[..] == expected[..], "reduce_scatter_block");
    // reduce_local
    let mut local = [1i32, 2];
    mpirt::collective::reduce_local_into(&[10i32, 20][..], &mut local[..], SystemOperation::sum());
    check!(local == [11, 22], "reduce_local");
}

fn immediate(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    world.immediate_barrier().wait();
    let mine = [rank as i64, 1];
    let mut total = [0i64; 2];
    let mut bcast = if rank == 0 { [7u8; 16] } else { [0u8; 16] };
    request::scope(|scope| {
        let reduce = world.immediate_all_reduce_into(
            scope,
            &mine[..],
            &mut total[..],
            SystemOperation::sum(),
        );
        reduce.wait();
        let b = world
            .process_at_rank(0)
            .immediate_broadcast_into(scope, &mut bcast[..]);
        b.wait();
    });
    check!(
        total == [(0..size as i64).sum(), size as i64],
        "immediate all_reduce {total:?}"
    );
    check!(bcast == [7u8; 16], "immediate broadcast");
}

fn communicators(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    // dup: the same tag on two communicators never crosses
    let dup = world.duplicate();
    check!(dup.size() == size && dup.rank() == rank, "dup shape");
    if size > 1 {
        if rank == 0 {
            dup.process_at_rank(1).send_with_tag(&1u32, 5);
            world.process_at_rank(1).send_with_tag(&2u32, 5);
        } else if rank == 1 {
            let (on_world, _) = world.process_at_rank(0).receive_with_tag::<u32>(5);
            let (on_dup, _) = dup.process_at_rank(0).receive_with_tag::<u32>(5);
            check!(
                (on_world, on_dup) == (2, 1),
                "messages crossed communicators: world {on_world}, dup {on_dup}"
            );
        }
    }
    // split by parity, keyed to reverse the order
    let half = world
        .split_by_color_with_key(Color::with_value(rank % 2), -rank)
        .expect("a color");
    let members: Vec<i32> = (0..size).filter(|r| r % 2 == rank % 2).rev().collect();
    check!(half.size() == members.len() as i32, "split size");
    check!(
        half.rank() == members.iter().position(|&r| r == rank).unwrap() as i32,
        "split rank order by key"
    );
    let mut sum = 0i32;
    half.all_reduce_into(&rank, &mut sum, SystemOperation::sum());
    check!(
        sum == members.iter().sum::<i32>(),
        "allreduce on a split communicator"
    );
    // collectives on two communicators interleaved do not mix
    let mut on_half = if half.rank() == 0 { 11u8 } else { 0 };
    half.process_at_rank(0).broadcast_into(&mut on_half);
    check!(on_half == 11, "broadcast on split");
    // undefined color
    let only_zero = world.split_by_color(if rank == 0 {
        Color::with_value(0)
    } else {
        Color::undefined()
    });
    check!(only_zero.is_some() == (rank == 0), "undefined color");
    // groups
    let group = world.group();
    check!(
        group.size() == size && group.rank() == Some(rank),
        "world group"
    );
    let evens: Vec<i32> = (0..size).filter(|r| r % 2 == 0).collect();
    let even_group = group.include(&evens);
    let odd_group = group.exclude(&evens);
    check!(
        even_group.size() + odd_group.size() == size,
        "include/exclude"
    );
    check!(
        even_group.translate_rank(even_group.size() - 1, &group) == Some(evens[evens.len() - 1]),
        "translate"
    );
    check!(
        group.translate_ranks(&[0], &odd_group) == vec![None],
        "translate to a group without rank 0"
    );
    check!(
        group.compare(&world.group()) == GroupRelation::Identical,
        "compare identical"
    );
    let reversed: Vec<i32> = (0..size).rev().collect();
    let expected_relation = if size == 1 {
        GroupRelation::Identical
    } else {
        GroupRelation::Similar
    };
    check!(
        group.compare(&group.include(&reversed)) == expected_relation,
        "compare similar"
    );
    let created = world.split_by_subgroup_collective(&even_group);
    check!(
        created.is_some() == (rank % 2 == 0),
        "split_by_subgroup_collective membership"
    );
    if rank % 2 == 1 {
        let odd = world.split_by_subgroup(&odd_group).expect("a member");
        let mut n = 0i32;
        odd.all_reduce_into(&1i32, &mut n, SystemOperation::sum());
        check!(n == odd_group.size(), "split_by_subgroup allreduce");
    }
    if let Some(evens_comm) = created {
        evens_comm.barrier();
        check!(evens_comm.rank() * 2 == rank, "subgroup rank");
    }
    world.barrier();
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let universe = mpirt::initialize().expect("initialized once");
    let world = universe.world();
    match mode.as_str() {
        "all" => {
            rooted(&world);
            everyone(&world);
            immediate(&world);
            communicators(&world);
        }
        "mismatch" => {
            // Every rank gathers 4 + rank bytes: lengths differ between ranks.
            let mine = vec![1u8; 4 + world.rank() as usize];
            let mut all = vec![0u8; mine.len() * world.size() as usize];
            world.all_gather_into(&mine[..], &mut all[..]);
            if world.size() == 1 {
                println!("collective_check mismatch: nothing to mismatch at 1 rank");
                return;
            }
            check!(
                false,
                "mismatched all_gather returned normally on rank {}",
                world.rank()
            );
        }
        other => check!(false, "unknown mode {other}"),
    }
    if world.rank() == 0 {
        println!("collective_check {mode}: ok at {} ranks", world.size());
    }
}
