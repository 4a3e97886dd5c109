//! Point-to-point semantics through real jobs: when each mode completes,
//! what the buffers hold, requests, probes, threads (see
//! `examples/src/bin/semantics.rs`). Every case runs at 2, 3 and 5 ranks over
//! each transport, with a deadline.

mod common;

use std::time::Duration;

use launcher::Transport;

const RANKS: [usize; 3] = [2, 3, 5];
const DEADLINE: Duration = Duration::from_secs(120);

fn case(name: &str, transport: Transport) {
    for n in RANKS {
        let expected = format!("semantics {name}: ok at {n} ranks");
        let program = env!("CARGO_BIN_EXE_semantics");
        common::run_expecting(program, &[name], n, transport, DEADLINE, &expected);
    }
}

macro_rules! semantics_suite {
    ($module:ident, $transport:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn synchronous_send_waits_for_the_receive() {
                case("synchronous", $transport);
            }
            #[test]
            fn standard_send_small_returns_large_waits_for_delivery() {
                case("standard", $transport);
            }
            #[test]
            fn buffered_send_copies_exhausts_and_detach_waits() {
                case("buffered", $transport);
            }
            #[test]
            fn thirty_wildcard_receives_match_in_posting_order() {
                case("non-overtaking", $transport);
            }
            #[test]
            fn immediate_receive_posted_first_gets_the_first_message() {
                case("irecv-first", $transport);
            }
            #[test]
            fn truncation_through_a_request_and_zero_length_messages() {
                case("truncate-empty", $transport);
            }
            #[test]
            fn sends_to_self_in_every_mode() {
                case("self", $transport);
            }
            #[test]
            fn cancel_of_a_posted_receive() {
                case("cancel", $transport);
            }
            #[test]
            fn flood_of_100000_eager_sends_stays_bounded() {
                case("flood", $transport);
            }
            #[test]
            fn both_ranks_exchange_64_mib_at_once() {
                case("exchange-64mib", $transport);
            }
            #[test]
            fn send_receive_around_a_ring() {
                case("sendrecv-ring", $transport);
            }
            #[test]
            fn probes_proc_null_and_invalid_arguments() {
                case("probes-errors", $transport);
            }
            #[test]
            fn threads_communicate_at_once() {
                case("threads", $transport);
            }
            #[test]
            fn request_collections_and_guards() {
                case("collections", $transport);
            }
        }
    };
}

semantics_suite!(tcp, Transport::Tcp);
semantics_suite!(shm, Transport::Shm);
