//! Every collective and every algorithm against a naive reference, on an
//! in-memory transport at 1 to 64 ranks, with every reduction of
//! `common::cases()` (integers exact, floats chosen to be exact in any order,
//! and a non-commutative matrix product that must come out in rank order).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use collectives::algorithms::*;
use collectives::memory::{run, MemoryError, MemoryTransport};
use collectives::{CollectiveError, Operation, Partition, PartitionMut, PointToPoint};
use common::*;

type AllReduceFn =
    fn(&MemoryTransport, &mut [u8], usize, &dyn Operation) -> collectives::Result<(), MemoryError>;

#[test]
fn barrier_lets_nobody_out_before_everyone_is_in() {
    for &size in RANK_COUNTS {
        let arrived = AtomicUsize::new(0);
        on_ranks(size, &|t: &MemoryTransport| {
            for round in 1..=3 {
                arrived.fetch_add(1, Ordering::SeqCst);
                collectives::barrier(t).unwrap();
                assert!(arrived.load(Ordering::SeqCst) >= round * size);
                // A second barrier so nobody races into the next round's count.
                collectives::barrier(t).unwrap();
            }
        });
    }
}

#[test]
fn broadcast_every_algorithm_and_root() {
    type BroadcastFn =
        fn(&MemoryTransport, &mut [u8], usize) -> collectives::Result<(), MemoryError>;
    let algorithms: [(&str, BroadcastFn); 3] = [
        ("binomial", bcast_binomial::broadcast),
        ("scatter + allgather", bcast_scatter_allgather::broadcast),
        ("selected", collectives::broadcast),
    ];
    on_every_rank_count(|t| {
        for len in [0, 1, 7, 100, 13_000] {
            for root in roots(t.size()) {
                for (name, broadcast) in algorithms {
                    let salt = (len * 1000 + root) as u64;
                    let mut buffer = if t.rank() == root {
                        bytes(root, len, salt)
                    } else {
                        vec![0xEE; len]
                    };
                    broadcast(t, &mut buffer, root).unwrap();
                    assert_eq!(
                        buffer,
                        bytes(root, len, salt),
                        "{name}, {len} bytes, root {root}"
                    );
                }
            }
        }
    });
}

#[test]
fn reduce_every_algorithm_operation_and_root() {
    type ReduceFn = fn(
        &MemoryTransport,
        &[u8],
        Option<&mut [u8]>,
        usize,
        &dyn Operation,
        usize,
    ) -> collectives::Result<(), MemoryError>;
    let algorithms: [(&str, ReduceFn); 3] = [
        ("binomial", reduce_binomial::reduce),
        ("rabenseifner", reduce_rabenseifner::reduce),
        ("selected", collectives::reduce),
    ];
    let cases = cases();
    on_every_rank_count(|t| {
        for case in &cases {
            for &elements in ELEMENT_COUNTS {
                let expected = case.prefix(t.size() - 1, elements, elements as u64);
                let send = (case.make)(t.rank(), elements, elements as u64);
                for root in roots(t.size()) {
                    for (name, reduce) in algorithms {
                        let mut receive = vec![0u8; send.len()];
                        let at_root = (t.rank() == root).then_some(&mut receive[..]);
                        reduce(t, &send, at_root, case.element_size, &*case.op, root).unwrap();
                        if t.rank() == root {
                            assert_eq!(
                                receive, *expected,
                                "{name}: {}, {elements} elements, root {root}",
                                case.name
                            );
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn all_reduce_every_algorithm_and_operation() {
    let cases = cases();
    let algorithms: [(&str, AllReduceFn); 4] = [
        (
            "recursive doubling",
            allreduce_recursive_doubling::all_reduce,
        ),
        ("rabenseifner", allreduce_rabenseifner::all_reduce),
        ("ring", allreduce_ring::all_reduce),
        ("selected", collectives::all_reduce_in_place),
    ];
    on_every_rank_count(|t| {
        for case in &cases {
            for &elements in ELEMENT_COUNTS {
                let salt = elements as u64 + 7;
                let expected = case.prefix(t.size() - 1, elements, salt);
                let send = (case.make)(t.rank(), elements, salt);
                for (name, all_reduce) in algorithms {
                    if name == "ring" && !case.op.is_commutative() {
                        continue;
                    }
                    let mut buffer = send.clone();
                    all_reduce(t, &mut buffer, case.element_size, &*case.op).unwrap();
                    assert_eq!(
                        buffer, *expected,
                        "{name}: {}, {elements} elements",
                        case.name
                    );
                }
                let mut receive = vec![0u8; send.len()];
                collectives::all_reduce(t, &send, &mut receive, case.element_size, &*case.op)
                    .unwrap();
                assert_eq!(
                    receive, *expected,
                    "all_reduce: {}, {elements} elements",
                    case.name
                );
            }
        }
    });
}

#[test]
fn ring_all_reduce_refuses_non_commutative_operations() {
    let cases = cases();
    let matrix = cases.iter().find(|c| !c.op.is_commutative()).unwrap();
    run(3, TIMEOUT, |t| {
        let mut buffer = (matrix.make)(t.rank(), 4, 0);
        let result = allreduce_ring::all_reduce(t, &mut buffer, 32, &*matrix.op);
        assert!(matches!(
            result,
            Err(CollectiveError::InvalidArgument { .. })
        ));
    });
}

#[test]
fn scan_and_exclusive_scan_in_rank_order() {
    let cases = cases();
    on_every_rank_count(|t| {
        for case in &cases {
            for &elements in &ELEMENT_COUNTS[..4] {
                let salt = elements as u64 + 11;
                let send = (case.make)(t.rank(), elements, salt);
                let mut receive = vec![0u8; send.len()];
                collectives::scan(t, &send, &mut receive, case.element_size, &*case.op).unwrap();
                assert_eq!(
                    receive,
                    *case.prefix(t.rank(), elements, salt),
                    "scan: {}",
                    case.name
                );

                let untouched = vec![0xAB; send.len()];
                let mut receive = untouched.clone();
                collectives::exclusive_scan(t, &send, &mut receive, case.element_size, &*case.op)
                    .unwrap();
                if t.rank() == 0 {
                    assert_eq!(receive, untouched, "exscan leaves rank 0 alone");
                } else {
                    assert_eq!(
                        receive,
                        *case.prefix(t.rank() - 1, elements, salt),
                        "exscan: {}",
                        case.name
                    );
                }
            }
        }
    });
}

#[test]
fn reduce_scatter_block_every_algorithm() {
    type ReduceScatterFn = fn(
        &MemoryTransport,
        &[u8],
        &mut [u8],
        usize,
        &dyn Operation,
    ) -> collectives::Result<(), MemoryError>;
    let algorithms: [(&str, ReduceScatterFn); 3] = [
        ("ring", reduce_scatter_block_ring::reduce_scatter_block),
        (
            "reduce + scatter",
            reduce_scatter_block_reduce_then_scatter::reduce_scatter_block,
        ),
        ("selected", collectives::reduce_scatter_block),
    ];
    let cases = cases();
    on_every_rank_count(|t| {
        let size = t.size();
        for case in &cases {
            for per_rank in [0, 1, 3, 70] {
                let salt = per_rank as u64 + 13;
                let total = per_rank * size;
                let expected = case.prefix(size - 1, total, salt);
                let block = per_rank * case.element_size;
                let mine = &expected[t.rank() * block..(t.rank() + 1) * block];
                let send = (case.make)(t.rank(), total, salt);
                for (name, reduce_scatter) in algorithms {
                    if name == "ring" && !case.op.is_commutative() {
                        continue;
                    }
                    let mut receive = vec![0u8; block];
                    reduce_scatter(t, &send, &mut receive, case.element_size, &*case.op).unwrap();
                    assert_eq!(receive, mine, "{name}: {}, {per_rank} per rank", case.name);
                }
            }
        }
    });
}

#[test]
fn gather_and_scatter_every_algorithm_and_root() {
    type GatherFn = fn(
        &MemoryTransport,
        &[u8],
        Option<&mut [u8]>,
        usize,
    ) -> collectives::Result<(), MemoryError>;
    type ScatterFn = fn(
        &MemoryTransport,
        Option<&[u8]>,
        &mut [u8],
        usize,
    ) -> collectives::Result<(), MemoryError>;
    let gathers: [(&str, GatherFn); 3] = [
        ("linear", gather_linear::gather),
        ("binomial", gather_binomial::gather),
        ("selected", collectives::gather),
    ];
    let scatters: [(&str, ScatterFn); 3] = [
        ("linear", scatter_linear::scatter),
        ("binomial", scatter_binomial::scatter),
        ("selected", collectives::scatter),
    ];
    on_every_rank_count(|t| {
        let size = t.size();
        for len in [0, 1, 9, 300, 17_000] {
            if len > 300 && size > 17 {
                continue; // keeps memory and time small; the long path is linear
            }
            for root in roots(size) {
                let salt = (len + root) as u64;
                // Gather: block r holds rank r's bytes.
                let send = bytes(t.rank(), len, salt);
                let expected: Vec<u8> = (0..size).flat_map(|r| bytes(r, len, salt)).collect();
                for (name, gather) in gathers {
                    let mut receive = vec![0u8; len * size];
                    let at_root = (t.rank() == root).then_some(&mut receive[..]);
                    gather(t, &send, at_root, root).unwrap();
                    if t.rank() == root {
                        assert_eq!(receive, *expected, "{name} gather {len} bytes, root {root}");
                    }
                }
                // Scatter: the root's buffer is its bytes for everyone.
                let whole = bytes(root, len * size, salt);
                for (name, scatter) in scatters {
                    let mut receive = vec![0u8; len];
                    let at_root = (t.rank() == root).then_some(&whole[..]);
                    scatter(t, at_root, &mut receive, root).unwrap();
                    let mine = &whole[t.rank() * len..(t.rank() + 1) * len];
                    assert_eq!(receive, mine, "{name} scatter {len} bytes, root {root}");
                }
            }
        }
    });
}

/// A varcount layout with zero counts and blocks in reverse order with gaps:
/// rank `r` has `(r * 7 + salt) % 5` bytes (some zero).
fn varcount_layout(size: usize, salt: usize) -> (Vec<usize>, Vec<usize>, usize) {
    let counts: Vec<usize> = (0..size).map(|r| (r * 7 + salt) % 5).collect();
    let mut displacements = vec![0; size];
    let mut offset = 0;
    for r in (0..size).rev() {
        displacements[r] = offset + 1;
        offset += counts[r] + 1;
    }
    (counts, displacements, offset)
}

#[test]
fn gatherv_and_scatterv_with_zero_counts() {
    on_every_rank_count(|t| {
        let size = t.size();
        for salt in 0..3 {
            let (counts, displacements, len) = varcount_layout(size, salt);
            for root in roots(size) {
                let send = bytes(t.rank(), counts[t.rank()], salt as u64);
                let mut buffer = vec![0u8; len];
                let partition = (t.rank() == root).then_some(PartitionMut {
                    buffer: &mut buffer,
                    counts: &counts,
                    displacements: &displacements,
                });
                collectives::gather_varcount(t, &send, partition, root).unwrap();
                if t.rank() == root {
                    for r in 0..size {
                        let block = &buffer[displacements[r]..displacements[r] + counts[r]];
                        assert_eq!(block, bytes(r, counts[r], salt as u64), "gatherv block {r}");
                    }
                }

                let whole = bytes(root, len, salt as u64 + 1);
                let partition = (t.rank() == root).then_some(Partition {
                    buffer: &whole,
                    counts: &counts,
                    displacements: &displacements,
                });
                let mut receive = vec![0u8; counts[t.rank()]];
                collectives::scatter_varcount(t, partition, &mut receive, root).unwrap();
                let d = displacements[t.rank()];
                assert_eq!(receive, &whole[d..d + counts[t.rank()]], "scatterv");
            }
        }
    });
}

#[test]
fn all_gather_every_algorithm() {
    type AllGatherFn =
        fn(&MemoryTransport, &[u8], &mut [u8]) -> collectives::Result<(), MemoryError>;
    let algorithms: [(&str, AllGatherFn); 4] = [
        (
            "recursive doubling",
            allgather_recursive_doubling::all_gather,
        ),
        ("bruck", allgather_bruck::all_gather),
        ("ring", allgather_ring::all_gather),
        ("selected", collectives::all_gather),
    ];
    on_every_rank_count(|t| {
        let size = t.size();
        for len in [0, 1, 13, 600, 20_000] {
            let salt = len as u64;
            let send = bytes(t.rank(), len, salt);
            let expected: Vec<u8> = (0..size).flat_map(|r| bytes(r, len, salt)).collect();
            for (name, all_gather) in algorithms {
                if name == "recursive doubling" && !size.is_power_of_two() {
                    continue;
                }
                let mut receive = vec![0u8; len * size];
                all_gather(t, &send, &mut receive).unwrap();
                assert_eq!(receive, *expected, "{name}, {len} bytes");
            }
        }
        for salt in 0..3 {
            let (counts, displacements, len) = varcount_layout(size, salt);
            let send = bytes(t.rank(), counts[t.rank()], salt as u64);
            let mut buffer = vec![0u8; len];
            collectives::all_gather_varcount(
                t,
                &send,
                PartitionMut {
                    buffer: &mut buffer,
                    counts: &counts,
                    displacements: &displacements,
                },
            )
            .unwrap();
            for r in 0..size {
                let block = &buffer[displacements[r]..displacements[r] + counts[r]];
                assert_eq!(
                    block,
                    bytes(r, counts[r], salt as u64),
                    "allgatherv block {r}"
                );
            }
        }
    });
}

#[test]
fn recursive_doubling_all_gather_refuses_other_rank_counts() {
    run(3, TIMEOUT, |t| {
        let mut receive = vec![0u8; 3];
        let result = allgather_recursive_doubling::all_gather(t, &[1], &mut receive);
        assert!(matches!(
            result,
            Err(CollectiveError::InvalidArgument { .. })
        ));
    });
}

#[test]
fn all_to_all_and_varcount() {
    // The byte rank `from` sends to rank `to`, at index `i`.
    fn payload(from: usize, to: usize, len: usize, salt: u64) -> Vec<u8> {
        bytes(from * 1000 + to, len, salt)
    }
    on_every_rank_count(|t| {
        let (rank, size) = (t.rank(), t.size());
        for len in [0, 1, 10, 200] {
            let salt = len as u64;
            let send: Vec<u8> = (0..size)
                .flat_map(|to| payload(rank, to, len, salt))
                .collect();
            let mut receive = vec![0u8; send.len()];
            collectives::all_to_all(t, &send, &mut receive).unwrap();
            let expected: Vec<u8> = (0..size)
                .flat_map(|from| payload(from, rank, len, salt))
                .collect();
            assert_eq!(receive, *expected, "alltoall {len} bytes");
        }
        // Varcount: rank a sends (a + 2b) % 4 bytes to rank b, some zero;
        // send blocks packed in order, receive blocks in reverse with gaps.
        let count = |from: usize, to: usize| (from + 2 * to) % 4;
        let send_counts: Vec<usize> = (0..size).map(|to| count(rank, to)).collect();
        let send_displacements: Vec<usize> = send_counts
            .iter()
            .scan(0, |offset, c| {
                let d = *offset;
                *offset += c;
                Some(d)
            })
            .collect();
        let send: Vec<u8> = (0..size)
            .flat_map(|to| payload(rank, to, count(rank, to), 5))
            .collect();
        let receive_counts: Vec<usize> = (0..size).map(|from| count(from, rank)).collect();
        let mut receive_displacements = vec![0; size];
        let mut offset = 0;
        for from in (0..size).rev() {
            receive_displacements[from] = offset + 2;
            offset += receive_counts[from] + 2;
        }
        let mut buffer = vec![0u8; offset];
        collectives::all_to_all_varcount(
            t,
            Partition {
                buffer: &send,
                counts: &send_counts,
                displacements: &send_displacements,
            },
            PartitionMut {
                buffer: &mut buffer,
                counts: &receive_counts,
                displacements: &receive_displacements,
            },
        )
        .unwrap();
        for from in 0..size {
            let d = receive_displacements[from];
            assert_eq!(
                &buffer[d..d + receive_counts[from]],
                payload(from, rank, receive_counts[from], 5),
                "alltoallv from {from}"
            );
        }
    });
}

/// Runs `body` on `size` ranks with a short deadline (some ranks may wait in
/// vain for a rank that gave up) and checks that a rank saw the mismatch.
fn expect_some_length_mismatch(
    size: usize,
    what: &str,
    body: impl Fn(&MemoryTransport) -> collectives::Result<(), MemoryError> + Sync,
) {
    let results = run(size, std::time::Duration::from_millis(200), &body);
    let mismatch = results.iter().any(|r| {
        matches!(
            r,
            Err(CollectiveError::Transport {
                source: MemoryError::LengthMismatch { .. },
                ..
            })
        )
    });
    assert!(
        mismatch,
        "{what}: no rank reported the length mismatch: {results:?}"
    );
}

#[test]
fn mismatched_lengths_give_an_error_not_a_hang() {
    let sum =
        collectives::SystemOperation::new(collectives::SystemOp::Sum, collectives::Primitive::U64)
            .unwrap();
    for size in [2, 5] {
        // Rank 1 has one element more than the others.
        let len = |t: &MemoryTransport, base: usize| if t.rank() == 1 { base + 8 } else { base };
        for base in [8, 4096] {
            expect_some_length_mismatch(size, "allreduce", |t| {
                let send = vec![1u8; len(t, base)];
                let mut receive = vec![0u8; send.len()];
                collectives::all_reduce(t, &send, &mut receive, 8, &sum)
            });
            expect_some_length_mismatch(size, "broadcast", |t| {
                let mut buffer = vec![1u8; len(t, base * 4)];
                collectives::broadcast(t, &mut buffer, 0)
            });
            expect_some_length_mismatch(size, "reduce", |t| {
                let send = vec![1u8; len(t, base)];
                let mut receive = vec![0u8; send.len()];
                let at_root = (t.rank() == 0).then_some(&mut receive[..]);
                collectives::reduce(t, &send, at_root, 8, &sum, 0)
            });
            expect_some_length_mismatch(size, "allgather", |t| {
                let send = vec![1u8; len(t, base)];
                let mut receive = vec![0u8; send.len() * t.size()];
                collectives::all_gather(t, &send, &mut receive)
            });
            expect_some_length_mismatch(size, "gather", |t| {
                let send = vec![1u8; len(t, base)];
                let mut receive = vec![0u8; send.len() * t.size()];
                let at_root = (t.rank() == 0).then_some(&mut receive[..]);
                collectives::gather(t, &send, at_root, 0)
            });
            expect_some_length_mismatch(size, "scan", |t| {
                let send = vec![1u8; len(t, base)];
                let mut receive = vec![0u8; send.len()];
                collectives::scan(t, &send, &mut receive, 8, &sum)
            });
            expect_some_length_mismatch(size, "alltoall", |t| {
                let send = vec![1u8; len(t, base) * t.size()];
                let mut receive = vec![0u8; send.len()];
                collectives::all_to_all(t, &send, &mut receive)
            });
        }
    }
}

#[test]
fn invalid_arguments_are_refused_locally() {
    let sum =
        collectives::SystemOperation::new(collectives::SystemOp::Sum, collectives::Primitive::U32)
            .unwrap();
    run(2, TIMEOUT, |t| {
        let invalid = |r: collectives::Result<(), MemoryError>| {
            matches!(r, Err(CollectiveError::InvalidArgument { .. }))
        };
        assert!(invalid(collectives::broadcast(t, &mut [0u8; 4], 2)));
        assert!(invalid(collectives::all_reduce(
            t,
            &[0u8; 6],
            &mut [0u8; 6],
            4,
            &sum
        )));
        assert!(invalid(collectives::all_reduce(
            t,
            &[0u8; 8],
            &mut [0u8; 4],
            4,
            &sum
        )));
        assert!(invalid(collectives::all_gather_varcount(
            t,
            &[],
            PartitionMut {
                buffer: &mut [0u8; 4],
                counts: &[0, 0, 0],
                displacements: &[0, 0, 0],
            },
        )));
        assert!(invalid(collectives::all_to_all(
            t,
            &[0u8; 3],
            &mut [0u8; 3]
        )));
    });
}
