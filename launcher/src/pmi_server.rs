//! The launcher's PMI-1 server as a state machine: no sockets, no processes,
//! no clock. The job's event loop feeds it each rank's request lines
//! ([`PmiServer::handle_line`]) and each rank's exit
//! ([`PmiServer::handle_exit`]), and carries out the [`Action`]s it returns:
//! replies to write, connections to close, aborts and faults that end the job.
//!
//! The wire protocol is PMI-1 "simple", as MPICH's `simple_pmi` client and
//! Hydra's `pmi_proxy` speak it over `PMI_FD`:
//!
//! | request | reply |
//! |---|---|
//! | `cmd=init pmi_version=1 pmi_subversion=1` | `cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0` |
//! | `cmd=get_maxes` | `cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=1024 rc=0` |
//! | `cmd=get_appnum` | `cmd=appnum appnum=0 rc=0` |
//! | `cmd=get_my_kvsname` | `cmd=my_kvsname kvsname=K rc=0` |
//! | `cmd=get_universe_size` | `cmd=universe_size size=N rc=0` |
//! | `cmd=put kvsname=K key=X value=V` | `cmd=put_result rc=0 msg=success` |
//! | `cmd=get kvsname=K key=X` | `cmd=get_result rc=0 msg=success value=V` |
//! | `cmd=barrier_in` | `cmd=barrier_out`, to every rank once all have entered |
//! | `cmd=finalize` | `cmd=finalize_ack` |
//! | `cmd=abort exitcode=N [message=M]` | none: the job ends |
//!
//! A request that is understood but wrong (bad kvsname, missing key, unknown
//! command) gets `cmd=<command>_result rc=-1 msg=<reason>` (or the command's own
//! reply name with `rc=-1`) and is logged; a line that is not PMI at all gets
//! `cmd=error rc=-1 msg=not_a_pmi_line`, is logged, and the job goes on. Nothing a rank sends can make this code panic
//! (property-tested below).
//!
//! The key-value space is write-once, as in Hydra: a second `put` of a key is
//! refused. `PMI_process_mapping` is pre-set to `(vector,(0,1,N))`: one node
//! holding all N ranks, unless the job spans hosts
//! ([`PmiServer::with_process_mapping`]).

use std::collections::{BTreeSet, HashMap};

use mpirt::bootstrap::pmi::PmiLine;

/// Longest kvsname the server hands out or accepts (MPICH's value).
pub const KVSNAME_MAX: usize = 256;
/// Longest key accepted in `put` (MPICH's value).
pub const KEYLEN_MAX: usize = 256;
/// Longest value accepted in `put` (MPICH's value).
pub const VALLEN_MAX: usize = 1024;
/// Longest `msg` (and reply command) in an error reply: they echo what the
/// rank sent, which must not grow a reply past what a rank reads.
pub const ERROR_REPLY_MAX: usize = 256;
/// The pre-set key describing where ranks live, read by MPICH-derived clients.
pub const PROCESS_MAPPING_KEY: &str = "PMI_process_mapping";

/// What the event loop must do after feeding the server an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `line` to `rank`'s PMI connection.
    Reply {
        /// The rank to answer.
        rank: usize,
        /// The reply line.
        line: PmiLine,
    },
    /// Report a request that was answered with an error.
    Log {
        /// The rank that sent it.
        rank: usize,
        /// What was wrong.
        message: String,
    },
    /// Close `rank`'s PMI connection: it sent something that is not PMI.
    Close {
        /// The rank whose connection to close.
        rank: usize,
        /// Why, for the log.
        reason: String,
    },
    /// `rank` called abort: the job ends with `code`.
    Abort {
        /// The aborting rank.
        rank: usize,
        /// The exit code it asked for.
        code: i32,
        /// Its message, if it sent one.
        message: Option<String>,
    },
    /// The PMI rules are broken in a way that ends the job.
    Fault(PmiFault),
}

/// A break of the PMI rules that ends the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmiFault {
    /// `rank` initialized PMI and exited without `finalize`.
    ExitedWithoutFinalize {
        /// The rank that left.
        rank: usize,
    },
    /// A barrier can never complete: `departed` has exited while `waiting`
    /// ranks wait in it (or entered it after `departed` exited).
    BarrierAbandoned {
        /// A rank that has exited.
        departed: usize,
        /// The ranks waiting in the barrier, ascending.
        waiting: Vec<usize>,
    },
}

/// What the server knows of one rank's PMI life.
#[derive(Debug, Clone, Copy, Default)]
struct RankPmiState {
    /// Sent `init`.
    initialized: bool,
    /// Sent `finalize`.
    finalized: bool,
    /// Its process has exited (reported by [`PmiServer::handle_exit`]).
    exited: bool,
}

/// The PMI-1 server for one job of `size` ranks.
#[derive(Debug)]
pub struct PmiServer {
    size: usize,
    kvsname: String,
    /// Every key put so far, plus [`PROCESS_MAPPING_KEY`]. Write-once.
    store: HashMap<String, String>,
    /// Indexed by rank; `ranks.len() == size`.
    ranks: Vec<RankPmiState>,
    /// Ranks in the current barrier. When it holds all `size` ranks, every
    /// rank is sent `barrier_out` and it is emptied for the next barrier.
    barrier_waiting: BTreeSet<usize>,
}

impl PmiServer {
    /// A server for `size` ranks whose key-value space is named `kvsname`
    /// (cut to [`KVSNAME_MAX`] bytes and to printable ASCII without spaces).
    pub fn new(size: usize, kvsname: &str) -> PmiServer {
        let kvsname: String = kvsname
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '=')
            .take(KVSNAME_MAX - 1)
            .collect();
        let kvsname = if kvsname.is_empty() {
            "kvs_0".to_string()
        } else {
            kvsname
        };
        let mut store = HashMap::new();
        store.insert(
            PROCESS_MAPPING_KEY.to_string(),
            format!("(vector,(0,1,{size}))"),
        );
        PmiServer {
            size,
            kvsname,
            store,
            ranks: vec![RankPmiState::default(); size],
            barrier_waiting: BTreeSet::new(),
        }
    }

    /// Replaces the pre-set `PMI_process_mapping` (one node) with `mapping`,
    /// for a job whose ranks run on several hosts.
    pub fn with_process_mapping(mut self, mapping: String) -> PmiServer {
        self.store.insert(PROCESS_MAPPING_KEY.to_string(), mapping);
        self
    }

    /// The job's key-value space name.
    pub fn kvsname(&self) -> &str {
        &self.kvsname
    }

    /// Ranks now waiting in a barrier, ascending.
    pub fn barrier_waiting(&self) -> Vec<usize> {
        self.barrier_waiting.iter().copied().collect()
    }

    /// Whether `rank` has sent `init` and not yet `finalize`.
    pub fn is_mid_session(&self, rank: usize) -> bool {
        self.ranks
            .get(rank)
            .is_some_and(|r| r.initialized && !r.finalized)
    }

    /// Handles one request line (newline optional) from `rank`.
    pub fn handle_line(&mut self, rank: usize, bytes: &[u8]) -> Vec<Action> {
        if rank >= self.size {
            return vec![Action::Close {
                rank,
                reason: format!("no rank {rank} in a job of {} ranks", self.size),
            }];
        }
        let request = match PmiLine::parse(bytes) {
            Ok(request) => request,
            Err(e) => {
                // Refused, not fatal: closing would fail the rank's finalize.
                return vec![
                    reply(
                        rank,
                        PmiLine::command_line("error")
                            .with("rc", -1)
                            .with("msg", "not_a_pmi_line"),
                    ),
                    Action::Log {
                        rank,
                        message: format!("sent a line that is not PMI ({e}); answered cmd=error"),
                    },
                ];
            }
        };
        match request.command() {
            "init" => self.init(rank, &request),
            "get_maxes" => vec![reply(
                rank,
                PmiLine::command_line("maxes")
                    .with("kvsname_max", KVSNAME_MAX)
                    .with("keylen_max", KEYLEN_MAX)
                    .with("vallen_max", VALLEN_MAX)
                    .with("rc", 0),
            )],
            "get_appnum" => vec![reply(
                rank,
                PmiLine::command_line("appnum")
                    .with("appnum", 0)
                    .with("rc", 0),
            )],
            "get_my_kvsname" => {
                vec![reply(
                    rank,
                    PmiLine::command_line("my_kvsname")
                        .with("kvsname", &self.kvsname)
                        .with("rc", 0),
                )]
            }
            "get_universe_size" => {
                vec![reply(
                    rank,
                    PmiLine::command_line("universe_size")
                        .with("size", self.size)
                        .with("rc", 0),
                )]
            }
            "put" => self.put(rank, &request),
            "get" => self.get(rank, &request),
            "barrier_in" => self.barrier_in(rank),
            "finalize" => {
                self.ranks[rank].finalized = true;
                vec![reply(rank, PmiLine::command_line("finalize_ack"))]
            }
            "abort" => self.abort(rank, &request),
            "" => error_reply(
                rank,
                "error",
                &request,
                "no_cmd_key",
                "sent a PMI line without cmd=",
            ),
            other => {
                let other = other.to_string();
                error_reply(
                    rank,
                    &format!("{other}_result"),
                    &request,
                    &format!("unknown_command_{other}"),
                    "sent an unknown PMI command",
                )
            }
        }
    }

    /// Records that `rank`'s process has exited, whatever its status, and
    /// says whether that breaks the PMI rules: it initialized without
    /// finalizing, or others wait for it in a barrier.
    pub fn handle_exit(&mut self, rank: usize) -> Option<PmiFault> {
        let state = self.ranks.get_mut(rank)?;
        state.exited = true;
        let state = *state;
        self.barrier_waiting.remove(&rank);
        if state.initialized && !state.finalized {
            Some(PmiFault::ExitedWithoutFinalize { rank })
        } else if !self.barrier_waiting.is_empty() {
            Some(PmiFault::BarrierAbandoned {
                departed: rank,
                waiting: self.barrier_waiting(),
            })
        } else {
            None
        }
    }

    fn init(&mut self, rank: usize, request: &PmiLine) -> Vec<Action> {
        let answer = |rc: i32| {
            PmiLine::command_line("response_to_init")
                .with("pmi_version", 1)
                .with("pmi_subversion", 1)
                .with("rc", rc)
        };
        match request.get("pmi_version") {
            Some("1") => {
                self.ranks[rank].initialized = true;
                vec![reply(rank, answer(0))]
            }
            version => vec![
                reply(rank, answer(-1)),
                Action::Log {
                    rank,
                    message: format!(
                        "asked for PMI version {version:?}; this server speaks version 1"
                    ),
                },
            ],
        }
    }

    /// Checks the `kvsname` of a `put` or `get`; the error is a `msg` value.
    fn check_kvsname(&self, request: &PmiLine) -> Result<(), String> {
        match request.get("kvsname") {
            None => Err("missing_kvsname".into()),
            Some(name) if name == self.kvsname => Ok(()),
            Some(name) => Err(format!("kvsname_{name}_not_found")),
        }
    }

    fn put(&mut self, rank: usize, request: &PmiLine) -> Vec<Action> {
        let refuse = |msg: &str| error_reply(rank, "put_result", request, msg, "put refused");
        if let Err(msg) = self.check_kvsname(request) {
            return refuse(&msg);
        }
        let (Some(key), Some(value)) = (request.get("key"), request.get("value")) else {
            return refuse("put_needs_key_and_value");
        };
        if key.is_empty() || key.len() > KEYLEN_MAX {
            return refuse("key_length_out_of_range");
        }
        if value.len() > VALLEN_MAX {
            return refuse("value_too_long");
        }
        if self.store.contains_key(key) {
            return refuse(&format!("duplicate_key_{key}"));
        }
        self.store.insert(key.to_string(), value.to_string());
        vec![reply(
            rank,
            PmiLine::command_line("put_result")
                .with("rc", 0)
                .with("msg", "success"),
        )]
    }

    fn get(&mut self, rank: usize, request: &PmiLine) -> Vec<Action> {
        if let Err(msg) = self.check_kvsname(request) {
            return error_reply(rank, "get_result", request, &msg, "get refused");
        }
        let Some(key) = request.get("key") else {
            return error_reply(rank, "get_result", request, "get_needs_key", "get refused");
        };
        match self.store.get(key) {
            Some(value) => vec![reply(
                rank,
                PmiLine::command_line("get_result")
                    .with("rc", 0)
                    .with("msg", "success")
                    .with("value", value),
            )],
            // A missing key is an ordinary answer (clients probe for keys), so it is not logged.
            None => vec![reply(
                rank,
                PmiLine::command_line("get_result")
                    .with("rc", -1)
                    .with("msg", capped(&format!("key_{key}_not_found"))),
            )],
        }
    }

    fn barrier_in(&mut self, rank: usize) -> Vec<Action> {
        if !self.barrier_waiting.insert(rank) {
            return vec![Action::Close {
                rank,
                reason: "entered the same PMI barrier twice".into(),
            }];
        }
        if let Some(departed) = self.ranks.iter().position(|r| r.exited) {
            return vec![Action::Fault(PmiFault::BarrierAbandoned {
                departed,
                waiting: self.barrier_waiting(),
            })];
        }
        if self.barrier_waiting.len() < self.size {
            return Vec::new();
        }
        self.barrier_waiting.clear();
        (0..self.size)
            .map(|r| reply(r, PmiLine::command_line("barrier_out")))
            .collect()
    }

    fn abort(&mut self, rank: usize, request: &PmiLine) -> Vec<Action> {
        let message = ["message", "msg", "error_msg"]
            .iter()
            .find_map(|k| request.get(k))
            .map(mpirt::bootstrap::pmi::text_decode);
        match request.get("exitcode").map(str::parse::<i32>) {
            Some(Ok(code)) => vec![Action::Abort {
                rank,
                code,
                message,
            }],
            _ => vec![
                Action::Log {
                    rank,
                    message: format!("called abort without a valid exitcode ({request}); using 1"),
                },
                Action::Abort {
                    rank,
                    code: 1,
                    message,
                },
            ],
        }
    }
}

fn reply(rank: usize, line: PmiLine) -> Action {
    Action::Reply { rank, line }
}

/// `text` cut to [`ERROR_REPLY_MAX`] bytes (at a character boundary).
fn capped(text: &str) -> &str {
    let mut end = text.len().min(ERROR_REPLY_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Answers `request` with `cmd=<reply_command> rc=-1 msg=<msg>` (both capped)
/// and logs it.
fn error_reply(
    rank: usize,
    reply_command: &str,
    request: &PmiLine,
    msg: &str,
    what: &str,
) -> Vec<Action> {
    vec![
        reply(
            rank,
            PmiLine::command_line(capped(reply_command))
                .with("rc", -1)
                .with("msg", capped(msg)),
        ),
        Action::Log {
            rank,
            message: format!("{what}: {msg} (request: {request})"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn replies(actions: &[Action]) -> Vec<(usize, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Reply { rank, line } => Some((*rank, line.to_string())),
                _ => None,
            })
            .collect()
    }

    fn only_reply(actions: &[Action], to: usize) -> String {
        let r = replies(actions);
        assert_eq!(r.len(), 1, "expected one reply, got {actions:?}");
        assert_eq!(r[0].0, to);
        r[0].1.clone()
    }

    #[test]
    fn init_and_queries_answer_as_simple_pmi_expects() {
        let mut s = PmiServer::new(4, "kvs_7_0");
        let a = s.handle_line(2, b"cmd=init pmi_version=1 pmi_subversion=1\n");
        assert_eq!(
            only_reply(&a, 2),
            "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0"
        );
        assert!(s.is_mid_session(2));
        let a = s.handle_line(2, b"cmd=get_maxes\n");
        assert_eq!(
            only_reply(&a, 2),
            "cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=1024 rc=0"
        );
        assert_eq!(
            only_reply(&s.handle_line(2, b"cmd=get_appnum\n"), 2),
            "cmd=appnum appnum=0 rc=0"
        );
        assert_eq!(
            only_reply(&s.handle_line(2, b"cmd=get_my_kvsname\n"), 2),
            "cmd=my_kvsname kvsname=kvs_7_0 rc=0"
        );
        assert_eq!(
            only_reply(&s.handle_line(2, b"cmd=get_universe_size\n"), 2),
            "cmd=universe_size size=4 rc=0"
        );
        assert_eq!(
            only_reply(&s.handle_line(2, b"cmd=finalize\n"), 2),
            "cmd=finalize_ack"
        );
        assert!(!s.is_mid_session(2));
    }

    #[test]
    fn wrong_pmi_version_is_refused() {
        let mut s = PmiServer::new(1, "k");
        let a = s.handle_line(0, b"cmd=init pmi_version=2 pmi_subversion=0");
        assert_eq!(
            only_reply(&a, 0),
            "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=-1"
        );
        assert!(a.iter().any(|a| matches!(a, Action::Log { rank: 0, .. })));
        assert!(!s.is_mid_session(0));
    }

    #[test]
    fn put_then_get_from_another_rank() {
        let mut s = PmiServer::new(2, "k");
        let a = s.handle_line(0, b"cmd=put kvsname=k key=card-0 value=00ff");
        assert_eq!(only_reply(&a, 0), "cmd=put_result rc=0 msg=success");
        let a = s.handle_line(1, b"cmd=get kvsname=k key=card-0");
        assert_eq!(
            only_reply(&a, 1),
            "cmd=get_result rc=0 msg=success value=00ff"
        );
        let a = s.handle_line(1, b"cmd=get kvsname=k key=card-9");
        assert_eq!(
            only_reply(&a, 1),
            "cmd=get_result rc=-1 msg=key_card-9_not_found"
        );
        let a = s.handle_line(1, b"cmd=get kvsname=k key=PMI_process_mapping");
        assert_eq!(
            only_reply(&a, 1),
            "cmd=get_result rc=0 msg=success value=(vector,(0,1,2))"
        );
    }

    #[test]
    fn bad_puts_are_refused_and_logged() {
        let mut s = PmiServer::new(1, "k");
        for (line, msg) in [
            (
                &b"cmd=put kvsname=other key=a value=b"[..],
                "kvsname_other_not_found",
            ),
            (b"cmd=put key=a value=b", "missing_kvsname"),
            (b"cmd=put kvsname=k value=b", "put_needs_key_and_value"),
            (b"cmd=put kvsname=k key=a", "put_needs_key_and_value"),
            (
                b"cmd=put kvsname=k key=PMI_process_mapping value=x",
                "duplicate_key_PMI_process_mapping",
            ),
        ] {
            let a = s.handle_line(0, line);
            assert_eq!(only_reply(&a, 0), format!("cmd=put_result rc=-1 msg={msg}"));
            assert!(a.iter().any(|a| matches!(a, Action::Log { .. })));
        }
        let long_value = format!(
            "cmd=put kvsname=k key=a value={}",
            "v".repeat(VALLEN_MAX + 1)
        );
        assert_eq!(
            only_reply(&s.handle_line(0, long_value.as_bytes()), 0),
            "cmd=put_result rc=-1 msg=value_too_long"
        );
        let a = s.handle_line(0, b"cmd=get kvsname=zz key=a");
        assert_eq!(
            only_reply(&a, 0),
            "cmd=get_result rc=-1 msg=kvsname_zz_not_found"
        );
    }

    #[test]
    fn barrier_releases_everyone_when_the_last_rank_enters() {
        let mut s = PmiServer::new(3, "k");
        assert!(s.handle_line(2, b"cmd=barrier_in").is_empty());
        assert!(s.handle_line(0, b"cmd=barrier_in").is_empty());
        assert_eq!(s.barrier_waiting(), vec![0, 2]);
        let out = replies(&s.handle_line(1, b"cmd=barrier_in"));
        assert_eq!(
            out,
            (0..3)
                .map(|r| (r, "cmd=barrier_out".to_string()))
                .collect::<Vec<_>>()
        );
        assert!(s.barrier_waiting().is_empty());
        // And again: barriers are reusable.
        assert!(s.handle_line(1, b"cmd=barrier_in").is_empty());
        assert_eq!(s.barrier_waiting(), vec![1]);
    }

    #[test]
    fn entering_a_barrier_twice_closes_the_connection() {
        let mut s = PmiServer::new(2, "k");
        s.handle_line(0, b"cmd=barrier_in");
        assert!(matches!(
            s.handle_line(0, b"cmd=barrier_in")[..],
            [Action::Close { rank: 0, .. }]
        ));
    }

    #[test]
    fn a_rank_that_exits_during_a_barrier_abandons_it() {
        let mut s = PmiServer::new(3, "k");
        s.handle_line(0, b"cmd=barrier_in");
        s.handle_line(2, b"cmd=barrier_in");
        assert_eq!(
            s.handle_exit(1),
            Some(PmiFault::BarrierAbandoned {
                departed: 1,
                waiting: vec![0, 2]
            })
        );
    }

    #[test]
    fn entering_a_barrier_after_a_rank_exited_is_a_fault() {
        let mut s = PmiServer::new(2, "k");
        assert_eq!(
            s.handle_exit(1),
            None,
            "a rank that never spoke PMI may exit"
        );
        let a = s.handle_line(0, b"cmd=barrier_in");
        assert_eq!(
            a,
            vec![Action::Fault(PmiFault::BarrierAbandoned {
                departed: 1,
                waiting: vec![0]
            })]
        );
    }

    #[test]
    fn exiting_without_finalize_is_a_fault_and_with_it_is_not() {
        let mut s = PmiServer::new(2, "k");
        s.handle_line(0, b"cmd=init pmi_version=1 pmi_subversion=1");
        s.handle_line(1, b"cmd=init pmi_version=1 pmi_subversion=1");
        s.handle_line(1, b"cmd=finalize");
        assert_eq!(s.handle_exit(1), None);
        assert_eq!(
            s.handle_exit(0),
            Some(PmiFault::ExitedWithoutFinalize { rank: 0 })
        );
    }

    #[test]
    fn abort_carries_code_and_message() {
        let mut s = PmiServer::new(2, "k");
        assert_eq!(
            s.handle_line(1, b"cmd=abort exitcode=7 message=bad_input"),
            vec![Action::Abort {
                rank: 1,
                code: 7,
                message: Some("bad_input".into())
            }]
        );
        let a = s.handle_line(0, b"cmd=abort exitcode=x");
        assert!(matches!(
            a.last(),
            Some(Action::Abort {
                rank: 0,
                code: 1,
                message: None
            })
        ));
    }

    #[test]
    fn unknown_commands_get_an_error_reply() {
        let mut s = PmiServer::new(1, "k");
        let a = s.handle_line(0, b"cmd=frobnicate x=1");
        assert_eq!(
            only_reply(&a, 0),
            "cmd=frobnicate_result rc=-1 msg=unknown_command_frobnicate"
        );
        let a = s.handle_line(0, b"key=1");
        assert_eq!(only_reply(&a, 0), "cmd=error rc=-1 msg=no_cmd_key");
    }

    #[test]
    fn error_replies_that_echo_the_request_are_capped() {
        // Found by fuzzing: an unknown command or key of a few KiB came back
        // twice in the reply, past the MAX_LINE a rank can read.
        let long = "x".repeat(4000);
        let mut s = PmiServer::new(1, "k");
        for request in [
            format!("cmd={long}"),
            format!("cmd=get kvsname=k key={long}"),
            format!("cmd=get kvsname={long} key=a"),
            format!("cmd=put kvsname=k key={long} value=v"),
        ] {
            let reply = only_reply(&s.handle_line(0, request.as_bytes()), 0);
            let line = PmiLine::parse(reply.as_bytes()).unwrap();
            assert!(line.command().len() <= ERROR_REPLY_MAX, "{reply}");
            assert!(line.get("msg").unwrap().len() <= ERROR_REPLY_MAX, "{reply}");
            assert_eq!(line.get("rc"), Some("-1"));
        }
    }

    #[test]
    fn lines_that_are_not_pmi_get_an_error_reply() {
        let mut s = PmiServer::new(1, "k");
        for line in [&b"\x01\x02\n"[..], b"\n", b"cmd=init junk", b"=x"] {
            let a = s.handle_line(0, line);
            assert_eq!(
                only_reply(&a, 0),
                "cmd=error rc=-1 msg=not_a_pmi_line",
                "{line:?}"
            );
            assert!(!s.is_mid_session(0), "{line:?} was not taken as init");
        }
        assert!(matches!(
            s.handle_line(5, b"cmd=init")[..],
            [Action::Close { rank: 5, .. }]
        ));
    }

    proptest! {
        /// Whatever ranks send, the server does not panic, and every request
        /// gets exactly one reply to its sender, or closes its connection, or
        /// (abort, barrier) ends or waits as the protocol says.
        #[test]
        fn arbitrary_lines_never_panic(
            lines in proptest::collection::vec(
                (0usize..4, prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..80),
                    "(cmd=[a-z]{2000,2100}|cmd=get kvsname=k key=[a-z]{3000,4100})".prop_map(String::into_bytes),
                    "(cmd=(init|get_maxes|put|get|barrier_in|finalize|abort|get_appnum|x)( [a-z_]{1,8}=[!-~]{0,10}){0,4})"
                        .prop_map(String::into_bytes),
                ]),
                0..60),
            exits in proptest::collection::vec(0usize..4, 0..3),
        ) {
            let mut s = PmiServer::new(3, "k");
            for (rank, line) in &lines {
                let actions = s.handle_line(*rank, line);
                let to_sender = actions.iter().filter(|a| matches!(a, Action::Reply { rank: r, .. } if r == rank)).count();
                let closed = actions.iter().any(|a| matches!(a, Action::Close { .. }));
                let ended = actions.iter().any(|a| matches!(a, Action::Abort { .. } | Action::Fault(_)));
                for action in &actions {
                    if let Action::Reply { line: reply, .. } = action {
                        prop_assert!(reply.encode().len() <= mpirt::bootstrap::pmi::MAX_LINE, "{reply}");
                    }
                }
                let barrier = PmiLine::parse(line).map(|l| l.command() == "barrier_in").unwrap_or(false);
                prop_assert!(to_sender == 1 || closed || ended || (barrier && to_sender == 0), "{actions:?}");
            }
            for rank in exits {
                let _ = s.handle_exit(rank);
            }
        }
    }
}
