//! [`Job`]: what to run and how, as a builder; [`Job::run`] checks the
//! request, starts every rank and the helper threads, and hands over to the
//! `Supervisor` event loop on the calling thread until the job is over.
//!
//! The calling thread spawns the ranks and stays in the loop until they are
//! reaped: ranks ask for SIGKILL when the thread that forked them exits (see
//! [`crate::spawn`]), so a launcher that dies takes its ranks with it.
//!
//! With [`Job::hosts`], ranks are placed on hosts ([`crate::hosts`]); those
//! on other hosts are started through the launch agent and reach the PMI
//! server over TCP ([`crate::remote`]). The agent process stands for the
//! rank: its exit is the rank's exit, and signalling its process group
//! signals the rank's. `PMI_process_mapping` tells every rank which share a
//! host.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::BufReader;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use mpirt::bootstrap::net;
use mpirt::bootstrap::pmi::read_line;
use mpirt::bootstrap::process_mapping::ProcessMapping;

use crate::hosts::{node_indices, place_ranks, Host};
use crate::outcome::{LaunchError, Outcome};
use crate::output::{for_each_line, forward_line, StreamKind};
use crate::pmi_server::{PmiServer, VALLEN_MAX};
use crate::remote::{is_shell_name, new_secret, PmiTcpServer, RemoteRank};
use crate::spawn::{
    resolve_program, signal_group, spawn_agent, spawn_rank, RankCommand, SpawnedRank,
};
use crate::supervisor::{Event, StartedRank, Supervisor};

/// How long a reply to a rank may block before its connection is dropped (a
/// rank that sends requests without reading replies must not stall the job).
const PMI_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which transport ranks are told to use, through `MPIRT_TRANSPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Shared memory between ranks on one node, TCP otherwise.
    Auto,
    /// TCP only.
    Tcp,
    /// Shared memory only.
    Shm,
}

impl Transport {
    /// The value of `MPIRT_TRANSPORT`.
    pub fn env_value(self) -> &'static str {
        match self {
            Transport::Auto => "auto",
            Transport::Tcp => "tcp",
            Transport::Shm => "shm",
        }
    }
}

/// Where ranks' stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To this process's stdout and stderr, line by line.
    Forward,
    /// Kept, per rank, in [`Outcome::stdout`] and [`Outcome::stderr`].
    Capture,
}

/// Cancels a running [`Job`] from another thread (or a signal handler
/// thread): its ranks get SIGTERM, then SIGKILL, and the job's outcome is
/// [`crate::Failure::Interrupted`]. Cancelling twice skips the grace period.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    events: Sender<Event>,
}

impl CancelHandle {
    /// Asks the job to end because the launcher received `signal`.
    pub fn cancel(&self, signal: i32) {
        // If the job is over, nobody listens any more, and that is fine.
        let _ = self.events.send(Event::Cancel { signal });
    }
}

/// Whether ranks are bound to CPUs (`mpirun --bind-to`, Open MPI's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// The kernel places the ranks (the default, as MPICH's).
    #[default]
    None,
    /// One CPU per rank of a one-host job of at least two ranks, when the
    /// launcher may use as many CPUs as there are ranks: for machines where
    /// other processes keep CPUs busy (see `spawn::rank_cpus` for why).
    Core,
}

/// A job to launch: `ranks` copies of one program, each told its rank.
///
/// ```no_run
/// use launcher::{Job, Output};
/// use std::time::Duration;
/// let outcome = Job::new("hostname").ranks(3).output(Output::Capture).timeout(Duration::from_secs(10)).run()?;
/// assert!(outcome.success());
/// assert_eq!(outcome.stdout.len(), 3);
/// # Ok::<(), launcher::LaunchError>(())
/// ```
#[derive(Debug)]
pub struct Job {
    program: OsString,
    ranks: usize,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Option<Duration>,
    tag_output: bool,
    output: Output,
    /// Where ranks run; `None`: all on this machine.
    hosts: Option<Vec<Host>>,
    /// Whether more ranks than slots may be placed.
    oversubscribe: bool,
    /// The command that starts a rank on another host (`ssh`), as words.
    launch_agent: Vec<OsString>,
    /// The interface remote ranks reach the launcher on (`--iface`).
    iface: Option<String>,
    /// Whether a one-host job's ranks are bound to CPUs (`--bind-to`).
    bind: Binding,
    /// The sending half is cloned into cancel handles; the loop receives.
    events: (Sender<Event>, Receiver<Event>),
}

impl Job {
    /// A job running `program` (looked up in `PATH` if it has no `/`) as
    /// one rank, forwarding its output, with no timeout.
    pub fn new(program: impl Into<OsString>) -> Job {
        Job {
            program: program.into(),
            ranks: 1,
            args: Vec::new(),
            env: Vec::new(),
            timeout: None,
            tag_output: false,
            output: Output::Forward,
            hosts: None,
            oversubscribe: false,
            launch_agent: vec!["ssh".into()],
            iface: None,
            bind: Binding::default(),
            events: channel::unbounded(),
        }
    }

    /// Runs `n` ranks.
    pub fn ranks(mut self, n: usize) -> Job {
        self.ranks = n;
        self
    }

    /// Appends one argument for the program.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Job {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments for the program.
    pub fn args<I>(mut self, args: I) -> Job
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for every rank (on top of this
    /// process's environment, which ranks inherit).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Job {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Tells ranks which transport to use (`MPIRT_TRANSPORT`).
    pub fn transport(self, transport: Transport) -> Job {
        self.env("MPIRT_TRANSPORT", transport.env_value())
    }

    /// Tells ranks their eager limit in bytes (`MPIRT_EAGER_LIMIT`).
    pub fn eager_limit(self, bytes: u64) -> Job {
        self.env("MPIRT_EAGER_LIMIT", bytes.to_string())
    }

    /// Tells ranks their per-sender remote buffer in bytes
    /// (`MPIRT_REMOTE_BUFFER`).
    pub fn remote_buffer(self, bytes: u64) -> Job {
        self.env("MPIRT_REMOTE_BUFFER", bytes.to_string())
    }

    /// Ends the job, killing its ranks, if it runs longer than `limit`.
    pub fn timeout(mut self, limit: Duration) -> Job {
        self.timeout = Some(limit);
        self
    }

    /// Prefixes each forwarded line with `[rank] `.
    pub fn tag_output(mut self, yes: bool) -> Job {
        self.tag_output = yes;
        self
    }

    /// Forwards or captures ranks' output.
    pub fn output(mut self, output: Output) -> Job {
        self.output = output;
        self
    }

    /// Places the ranks on `hosts` by slot, then round-robin (see
    /// [`crate::hosts`]); hosts that are not this machine are reached with
    /// the launch agent.
    pub fn hosts(mut self, hosts: Vec<Host>) -> Job {
        self.hosts = Some(hosts);
        self
    }

    /// Allows more ranks than the hosts have slots.
    pub fn oversubscribe(mut self, yes: bool) -> Job {
        self.oversubscribe = yes;
        self
    }

    /// The command that starts a rank on another host, called as `AGENT
    /// HOST COMMAND...` (default `ssh`); `agent` is split at whitespace.
    pub fn launch_agent(mut self, agent: &str) -> Job {
        self.launch_agent = agent.split_whitespace().map(OsString::from).collect();
        self
    }

    /// The network interface ranks and the launcher use between hosts: the
    /// PMI server binds its address, and ranks get `MPIRT_IFACE`.
    pub fn iface(mut self, name: impl Into<String>) -> Job {
        let name = name.into();
        self.iface = Some(name.clone());
        self.env("MPIRT_IFACE", name)
    }

    /// Whether to bind a one-host job's ranks to CPUs ([`Binding::None`]
    /// by default).
    pub fn bind(mut self, bind: Binding) -> Job {
        self.bind = bind;
        self
    }

    /// A handle that cancels this job while [`Job::run`] runs it.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            events: self.events.0.clone(),
        }
    }

    /// Starts every rank and supervises the job until it is over. Bad
    /// arguments are refused before any rank starts.
    pub fn run(self) -> Result<Outcome, LaunchError> {
        if self.ranks == 0 {
            return Err(LaunchError::NoRanks);
        }
        let program = resolve_program(&self.program)?;
        let hosts = self
            .hosts
            .clone()
            .unwrap_or_else(|| vec![Host::new("localhost", self.ranks)]);
        let placement = place_ranks(
            &hosts,
            self.ranks,
            self.oversubscribe || self.hosts.is_none(),
        )
        .map_err(LaunchError::Hosts)?;
        let remote: Vec<Option<&Host>> = placement
            .iter()
            .map(|&h| Some(&hosts[h]).filter(|h| !h.is_local()))
            .collect();
        let nodes = node_indices(&hosts, &placement);
        let mut mapping = ProcessMapping::from_nodes(&nodes);
        if mapping.to_string().len() > VALLEN_MAX {
            mapping = ProcessMapping::from_nodes_compact(&nodes);
        }
        let multi_host = remote.iter().any(Option::is_some);
        let pmi_ip = if multi_host {
            Some(self.pmi_address(&remote)?)
        } else {
            None
        };
        let env = self.env;
        if pmi_ip.is_some() {
            if let Some((name, _)) = env.iter().find(|(name, _)| !is_shell_name(name)) {
                return Err(LaunchError::Hosts(format!(
                    "cannot pass variable {name:?} to another host: not a shell variable name"
                )));
            }
        }
        let command = RankCommand {
            program,
            arg0: self.program,
            args: self.args,
            env,
        };
        static JOBS_STARTED: AtomicUsize = AtomicUsize::new(0);
        let kvsname = format!(
            "kvs_{}_{}",
            std::process::id(),
            JOBS_STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let server = PmiServer::new(self.ranks, &kvsname).with_process_mapping(mapping.to_string());

        let started = Instant::now();
        let (spawned, _tcp_server) = match pmi_ip {
            None => {
                let cpus = match self.bind {
                    Binding::Core => crate::spawn::rank_cpus(self.ranks),
                    Binding::None => None,
                };
                (spawn_all(&command, self.ranks, cpus.as_deref())?, None)
            }
            Some(ip) => {
                let (spawned, tcp) = spawn_across_hosts(&command, &remote, ip, &self.launch_agent)?;
                (spawned, Some(tcp))
            }
        };
        let (events_tx, events_rx) = self.events;
        let destination = Destination {
            mode: self.output,
            tag_output: self.tag_output,
            events: events_tx.clone(),
        };
        let started_ranks = start_helpers(spawned, &destination, &events_tx)?;
        // The supervisor's own sender stays alive in `events_tx` until the
        // loop returns, so the channel never disconnects under it.
        let outcome = Supervisor::new(started_ranks, server, self.timeout, started).run(&events_rx);
        drop(events_tx);
        Ok(outcome)
    }
}

impl Job {
    /// The address the PMI server listens on for remote ranks: the chosen
    /// interface's, else the source address of the route to the first
    /// remote host.
    fn pmi_address(&self, remote: &[Option<&Host>]) -> Result<IpAddr, LaunchError> {
        let iface = self
            .iface
            .clone()
            .or_else(|| std::env::var("MPIRT_IFACE").ok().filter(|s| !s.is_empty()));
        if let Some(name) = iface {
            return net::interface_address(&name)
                .map_err(|e| LaunchError::Network(format!("interface {name}: {e}")));
        }
        let Some(host) = remote.iter().flatten().next() else {
            return Ok(std::net::Ipv4Addr::LOCALHOST.into());
        };
        net::resolve(&host.name)
            .and_then(net::route_source)
            .map_err(|e| {
                LaunchError::Network(format!(
                    "cannot find the address host {} reaches this launcher on ({e}); name the interface with --iface or MPIRT_IFACE",
                    host.name
                ))
            })
    }
}

/// Starts a job some of whose ranks are on other hosts: those through the
/// launch agent, each with a socket pair whose far end waits in the TCP PMI
/// server for the rank's connection. On failure, kills and reaps what
/// started.
fn spawn_across_hosts(
    command: &RankCommand,
    remote: &[Option<&Host>],
    ip: IpAddr,
    agent: &[OsString],
) -> Result<(Vec<SpawnedRank>, PmiTcpServer), LaunchError> {
    let io_error = |what| move |source| LaunchError::Io { what, source };
    let secret = new_secret().map_err(io_error("cannot make the job secret"))?;
    let mut launcher_ends = HashMap::new();
    let mut waiting = HashMap::new();
    for (rank, host) in remote.iter().enumerate() {
        if host.is_some() {
            let (launcher_end, bridge_end) = std::os::unix::net::UnixStream::pair()
                .map_err(io_error("cannot make a socket pair"))?;
            launcher_ends.insert(rank, launcher_end);
            waiting.insert(rank, bridge_end);
        }
    }
    let server = PmiTcpServer::start(ip, remote.len(), secret.clone(), waiting).map_err(|e| {
        LaunchError::Network(format!("cannot listen for remote ranks on {ip}: {e}"))
    })?;
    // Local ranks listen where the remote hosts reach this one, unless
    // told otherwise.
    let mut local_command = command.clone();
    let told =
        |name: &str| std::env::var_os(name).is_some() || command.env.iter().any(|(n, _)| n == name);
    if !told("MPIRT_BIND_ADDR") && !told("MPIRT_IFACE") {
        local_command
            .env
            .push(("MPIRT_BIND_ADDR".into(), ip.to_string().into()));
    }
    let program = std::path::absolute(&command.program)
        .map_err(io_error("cannot make the program's path absolute"))?;
    let directory = std::env::current_dir().ok();
    let mut spawned = Vec::with_capacity(remote.len());
    for (rank, host) in remote.iter().enumerate() {
        let started = match host {
            None => spawn_rank(&local_command, rank, remote.len(), None),
            Some(host) => {
                let words = RemoteRank {
                    program: &program,
                    args: &command.args,
                    env: &command.env,
                    directory: directory.as_deref(),
                    pmi_address: server.address(),
                    rank,
                }
                .agent_words(agent);
                spawn_agent(agent, &host.name, &words, &secret).map(|child| SpawnedRank {
                    child,
                    pmi: launcher_ends
                        .remove(&rank)
                        .expect("a socket pair per remote rank"),
                })
            }
        };
        match started {
            Ok(s) => spawned.push(s),
            Err(source) => {
                kill_and_reap(spawned.into_iter().map(|s| s.child));
                return Err(LaunchError::Spawn {
                    rank,
                    program: match host {
                        None => command.program.clone(),
                        Some(_) => agent.first().map(Into::into).unwrap_or_default(),
                    },
                    source,
                });
            }
        }
    }
    Ok((spawned, server))
}

/// Starts every rank; if one fails to start, kills and reaps the others.
fn spawn_all(
    command: &RankCommand,
    size: usize,
    cpus: Option<&[usize]>,
) -> Result<Vec<SpawnedRank>, LaunchError> {
    let mut spawned = Vec::with_capacity(size);
    for rank in 0..size {
        let cpu = cpus.and_then(|c| c.get(rank).copied());
        match spawn_rank(command, rank, size, cpu) {
            Ok(s) => spawned.push(s),
            Err(source) => {
                kill_and_reap(spawned.into_iter().map(|s| s.child));
                return Err(LaunchError::Spawn {
                    rank,
                    program: command.program.clone(),
                    source,
                });
            }
        }
    }
    Ok(spawned)
}

fn kill_and_reap(children: impl IntoIterator<Item = Child>) {
    for mut child in children {
        let _ = signal_group(child.id(), libc::SIGKILL);
        let _ = child.wait();
    }
}

/// Where output readers send lines.
#[derive(Clone)]
struct Destination {
    mode: Output,
    tag_output: bool,
    events: Sender<Event>,
}

/// Starts, per rank, the output readers, the PMI reader and the waiter. If a
/// thread cannot be started, every rank is killed and reaped.
fn start_helpers(
    spawned: Vec<SpawnedRank>,
    destination: &Destination,
    events: &Sender<Event>,
) -> Result<Vec<StartedRank>, LaunchError> {
    let pids: Vec<u32> = spawned.iter().map(|s| s.child.id()).collect();
    let mut pending: Vec<Option<SpawnedRank>> = spawned.into_iter().map(Some).collect();
    let mut started = Vec::with_capacity(pending.len());
    for rank in 0..pending.len() {
        let Some(SpawnedRank { child, pmi }) = pending[rank].take() else {
            continue;
        };
        match start_rank_helpers(rank, child, pmi, destination, events) {
            Ok(started_rank) => started.push(started_rank),
            Err((child, source)) => {
                // Ranks whose waiter runs are reaped by it; the rest here.
                for pid in &pids {
                    let _ = signal_group(*pid, libc::SIGKILL);
                }
                kill_and_reap(
                    child
                        .into_iter()
                        .chain(pending.into_iter().flatten().map(|s| s.child)),
                );
                return Err(LaunchError::Io {
                    what: "could not start a helper thread",
                    source,
                });
            }
        }
    }
    Ok(started)
}

/// Starts one rank's helper threads. On failure, hands the child back
/// unless its waiter already owns it.
fn start_rank_helpers(
    rank: usize,
    mut child: Child,
    pmi: UnixStream,
    destination: &Destination,
    events: &Sender<Event>,
) -> Result<StartedRank, (Option<Child>, std::io::Error)> {
    let pid = child.id();
    macro_rules! attempt {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((Some(child), e)),
            }
        };
    }
    if let Some(stdout) = child.stdout.take() {
        attempt!(start_output_reader(
            rank,
            StreamKind::Stdout,
            stdout,
            destination.clone()
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        attempt!(start_output_reader(
            rank,
            StreamKind::Stderr,
            stderr,
            destination.clone()
        ));
    }
    attempt!(pmi.set_write_timeout(Some(PMI_WRITE_TIMEOUT)));
    let reader = attempt!(pmi.try_clone());
    let pmi_events = events.clone();
    attempt!(thread::Builder::new()
        .name(format!("rank{rank}-pmi"))
        .spawn(move || read_pmi(rank, reader, &pmi_events)));
    let exit_events = events.clone();
    // A launch agent's stdin stays open while it runs (its closing tells a
    // remote rank the launcher is gone), and `Child::wait` would close it.
    let agent_stdin = child.stdin.take();
    // From here on the waiter owns the child and is the one to reap it.
    let waiter = thread::Builder::new()
        .name(format!("rank{rank}-wait"))
        .spawn(move || {
            let status = child.wait();
            drop(agent_stdin);
            let _ = exit_events.send(Event::Exited { rank, status });
        });
    match waiter {
        Ok(_) => Ok(StartedRank {
            pid,
            pmi_writer: pmi,
        }),
        Err(e) => Err((None, e)),
    }
}

/// Reads PMI request lines until end-of-file or error.
fn read_pmi(rank: usize, stream: UnixStream, events: &Sender<Event>) {
    let mut reader = BufReader::new(stream);
    let error = loop {
        match read_line(&mut reader) {
            Ok(Some(line)) => {
                if events.send(Event::Pmi { rank, line }).is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let _ = events.send(Event::PmiClosed { rank, error });
}

fn start_output_reader(
    rank: usize,
    stream: StreamKind,
    pipe: impl std::io::Read + Send + 'static,
    destination: Destination,
) -> std::io::Result<()> {
    let name = format!(
        "rank{rank}-{}",
        if stream == StreamKind::Stdout {
            "out"
        } else {
            "err"
        }
    );
    thread::Builder::new().name(name).spawn(move || {
        let prefix = if destination.tag_output {
            format!("[{rank}] ")
        } else {
            String::new()
        };
        let mut scratch = Vec::new();
        let mut receiver_gone = false;
        // A read error ends the stream like end-of-file; there is no one to tell.
        let _ = for_each_line(pipe, |line| match destination.mode {
            Output::Forward => forward_line(stream, prefix.as_bytes(), line, &mut scratch),
            Output::Capture if !receiver_gone => {
                let line = String::from_utf8_lossy(line).into_owned();
                // Once the job is over nobody keeps lines; keep draining so
                // whatever still writes to the pipe never blocks.
                receiver_gone = destination
                    .events
                    .send(Event::Output { rank, stream, line })
                    .is_err();
            }
            Output::Capture => {}
        });
        let _ = destination.events.send(Event::OutputClosed { rank });
    })?;
    Ok(())
}
