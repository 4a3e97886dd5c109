//! Engines wired together in memory: frames move only when the test says,
//! so protocol rules are checked with any delivery order and no processes.

use super::*;

/// `n` engines and the frames in flight between them.
struct Network {
    engines: Vec<Engine>,
}

impl Network {
    fn new(n: i32, limits: Limits) -> Network {
        Network {
            engines: (0..n).map(|r| Engine::new(r, n, limits)).collect(),
        }
    }

    /// Moves one frame from `from` to `to`; returns whether there was one.
    fn step(&mut self, from: i32, to: i32) -> bool {
        let Some(t) = self.engines[from as usize].poll_transmit(to) else {
            return false;
        };
        let header = t.header;
        let receiver = &mut self.engines[to as usize];
        if header.kind == FrameKind::Data {
            let dest = receiver
                .data_destination(from, &header)
                .expect("data destination");
            // SAFETY: the destination is a posted receive's buffer of `len`
            // bytes; the payload is a live send buffer of the same length.
            unsafe {
                std::ptr::copy_nonoverlapping(t.payload.bytes().as_ptr(), dest.ptr, dest.len)
            };
            receiver.handle_data_done(&header);
        } else {
            receiver
                .handle_frame(from, &header, t.payload.bytes())
                .expect("frame accepted");
        }
        self.engines[from as usize].handle_transmitted(to, &header);
        true
    }

    /// Delivers everything, in every direction, until nothing moves.
    fn run(&mut self) {
        let n = self.engines.len() as i32;
        while (0..n)
            .flat_map(|a| (0..n).map(move |b| (a, b)))
            .fold(false, |moved, (a, b)| self.step(a, b) || moved)
        {}
    }
}

fn any(context: u32) -> Envelope {
    Envelope {
        context,
        source: None,
        tag: None,
    }
}

fn from(source: i32, tag: i32) -> Envelope {
    Envelope {
        context: 0,
        source: Some(source),
        tag: Some(tag),
    }
}

fn send(e: &mut Engine, to: i32, tag: i32, data: &[u8], mode: SendMode) -> RequestId {
    e.post_send(
        to,
        0,
        tag,
        SendData::Borrowed(UserBuffer::from_slice(data)),
        mode,
    )
}

#[test]
fn eager_message_arrives_before_and_after_receive_is_posted() {
    let mut net = Network::new(2, Limits::default());
    let early = send(&mut net.engines[0], 1, 5, b"early", SendMode::Standard);
    assert!(
        net.engines[0].take_outcome(early).unwrap().is_ok(),
        "a small standard send completes at once"
    );
    net.run();
    let mut buf = [0u8; 8];
    let r = net.engines[1].post_receive(from(0, 5), UserBuffer::from_mut_slice(&mut buf));
    let status = net.engines[1].take_outcome(r).unwrap().unwrap();
    assert_eq!((status.source, status.tag, status.bytes), (0, 5, 5));
    assert_eq!(&buf[..5], b"early");

    let mut buf2 = [0u8; 4];
    let r = net.engines[1].post_receive(any(0), UserBuffer::from_mut_slice(&mut buf2));
    assert!(!net.engines[1].is_complete(r));
    send(&mut net.engines[0], 1, 6, b"late", SendMode::Standard);
    net.run();
    assert_eq!(net.engines[1].take_outcome(r).unwrap().unwrap().tag, 6);
    assert_eq!(&buf2, b"late");
}

#[test]
fn messages_between_a_pair_do_not_overtake() {
    let limits = Limits {
        eager_limit: 16,
        remote_buffer: 4096,
    };
    let mut net = Network::new(2, limits);
    // Alternate eager and rendezvous messages; receives posted after arrival.
    let payloads: Vec<Vec<u8>> = (0..20u8)
        .map(|i| vec![i; if i % 2 == 0 { 4 } else { 40 }])
        .collect();
    for p in &payloads {
        send(&mut net.engines[0], 1, 0, p, SendMode::Standard);
    }
    net.run();
    for p in &payloads {
        let mut buf = vec![0u8; 64];
        let r = net.engines[1].post_receive(any(0), UserBuffer::from_mut_slice(&mut buf));
        net.run();
        let status = net.engines[1].take_outcome(r).unwrap().unwrap();
        assert_eq!(&buf[..status.bytes], &p[..]);
    }
}

#[test]
fn wildcard_receives_match_in_posting_order() {
    let mut net = Network::new(3, Limits::default());
    let mut bufs = [[0u8; 1]; 4];
    let ids: Vec<_> = bufs
        .iter_mut()
        .map(|b| net.engines[0].post_receive(any(0), UserBuffer::from_mut_slice(b)))
        .collect();
    send(&mut net.engines[2], 0, 9, b"a", SendMode::Standard);
    send(&mut net.engines[1], 0, 3, b"b", SendMode::Standard);
    send(&mut net.engines[1], 0, 4, b"c", SendMode::Standard);
    send(&mut net.engines[2], 0, 1, b"d", SendMode::Standard);
    for (from, to) in [(2, 0), (1, 0), (2, 0), (1, 0)] {
        assert!(net.step(from, to));
    }
    let got: Vec<_> = ids
        .iter()
        .map(|id| net.engines[0].take_outcome(*id).unwrap().unwrap())
        .collect();
    assert_eq!(bufs.concat(), b"abdc");
    let envelopes: Vec<_> = got.iter().map(|s| (s.source, s.tag)).collect();
    assert_eq!(envelopes, [(2, 9), (1, 3), (2, 1), (1, 4)]);
}

#[test]
fn rendezvous_reads_into_the_posted_buffer() {
    let limits = Limits {
        eager_limit: 8,
        remote_buffer: 1024,
    };
    let mut net = Network::new(2, limits);
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let s = send(&mut net.engines[0], 1, 1, &data, SendMode::Standard);
    net.run();
    assert!(
        !net.engines[0].is_complete(s),
        "a rendezvous send waits for its receive"
    );
    let mut buf = vec![0u8; 1000];
    let r = net.engines[1].post_receive(from(0, 1), UserBuffer::from_mut_slice(&mut buf));
    net.run();
    assert_eq!(net.engines[1].take_outcome(r).unwrap().unwrap().bytes, 1000);
    assert!(net.engines[0].take_outcome(s).unwrap().is_ok());
    assert_eq!(buf, data);
    assert_eq!(net.engines[0].stats().rendezvous_sends, 1);
}

#[test]
fn synchronous_send_completes_only_when_the_receive_starts() {
    let mut net = Network::new(2, Limits::default());
    let s = send(&mut net.engines[0], 1, 0, b"sync", SendMode::Synchronous);
    net.run();
    assert!(!net.engines[0].is_complete(s), "no receive posted yet");
    let mut buf = [0u8; 4];
    net.engines[1].post_receive(any(0), UserBuffer::from_mut_slice(&mut buf));
    assert!(
        !net.engines[0].is_complete(s),
        "the acknowledgement has not travelled yet"
    );
    net.run();
    assert!(net.engines[0].take_outcome(s).unwrap().is_ok());
}

#[test]
fn truncation_is_an_error_and_disturbs_nothing_else() {
    let limits = Limits {
        eager_limit: 8,
        remote_buffer: 1024,
    };
    let mut net = Network::new(2, limits);
    for (tag, len) in [(1, 6usize), (2, 100), (3, 2)] {
        send(
            &mut net.engines[0],
            1,
            tag,
            &vec![tag as u8; len],
            SendMode::Standard,
        );
    }
    net.run();
    let mut small = [0u8; 4];
    for tag in 1..=2 {
        let r = net.engines[1].post_receive(from(0, tag), UserBuffer::from_mut_slice(&mut small));
        net.run();
        match net.engines[1].take_outcome(r).unwrap() {
            Err(Error::Truncate {
                message_bytes,
                buffer_bytes: 4,
                ..
            }) => assert!(message_bytes > 4),
            other => panic!("expected truncation, got {other:?}"),
        }
    }
    let r = net.engines[1].post_receive(from(0, 3), UserBuffer::from_mut_slice(&mut small));
    assert_eq!(net.engines[1].take_outcome(r).unwrap().unwrap().bytes, 2);
    assert_eq!(&small[..2], &[3, 3]);
    assert_eq!(
        net.engines[0].pending_sends(),
        0,
        "the truncated rendezvous send still completed"
    );
}

#[test]
fn credits_bound_unexpected_memory_and_fall_back_to_rendezvous() {
    let limits = Limits {
        eager_limit: 100,
        remote_buffer: 1000,
    };
    let mut net = Network::new(2, limits);
    let payload = [7u8; 100];
    let sends: Vec<_> = (0..50)
        .map(|_| send(&mut net.engines[0], 1, 0, &payload, SendMode::Standard))
        .collect();
    net.run();
    let stats = net.engines[1].stats();
    assert!(
        stats.unexpected_bytes_max <= limits.remote_buffer,
        "{stats:?}"
    );
    let sender = net.engines[0].stats();
    assert_eq!(sender.eager_sends, 1000 / (100 + HEADER_LEN) as u64);
    assert_eq!(sender.eager_sends + sender.rendezvous_sends, 50);
    for _ in 0..50 {
        let mut buf = [0u8; 100];
        let r = net.engines[1].post_receive(any(0), UserBuffer::from_mut_slice(&mut buf));
        net.run();
        assert_eq!(net.engines[1].take_outcome(r).unwrap().unwrap().bytes, 100);
        assert_eq!(buf, payload);
    }
    for s in sends {
        assert!(net.engines[0].take_outcome(s).unwrap().is_ok());
    }
    // Credit came back: the next small send is eager again.
    let before = net.engines[0].stats().eager_sends;
    send(&mut net.engines[0], 1, 0, &payload, SendMode::Standard);
    assert_eq!(net.engines[0].stats().eager_sends, before + 1);
}

#[test]
fn a_sender_ignoring_credit_is_a_protocol_error() {
    let limits = Limits {
        eager_limit: 100,
        remote_buffer: 200,
    };
    let mut receiver = Engine::new(1, 2, limits);
    let mut h = Header::new(FrameKind::Eager, 0);
    h.length = 100;
    assert!(receiver.handle_frame(0, &h, &[0; 100]).is_ok());
    h.sequence = 1;
    assert!(matches!(
        receiver.handle_frame(0, &h, &[0; 100]),
        Err(Error::Protocol { peer: 0, .. })
    ));
}

#[test]
fn forged_and_out_of_order_frames_are_refused() {
    let mut e = Engine::new(1, 3, Limits::default());
    let mut h = Header::new(FrameKind::Eager, 2);
    assert!(
        e.handle_frame(0, &h, &[]).is_err(),
        "frame claiming another rank"
    );
    h.source = 0;
    h.sequence = 5;
    assert!(e.handle_frame(0, &h, &[]).is_err(), "sequence gap");
    let mut cts = Header::new(FrameKind::ClearToSend, 2);
    cts.sender_request = 12345;
    assert!(
        e.handle_frame(2, &cts, &[]).is_err(),
        "clear-to-send for no request"
    );
    let mut data = Header::new(FrameKind::Data, 2);
    data.sequence = 1;
    data.receiver_request = 1;
    assert!(e.data_destination(2, &data).is_err(), "data for no receive");
}

#[test]
fn sends_to_self_in_both_protocols() {
    let limits = Limits {
        eager_limit: 4,
        remote_buffer: 1024,
    };
    let mut net = Network::new(1, limits);
    let small = send(&mut net.engines[0], 0, 1, b"ab", SendMode::Synchronous);
    let big = send(&mut net.engines[0], 0, 2, b"abcdefgh", SendMode::Standard);
    let mut b1 = [0u8; 2];
    let mut b2 = [0u8; 8];
    let r2 = net.engines[0].post_receive(from(0, 2), UserBuffer::from_mut_slice(&mut b2));
    let r1 = net.engines[0].post_receive(from(0, 1), UserBuffer::from_mut_slice(&mut b1));
    net.run();
    for id in [small, big, r1, r2] {
        assert!(net.engines[0].take_outcome(id).unwrap().is_ok());
    }
    assert_eq!((&b1, &b2), (b"ab", b"abcdefgh"));
}

#[test]
fn zero_length_messages_match() {
    let mut net = Network::new(2, Limits::default());
    send(&mut net.engines[0], 1, 4, &[], SendMode::Standard);
    net.run();
    let r = net.engines[1].post_receive(
        any(0),
        UserBuffer {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        },
    );
    assert_eq!(net.engines[1].take_outcome(r).unwrap().unwrap().bytes, 0);
}

#[test]
fn cancel_removes_a_posted_receive() {
    let mut net = Network::new(2, Limits::default());
    let mut buf = [0u8; 1];
    let r = net.engines[1].post_receive(any(0), UserBuffer::from_mut_slice(&mut buf));
    assert!(net.engines[1].cancel(r));
    assert!(net.engines[1].take_outcome(r).unwrap().unwrap().cancelled);
    send(&mut net.engines[0], 1, 0, b"x", SendMode::Standard);
    net.run();
    assert!(
        net.engines[1].probe(&any(0)).is_some(),
        "the message went unexpected, not to the cancelled receive"
    );
}

#[test]
fn lost_peer_fails_what_waits_on_it() {
    let limits = Limits {
        eager_limit: 4,
        remote_buffer: 1024,
    };
    let mut net = Network::new(3, limits);
    let s = send(
        &mut net.engines[0],
        1,
        0,
        b"too big for eager",
        SendMode::Standard,
    );
    let mut buf = [0u8; 4];
    let r = net.engines[0].post_receive(from(1, 0), UserBuffer::from_mut_slice(&mut buf));
    let other = net.engines[0].post_receive(from(2, 0), UserBuffer::from_mut_slice(&mut [0u8; 1]));
    net.engines[0].handle_peer_lost(1, "connection reset");
    assert!(matches!(
        net.engines[0].take_outcome(s),
        Some(Err(Error::PeerLost { peer: 1, .. }))
    ));
    assert!(matches!(
        net.engines[0].take_outcome(r),
        Some(Err(Error::PeerLost { peer: 1, .. }))
    ));
    assert!(!net.engines[0].is_complete(other));
}

#[test]
fn finalize_exchanges_fin_both_ways() {
    let mut net = Network::new(3, Limits::default());
    for e in &mut net.engines {
        e.start_finalize();
        assert!(!e.finalize_done());
    }
    net.run();
    assert!(net.engines.iter().all(|e| e.finalize_done()));
}

#[test]
fn compact_eager_records_and_full_frames_share_one_sequence() {
    // A shared-memory link writes a small standard send as a compact record
    // (`eager_now` at the sender, `handle_eager` at the receiver) and other
    // frames whole: both count in one sequence per peer, so a full frame
    // after compact ones is still the frame due.
    let mut net = Network::new(2, Limits::default());
    let first = [1u8, 2, 3];
    assert!(net.engines[0].eager_now(1, first.len()));
    let envelope = EagerEnvelope {
        context: 0,
        tag: 5,
        flags: 0,
        sender_request: 0,
    };
    net.engines[1]
        .handle_eager(0, &envelope, &first)
        .expect("compact record accepted");
    let second = [9u8; 40];
    let ssend = send(&mut net.engines[0], 1, 6, &second, SendMode::Synchronous);
    net.run();
    let mut got = [0u8; 3];
    let r1 = net.engines[1].post_receive(from(0, 5), UserBuffer::from_mut_slice(&mut got));
    let mut got2 = [0u8; 40];
    let r2 = net.engines[1].post_receive(from(0, 6), UserBuffer::from_mut_slice(&mut got2));
    net.run();
    assert_eq!(net.engines[1].take_outcome(r1).unwrap().unwrap().bytes, 3);
    assert_eq!(net.engines[1].take_outcome(r2).unwrap().unwrap().bytes, 40);
    assert_eq!((got, got2), (first, second));
    // The synchronous send's acknowledgement found its request.
    assert!(net.engines[0].take_outcome(ssend).unwrap().is_ok());

    // A full frame that skips a compact record's sequence is refused.
    let mut net = Network::new(2, Limits::default());
    assert!(net.engines[0].eager_now(1, 1));
    send(&mut net.engines[0], 1, 7, &[0], SendMode::Standard);
    let t = net.engines[0].poll_transmit(1).expect("a frame");
    let refused = net.engines[1].handle_frame(0, &t.header, t.payload.bytes());
    assert!(
        matches!(refused, Err(Error::Protocol { peer: 0, .. })),
        "{refused:?}"
    );
}

#[test]
fn copy_bytes_copies_every_length_at_every_alignment() {
    let source: Vec<u8> = (1..=64).collect();
    for len in 0..=40 {
        for offset in 0..8 {
            let mut destination = [0u8; 64];
            // SAFETY: both regions hold `offset + len` bytes and are distinct.
            unsafe {
                copy_bytes(
                    source[offset..].as_ptr(),
                    destination[offset..].as_mut_ptr(),
                    len,
                )
            };
            assert_eq!(
                destination[offset..offset + len],
                source[offset..offset + len]
            );
            assert!(
                destination[..offset].iter().all(|&b| b == 0),
                "wrote before"
            );
            assert!(
                destination[offset + len..].iter().all(|&b| b == 0),
                "wrote past"
            );
        }
    }
}
