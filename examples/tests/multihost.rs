//! Multi-host jobs with mpirt's own launcher, on real network hosts made on
//! this machine: two network namespaces joined by a veth pair (`ip netns`,
//! from iproute2, which `.ci/run` installs), addressed 10.77.0.1 and
//! 10.77.0.2 inside the namespaces only, and a launch agent that runs `ip
//! netns exec NAMESPACE COMMAND...` for a host. `mpirun` itself runs in the
//! first namespace. Traffic stays inside these namespaces.
//!
//! Each test makes its own pair of namespaces (names carry the test
//! process's pid and a counter, so parallel tests and runs do not collide)
//! and deletes them when it ends, passing or failing. Creating namespaces
//! needs root (CAP_NET_ADMIN); without it the tests fail saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const HOST_A: &str = "10.77.0.1";
const HOST_B: &str = "10.77.0.2";
/// The interface each namespace sees its end of the veth pair as.
const IFACE: &str = "mpirt0";

/// Runs `ip ARGS`, failing the test with `ip`'s words if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip ({e}): install iproute2 (.ci/run does)"));
    assert!(
        output.status.success(),
        "ip {} failed: {}\nThese tests need root (CAP_NET_ADMIN) to make network namespaces.",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Two namespaces joined by a veth pair, and a launch agent for them.
/// Dropping it deletes the namespaces (and with them the veth pair).
struct TwoHosts {
    namespaces: [String; 2],
    dir: PathBuf,
}

/// Deletes namespaces an earlier test process made and could not delete
/// (it was killed): `mpirt-<pid>-...` whose pid is gone.
fn sweep_abandoned_namespaces() {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("mpirt-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

impl TwoHosts {
    fn new() -> TwoHosts {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_abandoned_namespaces);
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let namespaces = [format!("mpirt-{pid}-{n}-a"), format!("mpirt-{pid}-{n}-b")];
        // veth names live in the initial namespace until moved: at most 15
        // bytes and unique on the machine.
        let veth = [
            format!("mv{:x}{n}a", pid & 0xfffff),
            format!("mv{:x}{n}b", pid & 0xfffff),
        ];
        let dir = std::env::temp_dir().join(format!("mpirt-multihost-{pid}-{n}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // From here on, Drop cleans up whatever was made.
        let hosts = TwoHosts { namespaces, dir };
        let [a, b] = &hosts.namespaces;
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        ip(&["link", "set", &veth[0], "netns", a]);
        ip(&["link", "set", &veth[1], "netns", b]);
        for ((ns, end), address) in hosts.namespaces.iter().zip(&veth).zip([HOST_A, HOST_B]) {
            ip(&["-n", ns, "link", "set", end, "name", IFACE]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                IFACE,
            ]);
            ip(&["-n", ns, "link", "set", IFACE, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let agent = format!(
            "#!/bin/sh\n\
             # Launch agent: AGENT HOST COMMAND... runs COMMAND in HOST's namespace.\n\
             host=$1; shift\n\
             case \"$host\" in\n\
               {HOST_A}) ns={a} ;;\n\
               {HOST_B}) ns={b} ;;\n\
               *) echo \"agent: unknown host $host\" >&2; exit 255 ;;\n\
             esac\n\
             exec ip netns exec \"$ns\" \"$@\"\n"
        );
        // Hydra calls its launcher as ssh: `-x HOST "COMMAND WORDS"`, for a shell.
        let hydra_agent = format!(
            "#!/bin/sh\n\
             [ \"$1\" = -x ] && shift\n\
             host=$1; shift\n\
             case \"$host\" in\n\
               {HOST_A}) ns={a} ;;\n\
               {HOST_B}) ns={b} ;;\n\
               *) echo \"agent: unknown host $host\" >&2; exit 255 ;;\n\
             esac\n\
             exec ip netns exec \"$ns\" sh -c \"$*\"\n"
        );
        use std::os::unix::fs::PermissionsExt;
        for (path, text) in [(hosts.agent(), agent), (hosts.hydra_agent(), hydra_agent)] {
            std::fs::write(&path, text).expect("write an agent");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod an agent");
        }
        hosts
    }

    fn agent(&self) -> PathBuf {
        self.dir.join("agent.sh")
    }

    fn hydra_agent(&self) -> PathBuf {
        self.dir.join("hydra-agent.sh")
    }

    /// Runs `mpirun ARGS` inside the first namespace, with a deadline.
    fn mpirun(&self, args: &[&str]) -> Output {
        self.mpirun_with(&self.agent(), "60", args)
    }

    /// [`mpirun`](Self::mpirun) with another agent and job timeout.
    fn mpirun_with(&self, agent: &Path, timeout_secs: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["120", "ip", "netns", "exec", &self.namespaces[0]])
            .arg(mpirun_path())
            .arg("--launch-agent")
            .arg(agent)
            .args(["--timeout", timeout_secs])
            .args(args)
            .output()
            .expect("run mpirun")
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `mpirun` beside this test's directory of binaries, brought up to date
/// once per test process (`cargo test -p mpirt-examples` alone does not
/// build the launcher's binary, and a stale one would test old code).
fn mpirun_path() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    BUILT.call_once(|| {
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "-p", "launcher", "--bin", "mpirun"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "could not build mpirun");
    });
    profile_dir.join("mpirun")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_success(output: &Output, what: &str) -> String {
    let (stdout, stderr) = text(output);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// The link table `links` printed: `table[rank][peer]` is `self`, `shm` or `tcp`.
fn link_table(stdout: &str, size: usize) -> Vec<Vec<String>> {
    let mut table = vec![Vec::new(); size];
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("links: rank ") else {
            continue;
        };
        let Some((head, links)) = rest.split_once(": ") else {
            continue;
        };
        let rank: usize = head.split(' ').next().unwrap().parse().unwrap();
        table[rank] = links
            .split(' ')
            .map(|pair| pair.split_once('=').unwrap().1.to_string())
            .collect();
    }
    for rank in 0..size {
        assert!(
            stdout.contains(&format!("links: rank {rank} ok")),
            "rank {rank} did not finish its exchanges:\n{stdout}"
        );
    }
    table
}

/// What `links` should report when rank r runs on `hosts[r]`.
fn expected_links(hosts: &[usize]) -> Vec<Vec<String>> {
    (0..hosts.len())
        .map(|r| {
            (0..hosts.len())
                .map(|p| {
                    match (r == p, hosts[r] == hosts[p]) {
                        (true, _) => "self",
                        (false, true) => "shm",
                        (false, false) => "tcp",
                    }
                    .to_string()
                })
                .collect()
        })
        .collect()
}

fn links_bin() -> &'static str {
    env!("CARGO_BIN_EXE_links")
}

#[test]
fn two_hosts_of_two_ranks_use_shm_within_and_tcp_between() {
    let hosts = TwoHosts::new();
    let host_list = format!("{HOST_A}:2,{HOST_B}:2");
    let out = hosts.mpirun(&["--host", &host_list, links_bin()]);
    let stdout = assert_success(&out, "links on two hosts");
    assert_eq!(
        link_table(&stdout, 4),
        expected_links(&[0, 0, 1, 1]),
        "{stdout}"
    );

    // Point-to-point and ring traffic across the hosts, by the default
    // interface rules and with the interface named.
    let out = hosts.mpirun(&[
        "--host",
        &host_list,
        env!("CARGO_BIN_EXE_conformance"),
        "all-pairs",
    ]);
    let stdout = assert_success(&out, "all-pairs on two hosts");
    assert!(stdout.contains("all-pairs: ok at 4 ranks"), "{stdout}");
    let out = hosts.mpirun(&[
        "--host",
        &host_list,
        "--iface",
        IFACE,
        env!("CARGO_BIN_EXE_ring"),
        "20",
    ]);
    let stdout = assert_success(&out, "ring on two hosts with --iface");
    assert!(
        stdout.contains(&format!("token {}: ok", 6 * 20)),
        "{stdout}"
    );
}

#[test]
fn a_hostfile_of_both_forms_places_ranks_by_slot() {
    let hosts = TwoHosts::new();
    let hostfile = hosts.dir.join("hosts");
    std::fs::write(
        &hostfile,
        format!("# two hosts\n{HOST_A} slots=1   # Open MPI form\n\n{HOST_B}:3  # MPICH form\n"),
    )
    .unwrap();
    let out = hosts.mpirun(&["--machinefile", hostfile.to_str().unwrap(), links_bin()]);
    let stdout = assert_success(&out, "links from a hostfile");
    assert_eq!(
        link_table(&stdout, 4),
        expected_links(&[0, 1, 1, 1]),
        "{stdout}"
    );
}

#[test]
fn more_ranks_than_slots_needs_oversubscribe() {
    let hosts = TwoHosts::new();
    let host_list = format!("{HOST_A}:2,{HOST_B}:2");
    let out = hosts.mpirun(&["-n", "5", "--host", &host_list, links_bin()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("5 ranks")
            && stderr.contains("4 slots")
            && stderr.contains("--oversubscribe"),
        "{stderr}"
    );
    assert!(!stdout.contains("links:"), "no rank may start: {stdout}");

    let out = hosts.mpirun(&[
        "-n",
        "5",
        "--oversubscribe",
        "--host",
        &host_list,
        links_bin(),
    ]);
    let stdout = assert_success(&out, "5 ranks on 4 slots with --oversubscribe");
    // The fifth rank goes round-robin, to the first host.
    assert_eq!(
        link_table(&stdout, 5),
        expected_links(&[0, 0, 1, 1, 0]),
        "{stdout}"
    );
}

#[test]
fn a_remote_rank_that_dies_ends_the_job() {
    let hosts = TwoHosts::new();
    let host_list = format!("{HOST_A}:2,{HOST_B}:2");
    let started = std::time::Instant::now();
    // The last rank, on the second host, kills itself with SIGKILL.
    let out = hosts.mpirun(&[
        "--host",
        &host_list,
        env!("CARGO_BIN_EXE_conformance"),
        "kill",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert_ne!(
        out.status.code(),
        Some(124),
        "ended by the deadline, not the fault: {stderr}"
    );
    assert!(
        stderr.contains("rank 3"),
        "the message names the dead rank: {stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_launchers_own_host_runs_its_ranks_as_children() {
    let hosts = TwoHosts::new();
    // `localhost` ranks are the launcher's children (PMI over an inherited
    // socket); they listen on the address the other host reaches.
    let host_list = format!("localhost:2,{HOST_B}:1");
    let out = hosts.mpirun(&["--host", &host_list, links_bin()]);
    let stdout = assert_success(&out, "links on the launcher's host and another");
    assert_eq!(
        link_table(&stdout, 3),
        expected_links(&[0, 0, 1]),
        "{stdout}"
    );
}

#[test]
fn hydra_runs_a_job_across_the_two_hosts() {
    assert!(
        Command::new("sh")
            .args(["-c", "command -v mpiexec.mpich"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "mpiexec.mpich is missing: install Debian's mpich (.ci/run does)"
    );
    let hosts = TwoHosts::new();
    let host_list = format!("{HOST_A}:2,{HOST_B}:2");
    let out = Command::new("timeout")
        .args([
            "120",
            "ip",
            "netns",
            "exec",
            &hosts.namespaces[0],
            "mpiexec.mpich",
        ])
        .args(["-launcher", "ssh", "-launcher-exec"])
        .arg(hosts.hydra_agent())
        .args(["-hosts", &host_list, "-n", "4", links_bin()])
        .output()
        .expect("run mpiexec.mpich");
    let stdout = assert_success(&out, "links under Hydra on two hosts");
    assert_eq!(
        link_table(&stdout, 4),
        expected_links(&[0, 0, 1, 1]),
        "{stdout}"
    );
}

#[test]
fn remote_ranks_stop_with_the_job_even_when_the_agent_passes_no_signals() {
    let hosts = TwoHosts::new();
    // Like ssh without a terminal: the command runs in a session of its own,
    // out of reach of the signals mpirun sends the agent's process group.
    let detached = hosts.dir.join("detached-agent.sh");
    std::fs::write(
        &detached,
        format!(
            "#!/bin/sh\nexec setsid --wait {} \"$@\"\n",
            hosts.agent().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&detached, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pids = hosts.dir.join("pids");
    let record = format!("echo $$ >> {}; exec sleep 60", pids.display());
    let host_list = format!("{HOST_A},{HOST_B}");
    let out = hosts.mpirun_with(&detached, "2", &["--host", &host_list, "sh", "-c", &record]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    let pids: Vec<String> = std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(pids.len(), 2, "both ranks started: {pids:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "ranks {pids:?} outlived their job"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
