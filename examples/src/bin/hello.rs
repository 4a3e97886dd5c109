//! hello: every rank says who and where it is.
use mpirt::traits::*;

fn main() {
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    println!(
        "hello from rank {} of {} on {}",
        world.rank(),
        world.size(),
        mpirt::processor_name()
    );
}
