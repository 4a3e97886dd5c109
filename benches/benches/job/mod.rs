//! A two-rank job whose rank 0 is this bench process, and the criterion
//! benches that time it (shared by `job_shm.rs` and `job_tcp.rs`).
//!
//! The bench process plays the launcher for a job of two: it serves PMI-1
//! with the launcher's own [`PmiServer`] on a thread, starts `bench-partner`
//! as rank 1 with the launcher's [`spawn_rank`] (so rank 1 gets `PMI_FD`,
//! its own process group, and SIGKILL if this process dies), and becomes
//! rank 0 itself by pointing `PMI_FD` at the other end of a socket pair
//! before it initializes mpirt. Criterion then drives rank 0 directly, with
//! no process in between, while rank 1 follows its commands
//! (`mpirt_benches::partner`).
//!
//! mpirt initializes once per process, so each transport is its own bench
//! target (its own process).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use launcher::pmi_server::{Action, PmiServer};
use launcher::spawn::{spawn_rank, RankCommand};
use launcher::Transport;
use mpirt::bootstrap::pmi::read_line;
use mpirt_benches::partner::{Command, Driver};

/// Ranks of the job: this process and its partner.
const RANKS: usize = 2;

/// Criterion settings that keep every bench target to well under a minute
/// on two cores (the command line can still override them).
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// The running job, seen from rank 0.
pub struct BenchJob {
    /// Dropped (finalizing mpirt) in [`BenchJob::finish`].
    universe: Option<mpirt::Universe>,
    driver: Option<Driver>,
    partner: Child,
}

impl BenchJob {
    /// Starts rank 1 (`partner`, a path) and makes this process rank 0,
    /// both told to use `transport`.
    pub fn start(partner: &Path, transport: Transport) -> BenchJob {
        let (rank0_pmi, rank0_server_end) = UnixStream::pair().expect("a socket pair");
        let command = RankCommand {
            program: partner.to_path_buf(),
            arg0: "bench-partner".into(),
            args: Vec::new(),
            env: vec![("MPIRT_TRANSPORT".into(), transport.env_value().into())],
        };
        // Spawned by the main thread, which lives as long as the benches:
        // the partner's death signal is tied to the thread that forked it.
        let mut spawned = spawn_rank(&command, 1, RANKS, None)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", partner.display()));
        for stream in [
            spawned
                .child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            spawned
                .child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            forward_output(stream);
        }
        serve_pmi(vec![rank0_server_end, spawned.pmi]);

        // This process becomes rank 0 of the job: mpirt reads these at
        // initialization, and takes the descriptor over.
        std::env::remove_var("PMI_PORT");
        std::env::set_var("PMI_FD", rank0_pmi.into_raw_fd().to_string());
        std::env::set_var("PMI_RANK", "0");
        std::env::set_var("PMI_SIZE", RANKS.to_string());
        std::env::set_var("MPIRT_TRANSPORT", transport.env_value());
        let universe = mpirt::try_initialize()
            .unwrap_or_else(|e| panic!("rank 0 (this bench) cannot start mpirt: {e}"));
        let driver = Driver::new(universe.world());
        BenchJob {
            universe: Some(universe),
            driver: Some(driver),
            partner: spawned.child,
        }
    }

    /// Rank 0's driver.
    pub fn driver(&mut self) -> &mut Driver {
        self.driver.as_mut().expect("the job is running")
    }

    /// Tells the partner to stop, finalizes and waits for the partner.
    pub fn finish(mut self) {
        if let Some(driver) = self.driver.take() {
            driver.quit();
        }
        drop(self.universe.take());
        let status = self.partner.wait().expect("waiting for bench-partner");
        assert!(status.success(), "bench-partner ended with {status}");
    }
}

/// Copies the partner's output to this process's stderr, line by line.
fn forward_output(stream: Box<dyn Read + Send>) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("[bench-partner] {line}");
        }
    });
}

/// Serves PMI-1 to both ranks (`connections[rank]`) on helper threads, with
/// the launcher's server state machine, until both connections close.
fn serve_pmi(connections: Vec<UnixStream>) {
    let (lines, requests) = mpsc::channel::<(usize, Option<Vec<u8>>)>();
    let mut writers = Vec::new();
    for (rank, stream) in connections.into_iter().enumerate() {
        writers.push(Some(stream.try_clone().expect("a PMI socket clone")));
        let lines = lines.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            while let Ok(Some(line)) = read_line(&mut reader) {
                if lines.send((rank, Some(line))).is_err() {
                    return;
                }
            }
            let _ = lines.send((rank, None));
        });
    }
    drop(lines);
    thread::spawn(move || {
        let mut server = PmiServer::new(RANKS, &format!("kvs_bench_{}", std::process::id()));
        // Ends when both readers have hung up.
        for (rank, line) in requests {
            let Some(line) = line else {
                // A rank closes its connection only as it exits: one that
                // leaves mid-session, or while the other waits in a fence,
                // would leave this process waiting forever.
                writers[rank] = None;
                if let Some(fault) = server.handle_exit(rank) {
                    eprintln!("bench PMI server: the job cannot go on: {fault:?}");
                    std::process::exit(1);
                }
                continue;
            };
            for action in server.handle_line(rank, &line) {
                match action {
                    Action::Reply { rank, line } => {
                        if let Some(writer) = &mut writers[rank] {
                            if let Err(e) = writer.write_all(line.encode().as_bytes()) {
                                eprintln!("bench PMI server: cannot answer rank {rank}: {e}");
                            }
                        }
                    }
                    Action::Log { rank, message } => {
                        eprintln!("bench PMI server: rank {rank}: {message}")
                    }
                    Action::Close { rank, reason } => {
                        eprintln!("bench PMI server: closing rank {rank}: {reason}");
                        writers[rank] = None;
                    }
                    Action::Abort {
                        rank,
                        code,
                        message,
                    } => {
                        // Ending this process ends the partner too (its death signal).
                        eprintln!(
                            "bench PMI server: rank {rank} aborted the job with code {code}: {}",
                            message.unwrap_or_default()
                        );
                        std::process::exit(if code == 0 { 1 } else { code });
                    }
                    Action::Fault(fault) => {
                        eprintln!("bench PMI server: the job cannot go on: {fault:?}");
                        std::process::exit(1);
                    }
                }
            }
        }
    });
}

/// A short name for a message size: `8B`, `4KiB`, `1MiB`.
fn size_name(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// Ping-pong latency at 8 B, 4 KiB and 1 MiB: criterion's time per
/// iteration is the one-way latency (half a round trip), as OSU reports it,
/// and its throughput the bytes moved one way per second.
pub fn pingpong(c: &mut Criterion, job: &mut BenchJob, transport: &str) {
    let mut group = c.benchmark_group(format!("{transport}/pingpong"));
    for bytes in [8usize, 4 << 10, 1 << 20] {
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::from_parameter(size_name(bytes)), |b| {
            b.iter_custom(|iterations| {
                job.driver().time(Command::PingPong { bytes, iterations }) / 2
            })
        });
    }
    group.finish();
}

/// All-reduce (sum of f64) of 8 B and 1 MiB over the two ranks: time per
/// call at rank 0.
pub fn all_reduce(c: &mut Criterion, job: &mut BenchJob, transport: &str) {
    let mut group = c.benchmark_group(format!("{transport}/allreduce"));
    for bytes in [8usize, 1 << 20] {
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::from_parameter(size_name(bytes)), |b| {
            b.iter_custom(|iterations| {
                job.driver().time(Command::AllReduce {
                    elements: bytes / 8,
                    iterations,
                })
            })
        });
    }
    group.finish();
}
