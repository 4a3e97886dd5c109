//! bench-partner: rank 1 of the criterion benches that run a two-rank job
//! (`benches/benches/job_*.rs`), whose rank 0 is the bench process itself.
//! It does what rank 0 tells it (see `mpirt_benches::partner`) until told
//! to stop.
use mpirt::topology::Communicator;

fn main() {
    let universe = mpirt::try_initialize().unwrap_or_else(|e| {
        eprintln!("bench-partner: cannot start mpirt: {e}");
        std::process::exit(1);
    });
    let world = universe.world();
    if (world.rank(), world.size()) != (1, 2) {
        eprintln!(
            "bench-partner: runs as rank 1 of 2, not rank {} of {}",
            world.rank(),
            world.size()
        );
        std::process::exit(2);
    }
    if let Err(message) = mpirt_benches::partner::follow(&world) {
        eprintln!("bench-partner: {message}");
        std::process::exit(1);
    }
}
