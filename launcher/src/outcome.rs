//! What a job ends with: an [`Outcome`] (each rank's fate, captured output,
//! and the one [`Failure`] that ended the job early, if any), or a
//! [`LaunchError`] when the job could not be started at all.
//!
//! The `Display` of a [`Failure`] is the line `mpirun` prints, and
//! [`Failure::exit_code`] is what it exits with, following the shell's
//! conventions: the failing rank's code, `128 + n` for signal `n`, `124` for
//! a timeout (as `timeout(1)`).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::spawn::describe_signal;

/// Why a job could not be started. No rank runs when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The job asked for zero ranks.
    #[error("a job needs at least 1 rank (got 0)")]
    NoRanks,
    /// The program does not exist (or is not on `PATH`).
    #[error("program {} not found{}", program.display(), if *searched_path { " in PATH" } else { "" })]
    ProgramNotFound {
        /// The program as given.
        program: PathBuf,
        /// Whether `PATH` was searched (the name had no `/`).
        searched_path: bool,
    },
    /// The program exists but cannot be executed.
    #[error("program {} cannot be run: {reason}", path.display())]
    NotExecutable {
        /// The file found.
        path: PathBuf,
        /// Why it cannot run.
        reason: &'static str,
    },
    /// The operating system refused to start a rank; ranks already started
    /// have been killed and reaped.
    #[error("could not start rank {rank} ({}): {source}", program.display())]
    Spawn {
        /// The rank that failed to start.
        rank: usize,
        /// The program.
        program: PathBuf,
        /// The error from `fork`/`exec`.
        source: io::Error,
    },
    /// The hosts, their slots or the way to reach them do not fit the job
    /// (no rank is started).
    #[error("{0}")]
    Hosts(String),
    /// A remote host could not be given a way to reach this launcher.
    #[error("{0}")]
    Network(String),
    /// Another operating-system error while setting the job up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl LaunchError {
    /// Whether the caller asked for something impossible (as opposed to the
    /// system failing): `mpirun` exits 2 for these, 1 for the others.
    pub fn is_bad_argument(&self) -> bool {
        matches!(
            self,
            LaunchError::NoRanks
                | LaunchError::Hosts(_)
                | LaunchError::ProgramNotFound { .. }
                | LaunchError::NotExecutable { .. }
        )
    }
}

/// The event that ended a job early. Only the first one counts: ranks killed
/// while the job is being ended are not failures of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A rank exited with a non-zero code.
    Exited {
        /// The rank.
        rank: usize,
        /// Its process id.
        pid: u32,
        /// Its exit code.
        code: i32,
    },
    /// A rank was killed by a signal it did not get from the launcher.
    Signaled {
        /// The rank.
        rank: usize,
        /// Its process id.
        pid: u32,
        /// The signal number.
        signal: i32,
    },
    /// A rank called PMI abort (`MPI_Abort`).
    Aborted {
        /// The rank.
        rank: usize,
        /// Its process id.
        pid: u32,
        /// The exit code it asked for.
        code: i32,
        /// The message it sent, if any.
        message: Option<String>,
    },
    /// A rank initialized PMI and exited without finalizing, even with code 0.
    ExitedWithoutFinalize {
        /// The rank.
        rank: usize,
        /// Its process id.
        pid: u32,
    },
    /// A rank exited while others waited for it in a PMI barrier, so the
    /// barrier could never complete.
    BarrierAbandoned {
        /// The rank that exited.
        rank: usize,
        /// Its process id.
        pid: u32,
        /// The ranks left waiting, ascending.
        waiting: Vec<usize>,
    },
    /// The job ran longer than its timeout.
    Timeout {
        /// The timeout.
        limit: Duration,
        /// Ranks that had not exited when it expired, ascending.
        still_running: Vec<usize>,
    },
    /// The job was cancelled (`mpirun` got SIGINT, SIGTERM or SIGHUP).
    Interrupted {
        /// The signal that asked for it.
        signal: i32,
    },
    /// The launcher lost track of a rank: waiting for it failed.
    WaitFailed {
        /// The rank.
        rank: usize,
        /// Its process id.
        pid: u32,
        /// The error, as text.
        error: String,
    },
}

impl Failure {
    /// What `mpirun` exits with: the rank's code, `128 + signal`, `124` for
    /// a timeout, and 1 where there is no code. An abort with a code outside
    /// 1..=255 exits 1, so an aborted job never looks successful.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Exited { code, .. } => *code,
            Failure::Signaled { signal, .. } | Failure::Interrupted { signal } => 128 + signal,
            Failure::Aborted { code, .. } if (1..=255).contains(code) => *code,
            Failure::Timeout { .. } => 124,
            _ => 1,
        }
    }

    /// The rank the failure is about, if it is about one.
    pub fn rank(&self) -> Option<usize> {
        match self {
            Failure::Exited { rank, .. }
            | Failure::Signaled { rank, .. }
            | Failure::Aborted { rank, .. }
            | Failure::ExitedWithoutFinalize { rank, .. }
            | Failure::BarrierAbandoned { rank, .. }
            | Failure::WaitFailed { rank, .. } => Some(*rank),
            Failure::Timeout { .. } | Failure::Interrupted { .. } => None,
        }
    }
}

/// `0, 2, 5`
fn rank_list(ranks: &[usize]) -> String {
    ranks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const END: &str = "ending the job";
        match self {
            Failure::Exited { rank, pid, code } => {
                write!(
                    f,
                    "mpirun: rank {rank} (pid {pid}) exited with code {code}; {END}"
                )
            }
            Failure::Signaled { rank, pid, signal } => {
                write!(
                    f,
                    "mpirun: rank {rank} (pid {pid}) was killed by {}; {END}",
                    describe_signal(*signal)
                )
            }
            Failure::Aborted {
                rank,
                pid,
                code,
                message,
            } => {
                write!(
                    f,
                    "mpirun: rank {rank} (pid {pid}) called abort with code {code}"
                )?;
                match message {
                    Some(message) => write!(f, ": {message}"),
                    None => Ok(()),
                }
            }
            Failure::ExitedWithoutFinalize { rank, pid } => {
                write!(f, "mpirun: rank {rank} (pid {pid}) exited without finalizing (it initialized PMI but never sent finalize); {END}")
            }
            Failure::BarrierAbandoned { rank, pid, waiting } => {
                let them = if waiting.len() == 1 { "rank" } else { "ranks" };
                write!(f, "mpirun: rank {rank} (pid {pid}) exited while {them} {} waited for it in a PMI barrier; {END}", rank_list(waiting))
            }
            Failure::Timeout {
                limit,
                still_running,
            } => {
                write!(
                    f,
                    "mpirun: job exceeded its timeout of {} s; ranks still running: {}",
                    limit.as_secs_f64(),
                    rank_list(still_running)
                )
            }
            Failure::Interrupted { signal } => {
                write!(f, "mpirun: received {}; {END}", describe_signal(*signal))
            }
            Failure::WaitFailed { rank, pid, error } => {
                write!(f, "mpirun: lost track of rank {rank} (pid {pid}): waiting for it failed: {error}; {END}")
            }
        }
    }
}

/// How one rank's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankEnd {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

/// One rank's process as the launcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankReport {
    /// Its process id.
    pub pid: u32,
    /// How it ended; `None` if it could not be reaped before the launcher
    /// gave up on it (it was sent SIGKILL).
    pub end: Option<RankEnd>,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The failure that ended the job; `None` when every rank exited 0.
    pub failure: Option<Failure>,
    /// What `mpirun` exits with: 0, or [`Failure::exit_code`].
    pub exit_code: i32,
    /// Per rank, the lines written to stdout (in [`crate::Output::Capture`]
    /// mode; empty when forwarded).
    pub stdout: Vec<Vec<String>>,
    /// Per rank, the lines written to stderr (as `stdout`).
    pub stderr: Vec<Vec<String>>,
    /// From the first rank's start to the end of the job.
    pub elapsed: Duration,
    /// The failure line `mpirun` prints (the failure's `Display`).
    pub message: Option<String>,
    /// Per rank, its pid and how it ended.
    pub ranks: Vec<RankReport>,
}

impl Outcome {
    /// Whether every rank exited 0 and nothing else went wrong.
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }

    /// Rank `rank`'s captured stdout, lines joined with `\n` (empty if none).
    pub fn stdout_text(&self, rank: usize) -> String {
        self.stdout
            .get(rank)
            .map(|lines| lines.join("\n"))
            .unwrap_or_default()
    }

    /// Rank `rank`'s captured stderr, lines joined with `\n` (empty if none).
    pub fn stderr_text(&self, rank: usize) -> String {
        self.stderr
            .get(rank)
            .map(|lines| lines.join("\n"))
            .unwrap_or_default()
    }

    /// The job's message and exit code, then every rank's captured output:
    /// what a test prints when an assertion about the job fails.
    pub fn report(&self) -> String {
        let mut text = format!("message {:?}, exit code {}\n", self.message, self.exit_code);
        for rank in 0..self.stdout.len().max(self.stderr.len()) {
            text += &format!(
                "--- rank {rank} stdout:\n{}\n--- rank {rank} stderr:\n{}\n",
                self.stdout_text(rank),
                self.stderr_text(rank)
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_lines_and_exit_codes() {
        let killed = Failure::Signaled {
            rank: 2,
            pid: 4242,
            signal: 9,
        };
        assert_eq!(
            killed.to_string(),
            "mpirun: rank 2 (pid 4242) was killed by signal 9 (SIGKILL); ending the job"
        );
        assert_eq!(killed.exit_code(), 137);
        let exited = Failure::Exited {
            rank: 1,
            pid: 7,
            code: 3,
        };
        assert_eq!(
            exited.to_string(),
            "mpirun: rank 1 (pid 7) exited with code 3; ending the job"
        );
        assert_eq!(exited.exit_code(), 3);
        let timeout = Failure::Timeout {
            limit: Duration::from_secs(5),
            still_running: vec![0, 2],
        };
        assert_eq!(
            timeout.to_string(),
            "mpirun: job exceeded its timeout of 5 s; ranks still running: 0, 2"
        );
        assert_eq!(timeout.exit_code(), 124);
        let half = Failure::Timeout {
            limit: Duration::from_millis(1500),
            still_running: vec![1],
        };
        assert_eq!(
            half.to_string(),
            "mpirun: job exceeded its timeout of 1.5 s; ranks still running: 1"
        );
        let abort = Failure::Aborted {
            rank: 3,
            pid: 9,
            code: 5,
            message: None,
        };
        assert_eq!(
            abort.to_string(),
            "mpirun: rank 3 (pid 9) called abort with code 5"
        );
        assert_eq!(abort.exit_code(), 5);
        assert_eq!(
            Failure::Aborted {
                rank: 3,
                pid: 9,
                code: 0,
                message: None
            }
            .exit_code(),
            1
        );
        assert_eq!(Failure::Interrupted { signal: 2 }.exit_code(), 130);
        assert_eq!(
            Failure::ExitedWithoutFinalize { rank: 0, pid: 1 }.rank(),
            Some(0)
        );
    }
}
