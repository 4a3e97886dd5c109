//! The fault matrix: one rank of a job faults (SIGKILL during start-up, in a
//! blocking receive, mid-way through a large rendezvous transfer, inside an
//! allreduce loop; exit(3) without finalizing; a panic; abort(7)), over tcp
//! and shared memory, at 3 and 5 ranks. Each time the job must end within
//! 2 s of the fault, with the right exit code and a message naming the rank
//! and the cause, no process of the job left, and no segment of the job left
//! in `/dev/shm`. Then `mpirun` itself is killed with SIGKILL: every rank
//! must be gone within 2 s, leaving nothing. With `try`, ranks blocked on
//! the dead one get `Error::PeerLost` from the `Result` forms.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use launcher::{Failure, Outcome, Transport};

/// The bound from the fault to the end of the job.
const PROMPT: Duration = Duration::from_secs(2);

/// Jobs here run one at a time: survivors in `try` mode must report within
/// mpirun's 300 ms grace, which two jobs at once on 2 cores can eat.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the job must end with for a case.
struct Expected {
    exit_code: i32,
    /// Words the failure line must hold besides the rank.
    cause: &'static str,
}

fn expected(case: &str) -> Expected {
    match case {
        "exit" => Expected {
            exit_code: 3,
            cause: "exited with code 3",
        },
        "panic" => Expected {
            exit_code: 101,
            cause: "panicked",
        },
        "abort" => Expected {
            exit_code: 7,
            cause: "called abort with code 7",
        },
        // Killed by SIGKILL: 128 + 9, as a shell reports it.
        _ => Expected {
            exit_code: 128 + 9,
            cause: "SIGKILL",
        },
    }
}

/// Runs `fault CASE` at `ranks` ranks and checks everything the issue asks
/// of a job that lost a rank.
fn check_fault(case: &str, ranks: usize, transport: Transport) -> Outcome {
    let outcome = fault_job(&[case], ranks, transport)
        .run()
        .expect("the job starts");
    let ended = now_nanos();
    let context = format!("case {case}, {ranks} ranks, {transport:?}");
    let victim = ranks - 1;
    let report = outcome.report();

    // Promptly: from the victim's marker to Job::run returning.
    let fault = fault_moment(&outcome.stdout[victim])
        .unwrap_or_else(|| panic!("{context}: the victim printed no marker\n{report}"));
    let after = Duration::from_nanos(ended.saturating_sub(fault) as u64);
    assert!(
        after < PROMPT,
        "{context}: the job ended {after:?} after the fault\n{report}"
    );

    // The right code and a message naming the rank and the cause.
    let want = expected(case);
    assert_eq!(outcome.exit_code, want.exit_code, "{context}\n{report}");
    let failure = outcome.failure.as_ref().expect("the job failed");
    assert_eq!(failure.rank(), Some(victim), "{context}\n{report}");
    let message = outcome.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("rank {victim} ")) && message.contains(want.cause),
        "{context}: message {message:?} should name rank {victim} and {:?}\n{report}",
        want.cause
    );
    if want.cause == "SIGKILL" {
        assert!(
            matches!(failure, Failure::Signaled { signal: 9, .. }),
            "{context}: {failure:?}"
        );
    }

    // Nothing left: no process, no segment.
    let pids: Vec<u32> = outcome.ranks.iter().map(|r| r.pid).collect();
    assert_eq!(
        still_alive(&pids),
        Vec::<u32>::new(),
        "{context}: processes of the job remain\n{report}"
    );
    let left = segments_of(&pids);
    assert!(
        left.is_empty(),
        "{context}: left in /dev/shm: {left:?}\n{report}"
    );
    eprintln!("{context}: ended {after:?} after the fault: {message}");
    outcome
}

macro_rules! fault_matrix {
    ($($name:ident: $case:literal, $transport:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let _one = one_at_a_time();
                for ranks in [3, 5] {
                    check_fault($case, ranks, $transport);
                }
            }
        )*
    };
}

fault_matrix! {
    sigkill_at_start_up_over_tcp: "start", Transport::Tcp;
    sigkill_at_start_up_over_shm: "start", Transport::Shm;
    sigkill_in_a_receive_over_tcp: "receive", Transport::Tcp;
    sigkill_in_a_receive_over_shm: "receive", Transport::Shm;
    sigkill_mid_rendezvous_over_tcp: "rendezvous", Transport::Tcp;
    sigkill_mid_rendezvous_over_shm: "rendezvous", Transport::Shm;
    sigkill_in_allreduce_over_tcp: "collective", Transport::Tcp;
    sigkill_in_allreduce_over_shm: "collective", Transport::Shm;
    exit_3_without_finalize_over_tcp: "exit", Transport::Tcp;
    exit_3_without_finalize_over_shm: "exit", Transport::Shm;
    panic_over_tcp: "panic", Transport::Tcp;
    panic_over_shm: "panic", Transport::Shm;
    abort_7_over_tcp: "abort", Transport::Tcp;
    abort_7_over_shm: "abort", Transport::Shm;
}

/// Survivors that waited on the dead rank in a `try_` call print what it
/// returned; every one of `waiting` must have got `PeerLost`.
fn check_peer_lost(case: &str, transport: Transport, waiting: &[usize]) {
    let outcome = check_fault_try(case, transport);
    let report = outcome.report();
    // Every one of them, within mpirun's 300 ms grace. (Over TCP this found
    // a rank that missed a peer's end of stream when the peer's last frame
    // and its close came in one epoll edge.)
    for &rank in waiting {
        let said = outcome.stdout_text(rank);
        assert!(
            said.contains(&format!("fault: rank {rank} got PeerLost: lost rank 2")),
            "case {case} {transport:?}: rank {rank} did not report PeerLost\n{report}"
        );
    }
    for rank in 0..2 {
        let said = outcome.stdout_text(rank);
        assert!(
            !said.contains("another error") && !said.contains("finished its operation"),
            "case {case} {transport:?}: rank {rank}\n{report}"
        );
    }
}

fn check_fault_try(case: &str, transport: Transport) -> Outcome {
    let outcome = fault_job(&[case, "try"], 3, transport)
        .run()
        .expect("the job starts");
    let report = outcome.report();
    assert_eq!(
        outcome.failure.as_ref().and_then(Failure::rank),
        Some(2),
        "{report}"
    );
    let pids: Vec<u32> = outcome.ranks.iter().map(|r| r.pid).collect();
    assert!(still_alive(&pids).is_empty(), "{report}");
    assert!(segments_of(&pids).is_empty(), "{report}");
    outcome
}

#[test]
fn blocked_receivers_get_peer_lost_over_tcp() {
    let _one = one_at_a_time();
    check_peer_lost("receive", Transport::Tcp, &[0, 1]);
    check_peer_lost("exit", Transport::Tcp, &[0, 1]);
    check_peer_lost("rendezvous", Transport::Tcp, &[0, 1]);
}

#[test]
fn blocked_receivers_get_peer_lost_over_shm() {
    let _one = one_at_a_time();
    check_peer_lost("receive", Transport::Shm, &[0, 1]);
    check_peer_lost("exit", Transport::Shm, &[0, 1]);
    check_peer_lost("rendezvous", Transport::Shm, &[0, 1]);
}

#[test]
fn a_rank_in_allreduce_gets_peer_lost() {
    let _one = one_at_a_time();
    for transport in [Transport::Tcp, Transport::Shm] {
        let outcome = check_fault_try("collective", transport);
        let reported = (0..2)
            .filter(|&r| outcome.stdout_text(r).contains("got PeerLost: lost rank"))
            .count();
        assert!(
            reported >= 1,
            "{transport:?}: no survivor reported PeerLost\n{}",
            outcome.report()
        );
    }
}

/// Kills `mpirun` with SIGKILL while its ranks run, and checks that every
/// rank is gone within 2 s, leaving no segment.
fn kill_mpirun(transport: &str) {
    let mut mpirun = Command::new(mpirun())
        .args(["-n", "3", "--transport", transport, "--timeout", "60"])
        .arg(fault_program())
        .args(["wait", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mpirun");
    let stdout = mpirun.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut pids = Vec::new();
    let mut listening = 0;
    let deadline = Instant::now() + DEADLINE;
    while (pids.len() < 3 || listening < 3) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(pid) = line
            .strip_prefix("fault: rank ")
            .and_then(|l| l.split_once(" pid "))
            .and_then(|(_, p)| p.trim().parse::<u32>().ok())
        {
            pids.push(pid);
        }
        if line.contains(" listens ") {
            listening += 1;
        }
    }
    assert_eq!(pids.len(), 3, "every rank started and printed its pid");
    mpirun.kill().expect("SIGKILL mpirun");
    let killed = Instant::now();
    let _ = mpirun.wait();
    while !still_alive(&pids).is_empty() && killed.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone_after = killed.elapsed();
    assert!(
        gone_after < PROMPT,
        "{transport}: ranks {:?} still alive {gone_after:?} after mpirun was killed",
        still_alive(&pids)
    );
    let left = segments_of(&pids);
    assert!(left.is_empty(), "{transport}: left in /dev/shm: {left:?}");
    eprintln!("{transport}: every rank gone {gone_after:?} after mpirun's SIGKILL");
}

/// Starts `mpirun -n 3 fault slowstart` over shared memory and waits until
/// ranks 0 and 1 wait in start-up with their segments named in `/dev/shm`
/// (rank 2 has not started mpirt). Returns mpirun, the ranks' pids and the
/// segments' names.
fn start_slowly() -> (
    std::process::Child,
    Vec<u32>,
    std::collections::BTreeSet<String>,
) {
    let mut mpirun = Command::new(mpirun())
        .args(["-n", "3", "--transport", "shm", "--timeout", "60"])
        .arg(fault_program())
        .arg("slowstart")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mpirun");
    let stdout = mpirun.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut pids = Vec::new();
    while pids.len() < 3 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(pid) = line
            .split_once(" starting pid ")
            .and_then(|(_, p)| p.trim().parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    assert_eq!(pids.len(), 3, "every rank printed its pid");
    let deadline = Instant::now() + DEADLINE;
    while segments_of(&pids).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let named = segments_of(&pids);
    assert_eq!(named.len(), 2, "ranks 0 and 1 have named segments");
    (mpirun, pids, named)
}

/// Kills `mpirun` with SIGKILL while two ranks wait in start-up with their
/// segments still named: they must unlink them as they die.
#[test]
fn mpirun_killed_during_start_up_leaves_no_segment() {
    let _one = one_at_a_time();
    let (mut mpirun, pids, named) = start_slowly();
    mpirun.kill().expect("SIGKILL mpirun");
    let killed = Instant::now();
    let _ = mpirun.wait();
    while !still_alive(&pids).is_empty() && killed.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone_after = killed.elapsed();
    assert!(
        gone_after < PROMPT,
        "ranks alive {gone_after:?} after mpirun's SIGKILL"
    );
    let left = segments_of(&pids);
    assert!(
        left.is_empty(),
        "left in /dev/shm: {left:?} (were {named:?})"
    );
    eprintln!(
        "start-up: every rank gone {gone_after:?} after mpirun's SIGKILL, {named:?} unlinked"
    );
}

/// A rank SIGKILLed between creating its segment and unlinking it cannot
/// clean up: the launcher removes its segment when the job ends.
#[test]
fn a_rank_killed_with_its_segment_named_leaves_nothing() {
    let _one = one_at_a_time();
    let (mut mpirun, pids, named) = start_slowly();
    // SAFETY: kill(2) of rank 0, a child of our mpirun that is alive.
    unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) };
    let killed = Instant::now();
    let status = mpirun.wait().expect("wait for mpirun");
    assert!(
        killed.elapsed() < PROMPT,
        "mpirun took {:?}",
        killed.elapsed()
    );
    assert_eq!(status.code(), Some(128 + 9), "mpirun's exit: {status}");
    assert!(still_alive(&pids).is_empty(), "ranks remain");
    let left = segments_of(&pids);
    assert!(
        left.is_empty(),
        "left in /dev/shm: {left:?} (were {named:?})"
    );
}

#[test]
fn ranks_end_when_mpirun_is_killed() {
    let _one = one_at_a_time();
    kill_mpirun("tcp");
    kill_mpirun("shm");
}
