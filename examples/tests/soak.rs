//! The soak program for a short, fixed number of messages: random sizes,
//! tags, modes and peers, every message checked (checksum, per-(sender, tag)
//! order, nothing lost) at 3, 5 and 8 ranks over each transport, and again
//! with only messages of 0 to 40 bytes.

mod common;

use std::time::Duration;

use launcher::Transport;

/// Runs `soak ARGS` at `n` ranks over `transport`; it must succeed and
/// rank 0 must report `expected`.
fn soak(args: &[&str], n: usize, transport: Transport, expected: &str) {
    let program = env!("CARGO_BIN_EXE_soak");
    let deadline = Duration::from_secs(120);
    common::run_expecting(program, args, n, transport, deadline, expected);
}

#[test]
fn soak_delivers_everything_in_order() {
    for transport in [Transport::Tcp, Transport::Shm] {
        for n in [3, 5, 8] {
            let seed = n.to_string();
            let expected = format!("soak: ok: 4 rounds, {} messages", 256 * n);
            soak(
                &["--messages", "256", "--seed", &seed],
                n,
                transport,
                &expected,
            );
        }
    }
}

/// Messages of 0 to 40 bytes: most are too short to carry their own header
/// and are checked whole against what the plan says was sent.
#[test]
fn soak_checks_messages_too_short_for_a_header() {
    for transport in [Transport::Tcp, Transport::Shm] {
        let args = ["--messages", "512", "--seed", "11", "--max-size", "40"];
        soak(
            &args,
            4,
            transport,
            &format!("soak: ok: 8 rounds, {} messages", 512 * 4),
        );
    }
}
