//! Starting, signalling and naming the fate of rank processes: the only
//! module that makes raw system calls.
//!
//! Each rank is started with `std::process::Command` and, between `fork` and
//! `exec` (`pre_exec`), the child:
//! - clears close-on-exec on its end of the PMI socket pair, whose number it
//!   finds in `PMI_FD` (Rust opens every descriptor close-on-exec);
//! - becomes the leader of its own process group (`setpgid(0, 0)`), so the
//!   launcher signals a rank and whatever it started with `kill(-pgid, sig)`,
//!   and a Ctrl-C at the terminal reaches only `mpirun`, which forwards it;
//! - is bound to one CPU when the launcher chose one (`sched_setaffinity`;
//!   see [`rank_cpus`]);
//! - asks for `SIGKILL` when its parent dies (`PR_SET_PDEATHSIG`), then checks
//!   that the parent is still the launcher, closing the race with a launcher
//!   that died during the fork. The death signal fires when the *thread* that
//!   forked exits, so ranks must be spawned by the thread that supervises the
//!   job until they are reaped.
//!
//! Ranks get `/dev/null` as stdin and pipes as stdout and stderr.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::outcome::LaunchError;

/// Turns a `-1` from a libc call into the `errno` error. Allocation-free, so
/// it may be used between `fork` and `exec`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Finds the file `program` names, as `execvp` would: a name with a `/` is a
/// path; otherwise each directory of `PATH` is tried in order (an empty entry
/// meaning the current directory). The file must exist, not be a directory,
/// and have an execute bit.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf, LaunchError> {
    resolve_program_in(program, std::env::var_os("PATH").as_deref())
}

/// [`resolve_program`] with an explicit `PATH` value (`None`: unset).
pub fn resolve_program_in(
    program: &OsStr,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, LaunchError> {
    let not_found = |searched_path| LaunchError::ProgramNotFound {
        program: PathBuf::from(program),
        searched_path,
    };
    if program.is_empty() {
        return Err(not_found(false));
    }
    if program.as_bytes().contains(&b'/') {
        return check_executable(Path::new(program)).map_err(|e| e.unwrap_or(not_found(false)));
    }
    // execvp's default search path when PATH is unset.
    let path_var = path_var.unwrap_or(OsStr::new("/bin:/usr/bin"));
    let mut not_executable = None;
    for dir in std::env::split_paths(path_var) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        match check_executable(&dir.join(program)) {
            Ok(path) => return Ok(path),
            Err(Some(e)) => not_executable = not_executable.or(Some(e)),
            Err(None) => {}
        }
    }
    Err(not_executable.unwrap_or(not_found(true)))
}

/// `Ok(path)` if `path` is an executable file; `Err(None)` if nothing is
/// there; `Err(Some(NotExecutable))` if something is, but cannot be run.
fn check_executable(path: &Path) -> Result<PathBuf, Option<LaunchError>> {
    let metadata = fs::metadata(path).map_err(|_| None)?;
    let refuse = |reason| {
        Some(LaunchError::NotExecutable {
            path: path.to_path_buf(),
            reason,
        })
    };
    if metadata.is_dir() {
        Err(refuse("it is a directory"))
    } else if metadata.permissions().mode() & 0o111 == 0 {
        Err(refuse("it has no execute permission"))
    } else {
        Ok(path.to_path_buf())
    }
}

/// What every rank of a job runs.
#[derive(Debug, Clone)]
pub struct RankCommand {
    /// The resolved program file.
    pub program: PathBuf,
    /// `argv[0]`: the name the user gave.
    pub arg0: OsString,
    /// The arguments after `argv[0]`.
    pub args: Vec<OsString>,
    /// Variables set for every rank, after the inherited environment.
    pub env: Vec<(OsString, OsString)>,
}

/// A started rank: its process and the launcher's end of its PMI socket.
#[derive(Debug)]
pub struct SpawnedRank {
    /// The child; its stdout and stderr are pipes.
    pub child: Child,
    /// The launcher's end of the rank's PMI connection.
    pub pmi: UnixStream,
}

/// The CPUs to bind a one-host job's ranks to, one each, in rank order: the
/// CPUs this process may run on, when there are at least as many as ranks
/// and more than one rank (as Open MPI binds small jobs to cores).
/// Otherwise `None`: the kernel places the ranks.
///
/// Unbound, two ranks that wake each other are pulled onto one CPU by the
/// scheduler's wake-affinity when any other process keeps the second CPU
/// busy, and stay there: a ping-pong then costs a time slice (measured: 8 B
/// over TCP in 307 us instead of 4.2 with one niced CPU hog running). On a
/// quiet machine binding costs instead (8 B over shared memory here: 0.37
/// us bound, 0.15 unbound), so it is asked for, not the default.
pub fn rank_cpus(ranks: usize) -> Option<Vec<usize>> {
    if ranks < 2 {
        return None;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: writes at most size_of::<cpu_set_t>() bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    (allowed.len() >= ranks).then(|| allowed[..ranks].to_vec())
}

/// Starts rank `rank` of `size`, with `PMI_FD`, `PMI_RANK` and `PMI_SIZE`
/// set, bound to `cpu` if given.
pub fn spawn_rank(
    command: &RankCommand,
    rank: usize,
    size: usize,
    cpu: Option<usize>,
) -> io::Result<SpawnedRank> {
    let (launcher_end, rank_end) = UnixStream::pair()?;
    let rank_fd = rank_end.as_raw_fd();

    let mut cmd = Command::new(&command.program);
    cmd.arg0(&command.arg0)
        .args(&command.args)
        // A launcher started under another process manager must not pass
        // that one's connection on: each rank talks to this launcher only.
        .env_remove("PMI_PORT")
        .env_remove("PMI_ID")
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .env("PMI_FD", rank_fd.to_string())
        .env("PMI_RANK", rank.to_string())
        .env("PMI_SIZE", size.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    arm_child(&mut cmd, Some(rank_fd), cpu);
    let child = cmd.spawn()?;
    // The child holds its own copy now; closing ours lets the launcher see
    // end-of-file on the PMI socket when the rank exits.
    drop(rank_end);
    Ok(SpawnedRank {
        child,
        pmi: launcher_end,
    })
}

/// Starts the launch agent for a rank on another host: `agent HOST
/// COMMAND...`, in its own process group and dying with the launcher like a
/// local rank, so the agent's exit stands for the rank's. It gets none of
/// the PMI variables (the command it carries sets the remote rank's own),
/// and `stdin_line` on its standard input (the job secret, which would
/// otherwise show on a command line), which then stays open as long as the
/// returned child is kept.
pub fn spawn_agent(
    agent: &[OsString],
    host: &str,
    command: &[OsString],
    stdin_line: &str,
) -> io::Result<Child> {
    use std::io::Write;
    let Some((program, agent_args)) = agent.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty launch agent",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(agent_args)
        .arg(host)
        .args(command)
        .env_remove("PMI_FD")
        .env_remove("PMI_RANK")
        .env_remove("PMI_SIZE")
        .env_remove("PMI_PORT")
        .env_remove("PMI_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    arm_child(&mut cmd, None, None);
    let mut child = cmd.spawn()?;
    if let Some(stdin) = child.stdin.as_mut() {
        // A line this short fits the pipe: the write does not block. An agent
        // that exits at once closes the pipe; its exit will say why. The
        // pipe stays open with the child: its end tells the agent's side the
        // launcher is gone.
        let _ = stdin.write_all(format!("{stdin_line}\n").as_bytes());
    }
    Ok(child)
}

/// Sets up, for between `fork` and `exec`: `inherit_fd` kept open across
/// exec, a process group of the child's own, the CPU it is bound to, and
/// SIGKILL when the launcher dies (see the module doc).
fn arm_child(cmd: &mut Command, inherit_fd: Option<std::os::fd::RawFd>, cpu: Option<usize>) {
    let launcher_pid = std::process::id() as libc::pid_t;
    // Built before the fork: the child only makes the system call.
    let binding = cpu.filter(|&c| c < libc::CPU_SETSIZE as usize).map(|c| {
        // SAFETY: a zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is below CPU_SETSIZE, the set's capacity.
        unsafe { libc::CPU_SET(c, &mut set) };
        set
    });
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes only fcntl, setpgid,
    // sched_setaffinity, prctl and getppid system calls, and builds errors with `last_os_error` and
    // `from_raw_os_error`, which do not allocate. `inherit_fd` stays open in
    // the parent until `spawn` has returned.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = inherit_fd {
                let flags = cvt(libc::fcntl(fd, libc::F_GETFD))?;
                cvt(libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC))?;
            }
            cvt(libc::setpgid(0, 0))?;
            if let Some(set) = &binding {
                // A binding refused (a CPU taken away meanwhile) only costs
                // speed: the rank runs unbound.
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
            }
            cvt(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ))?;
            if libc::getppid() != launcher_pid {
                // The launcher died before the death signal was armed.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the process group led by rank process `pid`: the rank
/// and anything it started that stayed in its group. A group that is already
/// gone is not an error.
pub fn signal_group(pid: u32, signal: i32) -> io::Result<()> {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    if pgid <= 1 {
        // kill(0 or -1, ...) would reach far more than one rank.
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill has no memory-safety preconditions; a negative pid
    // addresses exactly the process group `pgid`, which the rank created with
    // setpgid(0, 0) and which the launcher has not yet seen empty.
    match cvt(unsafe { libc::kill(-pgid, signal) }) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The conventional name of a signal number (`9` → `SIGKILL`), if it has one.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: &[(libc::c_int, &str)] = &[
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES
        .iter()
        .find(|(number, _)| *number == signal)
        .map(|(_, name)| *name)
}

/// `signal 9 (SIGKILL)`, or `signal 40` for a signal without a name.
pub fn describe_signal(signal: i32) -> String {
    match signal_name(signal) {
        Some(name) => format!("signal {signal} ({name})"),
        None => format!("signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(11), Some("SIGSEGV"));
        assert_eq!(signal_name(15), Some("SIGTERM"));
        assert_eq!(signal_name(0), None);
        assert_eq!(describe_signal(9), "signal 9 (SIGKILL)");
        assert_eq!(describe_signal(40), "signal 40");
    }

    #[test]
    fn resolves_through_path_and_refuses_what_cannot_run() {
        let sh = resolve_program_in(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(sh.ends_with("sh"), "{sh:?}");
        assert!(matches!(
            resolve_program_in(OsStr::new("no-such-program-xyz"), Some(OsStr::new("/bin"))),
            Err(LaunchError::ProgramNotFound {
                searched_path: true,
                ..
            })
        ));
        assert!(matches!(
            resolve_program_in(OsStr::new("/no/such/file"), None),
            Err(LaunchError::ProgramNotFound {
                searched_path: false,
                ..
            })
        ));
        assert!(matches!(
            resolve_program_in(OsStr::new("/tmp"), None),
            Err(LaunchError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve_program_in(OsStr::new("/etc/hostname/"), None),
            Err(LaunchError::ProgramNotFound { .. })
        ));
        assert!(matches!(
            resolve_program_in(OsStr::new("passwd"), Some(OsStr::new("/etc"))),
            Err(LaunchError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve_program_in(OsStr::new(""), None),
            Err(LaunchError::ProgramNotFound { .. })
        ));
    }

    #[test]
    fn a_rank_inherits_its_pmi_descriptor_and_its_own_process_group() {
        let command = RankCommand {
            program: PathBuf::from("/bin/sh"),
            arg0: "sh".into(),
            args: vec![
                "-c".into(),
                "echo \"$PMI_RANK $PMI_SIZE $(ps -o pgid= -p $$)\"; echo hello >&$PMI_FD".into(),
            ],
            env: Vec::new(),
        };
        let mut spawned = spawn_rank(&command, 1, 3, None).unwrap();
        let pid = spawned.child.id();
        let mut from_rank = String::new();
        BufReader::new(&spawned.pmi)
            .read_line(&mut from_rank)
            .unwrap();
        assert_eq!(from_rank, "hello\n");
        let mut stdout = String::new();
        spawned
            .child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(spawned.child.wait().unwrap().success());
        let words: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(words[..2], ["1", "3"]);
        if let Some(pgid) = words.get(2) {
            assert_eq!(
                *pgid,
                pid.to_string(),
                "the rank leads its own process group"
            );
        }
    }

    #[test]
    fn signalling_a_group_reaches_the_rank() {
        let command = RankCommand {
            program: PathBuf::from("/bin/sleep"),
            arg0: "sleep".into(),
            args: vec!["30".into()],
            env: Vec::new(),
        };
        let mut spawned = spawn_rank(&command, 0, 1, None).unwrap();
        signal_group(spawned.child.id(), libc::SIGKILL).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(spawned.child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(
            signal_group(1, libc::SIGTERM).is_err(),
            "never signal init's group"
        );
    }
}
