//! `mpirun`: starts N ranks of a program on this machine, or on a list of
//! hosts through a launch agent (`ssh`), as one mpirt (or any PMI-1) job, forwards their output, and exits with the job's verdict. The
//! work is done by the library ([`launcher::Job`]); this file parses the
//! command line, which follows MPICH's and Open MPI's launchers, and turns
//! SIGINT, SIGTERM and SIGHUP into a cancellation of the job.
//!
//! Exit status: 0 when every rank exited 0; otherwise the failing rank's
//! code, 128 + signal for a rank killed by a signal or a signalled `mpirun`,
//! 124 for `--timeout`, 2 for bad arguments (no rank is started), 1 when the
//! system refused to start the job.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use launcher::{Binding, Job, LaunchError, Transport};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

const EXAMPLES: &str = "\
Examples:
  mpirun -n 4 ./ring                    run 4 ranks of ./ring
  mpirun -np 3 --tag-output hostname    3 ranks, each output line prefixed [rank]
  mpirun -n 8 --timeout 60 -x RUST_LOG=debug -x HOME ./solver --size 1024
  mpirun --host node1:4,node2:4 ./solver   8 ranks, 4 per host, started by ssh
  mpirun -n 16 --hostfile hosts --iface eth1 ./solver

Every rank gets PMI_FD, PMI_RANK and PMI_SIZE and speaks PMI-1 to mpirun;
a program that does not is run as N plain processes. Ranks on other hosts are
started as `AGENT HOST sh -c SCRIPT` and reach mpirun's PMI server over TCP
(PMI_PORT, authenticated by a per-job secret); the program must be at the
same path there. If any rank fails
(non-zero exit, signal, abort, or exit without finalizing), the others are
stopped (SIGTERM, then SIGKILL) and mpirun exits with that rank's code, or
128 + signal. Ranks' stdin is /dev/null.";

/// Start a job of N ranks of PROGRAM on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "mpirun",
    version,
    override_usage = "mpirun [OPTIONS] PROGRAM [ARGS]...",
    after_help = EXAMPLES,
    max_term_width = 100
)]
struct Cli {
    /// Number of ranks to start (`-np N` is accepted too); default 1, or
    /// every slot of --host/--hostfile
    #[arg(short = 'n', long = "np", value_name = "N")]
    ranks: Option<usize>,

    /// Hosts to run on, with slots: h1,h2:2 (a host named twice gets both slots)
    #[arg(
        long = "host",
        short = 'H',
        visible_alias = "hosts",
        value_name = "LIST",
        conflicts_with = "hostfile"
    )]
    host: Option<String>,

    /// File of hosts, one a line: `host`, `host:N` or `host slots=N`; `#` comments
    #[arg(long, visible_alias = "machinefile", value_name = "FILE")]
    hostfile: Option<std::path::PathBuf>,

    /// Allow more ranks than slots (extra ranks go round-robin over the hosts)
    #[arg(long)]
    oversubscribe: bool,

    /// Command that starts a rank on another host, called as CMD HOST COMMAND...
    #[arg(long, value_name = "CMD", default_value = "ssh")]
    launch_agent: String,

    /// Network interface between hosts: mpirun's PMI server binds it and ranks
    /// get MPIRT_IFACE (default: MPIRT_IFACE, else the route to the hosts)
    #[arg(long, value_name = "NAME")]
    iface: Option<String>,

    // (Help given as an attribute: rustdoc would read "[rank]" as a link.)
    #[arg(
        long,
        help = "Prefix each line of output with the rank that wrote it, as \"[rank] \""
    )]
    tag_output: bool,

    /// Export VAR to every rank: with its value in mpirun's environment, or set to VAL
    #[arg(short = 'x', value_name = "VAR[=VAL]", value_parser = parse_export)]
    export: Vec<(String, Option<String>)>,

    /// End the job (exit 124) if it runs longer than SECS seconds (fractions allowed)
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,

    /// Transport between ranks (sets MPIRT_TRANSPORT)
    #[arg(long, value_enum, value_name = "T")]
    transport: Option<CliTransport>,

    /// Let the kernel place ranks (`none`), or bind each rank of a one-host job
    /// to a CPU of its own (`core`, when there are enough CPUs; for busy machines)
    #[arg(long, value_enum, value_name = "B", default_value = "none")]
    bind_to: CliBinding,

    /// Largest message sent eagerly, in bytes (sets MPIRT_EAGER_LIMIT)
    #[arg(long, value_name = "BYTES")]
    eager_limit: Option<u64>,

    /// Eager bytes a sender may have unacknowledged at each receiver (sets MPIRT_REMOTE_BUFFER)
    #[arg(long, value_name = "BYTES")]
    remote_buffer: Option<u64>,

    /// The program to run (found through PATH if it has no '/'), then its
    /// arguments, passed verbatim: options after PROGRAM are the program's
    #[arg(value_name = "PROGRAM", required = true, num_args = 1.., trailing_var_arg = true)]
    command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CliTransport {
    /// Shared memory on one node, TCP between nodes
    Auto,
    /// TCP only
    Tcp,
    /// Shared memory only (every rank on this node)
    Shm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CliBinding {
    /// One CPU per rank, when at least two ranks and as many CPUs
    Core,
    /// No binding
    None,
}

fn parse_export(text: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (text, None),
    };
    if name.is_empty() || name.contains('\0') {
        return Err("expected VAR or VAR=VAL".into());
    }
    Ok((name.to_string(), value))
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err("the timeout must be a positive number of seconds".into());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// Rewrites the single-dash `-np` (which clap cannot spell: a short option
/// has one letter) to `-n`, among mpirun's own options only: everything from
/// PROGRAM on is passed to the program untouched.
fn rewrite_np(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    /// mpirun's options that take a separate value.
    const TAKES_VALUE: &[&str] = &[
        "-n",
        "--np",
        "-x",
        "--timeout",
        "--transport",
        "--eager-limit",
        "--remote-buffer",
        "--host",
        "--hosts",
        "-H",
        "--hostfile",
        "--machinefile",
        "--launch-agent",
        "--iface",
    ];
    let mut out = Vec::new();
    let mut args = args.into_iter();
    out.extend(args.next()); // argv[0]
    let mut value_expected = false;
    for arg in args.by_ref() {
        let text = arg.to_str().unwrap_or("");
        if value_expected {
            value_expected = false;
        } else if text == "-np" {
            out.push("-n".into());
            value_expected = true;
            continue;
        } else if let Some(value) = text.strip_prefix("-np=") {
            out.push(format!("-n={value}").into());
            continue;
        } else if TAKES_VALUE.contains(&text) {
            value_expected = true;
        } else if text == "--" || !text.starts_with('-') {
            out.push(arg);
            break;
        }
        out.push(arg);
    }
    out.extend(args);
    out
}

/// Prints clap's error as one line (`mpirun: <what>; see mpirun --help`).
fn one_line_usage_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let summary: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty() && !line.starts_with("Usage:"))
        .map(|line| line.trim().trim_start_matches("error: "))
        .collect();
    format!("mpirun: {}; see mpirun --help", summary.join(" "))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(rewrite_np(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(message) => {
            eprintln!("mpirun: {message}");
            ExitCode::from(message.exit_code())
        }
    }
}

/// A reason `mpirun` ends without running the job to completion.
enum Refusal {
    /// Bad arguments: exit 2, nothing started.
    Usage(String),
    /// The job could not be started or supervised: exit 1.
    System(String),
}

impl Refusal {
    fn exit_code(&self) -> u8 {
        match self {
            Refusal::Usage(_) => 2,
            Refusal::System(_) => 1,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Usage(m) | Refusal::System(m) => f.write_str(m),
        }
    }
}

impl From<LaunchError> for Refusal {
    fn from(e: LaunchError) -> Refusal {
        match e {
            LaunchError::NoRanks => Refusal::Usage("-n must be at least 1".into()),
            e if e.is_bad_argument() => Refusal::Usage(e.to_string()),
            e => Refusal::System(e.to_string()),
        }
    }
}

/// Runs the job the command line describes; the exit code on success.
fn run(cli: Cli) -> Result<i32, Refusal> {
    let mut command = cli.command.into_iter();
    let Some(program) = command.next() else {
        return Err(Refusal::Usage("no PROGRAM given".into()));
    };
    let hosts = match (&cli.host, &cli.hostfile) {
        (Some(list), _) => Some(
            launcher::hosts::parse_host_list(list)
                .map_err(|e| Refusal::Usage(format!("--host: {e}")))?,
        ),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Refusal::Usage(format!("--hostfile {}: {e}", path.display())))?;
            Some(
                launcher::hosts::parse_hostfile(&text)
                    .map_err(|e| Refusal::Usage(format!("--hostfile {}: {e}", path.display())))?,
            )
        }
        (None, None) => None,
    };
    let ranks = match (cli.ranks, &hosts) {
        (Some(n), _) => n,
        (None, Some(hosts)) => hosts.iter().map(|h| h.slots).sum(),
        (None, None) => 1,
    };
    if cli.launch_agent.split_whitespace().next().is_none() {
        return Err(Refusal::Usage("--launch-agent: empty command".into()));
    }
    let mut job = Job::new(program)
        .ranks(ranks)
        .args(command)
        .tag_output(cli.tag_output)
        .oversubscribe(cli.oversubscribe)
        .bind(match cli.bind_to {
            CliBinding::Core => Binding::Core,
            CliBinding::None => Binding::None,
        })
        .launch_agent(&cli.launch_agent);
    if let Some(hosts) = hosts {
        job = job.hosts(hosts);
    }
    if let Some(name) = cli.iface {
        job = job.iface(name);
    }
    for (name, value) in cli.export {
        match value.map(OsString::from).or_else(|| std::env::var_os(&name)) {
            Some(value) => job = job.env(name, value),
            None => eprintln!("mpirun: warning: -x {name}: {name} is not set in mpirun's environment; not exported"),
        }
    }
    if let Some(transport) = cli.transport {
        job = job.transport(match transport {
            CliTransport::Auto => Transport::Auto,
            CliTransport::Tcp => Transport::Tcp,
            CliTransport::Shm => Transport::Shm,
        });
    }
    if let Some(limit) = cli.timeout {
        job = job.timeout(limit);
    }
    if let Some(bytes) = cli.eager_limit {
        job = job.eager_limit(bytes);
    }
    if let Some(bytes) = cli.remote_buffer {
        job = job.remote_buffer(bytes);
    }

    let cancel = job.cancel_handle();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Refusal::System(format!("could not install signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                cancel.cancel(signal);
            }
        })
        .map_err(|e| Refusal::System(format!("could not start the signal thread: {e}")))?;

    let outcome = job.run()?;
    if let Some(message) = &outcome.message {
        eprintln!("{message}");
    }
    Ok(outcome.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(args: &[&str]) -> Vec<String> {
        rewrite_np(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn np_is_rewritten_among_mpiruns_options_only() {
        assert_eq!(
            rewritten(&["mpirun", "-np", "4", "prog"]),
            ["mpirun", "-n", "4", "prog"]
        );
        assert_eq!(
            rewritten(&["mpirun", "-np=4", "prog"]),
            ["mpirun", "-n=4", "prog"]
        );
        assert_eq!(
            rewritten(&["mpirun", "-x", "A", "-np", "2", "prog", "-np", "9"]),
            ["mpirun", "-x", "A", "-n", "2", "prog", "-np", "9"]
        );
        assert_eq!(rewritten(&["mpirun", "--", "-np"]), ["mpirun", "--", "-np"]);
        assert_eq!(
            rewritten(&["mpirun", "--tag-output", "prog", "-np"]),
            ["mpirun", "--tag-output", "prog", "-np"]
        );
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from(rewrite_np(
            [
                "mpirun",
                "-np",
                "3",
                "--tag-output",
                "-x",
                "A=1",
                "-x",
                "B",
                "--timeout",
                "1.5",
                "prog",
                "-n",
                "--x",
            ]
            .map(OsString::from),
        ))
        .unwrap();
        assert_eq!(cli.ranks, Some(3));
        assert!(cli.tag_output);
        assert_eq!(
            cli.export,
            vec![("A".into(), Some("1".into())), ("B".into(), None)]
        );
        assert_eq!(cli.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(cli.command, ["prog", "-n", "--x"]);
        assert!(Cli::try_parse_from(["mpirun", "--timeout", "-1", "p"]).is_err());
        assert!(Cli::try_parse_from(["mpirun", "-n", "2"]).is_err());
    }

    #[test]
    fn usage_errors_are_one_line() {
        let e = Cli::try_parse_from(["mpirun", "-n", "2"]).unwrap_err();
        let line = one_line_usage_error(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("PROGRAM"), "{line}");
    }
}
