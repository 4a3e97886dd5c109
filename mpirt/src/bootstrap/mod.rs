//! Bootstrap: rank, size and a key-value exchange with the process manager.
//!
//! A rank learns who it is from the environment, as MPICH's ranks do:
//! - `PMI_FD` (+ `PMI_RANK`, `PMI_SIZE`): an inherited connected socket to a
//!   PMI-1 server (mpirt's `mpirun`, MPICH's Hydra, Slurm's pmi2 plugin);
//! - `PMI_PORT` (`host:port`, + `PMI_ID`): a server to connect to;
//! - neither: a singleton job of one rank, as a C MPI program run without a
//!   launcher.

pub mod pmi;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, RawFd};

use crate::error::Error;
use pmi::PmiLine;

/// The connection to the process manager, or the singleton's local store.
pub struct Bootstrap {
    rank: i32,
    size: i32,
    kvsname: String,
    server: Option<Server>,
    singleton_store: HashMap<String, String>,
}

struct Server {
    reader: BufReader<File>,
    writer: File,
}

fn env_int(name: &str) -> Result<Option<i32>, Error> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Bootstrap(format!("{name}={v:?} is not an integer"))),
        Err(_) => Ok(None),
    }
}

impl Bootstrap {
    /// Connects as the environment says (see the module doc) and runs PMI
    /// `init`.
    pub fn from_env() -> Result<Bootstrap, Error> {
        if let Some(fd) = env_int("PMI_FD")? {
            let rank = env_int("PMI_RANK")?
                .ok_or_else(|| Error::Bootstrap("PMI_FD is set but PMI_RANK is not".into()))?;
            let size = env_int("PMI_SIZE")?
                .ok_or_else(|| Error::Bootstrap("PMI_FD is set but PMI_SIZE is not".into()))?;
            // SAFETY: fcntl(F_GETFD) only queries the descriptor.
            if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(Error::Bootstrap(format!(
                    "PMI_FD={fd} is not an open descriptor"
                )));
            }
            // Ours from here on: nothing else in this process uses PMI_FD.
            // SAFETY: the descriptor is open (checked above) and owned by no
            // other object in this process.
            let file = unsafe { File::from_raw_fd(fd as RawFd) };
            let server = Server::new(file)?;
            return Bootstrap::connected(server, rank, size);
        }
        if let Ok(port) = std::env::var("PMI_PORT") {
            let stream = TcpStream::connect(&port)
                .map_err(|e| Error::Bootstrap(format!("cannot reach PMI_PORT={port}: {e}")))?;
            let mut server = Server::new(File::from(std::os::fd::OwnedFd::from(stream)))?;
            let id = env_int("PMI_ID")?.unwrap_or(0);
            server.send(&PmiLine::command_line("initack").with("pmiid", id))?;
            let mut rank = None;
            let mut size = None;
            while rank.is_none() || size.is_none() {
                let line = server.receive()?;
                if line.command() == "set" {
                    if let Some(v) = line.get("size") {
                        size = v.parse().ok();
                    }
                    if let Some(v) = line.get("rank") {
                        rank = v.parse().ok();
                    }
                }
            }
            return Bootstrap::connected(server, rank.unwrap_or(0), size.unwrap_or(1));
        }
        Ok(Bootstrap {
            rank: 0,
            size: 1,
            kvsname: "singleton".into(),
            server: None,
            singleton_store: HashMap::new(),
        })
    }

    fn connected(mut server: Server, rank: i32, size: i32) -> Result<Bootstrap, Error> {
        if size < 1 || !(0..size).contains(&rank) {
            return Err(Error::Bootstrap(format!(
                "rank {rank} of size {size} makes no sense"
            )));
        }
        let reply = server.request(
            &PmiLine::command_line("init")
                .with("pmi_version", 1)
                .with("pmi_subversion", 1),
        )?;
        check_rc(&reply)?;
        let reply = server.request(&PmiLine::command_line("get_my_kvsname"))?;
        let kvsname = reply
            .require("kvsname")
            .map_err(|e| Error::Bootstrap(e.to_string()))?
            .to_string();
        Ok(Bootstrap {
            rank,
            size,
            kvsname,
            server: Some(server),
            singleton_store: HashMap::new(),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> i32 {
        self.rank
    }

    /// Ranks in the job.
    pub fn size(&self) -> i32 {
        self.size
    }

    /// Publishes `key=value`; visible to others after the next [`fence`](Self::fence).
    pub fn put(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let Some(server) = &mut self.server else {
            self.singleton_store.insert(key.into(), value.into());
            return Ok(());
        };
        let line = PmiLine::command_line("put")
            .with("kvsname", &self.kvsname)
            .with("key", key)
            .with("value", value);
        check_rc(&server.request(&line)?)
    }

    /// Waits until every rank has reached the fence (PMI barrier).
    pub fn fence(&mut self) -> Result<(), Error> {
        match &mut self.server {
            Some(server) => {
                let reply = server.request(&PmiLine::command_line("barrier_in"))?;
                check_rc(&reply)
            }
            None => Ok(()),
        }
    }

    /// Reads a key another rank put before the last fence.
    pub fn get(&mut self, key: &str) -> Result<String, Error> {
        let Some(server) = &mut self.server else {
            return self
                .singleton_store
                .get(key)
                .cloned()
                .ok_or_else(|| Error::Bootstrap(format!("no key {key}")));
        };
        let line = PmiLine::command_line("get")
            .with("kvsname", &self.kvsname)
            .with("key", key);
        let reply = server.request(&line)?;
        check_rc(&reply)?;
        Ok(reply
            .require("value")
            .map_err(|e| Error::Bootstrap(e.to_string()))?
            .to_string())
    }

    /// Tells the process manager this rank is done (PMI finalize).
    pub fn finalize(&mut self) -> Result<(), Error> {
        match self.server.take() {
            Some(mut server) => server
                .request(&PmiLine::command_line("finalize"))
                .map(|_| ()),
            None => Ok(()),
        }
    }

    /// Asks the process manager to end the whole job with `code`. Returns
    /// once the request is written; the caller exits next.
    pub fn abort(&mut self, code: i32, message: &str) {
        if let Some(server) = &mut self.server {
            let text: String = message
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '_' })
                .take(900)
                .collect();
            let _ = server.send(
                &PmiLine::command_line("abort")
                    .with("exitcode", code)
                    .with("message", text),
            );
        }
    }
}

fn check_rc(reply: &PmiLine) -> Result<(), Error> {
    match reply.get("rc") {
        None | Some("0") => Ok(()),
        Some(rc) => Err(Error::Bootstrap(format!(
            "process manager answered {} with rc={rc}: {}",
            reply.command(),
            reply.get("msg").unwrap_or("no message")
        ))),
    }
}

impl Server {
    fn new(file: File) -> Result<Server, Error> {
        let writer = file.try_clone()?;
        Ok(Server {
            reader: BufReader::new(file),
            writer,
        })
    }

    fn send(&mut self, line: &PmiLine) -> Result<(), Error> {
        self.writer
            .write_all(line.encode().as_bytes())
            .map_err(|e| {
                Error::Bootstrap(format!(
                    "lost the process manager while sending {}: {e}",
                    line.command()
                ))
            })
    }

    fn receive(&mut self) -> Result<PmiLine, Error> {
        match pmi::read_line(&mut self.reader) {
            Ok(Some(bytes)) => PmiLine::parse(&bytes)
                .map_err(|e| Error::Bootstrap(format!("bad line from the process manager: {e}"))),
            Ok(None) => Err(Error::Bootstrap(
                "the process manager closed the connection".into(),
            )),
            Err(e) => Err(Error::Bootstrap(format!(
                "reading from the process manager: {e}"
            ))),
        }
    }

    fn request(&mut self, line: &PmiLine) -> Result<PmiLine, Error> {
        self.send(line)?;
        self.receive()
    }
}
