//! The two ranks of the criterion benches that run a job: rank 0 is the
//! bench process, which decides what to time and how often (criterion
//! chooses the iteration counts as it goes); rank 1 is `bench-partner`,
//! which does what rank 0 tells it until told to stop.
//!
//! Each measurement starts with a [`Command`] from rank 0 (three `u64`s on
//! [`COMMAND_TAG`]); then both ranks run the same loop. Rank 0 times its
//! side only: the command's own trip is outside the timed loop.

use std::time::{Duration, Instant};

use mpirt::collective::SystemOperation;
use mpirt::point_to_point::{Destination, Source};
use mpirt::topology::{Communicator, SimpleCommunicator};
use mpirt::traits::CommunicatorCollectives;

/// The tag of commands.
pub const COMMAND_TAG: mpirt::Tag = 900;
/// The tag of ping-pong messages.
pub const DATA_TAG: mpirt::Tag = 901;

/// What rank 0 asks rank 1 to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Leave the loop: the job is about to finalize.
    Quit,
    /// `iterations` round trips of `bytes`-byte messages, rank 0 sending first.
    PingPong {
        /// Message size.
        bytes: usize,
        /// Round trips.
        iterations: u64,
    },
    /// `iterations` sums of `elements` f64 by all-reduce.
    AllReduce {
        /// Elements per call.
        elements: usize,
        /// Calls.
        iterations: u64,
    },
}

impl Command {
    /// The command as it travels.
    pub fn encode(self) -> [u64; 3] {
        match self {
            Command::Quit => [0, 0, 0],
            Command::PingPong { bytes, iterations } => [1, bytes as u64, iterations],
            Command::AllReduce {
                elements,
                iterations,
            } => [2, elements as u64, iterations],
        }
    }

    /// The command a message holds, if it is one.
    pub fn decode(words: [u64; 3]) -> Option<Command> {
        let size = usize::try_from(words[1]).ok()?;
        match words[0] {
            0 => Some(Command::Quit),
            1 => Some(Command::PingPong {
                bytes: size,
                iterations: words[2],
            }),
            2 => Some(Command::AllReduce {
                elements: size,
                iterations: words[2],
            }),
            _ => None,
        }
    }
}

/// Buffers reused from one measurement to the next.
#[derive(Default)]
struct Buffers {
    send: Vec<u8>,
    receive: Vec<u8>,
    send_f64: Vec<f64>,
    receive_f64: Vec<f64>,
}

impl Buffers {
    fn bytes(&mut self, size: usize) -> (&[u8], &mut [u8]) {
        if self.send.len() < size {
            self.send.resize(size, b'p');
            self.receive.resize(size, 0);
        }
        (&self.send[..size], &mut self.receive[..size])
    }

    fn doubles(&mut self, n: usize) -> (&[f64], &mut [f64]) {
        if self.send_f64.len() < n {
            self.send_f64.resize(n, 1.0);
            self.receive_f64.resize(n, 0.0);
        }
        (&self.send_f64[..n], &mut self.receive_f64[..n])
    }
}

/// Runs `command`'s loop on this rank of a two-rank `world`.
fn run(world: &SimpleCommunicator, buffers: &mut Buffers, command: Command) {
    let peer = world.process_at_rank(1 - world.rank());
    match command {
        Command::Quit => {}
        Command::PingPong { bytes, iterations } => {
            let (send, receive) = buffers.bytes(bytes);
            for _ in 0..iterations {
                if world.rank() == 0 {
                    peer.send_with_tag(send, DATA_TAG);
                    peer.receive_into_with_tag(receive, DATA_TAG);
                } else {
                    peer.receive_into_with_tag(receive, DATA_TAG);
                    peer.send_with_tag(send, DATA_TAG);
                }
            }
        }
        Command::AllReduce {
            elements,
            iterations,
        } => {
            let (send, receive) = buffers.doubles(elements);
            for _ in 0..iterations {
                world.all_reduce_into(send, receive, SystemOperation::sum());
            }
        }
    }
}

/// Rank 0's side: sends commands and times the loops.
pub struct Driver {
    world: SimpleCommunicator,
    buffers: Buffers,
}

impl Driver {
    /// A driver on `world`, which must have two ranks, this one being 0.
    pub fn new(world: SimpleCommunicator) -> Driver {
        assert_eq!(
            (world.rank(), world.size()),
            (0, 2),
            "the driver is rank 0 of 2"
        );
        Driver {
            world,
            buffers: Buffers::default(),
        }
    }

    /// Tells rank 1 to run `command`, runs it too and returns how long this
    /// rank took.
    pub fn time(&mut self, command: Command) -> Duration {
        self.world
            .process_at_rank(1)
            .send_with_tag(&command.encode()[..], COMMAND_TAG);
        let start = Instant::now();
        run(&self.world, &mut self.buffers, command);
        start.elapsed()
    }

    /// Tells rank 1 to stop following.
    pub fn quit(mut self) {
        self.time(Command::Quit);
    }
}

/// Rank 1's side: runs rank 0's commands until [`Command::Quit`].
pub fn follow(world: &SimpleCommunicator) -> Result<(), String> {
    let mut buffers = Buffers::default();
    let leader = world.process_at_rank(0);
    loop {
        let mut words = [0u64; 3];
        leader.receive_into_with_tag(&mut words[..], COMMAND_TAG);
        match Command::decode(words) {
            Some(Command::Quit) => return Ok(()),
            Some(command) => run(world, &mut buffers, command),
            None => return Err(format!("rank 0 sent {words:?}, which is no command")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for command in [
            Command::Quit,
            Command::PingPong {
                bytes: 1 << 20,
                iterations: 7,
            },
            Command::AllReduce {
                elements: 1,
                iterations: u64::MAX,
            },
        ] {
            assert_eq!(Command::decode(command.encode()), Some(command));
        }
        assert_eq!(Command::decode([9, 0, 0]), None);
    }
}
