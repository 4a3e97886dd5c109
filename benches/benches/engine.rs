//! criterion benchmarks of the I/O-free layers: wire header encode/decode,
//! and the engine's matching cost with 1, 100 and 10,000 posted receives or
//! unexpected messages in the queue ahead of the one that matches.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use mpirt::engine::{Engine, Envelope, Limits, SendData, SendMode, UserBuffer};
use mpirt::wire::{FrameKind, Header, HEADER_LEN};

fn wire(c: &mut Criterion) {
    let mut header = Header::new(FrameKind::Eager, 3);
    header.tag = 42;
    header.length = 8;
    c.bench_function("wire/encode", |b| {
        let mut out = [0u8; HEADER_LEN];
        b.iter(|| black_box(&header).encode(&mut out));
    });
    let bytes = header.to_bytes();
    c.bench_function("wire/decode", |b| {
        b.iter(|| Header::decode(black_box(&bytes), 1 << 20))
    });
}

/// An eager frame from rank 0 with `tag`, as the engine of rank 1 sees it.
fn frame(sequence: u64, tag: i32) -> Header {
    let mut h = Header::new(FrameKind::Eager, 0);
    h.sequence = sequence;
    h.tag = tag;
    h.length = 8;
    h
}

fn matching(c: &mut Criterion) {
    let limits = Limits {
        eager_limit: 64,
        remote_buffer: 1 << 30,
    };
    let mut group = c.benchmark_group("matching");
    for depth in [1usize, 100, 10_000] {
        // `depth - 1` posted receives for another tag sit ahead of the match.
        group.bench_with_input(
            BenchmarkId::new("posted_receives", depth),
            &depth,
            |b, &depth| {
                let mut engine = Engine::new(1, 2, limits);
                let mut sink = vec![0u8; 8 * depth];
                for chunk in sink.chunks_mut(8).take(depth - 1) {
                    engine.post_receive(
                        Envelope {
                            context: 0,
                            source: Some(0),
                            tag: Some(1),
                        },
                        UserBuffer::from_mut_slice(chunk),
                    );
                }
                let mut target = [0u8; 8];
                let mut sequence = 0;
                b.iter(|| {
                    let id = engine.post_receive(
                        Envelope {
                            context: 0,
                            source: Some(0),
                            tag: Some(2),
                        },
                        UserBuffer::from_mut_slice(&mut target),
                    );
                    engine
                        .handle_frame(0, &frame(sequence, 2), &[7; 8])
                        .expect("frame");
                    sequence += 1;
                    engine.take_outcome(id).expect("matched").expect("ok");
                    while engine.poll_transmit(0).is_some() {}
                });
            },
        );
        // `depth - 1` unexpected messages of another tag sit ahead.
        group.bench_with_input(
            BenchmarkId::new("unexpected_messages", depth),
            &depth,
            |b, &depth| {
                let mut engine = Engine::new(1, 2, limits);
                for sequence in 0..depth as u64 - 1 {
                    engine
                        .handle_frame(0, &frame(sequence, 1), &[0; 8])
                        .expect("frame");
                }
                let mut sequence = depth as u64 - 1;
                let mut target = [0u8; 8];
                b.iter(|| {
                    engine
                        .handle_frame(0, &frame(sequence, 2), &[7; 8])
                        .expect("frame");
                    sequence += 1;
                    let id = engine.post_receive(
                        Envelope {
                            context: 0,
                            source: Some(0),
                            tag: Some(2),
                        },
                        UserBuffer::from_mut_slice(&mut target),
                    );
                    engine.take_outcome(id).expect("matched").expect("ok");
                    while engine.poll_transmit(0).is_some() {}
                });
            },
        );
    }
    group.finish();
}

fn send_to_self(c: &mut Criterion) {
    let mut engine = Engine::new(0, 1, Limits::default());
    let message = [1u8; 8];
    c.bench_function("engine/post_eager_send", |b| {
        b.iter(|| {
            let id = engine.post_send(
                0,
                0,
                0,
                SendData::Borrowed(UserBuffer::from_slice(&message)),
                SendMode::Standard,
            );
            engine.take_outcome(id);
            while let Some(t) = engine.poll_transmit(0) {
                engine.handle_transmitted(0, &t.header);
            }
        })
    });
}

criterion_group! {
    name = benches;
    // Short runs: these are nanosecond-scale loops, and every bench target
    // together must finish in a few minutes on two cores.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = wire, matching, send_to_self
}
criterion_main!(benches);
