//! ring: a token travels around all ranks a number of laps; every rank adds
//! its rank to it, and rank 0 checks the sum after each lap.
//!
//! Usage: ring [LAPS]   (default 10)
use mpirt::traits::*;

fn main() {
    let laps: u64 = std::env::args()
        .nth(1)
        .map_or(10, |a| a.parse().expect("LAPS must be a number"));
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let next = world.process_at_rank((rank + 1) % size);
    let previous = world.process_at_rank((rank + size - 1) % size);
    let per_lap: u64 = (0..size as u64).sum();
    let mut token = 0u64;
    for lap in 1..=laps {
        if rank == 0 {
            next.send(&token);
            let (t, _) = previous.receive::<u64>();
            token = t;
            if token != lap * per_lap {
                eprintln!(
                    "ring: lap {lap}: token is {token}, expected {}",
                    lap * per_lap
                );
                world.abort(2);
            }
        } else {
            let (t, _) = previous.receive::<u64>();
            token = t + rank as u64;
            next.send(&token);
        }
    }
    if rank == 0 {
        println!("ring: {laps} laps around {size} ranks, token {token}: ok");
    }
}
