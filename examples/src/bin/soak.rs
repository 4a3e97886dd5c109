//! soak: a long, random, checked load. Every rank sends messages of random
//! size (0 B to 1 MiB, mostly small), tag and mode (standard, synchronous,
//! buffered, immediate) to random peers; every rank receives them with
//! specific and wildcard sources and tags. Every payload
//! carries its sender, tag, a per-(sender, tag) sequence number and a
//! checksum (a message under 32 B, too short for that, is the front of its
//! 32-byte form and the receiver rebuilds it whole); every length is checked
//! against the plan; at the end each rank checks it received exactly what
//! was sent to it, in order per sender and tag.
//!
//! All ranks derive the same plan from the seed, so each knows what it will
//! receive, and posts all of a round's receives before its sends (so no
//! blocking send of any mode can wait on a receive that is never posted).
//! Rounds repeat until `--messages` per rank are sent, or, with `--seconds`,
//! until rank 0's clock says stop (agreed by an all-reduce).
//!
//! Each rank ends by printing its counts and its peak resident memory
//! (`VmHWM`); rank 0 prints the totals.
//!
//! Usage: soak [--messages N] [--seconds S] [--seed X] [--max-size BYTES]
use std::collections::{HashMap, VecDeque};

use mpirt::collective::SystemOperation;
use mpirt::request;
use mpirt::traits::*;
use mpirt::{Error, BSEND_OVERHEAD};

const TAGS: u32 = 8;
const ROUND: usize = 64;
const HEADER: usize = 24;

struct Options {
    messages: usize,
    seconds: Option<f64>,
    seed: u64,
    max_size: usize,
}

fn options() -> Options {
    let mut o = Options {
        messages: 2000,
        seconds: None,
        seed: 1,
        max_size: 1 << 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&a));
        match a.as_str() {
            "--messages" => o.messages = value().parse().unwrap_or_else(|_| usage("--messages")),
            "--seconds" => o.seconds = Some(value().parse().unwrap_or_else(|_| usage("--seconds"))),
            "--seed" => o.seed = value().parse().unwrap_or_else(|_| usage("--seed")),
            "--max-size" => o.max_size = value().parse().unwrap_or_else(|_| usage("--max-size")),
            _ => usage(&a),
        }
    }
    o
}

fn usage(at: &str) -> ! {
    eprintln!("soak: bad argument near {at:?}; usage: soak [--messages N] [--seconds S] [--seed X] [--max-size BYTES]");
    std::process::exit(2)
}

/// SplitMix64: small, seeded, the same on every rank.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One planned message.
#[derive(Clone, Copy)]
struct Planned {
    from: i32,
    to: i32,
    tag: u32,
    len: usize,
    mode: u64,
}

/// Round `round`'s messages: ROUND per rank, the same list on every rank.
fn plan(seed: u64, round: u64, size: i32, max_size: usize) -> Vec<Planned> {
    let mut r = Random(seed ^ round.wrapping_mul(0xA076_1D64_78BD_642F));
    let mut out = Vec::new();
    for from in 0..size {
        for _ in 0..ROUND {
            // Sizes: mostly small, some eager-sized, a few large.
            let len = match r.below(100) {
                0..=69 => r.below(1024) as usize,
                70..=94 => r.below(64 * 1024) as usize,
                _ => r.below(max_size as u64 + 1) as usize,
            }
            .min(max_size);
            out.push(Planned {
                from,
                to: r.below(size as u64) as i32,
                tag: r.below(TAGS as u64) as u32,
                len,
                mode: r.below(4),
            });
        }
    }
    out
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Payload: sender, tag, sequence, then pseudo-random bytes, then the
/// checksum of everything before it. A message shorter than that (down to
/// 0 B) is the front of its 32-byte form; the receiver rebuilds it whole.
fn payload(m: &Planned, sequence: u64) -> Vec<u8> {
    if m.len < HEADER + 8 {
        let mut full = payload(
            &Planned {
                len: HEADER + 8,
                ..*m
            },
            sequence,
        );
        full.truncate(m.len);
        return full;
    }
    let mut bytes = Vec::with_capacity(m.len);
    bytes.extend_from_slice(&(m.from as u32).to_le_bytes());
    bytes.extend_from_slice(&m.tag.to_le_bytes());
    bytes.extend_from_slice(&sequence.to_le_bytes());
    let mut r = Random(sequence ^ ((m.from as u64) << 40) ^ ((m.tag as u64) << 32));
    while bytes.len() < m.len - 8 {
        bytes.push(r.next() as u8);
    }
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

fn fail(message: String) -> ! {
    eprintln!("soak: FAILED: {message}");
    std::process::exit(1)
}

/// How one pre-posted receive names its message.
#[derive(Clone, Copy)]
enum Selector {
    /// Source and tag.
    Exact(i32, u32),
    /// Source, any tag.
    Source(i32),
    /// Any source, any tag.
    Any,
}

/// Checks one received message and its place in its (sender, tag) order.
/// `planned` holds, per (sender, tag), the lengths of this round's messages
/// not yet received, in sending order.
fn verify(
    data: &[u8],
    sender: i32,
    tag: u32,
    next: &mut HashMap<(i32, u32), u64>,
    planned: &mut HashMap<(i32, u32), VecDeque<usize>>,
) {
    let len = data.len();
    let Some(planned_len) = planned
        .get_mut(&(sender, tag))
        .and_then(VecDeque::pop_front)
    else {
        fail(format!(
            "unplanned message of {len} bytes from rank {sender} tag {tag}"
        ));
    };
    if len != planned_len {
        fail(format!(
            "message from rank {sender} tag {tag} has {len} bytes where {planned_len} were sent"
        ));
    }
    if len < HEADER + 8 {
        // Too short to carry its own header: rebuild what was sent.
        let due = next.entry((sender, tag)).or_insert(0);
        let sent = payload(
            &Planned {
                from: sender,
                to: 0,
                tag,
                len,
                mode: 0,
            },
            *due,
        );
        if data != sent {
            fail(format!(
                "short message of {len} bytes from rank {sender} tag {tag} (sequence {due}) differs from what was sent"
            ));
        }
        *due += 1;
        return;
    }
    let sum = u64::from_le_bytes(data[len - 8..].try_into().expect("8 bytes"));
    if checksum(&data[..len - 8]) != sum {
        fail(format!(
            "corrupt message from rank {sender} tag {tag} ({len} bytes)"
        ));
    }
    let header_from = u32::from_le_bytes(data[0..4].try_into().expect("4")) as i32;
    let header_tag = u32::from_le_bytes(data[4..8].try_into().expect("4"));
    let sequence = u64::from_le_bytes(data[8..16].try_into().expect("8"));
    if (header_from, header_tag) != (sender, tag) {
        fail(format!(
            "status says rank {sender} tag {tag}, payload says rank {header_from} tag {header_tag}"
        ));
    }
    let due = next.entry((sender, tag)).or_insert(0);
    if sequence != *due {
        fail(format!(
            "from rank {sender} tag {tag}: sequence {sequence} arrived where {due} was due"
        ));
    }
    *due += 1;
}

fn main() {
    let o = options();
    let mut universe = mpirt::initialize().expect("initialized once");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    universe.set_buffer_size(4 * ((1 << 20) + BSEND_OVERHEAD));
    let start = mpirt::time();
    let mut sent_sequence: HashMap<(i32, u32), u64> = HashMap::new();
    let mut received_next: HashMap<(i32, u32), u64> = HashMap::new();
    // What the plan says this rank is due, per (sender, tag), and in bytes.
    let mut expected_next: HashMap<(i32, u32), u64> = HashMap::new();
    let mut expected_bytes = 0u64;
    let (mut sent, mut sent_bytes, mut received, mut received_bytes, mut rounds) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut fallbacks = 0u64;
    loop {
        let messages = plan(o.seed, rounds, size, o.max_size);
        // Every receive of the round is posted before any send, in plan
        // order, so blocking sends of every mode always find their receive:
        // a third name their source and tag, a third only their source, a
        // third neither.
        let incoming: Vec<&Planned> = messages.iter().filter(|m| m.to == rank).collect();
        let mut planned: HashMap<(i32, u32), VecDeque<usize>> = HashMap::new();
        for m in &incoming {
            planned.entry((m.from, m.tag)).or_default().push_back(m.len);
            *expected_next.entry((m.from, m.tag)).or_insert(0) += 1;
            expected_bytes += m.len as u64;
        }
        // A receive may take any message it accepts (a wildcard posted
        // earlier can take another's), so each is sized for the largest.
        let widest = |accepts: &dyn Fn(&Planned) -> bool| {
            incoming
                .iter()
                .filter(|m| accepts(m))
                .map(|m| m.len)
                .max()
                .unwrap_or(0)
        };
        let selectors: Vec<(Selector, usize)> = incoming
            .iter()
            .enumerate()
            .map(|(i, m)| match i % 3 {
                0 => (
                    Selector::Exact(m.from, m.tag),
                    widest(&|o| (o.from, o.tag) == (m.from, m.tag)),
                ),
                1 => (Selector::Source(m.from), widest(&|o| o.from == m.from)),
                _ => (Selector::Any, widest(&|_| true)),
            })
            .collect();
        // Posting exact receives first, then source-only, then wildcards
        // lets every message find one: per sender, what the exact receives
        // leave over exactly fills the source-only ones, and what those leave
        // fills the wildcards. (A wildcard posted before an exact receive
        // could take its message and strand another.) Within each class,
        // plan order: each (sender, tag) still counts up in posting order.
        let mut selectors = selectors;
        selectors.sort_by_key(|(selector, _)| match selector {
            Selector::Exact(..) => 0,
            Selector::Source(_) => 1,
            Selector::Any => 2,
        });
        let mut buffers: Vec<Vec<u8>> = selectors.iter().map(|&(_, len)| vec![0u8; len]).collect();
        let statuses = request::multiple_scope(buffers.len(), |scope, receives| {
            for ((selector, _), buffer) in selectors.iter().zip(buffers.iter_mut()) {
                receives.add(match *selector {
                    Selector::Exact(from, tag) => world
                        .process_at_rank(from)
                        .immediate_receive_into_with_tag(scope, &mut buffer[..], tag as i32),
                    Selector::Source(from) => world
                        .process_at_rank(from)
                        .immediate_receive_into(scope, &mut buffer[..]),
                    Selector::Any => world
                        .any_process()
                        .immediate_receive_into(scope, &mut buffer[..]),
                });
            }
            for m in messages.iter().filter(|m| m.from == rank) {
                let sequence = sent_sequence.entry((m.to, m.tag)).or_insert(0);
                let data = payload(m, *sequence);
                *sequence += 1;
                let peer = world.process_at_rank(m.to);
                let tag = m.tag as i32;
                match m.mode {
                    0 => peer.send_with_tag(&data[..], tag),
                    1 => peer.synchronous_send_with_tag(&data[..], tag),
                    2 => match peer.try_buffered_send_with_tag(&data[..], tag) {
                        Ok(()) => {}
                        Err(Error::BufferExhausted { .. }) => {
                            fallbacks += 1;
                            peer.send_with_tag(&data[..], tag);
                        }
                        Err(e) => fail(format!("buffered send to rank {}: {e}", m.to)),
                    },
                    _ => request::scope(|scope| {
                        peer.immediate_send_with_tag(scope, &data[..], tag).wait();
                    }),
                }
                sent += 1;
                sent_bytes += data.len() as u64;
            }
            let mut done = Vec::new();
            receives.wait_all(&mut done);
            let mut statuses: Vec<_> = done
                .into_iter()
                .map(|(index, status, _)| (index, status))
                .collect();
            statuses.sort_by_key(|(index, _)| *index);
            statuses
        });
        // In posting order, each (sender, tag) must count up without gaps.
        for (index, status) in statuses {
            let len = status.byte_count();
            verify(
                &buffers[index][..len],
                status.source_rank(),
                status.tag() as u32,
                &mut received_next,
                &mut planned,
            );
            received += 1;
            received_bytes += len as u64;
        }
        rounds += 1;
        // Rank 0 decides whether another round runs; the all-reduce also
        // keeps rounds apart (nobody starts one before all finished the last).
        let mine = (rank == 0
            && match o.seconds {
                Some(limit) => (mpirt::time() - start) < limit,
                None => (rounds as usize) * ROUND < o.messages,
            }) as u8;
        let mut go_on = 0u8;
        world.all_reduce_into(&mine, &mut go_on, SystemOperation::max());
        if go_on == 0 {
            break;
        }
    }
    universe.detach_buffer();
    // Exactly what was sent to this rank: every (sender, tag) stream
    // complete (order was checked on receipt), not a byte more or less.
    if received_next != expected_next || received_bytes != expected_bytes {
        let mut short: Vec<_> = expected_next
            .iter()
            .filter(|(k, n)| received_next.get(k) != Some(n))
            .map(|(k, n)| (*k, *n, received_next.get(k).copied().unwrap_or(0)))
            .collect();
        short.sort();
        fail(format!(
            "rank {rank} received {received_bytes} B where {expected_bytes} B were due; \
             (sender, tag), due, received: {short:?}"
        ));
    }
    // Totals over all ranks: what was sent is what was received.
    let mine = [sent, sent_bytes, received, received_bytes];
    let mut totals = [0u64; 4];
    world.all_reduce_into(&mine[..], &mut totals[..], SystemOperation::sum());
    if totals[0] != totals[2] || totals[1] != totals[3] {
        fail(format!(
            "sent {} messages ({} B) but received {} ({} B)",
            totals[0], totals[1], totals[2], totals[3]
        ));
    }
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_default();
    println!("soak: rank {rank}: sent {sent} ({sent_bytes} B), received {received} ({received_bytes} B), {fallbacks} buffered fell back; peak RSS {peak}");
    world.barrier();
    if rank == 0 {
        println!(
            "soak: ok: {} rounds, {} messages, {} bytes in {:.1} s at {size} ranks",
            rounds,
            totals[0],
            totals[1],
            mpirt::time() - start
        );
    }
}
