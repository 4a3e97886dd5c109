//! The library API ([`launcher::Job`]) with ranks that speak PMI. The ranks
//! are this test binary itself, re-run with `LAUNCHER_TEST_ROLE` set: the
//! `rank_role` test then plays that role as a PMI client (using mpirt's PMI
//! codec) and exits, so no other program is needed. Every job has a timeout.

use std::io::{BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use launcher::{Failure, Job, LaunchError, Output};
use mpirt::bootstrap::pmi::{read_line, PmiLine};

const ROLE: &str = "LAUNCHER_TEST_ROLE";
const TIMEOUT: Duration = Duration::from_secs(50);

/// A job of `n` copies of this test binary playing `role`.
fn role_job(role: &str, n: usize) -> Job {
    let me = std::env::current_exe().expect("the test binary's path");
    Job::new(me)
        .args([
            "rank_role",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .ranks(n)
        .output(Output::Capture)
        .timeout(TIMEOUT)
}

/// Runs a role when started as a rank; otherwise does nothing.
#[test]
fn rank_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    std::process::exit(play(&role));
}

/// A PMI-1 client on `PMI_FD`, for the roles.
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect() -> Client {
        let fd: i32 = std::env::var("PMI_FD")
            .expect("PMI_FD")
            .parse()
            .expect("PMI_FD is a number");
        // SAFETY: PMI_FD names the socket the launcher left open for this
        // process; nothing else in this process owns or closes it.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        let writer = stream.try_clone().expect("clone the PMI socket");
        Client {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .expect("send to mpirun");
    }

    fn ask(&mut self, line: &str) -> PmiLine {
        self.send(line);
        let reply = read_line(&mut self.reader)
            .expect("read from mpirun")
            .expect("mpirun closed the connection");
        PmiLine::parse(&reply).expect("a PMI reply")
    }

    fn init(&mut self) -> String {
        let r = self.ask("cmd=init pmi_version=1 pmi_subversion=1");
        assert_eq!((r.command(), r.get("rc")), ("response_to_init", Some("0")));
        self.ask("cmd=get_my_kvsname")
            .get("kvsname")
            .expect("kvsname")
            .to_string()
    }

    fn finalize(&mut self) {
        assert_eq!(self.ask("cmd=finalize").command(), "finalize_ack");
    }
}

fn env_number(name: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("a number in the environment")
}

/// Plays `role`; returns the exit code.
fn play(role: &str) -> i32 {
    let rank = env_number("PMI_RANK");
    let size = env_number("PMI_SIZE");
    let mut pmi = Client::connect();
    match role {
        "exchange" => {
            let kvs = pmi.init();
            let maxes = pmi.ask("cmd=get_maxes");
            assert_eq!(maxes.get("keylen_max"), Some("256"));
            assert_eq!(
                pmi.ask("cmd=get_universe_size").get("size"),
                Some(size.to_string().as_str())
            );
            assert_eq!(pmi.ask("cmd=get_appnum").get("appnum"), Some("0"));
            let put = pmi.ask(&format!(
                "cmd=put kvsname={kvs} key=card-{rank} value=card-of-{rank}"
            ));
            assert_eq!(put.get("rc"), Some("0"));
            for _ in 0..3 {
                assert_eq!(pmi.ask("cmd=barrier_in").command(), "barrier_out");
            }
            for peer in 0..size {
                let got = pmi.ask(&format!("cmd=get kvsname={kvs} key=card-{peer}"));
                assert_eq!(got.get("value"), Some(format!("card-of-{peer}").as_str()));
            }
            let missing = pmi.ask(&format!("cmd=get kvsname={kvs} key=nobody"));
            assert_eq!(
                (missing.get("rc"), missing.get("msg")),
                (Some("-1"), Some("key_nobody_not_found"))
            );
            let unknown = pmi.ask("cmd=frobnicate");
            assert_eq!(
                (unknown.command(), unknown.get("rc")),
                ("frobnicate_result", Some("-1"))
            );
            println!("rank {rank} exchanged cards with {size} ranks");
            pmi.finalize();
            0
        }
        "init-only" => {
            pmi.init();
            if rank == 1 {
                return 0;
            }
            pmi.finalize();
            // Others wait, as a real program would, for the job to end.
            std::thread::sleep(Duration::from_secs(40));
            0
        }
        "abort" => {
            pmi.init();
            if rank == 1 {
                pmi.send("cmd=abort exitcode=7 message=bad_input");
                // Exit at once, as MPICH's client does: the launcher must
                // still report the abort, not the exit.
                return 7;
            }
            std::thread::sleep(Duration::from_secs(40));
            0
        }
        "barrier-then-leave" => {
            pmi.init();
            if rank == 2 {
                // Never enters the barrier; finalizes properly, then exits.
                pmi.finalize();
                return 0;
            }
            let _ = pmi.ask("cmd=barrier_in");
            pmi.finalize();
            0
        }
        "garbage" => {
            pmi.send("\u{1}\u{2} not pmi");
            // The launcher answers cmd=error and keeps the connection.
            match read_line(&mut pmi.reader) {
                Ok(Some(line)) if line.starts_with(b"cmd=error ") => 5,
                _ => 6,
            }
        }
        _ => 99,
    }
}

#[test]
fn three_ranks_exchange_cards_through_barriers() {
    let outcome = role_job("exchange", 3).run().expect("job starts");
    assert!(
        outcome.success(),
        "{:?}\n{:?}",
        outcome.message,
        outcome.stderr
    );
    assert_eq!(outcome.exit_code, 0);
    for rank in 0..3 {
        assert!(
            outcome
                .stdout_text(rank)
                .contains(&format!("rank {rank} exchanged cards with 3 ranks")),
            "{:?}",
            outcome.stdout
        );
    }
}

#[test]
fn a_single_rank_job_speaks_pmi_too() {
    let outcome = role_job("exchange", 1).run().expect("job starts");
    assert!(outcome.success(), "{:?}", outcome.message);
}

#[test]
fn exiting_without_finalize_fails_the_job_even_with_code_0() {
    let outcome = role_job("init-only", 3).run().expect("job starts");
    let pid = outcome.ranks[1].pid;
    assert_eq!(
        outcome.failure,
        Some(Failure::ExitedWithoutFinalize { rank: 1, pid })
    );
    assert_eq!(outcome.exit_code, 1);
    let message = outcome.message.unwrap_or_default();
    assert!(
        message.contains(&format!("rank 1 (pid {pid}) exited without finalizing")),
        "{message}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(30),
        "took {:?}",
        outcome.elapsed
    );
}

#[test]
fn abort_ends_the_job_with_its_code_and_message() {
    let outcome = role_job("abort", 3).run().expect("job starts");
    let pid = outcome.ranks[1].pid;
    assert_eq!(
        outcome.failure,
        Some(Failure::Aborted {
            rank: 1,
            pid,
            code: 7,
            message: Some("bad_input".into())
        })
    );
    assert_eq!(outcome.exit_code, 7);
    let message = outcome.message.unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "mpirun: rank 1 (pid {pid}) called abort with code 7"
        )),
        "{message}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(30),
        "took {:?}",
        outcome.elapsed
    );
}

#[test]
fn a_rank_that_leaves_while_others_wait_in_a_barrier_fails_the_job() {
    let outcome = role_job("barrier-then-leave", 3).run().expect("job starts");
    match &outcome.failure {
        Some(Failure::BarrierAbandoned {
            rank: 2, waiting, ..
        }) => assert!(waiting.len() <= 2),
        other => panic!("expected rank 2 to abandon the barrier, got {other:?}"),
    }
    assert!(
        outcome.elapsed < Duration::from_secs(30),
        "took {:?}",
        outcome.elapsed
    );
}

#[test]
fn a_rank_sending_garbage_gets_an_error_reply_not_the_launcher() {
    let outcome = role_job("garbage", 2).run().expect("job starts");
    assert_eq!(outcome.exit_code, 5, "{:?}", outcome.message);
    assert!(matches!(
        outcome.failure,
        Some(Failure::Exited { code: 5, .. })
    ));
}

#[test]
fn plain_programs_run_without_pmi_and_output_is_captured() {
    let outcome = Job::new("sh")
        .args([
            "-c",
            "echo out-$PMI_RANK; echo err-$PMI_RANK >&2; printf tail",
        ])
        .ranks(4)
        .output(Output::Capture)
        .timeout(TIMEOUT)
        .run()
        .expect("job starts");
    assert!(outcome.success(), "{:?}", outcome.message);
    for rank in 0..4 {
        assert_eq!(
            outcome.stdout[rank],
            [format!("out-{rank}"), "tail".to_string()]
        );
        assert_eq!(outcome.stderr_text(rank), format!("err-{rank}"));
        assert_eq!(outcome.ranks[rank].end, Some(launcher::RankEnd::Exited(0)));
    }
}

#[test]
fn timeout_reports_the_ranks_still_running() {
    let outcome = Job::new("sh")
        .args(["-c", "if [ \"$PMI_RANK\" = 1 ]; then exit 0; fi; sleep 30"])
        .ranks(3)
        .output(Output::Capture)
        .timeout(Duration::from_secs(3))
        .run()
        .expect("job starts");
    assert_eq!(
        outcome.failure,
        Some(Failure::Timeout {
            limit: Duration::from_secs(3),
            still_running: vec![0, 2]
        })
    );
    assert_eq!(outcome.exit_code, 124);
    assert!(outcome.elapsed < Duration::from_secs(20));
}

#[test]
fn a_cancelled_job_ends_its_ranks() {
    let job = Job::new("sleep")
        .arg("30")
        .ranks(2)
        .output(Output::Capture)
        .timeout(TIMEOUT);
    let cancel = job.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.cancel(libc::SIGINT);
    });
    let start = Instant::now();
    let outcome = job.run().expect("job starts");
    canceller.join().expect("canceller");
    assert_eq!(
        outcome.failure,
        Some(Failure::Interrupted {
            signal: libc::SIGINT
        })
    );
    assert_eq!(outcome.exit_code, 130);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(
        outcome
            .ranks
            .iter()
            .all(|r| r.end == Some(launcher::RankEnd::Signaled(libc::SIGTERM))),
        "{:?}",
        outcome.ranks
    );
}

#[test]
fn bad_jobs_are_refused_before_anything_starts() {
    assert!(matches!(
        Job::new("hostname").ranks(0).run(),
        Err(LaunchError::NoRanks)
    ));
    assert!(matches!(
        Job::new("no-such-program-anywhere").run(),
        Err(LaunchError::ProgramNotFound { .. })
    ));
    assert!(matches!(
        Job::new("/etc/passwd").run(),
        Err(LaunchError::NotExecutable { .. })
    ));
    let e = Job::new("no-such-program-anywhere")
        .run()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("program no-such-program-anywhere not found in PATH")
    );
}
