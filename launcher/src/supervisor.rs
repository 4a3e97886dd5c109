//! The job's event loop. One thread (the one that spawned the ranks) owns all
//! of the job's state; helper threads only read and report, through one
//! channel of [`Event`]s:
//!
//! - per rank, a PMI reader sends each request line, then `PmiClosed`;
//! - per rank, a waiter sends the exit status;
//! - per pipe, an output reader sends captured lines, then `OutputClosed`;
//! - a [`crate::CancelHandle`] sends `Cancel`.
//!
//! The loop feeds PMI lines and exits to the [`PmiServer`] and writes its
//! replies on the launcher's end of each rank's socket.
//!
//! **Judging an exit.** A rank's exit is judged once its PMI connection has
//! closed too (or [`JUDGE_GRACE`] after the exit, if something it started
//! keeps the socket open), so that an `abort` it sent just before exiting is
//! seen first and reported as the cause.
//!
//! **Ending a job.** The first failure is recorded and every rank still
//! running gets SIGTERM (to its whole process group); [`TERM_GRACE`] later,
//! SIGKILL. The loop then waits for every rank to be reaped (giving up
//! [`REAP_GIVE_UP`] after SIGKILL) and for their pipes to close (giving up
//! [`DRAIN_GRACE`] after the last exit, if a rank's own children hold them
//! open), so a job ends well within 2 s of its fault.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};

use crate::outcome::{Failure, Outcome, RankEnd, RankReport};
use crate::output::StreamKind;
use crate::pmi_server::{Action, PmiFault, PmiServer};
use crate::spawn::signal_group;

/// How long after a rank's exit its PMI connection may stay open before the
/// exit is judged anyway.
pub const JUDGE_GRACE: Duration = Duration::from_millis(250);
/// How long ranks have between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_millis(300);
/// How long after SIGKILL the loop waits for ranks to be reaped.
pub const REAP_GIVE_UP: Duration = Duration::from_millis(1000);
/// How long after the last exit the loop waits for output pipes to close.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// What helper threads tell the event loop.
#[derive(Debug)]
pub enum Event {
    /// A request line from a rank's PMI connection.
    Pmi {
        /// The rank.
        rank: usize,
        /// The line as read, newline included.
        line: Vec<u8>,
    },
    /// A rank's PMI connection reached end-of-file or failed.
    PmiClosed {
        /// The rank.
        rank: usize,
        /// The read error, if it was not a clean end-of-file.
        error: Option<io::Error>,
    },
    /// A rank's process exited (or waiting for it failed).
    Exited {
        /// The rank.
        rank: usize,
        /// Its status.
        status: io::Result<ExitStatus>,
    },
    /// A line a rank wrote, in capture mode.
    Output {
        /// The rank.
        rank: usize,
        /// Which stream.
        stream: StreamKind,
        /// The line, without its newline.
        line: String,
    },
    /// A rank's output pipe closed.
    OutputClosed {
        /// The rank.
        rank: usize,
    },
    /// The job was cancelled by `signal`.
    Cancel {
        /// The signal the launcher received.
        signal: i32,
    },
}

/// How a rank's process ended, as far as the loop knows.
#[derive(Debug)]
enum ProcessState {
    Running,
    Exited {
        at: Instant,
        end: Result<RankEnd, String>,
    },
}

/// The loop's view of one rank.
#[derive(Debug)]
struct RankSlot {
    pid: u32,
    /// Where replies go: the launcher's end of the PMI socket. `None` once
    /// the connection has been closed by either side.
    pmi_writer: Option<UnixStream>,
    /// The PMI reader has not yet reported end-of-file.
    pmi_open: bool,
    process: ProcessState,
    /// The exit has been judged (see the module doc).
    judged: bool,
    /// Output pipes not yet closed (0..=2).
    open_pipes: u8,
}

/// Where the job is in its life.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Running,
    /// A failure happened at `since`; ranks got SIGTERM then, and SIGKILL
    /// once `killed` is set.
    Ending {
        since: Instant,
        killed: bool,
    },
}

/// What the loop needs to know of each started rank.
#[derive(Debug)]
pub struct StartedRank {
    /// Its process id (and process group id).
    pub pid: u32,
    /// The launcher's end of its PMI socket, for replies.
    pub pmi_writer: UnixStream,
}

/// The state of one running job. See the module doc.
#[derive(Debug)]
pub struct Supervisor {
    ranks: Vec<RankSlot>,
    server: PmiServer,
    /// The first failure; `Some` exactly when `phase` is `Ending`.
    failure: Option<Failure>,
    phase: Phase,
    started: Instant,
    timeout: Option<Duration>,
    stdout: Vec<Vec<String>>,
    stderr: Vec<Vec<String>>,
}

impl Supervisor {
    /// A supervisor for ranks just started at `started`.
    pub fn new(
        ranks: Vec<StartedRank>,
        server: PmiServer,
        timeout: Option<Duration>,
        started: Instant,
    ) -> Supervisor {
        let n = ranks.len();
        let ranks = ranks
            .into_iter()
            .map(|r| RankSlot {
                pid: r.pid,
                pmi_writer: Some(r.pmi_writer),
                pmi_open: true,
                process: ProcessState::Running,
                judged: false,
                open_pipes: 2,
            })
            .collect();
        Supervisor {
            ranks,
            server,
            failure: None,
            phase: Phase::Running,
            started,
            timeout,
            stdout: vec![Vec::new(); n],
            stderr: vec![Vec::new(); n],
        }
    }

    /// Runs the loop until the job is over, and reports how it ended.
    pub fn run(mut self, events: &Receiver<Event>) -> Outcome {
        loop {
            let now = Instant::now();
            self.on_clock(now);
            if self.is_over(now) {
                break;
            }
            let event = match self.next_deadline(now) {
                Some(deadline) => events.recv_deadline(deadline),
                None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match event {
                Ok(event) => self.handle(event, Instant::now()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The job keeps a sender for cancellation, so this cannot
                    // happen; if it did, no more news would ever come.
                    self.fail(
                        Failure::WaitFailed {
                            rank: 0,
                            pid: self.ranks[0].pid,
                            error: "event channel closed".into(),
                        },
                        now,
                    );
                    self.kill_remaining(libc::SIGKILL);
                    break;
                }
            }
        }
        self.finish()
    }

    fn handle(&mut self, event: Event, now: Instant) {
        match event {
            Event::Pmi { rank, line } => {
                // Once the job is ending, ranks are not answered any more.
                if matches!(self.phase, Phase::Running) {
                    let actions = self.server.handle_line(rank, &line);
                    for action in actions {
                        self.apply(action, now);
                    }
                }
            }
            Event::PmiClosed { rank, error } => {
                if let Some(e) = error {
                    if matches!(self.phase, Phase::Running) {
                        eprintln!("mpirun: rank {rank}: PMI connection failed: {e}; closing it");
                    }
                }
                self.close_pmi(rank);
                self.ranks[rank].pmi_open = false;
            }
            Event::Exited { rank, status } => {
                let end = match status {
                    Ok(status) => Ok(match (status.code(), status.signal()) {
                        (Some(code), _) => RankEnd::Exited(code),
                        (None, Some(signal)) => RankEnd::Signaled(signal),
                        (None, None) => RankEnd::Exited(-1),
                    }),
                    Err(e) => Err(e.to_string()),
                };
                self.ranks[rank].process = ProcessState::Exited { at: now, end };
            }
            Event::Output { rank, stream, line } => match stream {
                StreamKind::Stdout => self.stdout[rank].push(line),
                StreamKind::Stderr => self.stderr[rank].push(line),
            },
            Event::OutputClosed { rank } => {
                let pipes = &mut self.ranks[rank].open_pipes;
                *pipes = pipes.saturating_sub(1);
            }
            Event::Cancel { signal } => {
                if self.failure.is_none() {
                    self.fail(Failure::Interrupted { signal }, now);
                } else if let Phase::Ending {
                    since,
                    killed: false,
                } = self.phase
                {
                    // Asked twice: no more grace.
                    self.kill_remaining(libc::SIGKILL);
                    self.phase = Phase::Ending {
                        since,
                        killed: true,
                    };
                }
            }
        }
    }

    fn apply(&mut self, action: Action, now: Instant) {
        match action {
            Action::Reply { rank, line } => {
                let Some(writer) = self.ranks[rank].pmi_writer.as_mut() else {
                    return;
                };
                if let Err(e) = writer.write_all(line.encode().as_bytes()) {
                    eprintln!("mpirun: rank {rank}: could not answer on its PMI connection: {e}; closing it");
                    self.close_pmi(rank);
                }
            }
            Action::Log { rank, message } => eprintln!("mpirun: rank {rank}: {message}"),
            Action::Close { rank, reason } => {
                eprintln!("mpirun: rank {rank} {reason}; closing its PMI connection");
                self.close_pmi(rank);
            }
            Action::Abort {
                rank,
                code,
                message,
            } => {
                let pid = self.pid(rank);
                self.fail(
                    Failure::Aborted {
                        rank,
                        pid,
                        code,
                        message,
                    },
                    now,
                );
            }
            Action::Fault(fault) => {
                let failure = self.fault_failure(fault);
                self.fail(failure, now);
            }
        }
    }

    fn fault_failure(&self, fault: PmiFault) -> Failure {
        match fault {
            PmiFault::ExitedWithoutFinalize { rank } => Failure::ExitedWithoutFinalize {
                rank,
                pid: self.pid(rank),
            },
            PmiFault::BarrierAbandoned { departed, waiting } => Failure::BarrierAbandoned {
                rank: departed,
                pid: self.pid(departed),
                waiting,
            },
        }
    }

    fn pid(&self, rank: usize) -> u32 {
        self.ranks.get(rank).map_or(0, |r| r.pid)
    }

    /// Shuts the rank's PMI socket down: its reader sees end-of-file even if
    /// a process the rank started still holds the other end.
    fn close_pmi(&mut self, rank: usize) {
        if let Some(writer) = self.ranks[rank].pmi_writer.take() {
            let _ = writer.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Records the job's first failure and starts ending the job.
    fn fail(&mut self, failure: Failure, now: Instant) {
        if self.failure.is_some() {
            return;
        }
        self.failure = Some(failure);
        self.phase = Phase::Ending {
            since: now,
            killed: false,
        };
        self.kill_remaining(libc::SIGTERM);
    }

    /// Sends `signal` to the process group of every rank not yet reaped.
    fn kill_remaining(&self, signal: i32) {
        for (rank, slot) in self.ranks.iter().enumerate() {
            if matches!(slot.process, ProcessState::Running) {
                if let Err(e) = signal_group(slot.pid, signal) {
                    eprintln!(
                        "mpirun: could not signal rank {rank} (pid {}): {e}",
                        slot.pid
                    );
                }
            }
        }
    }

    /// Acts on the passing of time: judges exits, expires the timeout,
    /// escalates SIGTERM to SIGKILL.
    fn on_clock(&mut self, now: Instant) {
        for rank in 0..self.ranks.len() {
            let slot = &self.ranks[rank];
            if let ProcessState::Exited { at, .. } = slot.process {
                if !slot.judged && (!slot.pmi_open || now >= at + JUDGE_GRACE) {
                    self.judge(rank, now);
                }
            }
        }
        match self.phase {
            Phase::Running => {
                if let Some(limit) = self.timeout {
                    if now >= self.started + limit {
                        let still_running = self.still_running();
                        self.fail(
                            Failure::Timeout {
                                limit,
                                still_running,
                            },
                            now,
                        );
                    }
                }
            }
            Phase::Ending {
                since,
                killed: false,
            } if now >= since + TERM_GRACE => {
                self.kill_remaining(libc::SIGKILL);
                self.phase = Phase::Ending {
                    since,
                    killed: true,
                };
            }
            Phase::Ending { .. } => {}
        }
    }

    fn still_running(&self) -> Vec<usize> {
        (0..self.ranks.len())
            .filter(|&r| matches!(self.ranks[r].process, ProcessState::Running))
            .collect()
    }

    /// Decides whether rank `rank`'s exit fails the job.
    fn judge(&mut self, rank: usize, now: Instant) {
        self.ranks[rank].judged = true;
        let fault = self.server.handle_exit(rank);
        // The rank is gone: nothing more will be said on its connection.
        self.close_pmi(rank);
        if self.failure.is_some() {
            return;
        }
        let pid = self.ranks[rank].pid;
        let ProcessState::Exited { end, .. } = &self.ranks[rank].process else {
            return;
        };
        let failure = match end {
            Ok(RankEnd::Signaled(signal)) => Some(Failure::Signaled {
                rank,
                pid,
                signal: *signal,
            }),
            Ok(RankEnd::Exited(code)) if *code != 0 => Some(Failure::Exited {
                rank,
                pid,
                code: *code,
            }),
            Ok(RankEnd::Exited(_)) => fault.map(|f| self.fault_failure(f)),
            Err(error) => Some(Failure::WaitFailed {
                rank,
                pid,
                error: error.clone(),
            }),
        };
        if let Some(failure) = failure {
            self.fail(failure, now);
        }
    }

    /// The latest exit time, once every rank has exited.
    fn last_exit(&self) -> Option<Instant> {
        self.ranks
            .iter()
            .try_fold(self.started, |latest, slot| match slot.process {
                ProcessState::Exited { at, .. } => Some(latest.max(at)),
                ProcessState::Running => None,
            })
    }

    /// When the loop stops waiting for ranks that will not die.
    fn reap_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ending { since, .. } => Some(since + TERM_GRACE + REAP_GIVE_UP),
            Phase::Running => None,
        }
    }

    /// When the loop stops waiting for output pipes to close.
    fn drain_deadline(&self) -> Option<Instant> {
        let all_gone = self.last_exit();
        let given_up = self.reap_deadline();
        match (all_gone, given_up) {
            (Some(a), Some(g)) => Some((a + DRAIN_GRACE).min(g + DRAIN_GRACE)),
            (Some(a), None) => Some(a + DRAIN_GRACE),
            (None, Some(g)) => Some(g + DRAIN_GRACE),
            (None, None) => None,
        }
    }

    fn is_over(&self, now: Instant) -> bool {
        let all_exited = self.last_exit().is_some();
        let ranks_done = match self.phase {
            Phase::Running => all_exited && self.ranks.iter().all(|r| r.judged),
            Phase::Ending { .. } => all_exited || self.reap_deadline().is_some_and(|d| now >= d),
        };
        let pipes_done = self.ranks.iter().all(|r| r.open_pipes == 0)
            || self.drain_deadline().is_some_and(|d| now >= d);
        ranks_done && pipes_done
    }

    /// The next moment after `now` at which time alone changes something.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut deadlines = Vec::new();
        for slot in &self.ranks {
            if let ProcessState::Exited { at, .. } = slot.process {
                if !slot.judged {
                    deadlines.push(at + JUDGE_GRACE);
                }
            }
        }
        match self.phase {
            Phase::Running => deadlines.extend(self.timeout.map(|t| self.started + t)),
            Phase::Ending { since, killed } => {
                if !killed {
                    deadlines.push(since + TERM_GRACE);
                }
                deadlines.extend(self.reap_deadline());
            }
        }
        deadlines.extend(self.drain_deadline());
        deadlines.into_iter().filter(|&d| d > now).min()
    }

    fn finish(mut self) -> Outcome {
        for rank in 0..self.ranks.len() {
            self.close_pmi(rank);
        }
        // A rank killed between creating its segment and unlinking it
        // (start-up) cannot clean up; its launcher can.
        let pids: Vec<u32> = self.ranks.iter().map(|r| r.pid).collect();
        mpirt::transport::shm::segment::remove_segments_of(&pids);
        let ranks = self
            .ranks
            .iter()
            .map(|slot| RankReport {
                pid: slot.pid,
                end: match &slot.process {
                    ProcessState::Exited { end: Ok(end), .. } => Some(*end),
                    _ => None,
                },
            })
            .collect();
        let exit_code = self.failure.as_ref().map_or(0, Failure::exit_code);
        Outcome {
            message: self.failure.as_ref().map(Failure::to_string),
            failure: self.failure,
            exit_code,
            stdout: self.stdout,
            stderr: self.stderr,
            elapsed: self.started.elapsed(),
            ranks,
        }
    }
}
