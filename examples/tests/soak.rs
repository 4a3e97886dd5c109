//! The soak program for a short, fixed number of messages: random sizes,
//! tags, modes and peers, every message checked (checksum, per-(sender, tag)
//! order, nothing lost) at 3, 5 and 8 ranks over each transport, and again
//! with only messages of 0 to 40 bytes.

use std::time::Duration;

use launcher::{Job, Output, Transport};

#[test]
fn soak_delivers_everything_in_order() {
    for transport in [Transport::Tcp, Transport::Shm] {
        for n in [3, 5, 8] {
            let outcome = Job::new(env!("CARGO_BIN_EXE_soak"))
                .args(["--messages", "256", "--seed", &n.to_string()])
                .ranks(n)
                .transport(transport)
                .timeout(Duration::from_secs(120))
                .output(Output::Capture)
                .run()
                .expect("job starts");
            let all: String = (0..n)
                .map(|r| outcome.stdout_text(r) + &outcome.stderr_text(r))
                .collect();
            assert!(
                outcome.success(),
                "soak at {n} ranks over {transport:?}: {:?}\n{all}",
                outcome.message
            );
            assert!(
                outcome
                    .stdout_text(0)
                    .contains(&format!("soak: ok: 4 rounds, {} messages", 256 * n)),
                "{all}"
            );
        }
    }
}

/// Messages of 0 to 40 bytes: most are too short to carry their own header
/// and are checked whole against what the plan says was sent.
#[test]
fn soak_checks_messages_too_short_for_a_header() {
    for transport in [Transport::Tcp, Transport::Shm] {
        let n = 4;
        let outcome = Job::new(env!("CARGO_BIN_EXE_soak"))
            .args(["--messages", "512", "--seed", "11", "--max-size", "40"])
            .ranks(n)
            .transport(transport)
            .timeout(Duration::from_secs(120))
            .output(Output::Capture)
            .run()
            .expect("job starts");
        let all: String = (0..n)
            .map(|r| outcome.stdout_text(r) + &outcome.stderr_text(r))
            .collect();
        assert!(
            outcome.success(),
            "short soak over {transport:?}: {:?}\n{all}",
            outcome.message
        );
        assert!(
            outcome
                .stdout_text(0)
                .contains(&format!("soak: ok: 8 rounds, {} messages", 512 * n)),
            "{all}"
        );
    }
}
