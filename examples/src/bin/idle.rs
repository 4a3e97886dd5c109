//! idle: ranks that wait, for the shared-memory tests (`examples/tests/shm.rs`).
//!
//! Usage: idle CASE [ARG]
//!   wait SECS   rank 0 sleeps SECS seconds, then sends a byte to every other
//!               rank; the others block in a receive meanwhile and print the
//!               CPU time (utime + stime from /proc/self/stat) it cost:
//!               `idle: rank R waited W s using C cpu-seconds`
//!   kill        rank 0 streams 4 MiB messages to the last rank, which kills
//!               itself with SIGKILL after the third, mid-transfer
//!   hang        everyone exchanges a message, then waits forever (for a job
//!               ended by mpirun's --timeout)
use std::time::{Duration, Instant};

use mpirt::traits::*;

/// This process's CPU seconds so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold
    // spaces): state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks_per_second()
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// `sysconf(_SC_CLK_TCK)` (`_SC_CLK_TCK` is 2 on Linux).
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads its argument.
    let ticks = unsafe { sysconf(2) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    match args.first().map(String::as_str) {
        Some("wait") => {
            let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
            world.barrier_by_messages();
            if rank == 0 {
                std::thread::sleep(Duration::from_secs_f64(seconds));
                for peer in 1..size {
                    world.process_at_rank(peer).send(&1u8);
                }
            } else {
                let (cpu, wall) = (cpu_seconds(), Instant::now());
                world.process_at_rank(0).receive::<u8>();
                println!(
                    "idle: rank {rank} waited {:.3} s using {:.3} cpu-seconds",
                    wall.elapsed().as_secs_f64(),
                    cpu_seconds() - cpu
                );
            }
        }
        Some("kill") => {
            let victim = size - 1;
            let message = vec![7u8; 4 << 20];
            if rank == 0 {
                for _ in 0..1000 {
                    world.process_at_rank(victim).send(&message[..]);
                }
            } else if rank == victim {
                let mut buffer = vec![0u8; 4 << 20];
                for _ in 0..3 {
                    world.process_at_rank(0).receive_into(&mut buffer[..]);
                }
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &std::process::id().to_string()])
                    .status();
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        Some("hang") => {
            world.barrier_by_messages();
            if rank == 0 {
                println!("idle: hanging");
            }
            world.process_at_rank((rank + 1) % size).receive::<u8>();
        }
        _ => {
            eprintln!("usage: idle wait SECS | kill | hang");
            std::process::exit(2);
        }
    }
}

/// Every rank has initialized and exchanged a message with rank 0.
trait BarrierByMessages {
    fn barrier_by_messages(&self);
}

impl BarrierByMessages for mpirt::topology::SimpleCommunicator {
    fn barrier_by_messages(&self) {
        if self.rank() == 0 {
            for peer in 1..self.size() {
                self.process_at_rank(peer).receive::<u8>();
            }
            for peer in 1..self.size() {
                self.process_at_rank(peer).send(&0u8);
            }
        } else {
            self.process_at_rank(0).send(&0u8);
            self.process_at_rank(0).receive::<u8>();
        }
    }
}
