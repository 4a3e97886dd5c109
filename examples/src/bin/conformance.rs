//! conformance: named point-to-point cases that check their own results.
//! The multi-process tests (`examples/tests/`) run each case through the
//! launcher at several rank counts and over each transport; every rank
//! exits non-zero with a line on stderr when something is wrong.
//!
//! Usage: conformance CASE
//!   all-pairs    every rank sends every rank (itself too) messages of
//!                eager and rendezvous sizes and checks what it receives
//!   any-source   rank 0 receives from ANY_SOURCE with ANY_TAG; per-sender
//!                order must hold
//!   order        10,000 messages of mixed tags and sizes from rank 0 to the
//!                last rank, received by specific and by wildcard tags
//!   big          a 64 MiB message from rank 0 to the last rank
//!   truncate     messages longer than the receive buffer give `Truncate`
//!                and disturb nothing after them
//!   strangers    rank 1 knocks at rank 0's port with random bytes, a frame
//!                without handshake, a wrong token and a stalled handshake;
//!                then everyone exchanges data as usual
//!   kill         the last rank kills itself with SIGKILL while others wait
//!   exit-early   the last rank exits (code 0) before initializing
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mpirt::topology::SimpleCommunicator;
use mpirt::traits::*;
use mpirt::{Error, Universe};

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            eprintln!("conformance: FAILED: {}", format!($($fmt)*));
            std::process::exit(1);
        }
    };
}

/// Deterministic bytes for a message: who sent it, to whom, which one.
fn pattern(from: i32, to: i32, index: usize, len: usize) -> Vec<u8> {
    let seed = (from as usize * 131 + to as usize * 31 + index * 7) as u8;
    (0..len)
        .map(|i| seed.wrapping_add(i as u8).wrapping_mul(3))
        .collect()
}

fn all_pairs(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    let sizes = [0usize, 1, 100, 70_000, 300_000];
    for (index, &len) in sizes.iter().enumerate() {
        // Pairwise exchange by rounds: in round r, send to rank+r and receive
        // from rank-r, the lower rank of each pair sending first.
        for round in 0..size {
            let to = (rank + round) % size;
            let from = (rank + size - round) % size;
            let message = pattern(rank, to, index, len);
            let mut buffer = vec![0u8; len];
            if round == 0 {
                // Self: small messages only block nobody; large ones would
                // wait for a receive this rank has not posted yet.
                if len <= 100 {
                    world.process_at_rank(rank).send(&message[..]);
                    world.process_at_rank(rank).receive_into(&mut buffer[..]);
                } else {
                    continue;
                }
            } else if rank < gcd(size, round) {
                // Round `round` splits the ranks into cycles rank -> rank+round;
                // the lowest rank of each cycle receives first, so blocking
                // rendezvous sends unwind instead of waiting in a circle.
                world.process_at_rank(from).receive_into(&mut buffer[..]);
                world.process_at_rank(to).send(&message[..]);
            } else {
                world.process_at_rank(to).send(&message[..]);
                world.process_at_rank(from).receive_into(&mut buffer[..]);
            }
            check!(
                buffer == pattern(from, rank, index, len),
                "rank {rank}: {len}-byte message from rank {from} corrupted"
            );
        }
    }
}

fn gcd(a: i32, b: i32) -> i32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn any_source(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    const PER_SENDER: i32 = 20;
    if rank == 0 {
        let mut next = vec![0i32; size as usize];
        for _ in 0..PER_SENDER * (size - 1) {
            let (value, status) = world.any_process().receive::<i32>();
            let from = status.source_rank();
            check!(
                (1..size).contains(&from),
                "rank 0: message from unexpected rank {from}"
            );
            let expected = next[from as usize];
            check!(
                value == expected && status.tag() == 100 + expected,
                "rank 0: from rank {from} got {value} tag {} after {expected}",
                status.tag()
            );
            next[from as usize] += 1;
        }
    } else {
        for i in 0..PER_SENDER {
            world.process_at_rank(0).send_with_tag(&i, 100 + i);
        }
    }
}

fn order(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    let receiver = size - 1;
    const TAGS: i32 = 7;
    const BATCH: usize = 50;
    const TOTAL: usize = 10_000;
    let len_of = |i: usize| (i * 37) % 900;
    let tag_of = |i: usize| (i % TAGS as usize) as i32;
    for batch in 0..TOTAL / BATCH {
        let first = batch * BATCH;
        if rank == 0 {
            for i in first..first + BATCH {
                let mut message = (i as u32).to_le_bytes().to_vec();
                message.resize(4 + len_of(i), i as u8);
                world
                    .process_at_rank(receiver)
                    .send_with_tag(&message[..], tag_of(i));
            }
        }
        if rank == receiver {
            let mut buffer = vec![0u8; 1024];
            let expect = |status: mpirt::point_to_point::Status, buffer: &[u8], i: usize| {
                let got = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
                check!(
                    got == i && status.tag() == tag_of(i) && status.byte_count() == 4 + len_of(i),
                    "order: expected message {i}, got {got} (tag {})",
                    status.tag()
                );
            };
            if batch % 2 == 0 {
                // Specific tags, highest first: each tag's messages in order.
                for tag in (0..TAGS).rev() {
                    for i in (first..first + BATCH).filter(|&i| tag_of(i) == tag) {
                        let status = world
                            .process_at_rank(0)
                            .receive_into_with_tag(&mut buffer[..], tag);
                        expect(status, &buffer, i);
                    }
                }
            } else {
                for i in first..first + BATCH {
                    let status = world.any_process().receive_into(&mut buffer[..]);
                    expect(status, &buffer, i);
                }
            }
        }
    }
}

fn big(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    check!(size > 1, "big needs 2 ranks");
    let len = 64 << 20;
    if rank == 0 {
        world
            .process_at_rank(size - 1)
            .send(&pattern(0, size - 1, 0, len)[..]);
    } else if rank == size - 1 {
        let (data, status) = world.process_at_rank(0).receive_vec::<u8>();
        check!(
            status.byte_count() == len,
            "big: got {} bytes",
            status.byte_count()
        );
        check!(
            data == pattern(0, size - 1, 0, len),
            "big: 64 MiB message corrupted"
        );
    }
}

fn truncate(world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    let receiver = size - 1;
    let lengths: &[usize] = if size > 1 { &[100, 1 << 20] } else { &[100] };
    if rank == 0 {
        for &len in lengths {
            world
                .process_at_rank(receiver)
                .send_with_tag(&vec![7u8; len][..], 1);
            world
                .process_at_rank(receiver)
                .send_with_tag(&[1u8, 2, 3][..], 2);
        }
    }
    if rank == receiver {
        for &len in lengths {
            let mut small = [0u8; 10];
            match world
                .process_at_rank(0)
                .try_receive_into_with_tag(&mut small[..], 1)
            {
                Err(Error::Truncate {
                    sender: 0,
                    tag: 1,
                    message_bytes,
                    buffer_bytes: 10,
                }) => {
                    check!(
                        message_bytes == len,
                        "truncate: reported {message_bytes} bytes, sent {len}"
                    )
                }
                other => check!(
                    false,
                    "truncate: {len}-byte message into 10 bytes gave {other:?}"
                ),
            }
            let mut next = [0u8; 3];
            let status = world
                .process_at_rank(0)
                .receive_into_with_tag(&mut next[..], 2);
            check!(
                next == [1, 2, 3] && status.byte_count() == 3,
                "truncate: the message after it was disturbed"
            );
        }
    }
}

/// Opens a raw connection, writes `bytes`, and waits for the rank to close it.
fn knock(address: SocketAddr, bytes: &[u8], expect_close: bool) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(address).expect("connect to rank 0");
    stream.write_all(bytes).expect("write to rank 0");
    if !expect_close {
        return Some(stream);
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut sink = [0u8; 64];
    let closed = matches!(stream.read(&mut sink), Ok(0) | Err(_));
    check!(
        closed,
        "strangers: rank 0 did not close a stranger's connection"
    );
    None
}

fn strangers(universe: &Universe, world: &SimpleCommunicator) {
    let (rank, size) = (world.rank(), world.size());
    check!(size > 1, "strangers needs 2 ranks");
    if rank == 0 {
        let address = universe
            .listen_address()
            .expect("rank 0 listens")
            .to_string();
        world.process_at_rank(1).send(address.as_bytes());
    }
    let mut stalled = None;
    if rank == 1 {
        let (text, _) = world.process_at_rank(0).receive_vec::<u8>();
        let address: SocketAddr = String::from_utf8(text)
            .expect("address")
            .parse()
            .expect("address");
        let random: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        knock(address, &random, true);
        // A well-formed eager frame claiming to be rank 1, without handshake.
        let mut frame = mpirt::wire::Header::new(mpirt::wire::FrameKind::Eager, 1);
        frame.tag = 77;
        frame.length = 4;
        let mut bytes = frame.to_bytes().to_vec();
        bytes.extend_from_slice(b"evil");
        knock(address, &bytes, true);
        // A handshake with a wrong token, then the same frame.
        let wrong = mpirt::wire::handshake::Handshake {
            token: [0xAB; 16],
            rank: 1,
            size,
        };
        let mut bytes = wrong.encode().to_vec();
        bytes.extend_from_slice(&frame.to_bytes());
        knock(address, &bytes, true);
        // Half a handshake, then silence: must not stall rank 0.
        stalled = knock(address, &wrong.encode()[..10], false);
    }
    // Everyone sends rank 0 one message with tag 1; nothing else may arrive.
    if rank == 0 {
        let mut from = vec![false; size as usize];
        for _ in 1..size {
            let (value, status) = world.any_process().receive::<i32>();
            check!(
                status.tag() == 1 && value == status.source_rank() * 1000,
                "strangers: rank 0 got {value} tag {} from {}",
                status.tag(),
                status.source_rank()
            );
            from[status.source_rank() as usize] = true;
        }
        check!(
            from.iter().skip(1).all(|&f| f),
            "strangers: a rank's message is missing"
        );
    } else {
        world.process_at_rank(0).send_with_tag(&(rank * 1000), 1);
    }
    drop(stalled);
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    if case == "exit-early" {
        let rank: i32 = std::env::var("PMI_RANK")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let size: i32 = std::env::var("PMI_SIZE")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        if rank == size - 1 {
            std::process::exit(0);
        }
    }
    let universe = mpirt::initialize().expect("initialized once");
    let world = universe.world();
    match case.as_str() {
        "all-pairs" => all_pairs(&world),
        "any-source" => any_source(&world),
        "order" => order(&world),
        "big" => big(&world),
        "truncate" => truncate(&world),
        "strangers" => strangers(&universe, &world),
        "exit-early" => {
            // Rank size-1 never arrives: this receive can only end when the
            // launcher ends the job.
            world.process_at_rank(world.size() - 1).receive::<u8>();
        }
        "kill" => {
            let victim = world.size() - 1;
            if world.rank() == victim {
                std::thread::sleep(Duration::from_millis(200));
                kill_self();
            }
            world.process_at_rank(victim).receive::<u8>();
        }
        other => {
            eprintln!("conformance: unknown case {other:?}");
            std::process::exit(2);
        }
    }
    if world.rank() == 0 {
        println!("conformance {case}: ok at {} ranks", world.size());
    }
}

/// Kills this process with SIGKILL (as `kill -9` from outside would).
fn kill_self() {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::thread::sleep(Duration::from_secs(60));
}
