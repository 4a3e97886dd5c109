//! criterion benches of a two-rank job over TCP: ping-pong latency at 8 B,
//! 4 KiB and 1 MiB, and all-reduce of 8 B and 1 MiB. This bench process is
//! rank 0 and `bench-partner` rank 1 (see `job/mod.rs`).

mod job;

fn main() {
    let mut criterion = job::criterion();
    let mut bench = job::BenchJob::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_bench-partner")),
        launcher::Transport::Tcp,
    );
    job::pingpong(&mut criterion, &mut bench, "tcp");
    job::all_reduce(&mut criterion, &mut bench, "tcp");
    criterion.final_summary();
    bench.finish();
}
