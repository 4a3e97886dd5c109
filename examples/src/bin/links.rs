//! links: how each rank reaches each other rank (itself, shared memory or
//! TCP), then a check that data crosses every link intact.
//!
//! Each rank prints one line, `links: rank R on HOST: 0=self 1=shm 2=tcp
//! ...`, exchanges a 100 kB patterned message with every other rank (one
//! pair at a time, by rounds), and prints `links: rank R ok` when all
//! arrived intact; a corrupted message ends the job with code 3. The
//! multi-host test reads the lines to check which transport each pair chose.
use mpirt::point_to_point::send_receive_into;
use mpirt::traits::*;

/// Bytes from `from` to `to`, distinct per pair.
fn pattern(from: i32, to: i32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 ^ (from as u32 * 73 + to as u32 * 151)) as u8)
        .collect()
}

fn main() {
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let links: Vec<String> = universe
        .peer_links()
        .iter()
        .enumerate()
        .map(|(peer, link)| format!("{peer}={}", link.name()))
        .collect();
    println!(
        "links: rank {rank} on {}: {}",
        mpirt::processor_name(),
        links.join(" ")
    );
    const LEN: usize = 100_000;
    for round in 1..size {
        let to = (rank + round) % size;
        let from = (rank + size - round) % size;
        let message = pattern(rank, to, LEN);
        let mut buffer = vec![0u8; LEN];
        send_receive_into(
            &message[..],
            &world.process_at_rank(to),
            &mut buffer[..],
            &world.process_at_rank(from),
        );
        if buffer != pattern(from, rank, LEN) {
            eprintln!("links: rank {rank}: the message from rank {from} arrived corrupted");
            world.abort(3);
        }
    }
    world.barrier();
    println!("links: rank {rank} ok");
}
