//! Error handlers through real jobs (see `examples/src/bin/errors.rs`):
//! "errors return" unwinds with one line and the job goes on; "errors are
//! fatal" (the default) ends the job with the failing rank's one line. At 2
//! and 3 ranks over each transport, with a deadline.

use std::time::Duration;

use launcher::{Job, Outcome, Output, Transport};

const DEADLINE: Duration = Duration::from_secs(60);

fn run(case: &str, n: usize, transport: Transport) -> (Outcome, String) {
    let outcome = Job::new(env!("CARGO_BIN_EXE_errors"))
        .arg(case)
        .ranks(n)
        .transport(transport)
        .timeout(DEADLINE)
        .output(Output::Capture)
        .run()
        .expect("job starts");
    let report = outcome.report();
    (outcome, report)
}

fn errors_return(transport: Transport) {
    for n in [2, 3] {
        let (outcome, report) = run("return", n, transport);
        assert!(outcome.success(), "{report}");
        assert!(
            outcome
                .stdout_text(0)
                .contains(&format!("errors return: ok at {n} ranks")),
            "{report}"
        );
    }
}

fn errors_are_fatal(transport: Transport) {
    for n in [2, 3] {
        let (outcome, report) = run("fatal", n, transport);
        assert!(!outcome.success(), "{report}");
        let last = n - 1;
        let expected = format!(
            "mpirt: rank {last}: send (peer {}, tag 9, 16 bytes): rank {} is not in a communicator of size {n}",
            n + 1,
            n + 1
        );
        let stderr = outcome.stderr_text(last);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("mpirt: rank"))
            .collect();
        assert_eq!(lines, [expected.as_str()], "{report}");
        assert!(!stderr.contains("FAILED"), "{report}");
        // mpirun's report carries the rank's line as it was written.
        let message = outcome.message.clone().unwrap_or_default();
        assert!(message.contains(&expected), "{report}");
    }
}

mod tcp {
    use super::*;
    #[test]
    fn errors_return_unwinds_with_one_line_and_the_job_goes_on() {
        errors_return(Transport::Tcp);
    }
    #[test]
    fn errors_are_fatal_by_default_and_name_rank_peer_tag_and_size() {
        errors_are_fatal(Transport::Tcp);
    }
}

mod shm {
    use super::*;
    #[test]
    fn errors_return_unwinds_with_one_line_and_the_job_goes_on() {
        errors_return(Transport::Shm);
    }
    #[test]
    fn errors_are_fatal_by_default_and_name_rank_peer_tag_and_size() {
        errors_are_fatal(Transport::Shm);
    }
}
