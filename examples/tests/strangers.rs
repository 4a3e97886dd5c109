//! Strangers: only the job's ranks get in. Against a running job (the
//! `fault wait` ring, which checks every message it passes), connections
//! to a rank's TCP listener send random bytes, a well-formed frame without
//! the handshake, a handshake with a wrong token, a frame claiming another
//! rank, a length field of 2^63, half a handshake that then stalls, and a
//! flood of stalled strangers. Each is closed; the job still ends when it
//! should, with every message right. The PMI server answers malformed lines
//! with `cmd=error` and the job goes on; a rank's child process does not
//! inherit its PMI connection. A one-host job listens on loopback only.
//! Shared-memory segments are 0600 and user
//! `nobody` cannot open one.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use launcher::Transport;
use mpirt::wire::handshake::{Handshake, TOKEN_LEN};
use mpirt::wire::{FrameKind, Header};

/// How long the ring runs while strangers knock.
const RING_SECONDS: f64 = 4.0;

/// How long a rank may take to close a stranger: well within the ring's
/// run, so a stranger closed only when the job ends fails the test. (Over
/// shared memory this found ranks that looked at their listener only in
/// waits longer than 1 ms: a busy rank kept strangers until it finished.)
const CLOSE_WITHIN: Duration = Duration::from_millis(1500);

/// Tests here run one at a time: each ring job must see its strangers
/// while it runs, and two jobs at once on 2 cores slow both.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes that look like nothing (xorshift, fixed seed).
fn random_bytes(n: usize, mut state: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn frame(source: i32, length: u64) -> Vec<u8> {
    let mut header = Header::new(FrameKind::Eager, source);
    header.length = length;
    header.to_bytes().to_vec()
}

fn wrong_handshake(rank: i32, size: i32) -> Vec<u8> {
    Handshake {
        token: [0x5a; TOKEN_LEN],
        rank,
        size,
    }
    .encode()
    .to_vec()
}

/// Sends `bytes` and waits for the rank to close the connection (end of
/// stream or reset), returning how long that took; `None` if it stayed open
/// for `patience`. Nothing may be sent back.
fn sent_and_closed(address: SocketAddr, bytes: &[u8], patience: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(address).expect("connect to a rank");
    let started = Instant::now();
    // A rank may close before all is written: that is a refusal too.
    let _ = stream.write_all(bytes);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut buffer = [0u8; 256];
    while started.elapsed() < patience {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(n) => panic!("a rank answered a stranger with {n} bytes"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Whether the rank has closed `stream` (without waiting).
fn is_closed(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("a rank sent bytes to a stranger"),
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// A running `mpirun -n 3 fault wait RING_SECONDS` and its ranks'
/// listeners.
struct RunningJob {
    mpirun: std::process::Child,
    listeners: Vec<SocketAddr>,
    started: Instant,
    stdout: std::thread::JoinHandle<Vec<String>>,
    stderr: std::thread::JoinHandle<String>,
}

fn start_ring(transport: &str) -> RunningJob {
    let started = Instant::now();
    let mut mpirun = Command::new(mpirun())
        .args(["-n", "3", "--transport", transport, "--timeout", "60"])
        .arg(fault_program())
        .args(["wait", &RING_SECONDS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpirun");
    let mut stderr_pipe = mpirun.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout_pipe = mpirun.stdout.take().expect("piped stdout");
    let stdout = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let mut listeners: Vec<Option<SocketAddr>> = vec![None; 3];
    let deadline = Instant::now() + DEADLINE;
    while listeners.iter().any(Option::is_none) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("every rank prints its listener");
        if let Some((rank, address)) = line
            .strip_prefix("fault: rank ")
            .and_then(|l| l.split_once(" listens on "))
        {
            let rank: usize = rank.parse().expect("a rank number");
            listeners[rank] = Some(address.parse().expect("a socket address"));
        }
    }
    for address in listeners.iter().flatten() {
        assert!(
            address.ip().is_loopback(),
            "a one-host job listens on loopback only, not {address}"
        );
    }
    RunningJob {
        mpirun,
        listeners: listeners.into_iter().flatten().collect(),
        started,
        stdout,
        stderr,
    }
}

impl RunningJob {
    /// Waits for the job and checks it ended well, and not early.
    fn finish_well(mut self) -> String {
        let status = self.mpirun.wait().expect("wait for mpirun");
        let elapsed = self.started.elapsed();
        let stdout = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        let report = format!("{}\n{stderr}", stdout.join("\n"));
        assert!(status.success(), "the job failed ({status}):\n{report}");
        assert!(
            elapsed >= Duration::from_secs_f64(RING_SECONDS),
            "the job ended early, after {elapsed:?}:\n{report}"
        );
        for rank in 0..3 {
            assert!(
                stdout
                    .iter()
                    .any(|l| l.starts_with(&format!("fault: rank {rank} ring ok after "))),
                "rank {rank} did not finish its ring:\n{report}"
            );
        }
        stderr
    }
}

#[test]
fn strangers_at_a_ranks_port_are_closed_and_the_job_goes_on() {
    let _one = one_at_a_time();
    let job = start_ring("tcp");
    let patience = CLOSE_WITHIN;
    // Half a handshake, then silence: it must not block anyone.
    let mut stalled = TcpStream::connect(job.listeners[0]).expect("connect");
    stalled
        .write_all(&wrong_handshake(2, 3)[..10])
        .expect("write half");
    let mut half_frame = TcpStream::connect(job.listeners[1]).expect("connect");
    half_frame
        .write_all(&frame(0, 1 << 20)[..20])
        .expect("write half a header");

    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random_bytes(4096, 0x1234_5678)),
        ("a frame without a handshake", frame(2, 8)),
        ("a handshake with a wrong token", wrong_handshake(2, 3)),
        ("a frame claiming another rank", {
            let mut bytes = wrong_handshake(1, 3);
            bytes.extend(frame(1, 8));
            bytes.extend([0u8; 8]);
            bytes
        }),
        ("a length field of 2^63", {
            let mut bytes = frame(2, 1 << 63);
            bytes.extend(random_bytes(1024, 99));
            bytes
        }),
        (
            "a handshake claiming a rank outside the job",
            wrong_handshake(7, 3),
        ),
    ];
    for (what, bytes) in &attacks {
        for (rank, &address) in job.listeners.iter().enumerate() {
            let closed = sent_and_closed(address, bytes, patience);
            assert!(closed.is_some(), "rank {rank} kept {what} open");
        }
    }
    // The stalled ones do not hold the ranks up: the ring goes on (checked
    // at the end); they are still open or closed, never answered.
    let stderr = job.finish_well();
    let refused = stderr.matches("refused a connection").count();
    assert!(
        refused >= attacks.len() * 3,
        "expected every stranger refused in the log, saw {refused}:\n{stderr}"
    );
    let _ = is_closed(&stalled);
    let _ = is_closed(&half_frame);
}

#[test]
fn a_flood_of_stalled_strangers_evicts_the_oldest() {
    let _one = one_at_a_time();
    let job = start_ring("tcp");
    // More unfinished handshakes than a rank keeps (64): the oldest go.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(job.listeners[0]).expect("connect");
            s.write_all(&[0u8; 4]).expect("write a little");
            s
        })
        .collect();
    // The rank accepts them as it polls; once it has seen all 100, the 36
    // oldest are gone. (Checked while the ring still runs: at its end the
    // rank closes every connection anyway.)
    let evicted = flood.len() - 64;
    let deadline = Instant::now() + Duration::from_secs_f64(RING_SECONDS * 0.75);
    let mut closed = 0;
    while closed < evicted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        closed = flood.iter().filter(|s| is_closed(s)).count();
    }
    let open_newest = flood[90..].iter().filter(|s| !is_closed(s)).count();
    assert!(
        closed >= evicted,
        "only {closed} of 100 stalled strangers closed"
    );
    assert!(
        flood[..evicted].iter().all(is_closed),
        "the oldest strangers are the ones evicted"
    );
    assert_eq!(open_newest, 10, "the newest strangers are the ones kept");
    job.finish_well();
}

#[test]
fn strangers_at_a_shm_jobs_listener_are_closed_too() {
    let _one = one_at_a_time();
    let job = start_ring("shm");
    for (rank, &address) in job.listeners.iter().enumerate() {
        let closed = sent_and_closed(address, &random_bytes(512, 7), CLOSE_WITHIN);
        assert!(closed.is_some(), "rank {rank} kept random bytes open");
    }
    job.finish_well();
}

#[test]
fn the_pmi_server_answers_junk_with_errors_and_the_job_goes_on() {
    let _one = one_at_a_time();
    for transport in [Transport::Tcp, Transport::Shm] {
        let outcome = fault_job(&["pmi-junk"], 3, transport)
            .run()
            .expect("the job starts");
        let report = outcome.report();
        assert!(outcome.success(), "{transport:?}: {report}");
        for rank in 0..3 {
            let said = outcome.stdout_text(rank);
            let replies: Vec<&str> = said
                .lines()
                .filter_map(|l| l.split_once(" pmi reply: ").map(|(_, r)| r))
                .collect();
            assert_eq!(
                replies,
                vec!["cmd=error rc=-1 msg=not_a_pmi_line"; 4],
                "rank {rank}\n{report}"
            );
            assert!(
                said.contains(&format!("fault: rank {rank} child: not-inherited ")),
                "rank {rank}'s child reached its PMI connection\n{report}"
            );
            assert!(
                said.contains(&format!("fault: rank {rank} done")),
                "{report}"
            );
        }
    }
}

#[test]
fn segments_are_private_to_their_user() {
    let _one = one_at_a_time();
    use std::os::unix::fs::PermissionsExt;
    let segment = mpirt::transport::shm::Segment::create(2, 4096).expect("create a segment");
    let path = format!("/dev/shm/{}", segment.name());
    let mode = std::fs::metadata(&path)
        .expect("the segment is in /dev/shm")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{path} has mode {:o}", mode & 0o777);
    // Another user cannot open it (root bypasses modes: drop to nobody).
    let attempt = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            &format!("exec 3<>{path}"),
        ])
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&attempt.stderr);
    assert!(
        !attempt.status.success() && stderr.contains("Permission denied"),
        "user nobody could open {path}: {} {stderr}",
        attempt.status
    );
}
