//! `mpirun` as users run it: real jobs of real processes, checked by exit
//! status, output and the failure line. Every job runs under a deadline
//! (`--timeout` and/or [`run_mpirun`]'s own), and timing asserts are loose
//! enough for a loaded 2-core machine.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const MPIRUN: &str = env!("CARGO_BIN_EXE_mpirun");
/// No test job may run longer than this, whatever happens.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `mpirun ARGS`, killing it if it outlives [`DEADLINE`].
fn run_mpirun(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let child = Command::new(MPIRUN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpirun");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => (output.expect("wait for mpirun"), start.elapsed()),
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our
            // own child, not yet reaped (its waiter has not returned).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("mpirun {args:?} ran past the test deadline");
        }
    }
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn hostname_on_three_ranks_prints_three_lines() {
    let (out, _) = run_mpirun(&["-n", "3", "--timeout", "30", "hostname"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l == &lines[0] && !l.is_empty()));
}

#[test]
fn np_is_an_alias_of_n() {
    let (out, _) = run_mpirun(&["-np", "2", "--timeout", "30", "hostname"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    assert_eq!(stdout_lines(&out).len(), 2);
}

#[test]
fn tag_output_prefixes_each_line_with_its_rank() {
    let (out, _) = run_mpirun(&[
        "-n",
        "3",
        "--tag-output",
        "--timeout",
        "30",
        "sh",
        "-c",
        "echo hello; echo oops >&2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let mut lines = stdout_lines(&out);
    lines.sort();
    assert_eq!(lines, ["[0] hello", "[1] hello", "[2] hello"]);
    let mut errors: Vec<String> = stderr_text(&out).lines().map(str::to_string).collect();
    errors.sort();
    assert_eq!(errors, ["[0] oops", "[1] oops", "[2] oops"]);
}

#[test]
fn ranks_see_their_rank_size_and_settings() {
    let (out, _) = run_mpirun(&[
        "-n",
        "2",
        "-x",
        "GREETING=hi there",
        "--transport",
        "tcp",
        "--eager-limit",
        "4096",
        "--remote-buffer",
        "65536",
        "--timeout",
        "30",
        "sh",
        "-c",
        "echo \"$PMI_RANK/$PMI_SIZE $GREETING $MPIRT_TRANSPORT $MPIRT_EAGER_LIMIT $MPIRT_REMOTE_BUFFER\"",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let mut lines = stdout_lines(&out);
    lines.sort();
    assert_eq!(
        lines,
        ["0/2 hi there tcp 4096 65536", "1/2 hi there tcp 4096 65536"]
    );
}

#[test]
fn program_arguments_pass_verbatim() {
    let (out, _) = run_mpirun(&[
        "--timeout",
        "30",
        "sh",
        "-c",
        "printf '%s|' \"$@\"; echo",
        "sh",
        "-n",
        "--tag-output",
        "-np",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_lines(&out), ["-n|--tag-output|-np|5|"]);
}

#[test]
fn a_last_line_without_newline_is_forwarded_with_one() {
    let (out, _) = run_mpirun(&["--timeout", "30", "sh", "-c", "printf 'first\\nno newline'"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\nno newline\n");
}

/// One clear line, exit 2, and nothing started.
fn assert_refused(args: &[&str], expected: &str) {
    let (out, _) = run_mpirun(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}",
        stderr_text(&out)
    );
    let err = stderr_text(&out);
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("mpirun: ") && err.contains(expected),
        "{args:?}: {err}"
    );
    assert!(out.stdout.is_empty(), "{args:?} started something");
}

#[test]
fn bad_arguments_are_refused_with_one_line() {
    assert_refused(&["-n", "0", "hostname"], "-n must be at least 1");
    assert_refused(&["-n", "2"], "PROGRAM");
    assert_refused(&[], "PROGRAM");
    assert_refused(
        &["-n", "2", "no-such-program-anywhere"],
        "no-such-program-anywhere not found in PATH",
    );
    assert_refused(&["./no/such/file"], "./no/such/file not found");
    assert_refused(&["/etc/passwd"], "no execute permission");
    assert_refused(&["-n", "two", "hostname"], "two");
    assert_refused(&["--bogus", "hostname"], "unexpected argument '--bogus'");
    assert_refused(&["--timeout", "0", "hostname"], "positive");
    assert_refused(&["--transport", "udp", "hostname"], "udp");
}

#[test]
fn transport_shm_reaches_the_ranks() {
    let (out, _) = run_mpirun(&[
        "-n",
        "2",
        "--transport",
        "shm",
        "--timeout",
        "30",
        "sh",
        "-c",
        "echo \"$PMI_RANK $MPIRT_TRANSPORT\"",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let mut lines = stdout_lines(&out);
    lines.sort();
    assert_eq!(lines, ["0 shm", "1 shm"]);
}

#[test]
fn help_reads_well() {
    let (out, _) = run_mpirun(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Usage: mpirun",
        "-n, --np <N>",
        "-np",
        "--tag-output",
        "-x <VAR[=VAL]>",
        "--timeout",
        "--host <LIST>",
        "--hostfile <FILE>",
        "machinefile",
        "--oversubscribe",
        "--launch-agent <CMD>",
        "--iface <NAME>",
        "Examples:",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn a_rank_exiting_3_ends_the_job_with_code_3() {
    let (out, elapsed) = run_mpirun(&[
        "-n",
        "3",
        "--timeout",
        "50",
        "sh",
        "-c",
        "if [ \"$PMI_RANK\" = 1 ]; then exit 3; fi; sleep 30",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    let err = stderr_text(&out);
    assert!(
        err.contains("mpirun: rank 1 (pid ") && err.contains("exited with code 3"),
        "{err}"
    );
    // Design target: 2 s; asserted loosely for loaded machines.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn a_rank_killed_by_sigkill_ends_the_job_with_137() {
    let (out, elapsed) = run_mpirun(&[
        "-n",
        "3",
        "--timeout",
        "50",
        "sh",
        "-c",
        "if [ \"$PMI_RANK\" = 2 ]; then kill -9 $$; fi; sleep 30",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr_text(&out));
    let err = stderr_text(&out);
    assert!(
        err.contains("rank 2 (pid ") && err.contains("signal 9 (SIGKILL)"),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn a_rank_ignoring_sigterm_is_killed_after_the_grace_period() {
    let (out, elapsed) = run_mpirun(&[
        "-n",
        "2",
        "--timeout",
        "50",
        "sh",
        "-c",
        "trap '' TERM; if [ \"$PMI_RANK\" = 0 ]; then exit 4; fi; while :; do sleep 1; done",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_text(&out));
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn timeout_ends_the_job_with_124_and_names_the_ranks() {
    let (out, elapsed) = run_mpirun(&["-n", "2", "--timeout", "1", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr_text(&out));
    let err = stderr_text(&out);
    assert!(
        err.contains("mpirun: job exceeded its timeout of 1 s; ranks still running: 0, 1"),
        "{err}"
    );
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(15),
        "took {elapsed:?}"
    );
}

/// Forwarded lines never mix: 4 ranks × 2000 long lines, each arriving whole.
#[test]
fn lines_from_many_ranks_never_interleave() {
    const LINES: usize = 2000;
    let script = format!(
        "pad=$(printf '%0200d' 0); i=0; while [ $i -lt {LINES} ]; do echo \"rank=$PMI_RANK line=$i $pad end\"; i=$((i+1)); done"
    );
    let (out, _) = run_mpirun(&[
        "-n",
        "4",
        "--tag-output",
        "--timeout",
        "50",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let pad = "0".repeat(200);
    let mut next_line = [0usize; 4];
    for line in stdout_lines(&out) {
        let (tag, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("mangled line {line:?}"));
        let rank: usize = tag
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap_or_else(|_| panic!("mangled line {line:?}"));
        assert!(rank < 4, "mangled line {line:?}");
        assert_eq!(
            rest,
            format!("rank={rank} line={} {pad} end", next_line[rank]),
            "mangled or reordered"
        );
        next_line[rank] += 1;
    }
    assert_eq!(next_line, [LINES; 4]);
}

/// SIGTERM to mpirun reaches every rank, and mpirun exits 128 + 15.
#[test]
fn sigterm_to_mpirun_ends_every_rank() {
    let start = Instant::now();
    let mut child = Command::new(MPIRUN)
        .args([
            "-n",
            "2",
            "--timeout",
            "50",
            "sh",
            "-c",
            "echo $$; exec sleep 30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpirun");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut rank_pids = Vec::new();
    for line in BufReader::new(stdout).lines().take(2) {
        rank_pids.push(
            line.expect("read rank pid")
                .trim()
                .parse::<libc::pid_t>()
                .expect("a pid"),
        );
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mpirun") {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "mpirun did not end after SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143));
    for pid in rank_pids {
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "rank pid {pid} outlived mpirun");
    }
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut err).expect("read stderr");
    }
    assert!(err.contains("received signal 15 (SIGTERM)"), "{err}");
}

/// A PMI client written independently of mpirt (Python, as in MPICH's
/// simple_pmi wire format) runs a whole conversation through mpirun.
#[test]
fn a_python_pmi_client_talks_to_mpirun() {
    let Some(python) = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .arg("-c")
            .arg("pass")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) else {
        eprintln!("skipping: no python3");
        return;
    };
    const CLIENT: &str = r#"
import os, socket, sys
s = socket.socket(fileno=int(os.environ["PMI_FD"]))
f = s.makefile("rw", newline="\n")
def ask(line):
    f.write(line + "\n"); f.flush()
    return dict(w.split("=", 1) for w in f.readline().split())
rank, size = int(os.environ["PMI_RANK"]), int(os.environ["PMI_SIZE"])
r = ask("cmd=init pmi_version=1 pmi_subversion=1"); assert r["cmd"] == "response_to_init" and r["rc"] == "0", r
r = ask("cmd=get_maxes"); assert r["vallen_max"] == "1024", r
kvs = ask("cmd=get_my_kvsname")["kvsname"]
assert ask("cmd=get_universe_size")["size"] == str(size)
assert ask(f"cmd=put kvsname={kvs} key=card-{rank} value=v{rank * 11}")["rc"] == "0"
assert ask("cmd=barrier_in")["cmd"] == "barrier_out"
peer = (rank + 1) % size
r = ask(f"cmd=get kvsname={kvs} key=card-{peer}"); assert r["rc"] == "0", r
print(f"rank {rank} read {r['value']} from rank {peer}")
assert ask(f"cmd=get kvsname={kvs} key=PMI_process_mapping")["value"] == f"(vector,(0,1,{size}))"
assert ask("cmd=finalize")["cmd"] == "finalize_ack"
"#;
    let (out, _) = run_mpirun(&["-n", "3", "--timeout", "50", python, "-c", CLIENT]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let mut lines = stdout_lines(&out);
    lines.sort();
    assert_eq!(
        lines,
        [
            "rank 0 read v11 from rank 1",
            "rank 1 read v22 from rank 2",
            "rank 2 read v0 from rank 0"
        ]
    );
}

/// A file in a fresh temporary directory for this test process.
fn temp_file(name: &str, contents: &str, executable: bool) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mpirt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path
}

#[test]
fn bad_hosts_are_refused_with_one_line() {
    assert_refused(
        &["--host", "a:0", "hostname"],
        "slot count must be a positive number",
    );
    assert_refused(&["--host", "a;b", "hostname"], "host name");
    assert_refused(
        &["-n", "3", "--host", "a,b", "hostname"],
        "3 ranks asked for, but the hosts have 2 slots (a:1,b:1); add --oversubscribe",
    );
    assert_refused(
        &["--hostfile", "/no/such/hostfile", "hostname"],
        "--hostfile /no/such/hostfile",
    );
    let bad = temp_file(
        "bad-hosts",
        "# ok so far\nnode1:2\nnode2 slots=many\n",
        false,
    );
    assert_refused(
        &["--machinefile", bad.to_str().unwrap(), "hostname"],
        "line 3",
    );
    let empty = temp_file("empty-hosts", "# nobody\n\n", false);
    assert_refused(
        &["--hostfile", empty.to_str().unwrap(), "hostname"],
        "names no host",
    );
    assert_refused(
        &[
            "--host",
            "a",
            "--hostfile",
            bad.to_str().unwrap(),
            "hostname",
        ],
        "cannot be used with",
    );
    assert_refused(
        &["--host", "far", "--launch-agent", " ", "hostname"],
        "empty command",
    );
    assert_refused(
        &["--host", "far", "--iface", "lo", "-x", "A-B=1", "hostname"],
        "not a shell variable name",
    );
}

#[test]
fn an_interface_that_does_not_exist_is_named() {
    let (out, _) = run_mpirun(&["--host", "far", "--iface", "no-such-if0", "hostname"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("no-such-if0"),
        "{}",
        stderr_text(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn local_host_names_run_ranks_without_the_agent() {
    // The agent would fail every rank; local hosts never call it. Without
    // -n, the job has one rank per slot.
    let hostname = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let hosts = format!("localhost:2,{}", hostname.trim());
    let (out, _) = run_mpirun(&[
        "--host",
        &hosts,
        "--launch-agent",
        "false",
        "--timeout",
        "30",
        "sh",
        "-c",
        "echo \"$PMI_RANK of $PMI_SIZE\"",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let mut lines = stdout_lines(&out);
    lines.sort();
    assert_eq!(lines, ["0 of 3", "1 of 3", "2 of 3"]);
}

#[test]
fn the_agent_gets_the_host_and_a_quoted_command() {
    // An agent that runs the command here, after saying which host it got.
    let agent = temp_file(
        "agent.sh",
        "#!/bin/sh\necho \"agent for $1\"\nshift\nexec \"$@\"\n",
        true,
    );
    let (out, _) = run_mpirun(&[
        "--host",
        "far1,far2",
        "--iface",
        "lo",
        "--launch-agent",
        agent.to_str().unwrap(),
        "-x",
        "WEIRD=it's \"$HOME\" `x`",
        "--timeout",
        "30",
        "sh",
        "-c",
        "echo \"$PMI_ID|$WEIRD|${PMI_FD:-no fd}|${PMI_PORT%:*}|${#MPIRT_PMI_SECRET}|$MPIRT_IFACE\"",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let mut lines = stdout_lines(&out);
    lines.sort();
    assert_eq!(
        lines,
        [
            "0|it's \"$HOME\" `x`|no fd|127.0.0.1|32|lo",
            "1|it's \"$HOME\" `x`|no fd|127.0.0.1|32|lo",
            "agent for far1",
            "agent for far2",
        ]
    );
}

#[test]
fn a_remote_rank_that_fails_to_start_ends_the_job() {
    let agent = temp_file("failing-agent.sh", "#!/bin/sh\nexit 255\n", true);
    let (out, elapsed) = run_mpirun(&[
        "--host",
        "localhost,far",
        "--iface",
        "lo",
        "--launch-agent",
        agent.to_str().unwrap(),
        "--timeout",
        "30",
        "sleep",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("rank 1"),
        "{}",
        stderr_text(&out)
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// The CPUs each rank of `mpirun ARGS -n N` may run on, in rank order.
fn rank_cpu_lists(args: &[&str]) -> Vec<String> {
    let mut all = vec!["--tag-output"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["sh", "-c", "grep Cpus_allowed_list /proc/self/status"]);
    let (out, _) = run_mpirun(&all);
    assert!(out.status.success(), "{out:?}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
        .iter()
        .map(|l| l.rsplit('\t').next().unwrap_or_default().trim().to_string())
        .collect()
}

#[test]
fn bind_to_core_gives_each_rank_of_a_small_job_a_cpu_of_its_own() {
    let mine = std::fs::read_to_string("/proc/self/status").expect("own status");
    let allowed = mine
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = rank_cpu_lists(&["-n", "2", "--bind-to", "core"]);
    assert_eq!(bound.len(), 2, "{bound:?}");
    if cpus >= 2 {
        assert_ne!(bound[0], bound[1], "{bound:?}");
        for list in &bound {
            assert!(list.parse::<usize>().is_ok(), "not a single CPU: {bound:?}");
        }
    }
    // By default, or with more ranks than CPUs: the launcher's set.
    let unbound = rank_cpu_lists(&["-n", "2"]);
    assert_eq!(unbound, [allowed.clone(), allowed.clone()]);
    let n = (cpus + 1).to_string();
    let crowded = rank_cpu_lists(&["-n", &n, "--bind-to", "core"]);
    assert!(crowded.iter().all(|l| *l == allowed), "{crowded:?}");
}
