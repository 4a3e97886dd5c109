//! fault: one rank of the job faults on purpose, for the fault matrix
//! (`examples/tests/faults.rs`) and the stranger tests
//! (`examples/tests/strangers.rs`).
//!
//! Usage: fault CASE [try]
//!   start       the last rank kills itself with SIGKILL before initialize
//!               has finished (the others wait in start-up)
//!   receive     the last rank is SIGKILLed while the others block in a
//!               receive from it
//!   rendezvous  rank 0 streams 8 MiB messages to the last rank, which is
//!               SIGKILLed after the second, mid-transfer
//!   collective  every rank loops in allreduce; the last rank is SIGKILLed
//!               at round 50
//!   exit        the last rank exits with code 3 without finalizing
//!   panic       the last rank panics
//!   abort       the last rank calls abort(7)
//!   slowstart   no fault: every rank prints `fault: rank R starting pid P`
//!               before initialize, and the last rank sleeps 30 s before it,
//!               so the others wait in start-up with their segments named
//!               (for killing mpirun then)
//!   wait SECS   no fault: every rank prints its TCP listener
//!               (`fault: rank R listens on ADDR`), then the ranks exchange
//!               checksummed messages in a ring for SECS seconds, then
//!               check them (`fault: rank R ring ok after N laps`)
//!   pmi-junk    no fault: each rank writes malformed lines on its PMI
//!               connection and prints the replies; a child process tries
//!               the PMI descriptor (it must not have it); then a barrier
//!
//! Before its fault the victim prints `fault: rank R faulting at NANOS`
//! (nanoseconds since the Unix epoch), so the test measures from that
//! moment. With `try`, the survivors use the `Result` forms, block SIGTERM
//! (so they outlive mpirun's grace period long enough to be seen), and print
//! `fault: rank R got PeerLost: ...` when the operation that waited on the
//! dead rank returns `Error::PeerLost`.

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpirt::collective::SystemOperation;
use mpirt::error::Error;
use mpirt::traits::*;

/// Size of each message of the `rendezvous` case: far above any eager limit.
const LARGE: usize = 8 << 20;

/// Prints the marker the test measures from, and makes sure it is out.
fn announce(rank: i32) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!("fault: rank {rank} faulting at {nanos}");
    let _ = std::io::stdout().flush();
}

fn sigkill_self() -> ! {
    // SAFETY: kill(2) on our own pid; SIGKILL does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL is delivered before kill returns to user space for ourselves,
    // but be sure the victim never goes on.
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Keeps SIGTERM pending in this thread and those it starts later.
fn block_sigterm() {
    // SAFETY: a zeroed sigset_t is initialised by sigemptyset before use;
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// What a survivor in `try` mode reports about the operation that waited
/// on the victim.
fn report(rank: i32, result: Result<(), Error>) {
    match result {
        Err(e @ Error::PeerLost { .. }) => println!("fault: rank {rank} got PeerLost: {e}"),
        Err(e) => println!("fault: rank {rank} got another error: {e}"),
        Ok(()) => println!("fault: rank {rank} finished its operation"),
    }
    let _ = std::io::stdout().flush();
    // Stay until mpirun's SIGKILL: the job is being ended for the fault.
    std::thread::sleep(Duration::from_secs(60));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = args.first().map(String::as_str).unwrap_or("");
    let trying = args.iter().any(|a| a == "try");
    if trying {
        block_sigterm();
    }
    let size: i32 = std::env::var("PMI_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let my_rank: i32 = std::env::var("PMI_RANK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let victim = size - 1;
    if case == "start" && my_rank == victim {
        announce(my_rank);
        sigkill_self();
    }
    if case == "slowstart" {
        println!("fault: rank {my_rank} starting pid {}", std::process::id());
        let _ = std::io::stdout().flush();
        if my_rank == victim {
            std::thread::sleep(Duration::from_secs(30));
        }
    }
    let universe = mpirt::initialize().expect("mpirt initialized twice");
    let world = universe.world();
    let rank = world.rank();
    println!("fault: rank {rank} pid {}", std::process::id());
    let _ = std::io::stdout().flush();
    match case {
        "start" | "slowstart" => world.barrier(),
        "receive" | "exit" | "panic" | "abort" => {
            world.barrier();
            // The victim faults only once every survivor is past the
            // barrier: its own last barrier message may still be on its way
            // when its barrier returns, and a survivor still in the barrier
            // would fail there, not in the receive this case is about.
            const READY: i32 = 77;
            if rank == victim {
                for survivor in (0..world.size()).filter(|&r| r != victim) {
                    world
                        .process_at_rank(survivor)
                        .receive_with_tag::<u8>(READY);
                }
                announce(rank);
                match case {
                    "receive" => sigkill_self(),
                    "exit" => std::process::exit(3),
                    "panic" => panic!("fault: rank {rank} panics on purpose"),
                    _ => world.abort(7),
                }
            }
            let from_victim = world.process_at_rank(victim);
            from_victim.send_with_tag(&1u8, READY);
            if trying {
                report(rank, from_victim.try_receive::<u64>().map(|_| ()));
            } else {
                from_victim.receive::<u64>();
            }
        }
        "rendezvous" => {
            world.barrier();
            let to = world.process_at_rank(victim);
            if rank == victim {
                let mut buffer = vec![0u8; LARGE];
                for _ in 0..2 {
                    world.process_at_rank(0).receive_into(&mut buffer[..]);
                }
                announce(rank);
                sigkill_self();
            } else if rank == 0 {
                let message = vec![7u8; LARGE];
                for _ in 0..1000 {
                    if trying {
                        if let Err(e) = to.try_send(&message[..]) {
                            report(rank, Err(e));
                        }
                    } else {
                        to.send(&message[..]);
                    }
                }
            } else if trying {
                report(rank, to.try_receive::<u64>().map(|_| ()));
            } else {
                to.receive::<u64>();
            }
        }
        "collective" => {
            let mut sum = 0u64;
            for round in 0u64.. {
                if rank == victim && round == 50 {
                    announce(rank);
                    sigkill_self();
                }
                if trying {
                    if let Err(e) =
                        world.try_all_reduce_into(&round, &mut sum, SystemOperation::sum())
                    {
                        report(rank, Err(e));
                    }
                } else {
                    world.all_reduce_into(&round, &mut sum, SystemOperation::sum());
                }
                assert_eq!(sum, round * size as u64, "allreduce of round {round}");
            }
        }
        "wait" => {
            let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
            ring_for(&world, &universe, Duration::from_secs_f64(seconds));
        }
        "pmi-junk" => pmi_junk(&world),
        _ => {
            eprintln!("usage: fault start|receive|rendezvous|collective|exit|panic|abort [try] | wait SECS | pmi-junk");
            std::process::exit(2);
        }
    }
}

/// A checksum of a lap's message, so a stranger's bytes delivered as data
/// would show.
fn lap_message(from: i32, lap: u64) -> [u64; 4] {
    let seed = (from as u64) << 32 | lap;
    let mix = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    [from as u64, lap, mix, mix ^ 0xdead_beef]
}

/// Prints the listener, then passes messages around the ring until `length`
/// has passed on rank 0, checking each.
fn ring_for(
    world: &mpirt::topology::SimpleCommunicator,
    universe: &mpirt::Universe,
    length: Duration,
) {
    let (rank, size) = (world.rank(), world.size());
    match universe.listen_address() {
        Some(address) => println!("fault: rank {rank} listens on {address}"),
        None => println!("fault: rank {rank} listens nowhere"),
    }
    let _ = std::io::stdout().flush();
    world.barrier();
    let started = Instant::now();
    let next = world.process_at_rank((rank + 1) % size);
    let previous = world.process_at_rank((rank + size - 1) % size);
    let mut lap = 0u64;
    loop {
        // Rank 0 decides when to stop and tells the others with the lap.
        let mut go = [u64::from(started.elapsed() < length)];
        world.process_at_rank(0).broadcast_into(&mut go[..]);
        if go[0] == 0 {
            break;
        }
        let mine = lap_message(rank, lap);
        let mut theirs = [0u64; 4];
        if rank % 2 == 0 {
            next.send(&mine[..]);
            previous.receive_into(&mut theirs[..]);
        } else {
            previous.receive_into(&mut theirs[..]);
            next.send(&mine[..]);
        }
        let expected = lap_message(previous.rank(), lap);
        if theirs != expected {
            eprintln!("fault: rank {rank} lap {lap}: got {theirs:?}, expected {expected:?}");
            std::process::exit(4);
        }
        lap += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "fault: rank {rank} ring ok after {lap} laps in {:.3} s",
        started.elapsed().as_secs_f64()
    );
}

/// Writes malformed lines on this rank's PMI connection (a copy of the
/// descriptor in `PMI_FD`) and prints each reply; then checks that a child
/// process did not inherit the descriptor.
fn pmi_junk(world: &mpirt::topology::SimpleCommunicator) {
    let rank = world.rank();
    let fd: i32 = std::env::var("PMI_FD")
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("PMI_FD is set");
    // SAFETY: PMI_FD stays open for the life of the universe; we only
    // duplicate it, and the copy is closed when `pmi` drops.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut pmi = std::fs::File::from(borrowed.try_clone_to_owned().expect("dup PMI_FD"));
    let lines: [&[u8]; 4] = [
        b"hello there\n",
        b"\x00\xff\x01 binary\n",
        b"cmd=barrier_in extra words\n",
        b"=value\n",
    ];
    for line in lines {
        pmi.write_all(line).expect("write to PMI");
        let reply = read_reply(&mut pmi);
        println!("fault: rank {rank} pmi reply: {reply}");
    }
    // The descriptor is close-on-exec: a child cannot speak for this rank.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("[ -e /proc/self/fd/$PMI_FD ] && echo inherited || echo not-inherited")
        .output()
        .expect("run sh");
    println!(
        "fault: rank {rank} child: {} ({}; {})",
        String::from_utf8_lossy(&child.stdout).trim(),
        child.status,
        String::from_utf8_lossy(&child.stderr).trim()
    );
    let _ = std::io::stdout().flush();
    world.barrier();
    println!("fault: rank {rank} done");
}

/// One reply line, read a byte at a time so nothing after it is taken.
fn read_reply(pmi: &mut std::fs::File) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while pmi.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}
