//! The launcher of mpirt: `mpirun` and the library behind it. It starts a
//! job's ranks on this machine (and on other hosts through a launch agent
//! such as `ssh`, see [`hosts`] and [`remote`]), serves them PMI-1 (rank, size and a
//! key-value space with barriers; see [`pmi_server`]), forwards or captures
//! their output line by line, and ends the job cleanly and loudly when any
//! rank fails: the rest are sent SIGTERM, then SIGKILL, and the outcome names
//! the failing rank, its pid and the cause.
//!
//! Tests and benches start jobs with [`Job`]:
//!
//! ```no_run
//! use launcher::{Job, Output, Transport};
//! use std::time::Duration;
//! let outcome = Job::new("target/release/examples/ring")
//!     .ranks(4)
//!     .transport(Transport::Tcp)
//!     .output(Output::Capture)
//!     .timeout(Duration::from_secs(30))
//!     .run()?;
//! assert!(outcome.success(), "{:?}", outcome.message);
//! println!("{}", outcome.stdout_text(0));
//! # Ok::<(), launcher::LaunchError>(())
//! ```
//!
//! Modules, from the outside in: [`job`] (the builder and its set-up),
//! `supervisor` (the event loop that owns a running job), [`pmi_server`]
//! (the PMI-1 state machine, no I/O), [`hosts`] (placement on hosts),
//! [`remote`] (remote ranks and their TCP PMI), [`spawn`] (processes and signals),
//! [`output`] (line forwarding), [`outcome`] (how jobs end).
#![deny(missing_docs)]

pub mod hosts;
pub mod job;
pub mod outcome;
pub mod output;
pub mod pmi_server;
pub mod remote;
pub mod spawn;
mod supervisor;

pub use hosts::Host;
pub use job::{Binding, CancelHandle, Job, Output, Transport};
pub use outcome::{Failure, LaunchError, Outcome, RankEnd, RankReport};
