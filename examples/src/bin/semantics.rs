//! semantics: cases that pin down when each point-to-point mode completes,
//! what the local and remote buffers hold, and how requests behave
//! (MPI 4.1 chapter 3). Run by `examples/tests/semantics.rs` at 2, 3 and 5
//! ranks over each transport; ranks 0 and the last one are the pair, the
//! others only take part where a case says. Every check exits non-zero with
//! a line on stderr when it fails; no check depends on timing except as a
//! lower bound.
//!
//! Usage: semantics CASE   (cases listed in `main`)
use std::time::{Duration, Instant};

use mpirt::point_to_point as p2p;
use mpirt::request::{self, WaitGuard};
use mpirt::topology::SimpleCommunicator;
use mpirt::traits::*;
use mpirt::{Error, Universe, BSEND_OVERHEAD, PROC_NULL};

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            eprintln!("semantics: FAILED: {}", format!($($fmt)*));
            std::process::exit(1);
        }
    };
}

/// Tag of the "go" messages that order the two sides without timing.
const GO: i32 = 999;
/// Larger than the eager limit: travels by rendezvous.
const LARGE: usize = 300_000;

fn go(world: &SimpleCommunicator, to: i32) {
    world.process_at_rank(to).send_with_tag(&[0u8; 0][..], GO);
}

fn wait_go(world: &SimpleCommunicator, from: i32) {
    world
        .process_at_rank(from)
        .receive_into_with_tag(&mut [0u8; 0][..], GO);
}

/// Polls a completion check 50 times, 2 ms apart (each call makes
/// progress); true if it never said complete.
fn never_completes_while(is_complete: impl Fn() -> bool) -> bool {
    for _ in 0..50 {
        if is_complete() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// ssend/issend: no completion before the matching receive has started.
fn synchronous(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    for len in [8usize, LARGE] {
        let data = vec![5u8; len];
        if rank == 0 {
            request::scope(|scope| {
                let req = world
                    .process_at_rank(b)
                    .immediate_synchronous_send_with_tag(scope, &data[..], 1);
                check!(
                    never_completes_while(|| req.is_complete()),
                    "issend of {len} bytes completed before the receive was posted"
                );
                go(world, b);
                req.wait();
            });
        } else if rank == b {
            wait_go(world, 0);
            let mut buf = vec![0u8; len];
            world
                .process_at_rank(0)
                .receive_into_with_tag(&mut buf[..], 1);
            check!(buf == data, "ssend data");
        }
    }
}

/// Standard send: small returns before the receive is posted; large
/// completes only once delivered.
fn standard(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank == 0 {
        world.process_at_rank(b).send_with_tag(&[1u8; 100][..], 1); // returns: eager
        let large = vec![2u8; LARGE];
        request::scope(|scope| {
            let req = world
                .process_at_rank(b)
                .immediate_send_with_tag(scope, &large[..], 2);
            check!(
                never_completes_while(|| req.is_complete()),
                "large standard send completed before delivery"
            );
            go(world, b);
            req.wait();
        });
    } else if rank == b {
        wait_go(world, 0);
        let mut small = [0u8; 100];
        world
            .process_at_rank(0)
            .receive_into_with_tag(&mut small[..], 1);
        let (large, _) = world.process_at_rank(0).receive_vec_with_tag::<u8>(2);
        check!(
            small == [1u8; 100] && large == vec![2u8; LARGE],
            "standard data"
        );
    }
}

/// bsend: copies (the source may change at once), exhausts cleanly, detach
/// waits for delivery, space comes back.
fn buffered(universe: &mut Universe, world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank == 0 {
        let peer = world.process_at_rank(b);
        match peer.try_buffered_send(&[1u8; 10][..]) {
            Err(Error::BufferExhausted { attached: 0, .. }) => {}
            other => check!(false, "bsend without a buffer gave {other:?}"),
        }
        universe.set_buffer_size(2 * (LARGE + BSEND_OVERHEAD));
        check!(
            universe.buffer_size() == 2 * (LARGE + BSEND_OVERHEAD),
            "buffer_size"
        );
        let mut data = vec![7u8; LARGE];
        peer.buffered_send_with_tag(&data[..], 1);
        data.fill(8); // the copy already left the caller's buffer
        peer.buffered_send_with_tag(&data[..], 2);
        data.fill(9);
        // Two rendezvous messages hold the buffer until the receiver matches.
        match peer.try_buffered_send_with_tag(&data[..], 3) {
            Err(Error::BufferExhausted {
                needed, available, ..
            }) => {
                check!(
                    needed == LARGE + BSEND_OVERHEAD && available == 0,
                    "exhaustion sizes {needed} {available}"
                )
            }
            other => check!(false, "third bsend should not fit, gave {other:?}"),
        }
        let stats = universe.stats();
        check!(
            stats.attached_used == 2 * (LARGE + BSEND_OVERHEAD) && stats.buffered_sends == 2,
            "stats {stats}"
        );
        go(world, b);
        let start = Instant::now();
        universe.detach_buffer();
        // The receiver sleeps 300 ms before receiving: detach waited.
        check!(
            start.elapsed() >= Duration::from_millis(250),
            "detach returned before delivery"
        );
        check!(
            universe.stats().attached_used == 0 && universe.buffer_size() == 0,
            "detach left bytes"
        );
        // Small buffered messages: space is freed as they leave.
        universe.set_buffer_size(100 + BSEND_OVERHEAD);
        for i in 0..50u8 {
            let mut small = [i; 100];
            peer.buffered_send_with_tag(&small[..], 4);
            small.fill(0);
            universe.detach_buffer();
            universe.set_buffer_size(100 + BSEND_OVERHEAD);
        }
        universe.detach_buffer();
    } else if rank == b {
        wait_go(world, 0);
        std::thread::sleep(Duration::from_millis(300));
        for (tag, byte) in [(1, 7u8), (2, 8)] {
            let (got, _) = world.process_at_rank(0).receive_vec_with_tag::<u8>(tag);
            check!(
                got == vec![byte; LARGE],
                "bsend copy with tag {tag} saw a later overwrite"
            );
        }
        for i in 0..50u8 {
            let (got, _) = world.process_at_rank(0).receive_vec_with_tag::<u8>(4);
            check!(got == vec![i; 100], "small bsend {i}");
        }
    }
}

/// 30 wildcard receives posted before 30 messages of decreasing length
/// arrive: they match in posting order.
fn non_overtaking(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    let len_of = |i: usize| (30 - i) * 5000;
    if rank == b {
        let mut buffers = vec![vec![0u8; 150_000]; 30];
        request::multiple_scope(30, |scope, coll| {
            for buffer in buffers.iter_mut() {
                coll.add(
                    world
                        .any_process()
                        .immediate_receive_into(scope, &mut buffer[..]),
                );
            }
            go(world, 0);
            let mut done = Vec::new();
            coll.wait_all(&mut done);
            for (index, status, _) in done {
                check!(
                    status.byte_count() == len_of(index),
                    "receive {index} got {} bytes",
                    status.byte_count()
                );
            }
        });
        for (i, buffer) in buffers.iter().enumerate() {
            check!(
                buffer[..len_of(i)].iter().all(|&x| x == i as u8),
                "receive {i} holds another message"
            );
        }
    } else if rank == 0 {
        wait_go(world, b);
        for i in 0..30 {
            world
                .process_at_rank(b)
                .send_with_tag(&vec![i as u8; len_of(i)][..], i as i32);
        }
    }
}

/// An immediate receive posted before a blocking one gets the first message.
fn irecv_first(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank == b {
        let (mut first, mut second) = (0u32, 0u32);
        request::scope(|scope| {
            let early = world
                .process_at_rank(0)
                .immediate_receive_into(scope, &mut first);
            go(world, 0);
            world.process_at_rank(0).receive_into(&mut second);
            early.wait();
        });
        check!(
            (first, second) == (1, 2),
            "irecv got {first}, recv got {second}"
        );
    } else if rank == 0 {
        wait_go(world, b);
        world.process_at_rank(b).send(&1u32);
        world.process_at_rank(b).send(&2u32);
    }
}

/// Truncation through a request surfaces at wait; zero-length messages.
fn truncate_and_empty(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank == 0 {
        let peer = world.process_at_rank(b);
        peer.send_with_tag(&[1u8; 64][..], 1);
        peer.send_with_tag(&vec![1u8; LARGE][..], 2);
        for tag in 3..7 {
            match tag {
                3 => peer.send_with_tag(&[0u8; 0][..], tag),
                4 => peer.synchronous_send_with_tag(&[0u8; 0][..], tag),
                5 => request::scope(|s| {
                    peer.immediate_send_with_tag(s, &[0u8; 0][..], tag).wait();
                }),
                _ => unsafe { peer.ready_send_with_tag(&[0u8; 0][..], tag) },
            }
        }
    } else if rank == b {
        for (tag, len) in [(1, 64usize), (2, LARGE)] {
            let mut small = [0u8; 8];
            let outcome = request::scope(|scope| {
                world
                    .any_process()
                    .immediate_receive_into_with_tag(scope, &mut small, tag)
                    .try_wait()
            });
            match outcome {
                Err(Error::Truncate {
                    sender: 0,
                    message_bytes,
                    buffer_bytes: 8,
                    ..
                }) if message_bytes == len => {}
                other => check!(false, "truncated request gave {other:?}"),
            }
        }
        for tag in 3..7 {
            let status = world
                .process_at_rank(0)
                .receive_into_with_tag(&mut [0u8; 0][..], tag);
            check!(
                status.byte_count() == 0 && status.tag() == tag,
                "zero-length message {tag}"
            );
        }
    }
}

/// Sends to self in every mode.
fn self_sends(universe: &mut Universe, world: &SimpleCommunicator) {
    let me = world.this_process();
    universe.set_buffer_size(LARGE + BSEND_OVERHEAD + 1000);
    for len in [0usize, 10, LARGE] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut buf = vec![0u8; len];
        request::scope(|scope| {
            let r = me.immediate_receive_into_with_tag(scope, &mut buf[..], 1);
            me.send_with_tag(&data[..], 1);
            r.wait();
        });
        check!(buf == data, "self send of {len}");
        me.buffered_send_with_tag(&data[..], 2);
        buf.fill(0);
        me.receive_into_with_tag(&mut buf[..], 2);
        check!(buf == data, "self bsend of {len}");
        request::scope(|scope| {
            let s = me.immediate_synchronous_send_with_tag(scope, &data[..], 3);
            check!(
                never_completes_while(|| s.is_complete()),
                "self issend completed before its receive"
            );
            let mut got = vec![0u8; len];
            me.receive_into_with_tag(&mut got[..], 3);
            s.wait();
            check!(got == data, "self ssend of {len}");
        });
        request::scope(|scope| {
            let r = me.immediate_receive_into_with_tag(scope, &mut buf[..], 4);
            unsafe { me.ready_send_with_tag(&data[..], 4) };
            r.wait();
        });
        let (v, _) = p2p::send_receive_with_tags::<u64, _, u64, _>(&(len as u64), &me, 5, &me, 5);
        check!(v == len as u64, "self sendrecv");
    }
    universe.detach_buffer();
}

/// Cancel of a posted receive; a later message goes to a later receive.
fn cancel(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank == b {
        let mut x = 0u32;
        let status = request::scope(|scope| {
            let r = world.any_process().immediate_receive_into(scope, &mut x);
            r.cancel();
            r.wait()
        });
        check!(
            status.is_cancelled(),
            "cancelled receive reported not cancelled"
        );
        go(world, 0);
        let (v, _) = world.process_at_rank(0).receive::<u32>();
        check!(
            v == 42 && x == 0,
            "after cancel got {v}, cancelled buffer {x}"
        );
    } else if rank == 0 {
        wait_go(world, b);
        world.process_at_rank(b).send(&42u32);
    }
}

/// 100,000 eager 1 KiB sends to a receiver that sleeps 3 s: all arrive in
/// order, and the receiver's memory stays bounded by the remote buffer.
fn flood(universe: &Universe, world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    const COUNT: u32 = 100_000;
    if rank == 0 {
        let mut message = [0u8; 1024];
        for i in 0..COUNT {
            message[..4].copy_from_slice(&i.to_le_bytes());
            world.process_at_rank(b).send(&message[..]);
        }
        let stats = universe.stats();
        check!(
            stats.eager_sends > 0 && stats.rendezvous_sends > 0,
            "flood protocol mix: {stats}"
        );
    } else if rank == b {
        std::thread::sleep(Duration::from_secs(3));
        let mut message = [0u8; 1024];
        for i in 0..COUNT {
            world.process_at_rank(0).receive_into(&mut message[..]);
            let got = u32::from_le_bytes([message[0], message[1], message[2], message[3]]);
            check!(got == i, "flood message {i} arrived as {got}");
        }
        let stats = universe.stats();
        check!(
            stats.unexpected_bytes_max <= stats.remote_buffer,
            "unexpected high-water {stats}"
        );
        let peak_kib = peak_rss_kib();
        check!(peak_kib < 64 * 1024, "peak resident memory {peak_kib} KiB");
        println!("flood: {stats}; peak RSS {peak_kib} KiB");
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// Both ranks exchange 64 MiB at once, with send_receive_into and with
/// immediate_send + receive_into + wait.
fn exchange_64mib(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank != 0 && rank != b {
        return;
    }
    let peer = world.process_at_rank(if rank == 0 { b } else { 0 });
    let len = 64 << 20;
    let mine = vec![rank as u8 + 1; len];
    let theirs = if rank == 0 { b as u8 + 1 } else { 1 };
    let mut buf = vec![0u8; len];
    p2p::send_receive_into(&mine[..], &peer, &mut buf[..], &peer);
    check!(
        buf.iter().all(|&x| x == theirs),
        "send_receive_into of 64 MiB"
    );
    buf.fill(0);
    request::scope(|scope| {
        let s = peer.immediate_send(scope, &mine[..]);
        peer.receive_into(&mut buf[..]);
        s.wait();
    });
    check!(
        buf.iter().all(|&x| x == theirs),
        "immediate_send + receive_into of 64 MiB"
    );
}

/// send_receive around a ring, small and large, and _replace: no deadlock.
fn sendrecv_ring(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    let right = world.process_at_rank((rank + 1) % size);
    let left = world.process_at_rank((rank + size - 1) % size);
    let left_rank = (rank + size - 1) % size;
    for len in [4usize, 1 << 20] {
        let mine = vec![rank as u8; len];
        let mut got = vec![0u8; len];
        let status = p2p::send_receive_into_with_tags(&mine[..], &right, 3, &mut got[..], &left, 3);
        check!(
            got.iter().all(|&x| x == left_rank as u8) && status.source_rank() == left_rank,
            "ring sendrecv {len}"
        );
        let mut replace = vec![rank as u8; len];
        p2p::send_receive_replace_into(&mut replace[..], &right, &left);
        check!(
            replace.iter().all(|&x| x == left_rank as u8),
            "ring sendrecv_replace {len}"
        );
    }
    let (v, _) = p2p::send_receive::<i32, _, _, _>(&rank, &right, &left);
    check!(v == left_rank, "send_receive value");
}

/// probe, immediate_probe, matched probes, PROC_NULL, invalid rank and tag.
fn probes_and_errors(world: &SimpleCommunicator) {
    let (rank, size, b) = (world.rank(), world.size(), world.size() - 1);
    let nobody = world.process_at_rank(PROC_NULL);
    nobody.send(&1u8);
    let status = nobody.receive_into(&mut [0u8; 4][..]);
    check!(
        status.source_rank() == PROC_NULL && status.byte_count() == 0,
        "PROC_NULL receive {status:?}"
    );
    match world.process_at_rank(size).try_send(&1u8) {
        Err(Error::InvalidRank { rank: r, size: s }) if r == size && s == size => {}
        other => check!(false, "send to rank {size} gave {other:?}"),
    }
    match world.process_at_rank(0).try_send_with_tag(&1u8, -5) {
        Err(Error::InvalidTag { tag: -5, .. }) => {}
        other => check!(false, "tag -5 gave {other:?}"),
    }
    if rank == 0 {
        wait_go(world, b);
        world
            .process_at_rank(b)
            .send_with_tag(&[1u32, 2, 3][..], 10);
        world
            .process_at_rank(b)
            .send_with_tag(&vec![4u32; LARGE / 4][..], 11);
    } else if rank == b {
        check!(
            world.any_process().immediate_probe_with_tag(10).is_none(),
            "iprobe found a message not sent yet"
        );
        go(world, 0);
        let status = world.any_process().probe_with_tag(10);
        check!(
            status.count(u32::equivalent_datatype()) == 3 && status.source_rank() == 0,
            "probe {status:?}"
        );
        let (message, status) = world.process_at_rank(0).matched_probe_with_tag(10);
        check!(status.byte_count() == 12, "mprobe");
        check!(
            world.any_process().immediate_probe_with_tag(10).is_none(),
            "a matched message is still visible"
        );
        let (values, _) = message.matched_receive_vec::<u32>();
        check!(values == [1, 2, 3], "mrecv {values:?}");
        let (message, status) = loop {
            if let Some(found) = world.any_process().immediate_matched_probe_with_tag(11) {
                break found;
            }
        };
        check!(status.byte_count() == LARGE, "improbe size");
        let mut large = vec![0u32; LARGE / 4];
        message.matched_receive_into(&mut large[..]);
        check!(large.iter().all(|&x| x == 4), "mrecv large");
    }
}

/// Several threads of each rank communicate at once (Threading::Multiple).
fn threads(world: &SimpleCommunicator) {
    let (rank, b) = (world.rank(), world.size() - 1);
    if rank != 0 && rank != b {
        return;
    }
    let peer_rank = if rank == 0 { b } else { 0 };
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let peer = world.process_at_rank(peer_rank);
                for i in 0..200u32 {
                    let len = if i % 50 == 0 { LARGE } else { 16 };
                    let mine = vec![(t * 10 + rank) as u8; len];
                    let mut got = vec![0u8; len];
                    p2p::send_receive_into_with_tags(&mine[..], &peer, t, &mut got[..], &peer, t);
                    check!(
                        got.iter().all(|&x| x == (t * 10 + peer_rank) as u8),
                        "thread {t} message {i}"
                    );
                }
            });
        }
    });
}

/// wait_any and the collection's test/wait forms.
fn collections(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    let right = world.process_at_rank((rank + 1) % size);
    let left = world.process_at_rank((rank + size - 1) % size);
    const N: usize = 64;
    let mut received = vec![0i32; N];
    let values: Vec<i32> = (0..N as i32).map(|i| rank * 1000 + i).collect();
    request::multiple_scope(2 * N, |scope, coll| {
        for v in received.iter_mut() {
            coll.add(left.immediate_receive_into(scope, v));
        }
        let mut sends = Vec::new();
        for v in &values {
            sends.push(right.immediate_send(scope, v));
        }
        let mut some = Vec::new();
        let mut completed = 0;
        while coll.incomplete() > 0 {
            coll.wait_some(&mut some);
            check!(!some.is_empty(), "wait_some returned nothing");
            completed += some.len();
        }
        check!(completed == N, "collection completed {completed}");
        while let Some((_, status)) = request::wait_any(&mut sends) {
            check!(status.byte_count() == 4, "send status");
        }
    });
    let left_rank = (rank + size - 1) % size;
    let expected: Vec<i32> = (0..N as i32).map(|i| left_rank * 1000 + i).collect();
    check!(received == expected, "collection receives out of order");
    let guarded = 5u8;
    request::scope(|scope| {
        let _guard = WaitGuard::from(world.this_process().immediate_send(scope, &guarded));
    });
    let (x, _) = world.this_process().receive::<u8>();
    check!(x == 5, "wait guard");
    let future = world.this_process().immediate_receive::<u64>();
    world.this_process().send(&77u64);
    check!(future.get().0 == 77, "receive future");
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let (mut universe, threading) =
        mpirt::initialize_with_threading(mpirt::Threading::Multiple).expect("initialized once");
    check!(
        threading == mpirt::Threading::Multiple,
        "threading level {threading:?}"
    );
    let world = universe.world();
    check!(
        world.size() >= 2 || ["self", "sendrecv-ring", "collections"].contains(&case.as_str()),
        "{case} needs 2 ranks"
    );
    match case.as_str() {
        "synchronous" => synchronous(&world),
        "standard" => standard(&world),
        "buffered" => buffered(&mut universe, &world),
        "non-overtaking" => non_overtaking(&world),
        "irecv-first" => irecv_first(&world),
        "truncate-empty" => truncate_and_empty(&world),
        "self" => self_sends(&mut universe, &world),
        "cancel" => cancel(&world),
        "flood" => flood(&universe, &world),
        "exchange-64mib" => exchange_64mib(&world),
        "sendrecv-ring" => sendrecv_ring(&world),
        "probes-errors" => probes_and_errors(&world),
        "threads" => threads(&world),
        "collections" => collections(&world),
        other => {
            eprintln!("semantics: unknown case {other:?}");
            std::process::exit(2);
        }
    }
    if world.rank() == 0 {
        println!("semantics {case}: ok at {} ranks", world.size());
    }
}
