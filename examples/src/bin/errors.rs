//! errors: what a communicator's error handler does (MPI 4.1 §9.3). Run by
//! `examples/tests/errors.rs`.
//!
//! - `return`: with `ErrorHandler::Return` the rsmpi-shaped forms unwind
//!   with a one-line message (an invalid rank, an invalid root, a truncated
//!   receive), the rank goes on communicating afterwards, and derived
//!   communicators inherit the handler but not later changes to it.
//! - `fatal`: the default; the last rank sends to a rank that does not
//!   exist, and the job must end with that rank's one-line message.
//!
//! Usage: errors return|fatal
use std::panic::{catch_unwind, AssertUnwindSafe};

use mpirt::traits::*;
use mpirt::ErrorHandler;

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            eprintln!("errors: FAILED: {}", format!($($fmt)*));
            std::process::exit(1);
        }
    };
}

/// Runs `f`, which must unwind; returns the message it unwound with.
fn unwinds_with(what: &str, f: impl FnOnce()) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => {
            eprintln!("errors: FAILED: {what} returned without an error");
            std::process::exit(1);
        }
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "<not a string>".into()),
    }
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let universe = mpirt::initialize().expect("first initialization");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    match case.as_str() {
        "return" => {
            // Keep the expected unwinds' reports short.
            std::panic::set_hook(Box::new(|_| {}));
            check!(
                world.error_handler() == ErrorHandler::Fatal,
                "the default is not fatal"
            );
            world.set_error_handler(ErrorHandler::Return);
            check!(
                universe.world().error_handler() == ErrorHandler::Return,
                "another handle of the world does not share its handler"
            );

            let message = unwinds_with("send to an invalid rank", || {
                world
                    .process_at_rank(size)
                    .send_with_tag(&[1u8, 2, 3][..], 5)
            });
            let expected = format!(
                "mpirt: rank {rank}: send (peer {size}, tag 5, 3 bytes): rank {size} is not in a communicator of size {size}"
            );
            check!(
                message == expected,
                "got {message:?}, expected {expected:?}"
            );

            let mut value = [0u64; 1];
            let message = unwinds_with("broadcast from an invalid root", || {
                world.process_at_rank(-7).broadcast_into(&mut value[..])
            });
            check!(
                message.starts_with(&format!(
                    "mpirt: rank {rank}: broadcast_into (root -7, 8 bytes): "
                )),
                "got {message:?}"
            );

            // A truncated receive between the first and last rank, then the
            // pair goes on as if nothing happened.
            let last = size - 1;
            if size > 1 && rank == 0 {
                world.process_at_rank(last).send_with_tag(&[7u8; 16][..], 4);
            } else if size > 1 && rank == last {
                let mut small = [0u8; 8];
                let message = unwinds_with("truncated receive", || {
                    world
                        .process_at_rank(0)
                        .receive_into_with_tag(&mut small[..], 4);
                });
                let expected = format!(
                    "mpirt: rank {rank}: receive_into (peer 0, tag 4, 8 bytes): message of 16 bytes from rank 0 (tag 4) does not fit the receive buffer of 8 bytes"
                );
                check!(
                    message == expected,
                    "got {message:?}, expected {expected:?}"
                );
            }
            let mut sum = 0i64;
            world.all_reduce_into(
                &(rank as i64),
                &mut sum,
                mpirt::collective::SystemOperation::sum(),
            );
            check!(
                sum == (0..size as i64).sum::<i64>(),
                "the job did not go on after the errors: sum {sum}"
            );

            // Inheritance (MPI 4.1 §9.3): a copy of the parent's handler.
            let copy = world.duplicate();
            check!(
                copy.error_handler() == ErrorHandler::Return,
                "duplicate did not inherit"
            );
            copy.set_error_handler(ErrorHandler::Fatal);
            check!(
                world.error_handler() == ErrorHandler::Return,
                "setting the duplicate's handler changed the parent's"
            );
            let half = world
                .split_by_color(mpirt::topology::Color::with_value(rank % 2))
                .expect("every rank has a color");
            check!(
                half.error_handler() == ErrorHandler::Return,
                "split did not inherit"
            );
            let message = unwinds_with("send to an invalid rank of a split", || {
                half.process_at_rank(half.size()).send(&1u8)
            });
            check!(
                message.contains("is not in a communicator of size"),
                "got {message:?}"
            );
            world.barrier();
            if rank == 0 {
                println!("errors return: ok at {size} ranks");
            }
        }
        "fatal" => {
            world.barrier();
            if rank == size - 1 {
                world
                    .process_at_rank(size + 1)
                    .send_with_tag(&[0u32; 4][..], 9);
                eprintln!("errors: FAILED: a fatal error returned");
                std::process::exit(99);
            }
            // The others wait for the abort in a receive that never matches.
            world.any_process().receive_with_tag::<u8>(1234);
        }
        other => {
            eprintln!("errors: unknown case {other:?}; use return or fatal");
            std::process::exit(2);
        }
    }
}
