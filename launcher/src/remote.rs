//! Ranks on other hosts: the command a launch agent runs for them, and the
//! TCP side of the PMI server they connect back to.
//!
//! A remote rank cannot inherit a socket, so it is started through the
//! launch agent (`ssh` by default; any `CMD` called as `CMD HOST
//! COMMAND...`) with `COMMAND` = `sh -c SCRIPT`. The script reads the job's
//! secret from its standard input (so it never shows on a command line),
//! sets `PMI_PORT=addr:port`, `PMI_ID=rank` and the job's variables (each
//! value single-quoted), changes to the launcher's directory when it exists
//! there, and starts the program with stdin from `/dev/null`, exiting with
//! its status. Meanwhile it watches its standard input, which the launcher
//! keeps open for the job's life: end-of-file means the launcher or its
//! agent is gone (an `ssh` killed when the job ends, which without a
//! terminal sends the remote side no signal), and the rank gets SIGTERM,
//! then SIGKILL, so no rank outlives its job on a remote host. `ssh` and
//! `rsh` hand their arguments to a remote shell as one string, so for an
//! agent of that name each word is shell-quoted once more; any other agent
//! (`ip netns exec`, `docker exec`, ...) gets the words as they are.
//!
//! The rank connects to [`PmiTcpServer`], which listens on one address
//! (never every interface) and admits a connection only if its first line,
//! `cmd=initack pmiid=R secret=S`, carries the job's secret and the number of
//! a remote rank not yet connected. It answers as MPICH's simple PMI expects
//! (`initack`, then `set size`, `set rank`, `set debug`), then splices the
//! connection to the launcher's end of a socket pair made for that rank
//! before the job started: the supervisor sees a remote rank exactly as a
//! local one. A connection that fails is closed and logged; the job goes on.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mpirt::bootstrap::pmi::{hex_encode, read_line, PmiLine};

/// How long a new connection has to send its first line.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accepting thread looks whether the job is over.
const ACCEPT_POLL: Duration = Duration::from_millis(100);

/// A fresh per-job secret: 16 random bytes in hex.
pub fn new_secret() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex_encode(&bytes))
}

/// `word` in single quotes for a POSIX shell (`'` written as `'\''`).
pub fn shell_quote(word: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(word.len() + 2);
    out.push(b'\'');
    for &b in word.as_bytes() {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// Whether `name` may be exported by a shell (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_shell_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// What a remote rank runs.
pub struct RemoteRank<'a> {
    /// The program's path (the same on every host, as with MPICH).
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// The job's variables (names already checked with [`is_shell_name`]).
    pub env: &'a [(OsString, OsString)],
    /// The launcher's directory, entered if it exists on the host.
    pub directory: Option<&'a Path>,
    /// Where the launcher's PMI server listens.
    pub pmi_address: SocketAddr,
    /// The rank.
    pub rank: usize,
}

impl RemoteRank<'_> {
    /// The `sh -c` script (see the module doc).
    pub fn script(&self) -> OsString {
        let mut s: Vec<u8> = Vec::new();
        s.extend_from_slice(
            b"IFS= read -r MPIRT_PMI_SECRET || exit 126; export MPIRT_PMI_SECRET; unset PMI_FD PMI_RANK PMI_SIZE; ",
        );
        if let Some(dir) = self.directory {
            s.extend_from_slice(b"cd ");
            s.extend_from_slice(shell_quote(dir.as_os_str()).as_bytes());
            s.extend_from_slice(b" 2>/dev/null; ");
        }
        let mut export = |name: &OsStr, value: &OsStr| {
            s.extend_from_slice(b"export ");
            s.extend_from_slice(name.as_bytes());
            s.push(b'=');
            s.extend_from_slice(shell_quote(value).as_bytes());
            s.extend_from_slice(b"; ");
        };
        for (name, value) in self.env {
            export(name, value);
        }
        export(
            OsStr::new("PMI_PORT"),
            OsStr::new(&self.pmi_address.to_string()),
        );
        export(OsStr::new("PMI_ID"), OsStr::new(&self.rank.to_string()));
        // Background lists get /dev/null as stdin unless redirected, so the
        // watcher reads the script's stdin through descriptor 3.
        s.extend_from_slice(b"exec 3<&0; ");
        s.extend_from_slice(shell_quote(self.program.as_os_str()).as_bytes());
        for arg in self.args {
            s.push(b' ');
            s.extend_from_slice(shell_quote(arg).as_bytes());
        }
        s.extend_from_slice(
            b" </dev/null 3<&- & rank=$!; \
              { while read -r _; do :; done; kill -TERM $rank 2>/dev/null; sleep 2; kill -KILL $rank 2>/dev/null; } <&3 >/dev/null 2>&1 & watcher=$!; \
              exec 3<&-; wait $rank; status=$?; kill $watcher 2>/dev/null; exit $status",
        );
        OsString::from_vec(s)
    }

    /// The words after `HOST` in the agent's command line.
    pub fn agent_words(&self, agent: &[OsString]) -> Vec<OsString> {
        let words = vec![OsString::from("sh"), OsString::from("-c"), self.script()];
        if agent_takes_one_string(agent) {
            words.iter().map(|w| shell_quote(w)).collect()
        } else {
            words
        }
    }
}

/// Whether the agent (`ssh`, `rsh`) joins its arguments into one string for
/// a remote shell.
fn agent_takes_one_string(agent: &[OsString]) -> bool {
    agent
        .first()
        .and_then(|p| Path::new(p).file_name())
        .is_some_and(|name| name == "ssh" || name == "rsh")
}

/// The TCP PMI endpoint for a job's remote ranks (see the module doc).
/// Dropping it stops admitting connections; spliced ones live on.
pub struct PmiTcpServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// Remote ranks not yet connected: their rank and the socket-pair end that
/// their connection will be spliced to.
type Waiting = Arc<Mutex<HashMap<usize, UnixStream>>>;

impl PmiTcpServer {
    /// Listens on `ip` (any free port) for ranks `waiting` of a job of
    /// `size`, each to be spliced to its socket-pair end.
    pub fn start(
        ip: IpAddr,
        size: usize,
        secret: String,
        waiting: HashMap<usize, UnixStream>,
    ) -> io::Result<PmiTcpServer> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let waiting: Waiting = Arc::new(Mutex::new(waiting));
        let stop_flag = stop.clone();
        thread::Builder::new()
            .name("pmi-tcp".into())
            .spawn(move || accept_loop(&listener, size, &secret, &waiting, &stop_flag))?;
        Ok(PmiTcpServer { address, stop })
    }

    /// The address ranks are told in `PMI_PORT`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for PmiTcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn accept_loop(
    listener: &TcpListener,
    size: usize,
    secret: &str,
    waiting: &Waiting,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let secret = secret.to_string();
                let waiting = waiting.clone();
                let started =
                    thread::Builder::new()
                        .name("pmi-tcp-hello".into())
                        .spawn(move || {
                            if let Err(reason) = admit(stream, size, &secret, &waiting) {
                                eprintln!("mpirun: refused a PMI connection from {peer}: {reason}");
                            }
                        });
                if let Err(e) = started {
                    eprintln!("mpirun: could not serve a PMI connection from {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(listener),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("mpirun: accepting PMI connections: {e}");
                thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Waits up to [`ACCEPT_POLL`] for a connection to arrive.
fn wait_readable(listener: &TcpListener) {
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, owned by this frame, for the call's duration.
    unsafe { libc::poll(&mut fds, 1, ACCEPT_POLL.as_millis() as libc::c_int) };
}

/// Checks a new connection's first line and splices it to its rank.
fn admit(stream: TcpStream, size: usize, secret: &str, waiting: &Waiting) -> Result<(), String> {
    stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let line = match read_line(&mut reader) {
        Ok(Some(line)) => line,
        Ok(None) => return Err("closed before saying who it is".into()),
        Err(e) => return Err(format!("no first line: {e}")),
    };
    let hello = PmiLine::parse(&line).map_err(|e| e.to_string())?;
    if hello.command() != "initack" {
        return Err(format!("first line is {:?}, not initack", hello.command()));
    }
    let given = hello.get("secret").unwrap_or("");
    if !same_secret(given.as_bytes(), secret.as_bytes()) {
        return Err("wrong or missing job secret".into());
    }
    let rank = hello
        .get("pmiid")
        .and_then(|id| id.parse::<usize>().ok())
        .filter(|&r| r < size)
        .ok_or("no valid pmiid")?;
    let local_end = waiting
        .lock()
        .map_err(|_| "internal lock poisoned".to_string())?
        .remove(&rank)
        .ok_or_else(|| format!("rank {rank} is not a remote rank waiting to connect"))?;
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let welcome =
        format!("cmd=initack\ncmd=set size={size}\ncmd=set rank={rank}\ncmd=set debug=0\n");
    writer
        .write_all(welcome.as_bytes())
        .map_err(|e| format!("rank {rank}: {e}"))?;
    splice(rank, reader, writer, local_end).map_err(|e| format!("rank {rank}: {e}"))
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Copies both ways between the rank's TCP connection and the launcher's
/// socket-pair end until either side closes; then closes both.
fn splice(
    rank: usize,
    mut from_rank: BufReader<TcpStream>,
    mut to_rank: TcpStream,
    local_end: UnixStream,
) -> io::Result<()> {
    let mut to_launcher = local_end.try_clone()?;
    let mut from_launcher = local_end;
    let unix = to_launcher.try_clone()?;
    thread::Builder::new()
        .name(format!("rank{rank}-pmi-in"))
        .spawn(move || {
            let _ = io::copy(&mut from_rank, &mut to_launcher);
            let _ = to_launcher.shutdown(Shutdown::Both);
        })?;
    thread::Builder::new()
        .name(format!("rank{rank}-pmi-out"))
        .spawn(move || {
            let _ = io::copy(&mut from_launcher, &mut to_rank);
            let _ = to_rank.shutdown(Shutdown::Both);
            let _ = unix.shutdown(Shutdown::Both);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::Ipv4Addr;

    #[test]
    fn quoting_survives_a_shell() {
        let nasty = OsStr::new("a b'c\"$HOME`x`\\");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(OsString::from_vec(
                [b"printf %s ".as_slice(), shell_quote(nasty).as_bytes()].concat(),
            ))
            .output()
            .unwrap();
        assert_eq!(out.stdout, nasty.as_bytes());
        assert!(is_shell_name(OsStr::new("MPIRT_X1")));
        assert!(!is_shell_name(OsStr::new("1X")));
        assert!(!is_shell_name(OsStr::new("A-B")));
    }

    #[test]
    fn the_script_sets_the_environment_and_runs_the_program() {
        let env = [(OsString::from("GREETING"), OsString::from("it's here"))];
        let args = [
            OsString::from("-c"),
            OsString::from("echo \"$GREETING|$PMI_PORT|$PMI_ID|$MPIRT_PMI_SECRET|$PMI_FD\""),
        ];
        let rank = RemoteRank {
            program: Path::new("/bin/sh"),
            args: &args,
            env: &env,
            directory: Some(Path::new("/")),
            pmi_address: "10.1.2.3:4567".parse().unwrap(),
            rank: 3,
        };
        // Run it as an exec-style agent would, and as ssh would (one string
        // for a shell).
        for agent in [vec![OsString::from("env")], vec![OsString::from("ssh")]] {
            let words = rank.agent_words(&agent);
            let mut cmd = if agent[0] == "ssh" {
                let joined = words.join(OsStr::new(" "));
                let mut c = std::process::Command::new("sh");
                c.arg("-c").arg(joined);
                c
            } else {
                let mut c = std::process::Command::new(&words[0]);
                c.args(&words[1..]);
                c
            };
            let mut child = cmd
                .env("PMI_FD", "9")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // The launcher keeps stdin open while the rank runs.
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"s3cret\n").unwrap();
            let mut stdout = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            assert!(child.wait().unwrap().success());
            drop(stdin);
            assert_eq!(stdout, "it's here|10.1.2.3:4567|3|s3cret|\n");
        }
    }

    #[test]
    fn a_rank_stops_when_its_launcher_is_gone_and_its_status_is_the_scripts() {
        let run = |args: &[OsString], close_stdin: bool| {
            let rank = RemoteRank {
                program: Path::new("/bin/sh"),
                args,
                env: &[],
                directory: None,
                pmi_address: "127.0.0.1:1".parse().unwrap(),
                rank: 0,
            };
            let words = rank.agent_words(&[OsString::from("env")]);
            let mut child = std::process::Command::new(&words[0])
                .args(&words[1..])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"x\n").unwrap();
            let started = std::time::Instant::now();
            if close_stdin {
                drop(stdin);
                (child.wait().unwrap(), started.elapsed())
            } else {
                let status = child.wait().unwrap();
                drop(stdin);
                (status, started.elapsed())
            }
        };
        let sleeper = [OsString::from("-c"), OsString::from("sleep 30")];
        let (status, took) = run(&sleeper, true);
        assert!(!status.success());
        assert!(took < Duration::from_secs(10), "took {took:?}");
        let exit7 = [OsString::from("-c"), OsString::from("exit 7")];
        assert_eq!(run(&exit7, false).0.code(), Some(7));
    }

    fn hello(address: SocketAddr, line: &str) -> BufReader<TcpStream> {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(line.as_bytes()).unwrap();
        BufReader::new(stream)
    }

    #[test]
    fn only_a_rank_with_the_secret_is_admitted() {
        let (launcher_end, bridge_end) = UnixStream::pair().unwrap();
        let server = PmiTcpServer::start(
            Ipv4Addr::LOCALHOST.into(),
            2,
            "abc".into(),
            HashMap::from([(1, bridge_end)]),
        )
        .unwrap();
        for stranger in [
            "cmd=initack pmiid=1\n",
            "cmd=initack pmiid=1 secret=abd\n",
            "cmd=init pmi_version=1\n",
            "\x01\x02\n",
        ] {
            let mut reader = hello(server.address(), stranger);
            let mut rest = String::new();
            assert_eq!(reader.read_line(&mut rest).unwrap_or(0), 0, "{stranger:?}");
        }
        let mut wrong_rank = hello(server.address(), "cmd=initack pmiid=0 secret=abc\n");
        let mut rest = String::new();
        assert_eq!(wrong_rank.read_line(&mut rest).unwrap_or(0), 0);

        let mut rank = hello(server.address(), "cmd=initack pmiid=1 secret=abc\n");
        let mut welcome = String::new();
        for _ in 0..4 {
            rank.read_line(&mut welcome).unwrap();
        }
        assert_eq!(
            welcome,
            "cmd=initack\ncmd=set size=2\ncmd=set rank=1\ncmd=set debug=0\n"
        );
        // Spliced: lines go both ways.
        rank.get_mut().write_all(b"cmd=init\n").unwrap();
        let mut launcher = BufReader::new(launcher_end.try_clone().unwrap());
        let mut got = String::new();
        launcher.read_line(&mut got).unwrap();
        assert_eq!(got, "cmd=init\n");
        (&launcher_end)
            .write_all(b"cmd=response_to_init rc=0\n")
            .unwrap();
        let mut answer = String::new();
        rank.read_line(&mut answer).unwrap();
        assert_eq!(answer, "cmd=response_to_init rc=0\n");
        // A second connection for the same rank is refused.
        let mut again = hello(server.address(), "cmd=initack pmiid=1 secret=abc\n");
        let mut rest = String::new();
        assert_eq!(again.read_line(&mut rest).unwrap_or(0), 0);
        // The rank closing is end-of-file for the launcher.
        drop(rank);
        got.clear();
        assert_eq!(launcher.read_line(&mut got).unwrap_or(0), 0);
    }
}
