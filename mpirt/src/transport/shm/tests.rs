//! Two engines joined by two shm links inside one process: every record
//! kind, both large-message paths and the refused single copy, with rings
//! small enough to fill.

use super::*;
use crate::engine::{Envelope, Limits, SendData, SendMode};

struct Pair {
    engines: [Engine; 2],
    links: [ShmLink; 2],
}

impl Pair {
    fn new(settings: ShmSettings, limits: Limits) -> Pair {
        let capacity = segment::ring_capacity(settings.ring_bytes, limits.eager_limit, 2);
        let segments = [
            Arc::new(Segment::create(2, capacity).unwrap()),
            Arc::new(Segment::create(2, capacity).unwrap()),
        ];
        let pid = std::process::id();
        let link = |me: usize| {
            let peer = 1 - me;
            ShmLink::new(
                me,
                peer,
                pid,
                segments[me].clone(),
                segments[peer].clone(),
                settings,
                limits.remote_buffer,
            )
        };
        Pair {
            engines: [Engine::new(0, 2, limits), Engine::new(1, 2, limits)],
            links: [link(0), link(1)],
        }
    }

    /// Pumps both links until nothing moves.
    fn run(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for me in 0..2 {
                let peer = 1 - me as i32;
                let (engine, link) = (&mut self.engines[me], &mut self.links[me]);
                moved |= link.exchange(peer, engine).unwrap();
            }
            if !moved {
                return;
            }
        }
        panic!("still moving after 100,000 rounds");
    }
}

fn limits() -> Limits {
    Limits {
        eager_limit: 1024,
        remote_buffer: 64 * 1024,
    }
}

fn settings(copy: CopyPath) -> ShmSettings {
    ShmSettings {
        copy,
        ring_bytes: 8192,
        cma_threshold: 100_000,
        chunk: 1000,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Sends messages of `sizes` from 0 to 1, all posted before any receive, and
/// checks each arrives whole.
fn exchange(pair: &mut Pair, sizes: &[usize]) {
    let messages: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(n, i as u8))
        .collect();
    let mut buffers: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
    let sends: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mode = if i % 3 == 0 {
                SendMode::Synchronous
            } else {
                SendMode::Standard
            };
            pair.engines[0].post_send(
                1,
                0,
                i as i32,
                SendData::Borrowed(UserBuffer::from_slice(m)),
                mode,
            )
        })
        .collect();
    pair.run();
    let receives: Vec<_> = buffers
        .iter_mut()
        .enumerate()
        .map(|(i, b)| {
            pair.engines[1].post_receive(
                Envelope {
                    context: 0,
                    source: Some(0),
                    tag: Some(i as i32),
                },
                UserBuffer::from_mut_slice(b),
            )
        })
        .collect();
    pair.run();
    for (i, id) in receives.into_iter().enumerate() {
        let status = pair.engines[1]
            .take_outcome(id)
            .expect("receive done")
            .unwrap();
        assert_eq!(status.bytes, sizes[i]);
        assert!(
            buffers[i] == messages[i],
            "message {i} of {} bytes differs",
            sizes[i]
        );
    }
    for id in sends {
        assert!(pair.engines[0].take_outcome(id).expect("send done").is_ok());
    }
}

const SIZES: [usize; 9] = [0, 1, 8, 40, 1024, 1025, 5000, 100_000, 300_000];

#[test]
fn every_size_arrives_through_the_pipeline() {
    exchange(
        &mut Pair::new(settings(CopyPath::Pipeline), limits()),
        &SIZES,
    );
}

#[test]
fn every_size_arrives_by_single_copy() {
    exchange(&mut Pair::new(settings(CopyPath::Cma), limits()), &SIZES);
}

#[test]
fn auto_mixes_both_paths() {
    exchange(&mut Pair::new(settings(CopyPath::Auto), limits()), &SIZES);
}

#[test]
fn refused_single_copy_falls_back_to_the_pipeline() {
    let mut pair = Pair::new(settings(CopyPath::Cma), limits());
    pair.links[1].refuse_cma = true;
    exchange(&mut pair, &SIZES);
    assert!(pair.links[0].cma_refused && pair.links[1].cma_refused);
    // And later messages go straight down the pipeline.
    exchange(&mut pair, &SIZES);
}

#[test]
fn a_flood_larger_than_the_ring_waits_in_the_link() {
    let mut pair = Pair::new(settings(CopyPath::Auto), limits());
    // 200 eager messages: far more than an 8 KiB ring holds; credits
    // (64 KiB) still allow them all to be sent.
    exchange(&mut pair, &[1000; 40]);
    exchange(&mut pair, &[1; 200]);
}

#[test]
fn a_corrupt_record_is_a_lost_link_not_a_panic() {
    let mut pair = Pair::new(settings(CopyPath::Auto), limits());
    let mut slot = pair.links[0].outbound.reserve(HEADER_LEN).unwrap();
    slot.body()[..HEADER_LEN].copy_from_slice(&[0xee; HEADER_LEN]);
    pair.links[0].outbound.commit(slot, HEADER_LEN, FRAME, 0);
    let mut slot = pair.links[0].outbound.reserve(4).unwrap();
    slot.body()[..4].copy_from_slice(&[1; 4]);
    pair.links[0].outbound.commit(slot, 4, 99, 0);
    let (engine, link) = (&mut pair.engines[1], &mut pair.links[1]);
    assert!(matches!(link.receive(0, engine), Err(LinkError::Lost(_))));
}

#[test]
#[ignore]
fn software_cost_per_message() {
    let mut pair = Pair::new(settings(CopyPath::Auto), limits());
    let message = [1u8; 8];
    let mut buffer = [0u8; 8];
    let n = 1_000_000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        let r = pair.engines[1].post_receive(
            Envelope {
                context: 0,
                source: Some(0),
                tag: Some(1),
            },
            UserBuffer::from_mut_slice(&mut buffer),
        );
        let s = pair.engines[0].post_send(
            1,
            0,
            1,
            SendData::Borrowed(UserBuffer::from_slice(&message)),
            SendMode::Standard,
        );
        pair.links[0].flush(1, &mut pair.engines[0]).unwrap();
        pair.links[1].receive(0, &mut pair.engines[1]).unwrap();
        pair.links[1].flush(0, &mut pair.engines[1]).unwrap();
        pair.links[0].receive(1, &mut pair.engines[0]).unwrap();
        pair.engines[0].take_outcome(s).unwrap().unwrap();
        pair.engines[1].take_outcome(r).unwrap().unwrap();
    }
    eprintln!("{:?} per message", started.elapsed() / n);
}
