//! Fuzzes the launcher's PMI server: arbitrary lines from arbitrary ranks
//! (and rank exits) never panic; every request is answered to its sender,
//! closes its connection, ends the job, or waits in a barrier; and every
//! reply fits in one PMI line the ranks can read back.
#![no_main]

use launcher::pmi_server::{Action, PmiServer, ERROR_REPLY_MAX};
use libfuzzer_sys::fuzz_target;
use mpirt::bootstrap::pmi::{PmiLine, MAX_LINE};

const RANKS: usize = 3;

fuzz_target!(|bytes: &[u8]| {
    let mut server = PmiServer::new(RANKS, "kvs_fuzz");
    // Each input line starts with a byte choosing the rank (one past the
    // last is a stranger); a line starting with '!' reports that rank's exit.
    for raw in bytes.split(|&b| b == b'\n') {
        let Some((&selector, line)) = raw.split_first() else {
            continue;
        };
        let rank = selector as usize % (RANKS + 1);
        if line.first() == Some(&b'!') {
            let _ = server.handle_exit(rank);
            continue;
        }
        let actions = server.handle_line(rank, line);
        let mut to_sender = 0;
        let mut closed = false;
        let mut ended = false;
        for action in &actions {
            match action {
                Action::Reply {
                    rank: to,
                    line: reply,
                } => {
                    assert!(*to < RANKS);
                    to_sender += usize::from(*to == rank);
                    let encoded = reply.encode();
                    assert!(
                        encoded.len() <= MAX_LINE,
                        "reply of {} bytes to {line:?}",
                        encoded.len()
                    );
                    assert_eq!(PmiLine::parse(encoded.as_bytes()).as_ref(), Ok(reply));
                    if reply.get("rc") == Some("-1") {
                        assert!(reply.command().len() <= ERROR_REPLY_MAX, "{reply}");
                        assert!(reply.get("msg").unwrap_or("").len() <= ERROR_REPLY_MAX);
                    }
                }
                Action::Close { .. } => closed = true,
                Action::Abort { .. } | Action::Fault(_) => ended = true,
                Action::Log { .. } => {}
            }
        }
        let barrier = PmiLine::parse(line).is_ok_and(|l| l.command() == "barrier_in");
        assert!(
            to_sender == 1 || closed || ended || (barrier && to_sender == 0),
            "{line:?} gave {actions:?}"
        );
    }
});
