//! Bootstrap: rank, size and a key-value exchange with the process manager.
//!
//! A rank learns who it is from the environment, as MPICH's ranks do:
//! - `PMI_FD` (+ `PMI_RANK`, `PMI_SIZE`): an inherited connected socket to a
//!   PMI-1 server (mpirt's `mpirun`, MPICH's Hydra, Slurm's pmi2 plugin);
//! - `PMI_PORT` (`host:port`, + `PMI_ID`): a server to connect to;
//! - neither: a singleton job of one rank, as a C MPI program run without a
//!   launcher; but a task of a Slurm job step of several tasks given neither
//!   (`srun --mpi=none`) is an error, not one of N lone singletons.
//!
//! Over `PMI_PORT`, a rank started by mpirt's `mpirun` on another host also
//! proves it belongs to the job: `MPIRT_PMI_SECRET` (a per-job secret the
//! launcher hands each remote rank) travels as `secret=` in the first line,
//! `cmd=initack`; the launcher drops connections without it. Other process
//! managers ignore the extra key.
//!
//! [`process_mapping`] reads `PMI_process_mapping` (which ranks share a
//! node) and [`net`] picks the address a rank listens on.

pub mod net;
pub mod pmi;
pub mod process_mapping;

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
            // Close-on-exec: a program this rank runs must not speak PMI as
            // this rank (the launcher cleared the flag to pass it to us).
            // SAFETY: fcntl(F_SETFD) only changes the descriptor's flags.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
                return Err(Error::Bootstrap(format!(
                    "PMI_FD={fd}: cannot set close-on-exec: {}",
                    std::io::Error::last_os_error()
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
            let id = env_int("PMI_ID")?.unwrap_or(0);
            return Bootstrap::over_port(stream, id);
        }
        if let Some(advice) = srun_without_pmi(|name| std::env::var(name).ok()) {
            return Err(Error::Bootstrap(advice));
        }
        Ok(Bootstrap {
            rank: 0,
            size: 1,
            kvsname: "singleton".into(),
            server: None,
            singleton_store: HashMap::new(),
        })
    }

    /// The `PMI_PORT` dialect: introduce ourselves with `initack`; the
    /// server answers `initack` and three `set` lines (size, rank, debug, as
    /// MPICH's simple PMI sends them); then run `init`.
    fn over_port(stream: TcpStream, id: i32) -> Result<Bootstrap, Error> {
        let mut server = Server::new(File::from(std::os::fd::OwnedFd::from(stream)))?;
        let mut hello = PmiLine::command_line("initack").with("pmiid", id);
        if let Some(secret) = std::env::var("MPIRT_PMI_SECRET")
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            hello = hello.with("secret", secret);
        }
        server.send(&hello)?;
        let (mut rank, mut size, mut debug) = (None, None, None);
        while rank.is_none() || size.is_none() || debug.is_none() {
            let line = server.receive()?;
            if line.command() == "set" {
                debug = debug.or(line.get("debug").map(|_| ()));
                let number = |v: &str| {
                    v.parse()
                        .map_err(|_| Error::Bootstrap(format!("bad value {v:?} from PMI_PORT")))
                };
                if let Some(v) = line.get("size") {
                    size = Some(number(v)?);
                }
                if let Some(v) = line.get("rank") {
                    rank = Some(number(v)?);
                }
            }
        }
        Bootstrap::connected(server, rank.unwrap_or(0), size.unwrap_or(1))
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

    /// Where the process manager says the ranks run
    /// (`PMI_process_mapping`), if it says so in a form this rank reads.
    pub fn process_mapping(&mut self) -> Option<process_mapping::ProcessMapping> {
        self.server.as_ref()?;
        let text = self.get("PMI_process_mapping").ok()?;
        process_mapping::ProcessMapping::parse(&text).ok()
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
            // ASCII, so any byte is a char boundary. A PMI line is at most
            // MAX_LINE bytes; an escape (3 bytes) is not cut in half.
            let mut text = pmi::text_encode(message);
            if text.len() > 900 {
                let cut = match text[898..900].rfind('%') {
                    Some(p) => 898 + p,
                    None => 900,
                };
                text.truncate(cut);
            }
            let _ = server.send(
                &PmiLine::command_line("abort")
                    .with("exitcode", code)
                    .with("message", text),
            );
        }
    }
}

/// When `variable` says this process is one task of a Slurm job step of
/// several tasks (`SLURM_STEP_ID`, `SLURM_STEP_NUM_TASKS` or `SLURM_NTASKS`
/// above 1), which gave it no PMI connection: the error to show. A batch
/// script (no `SLURM_STEP_ID`) or a one-task step still runs as a singleton.
fn srun_without_pmi(variable: impl Fn(&str) -> Option<String>) -> Option<String> {
    let step = variable("SLURM_STEP_ID")?;
    let tasks: i64 = variable("SLURM_STEP_NUM_TASKS")
        .or_else(|| variable("SLURM_NTASKS"))?
        .trim()
        .parse()
        .ok()?;
    if tasks <= 1 {
        return None;
    }
    let task = variable("SLURM_PROCID").unwrap_or_else(|| "?".into());
    Some(format!(
        "this is task {task} of {tasks} in Slurm job step {step}, but Slurm gave it no PMI \
         connection (neither PMI_FD nor PMI_PORT is set), so each task would run alone as a \
         one-rank job; launch with `srun --mpi=pmi2` (`srun --mpi=list` shows the plugins) \
         or set MpiDefault=pmi2 in slurm.conf"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// A one-client PMI server speaking the `PMI_PORT` dialect, in a thread.
    fn serve_one(listener: TcpListener) -> std::thread::JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut seen = Vec::new();
            let mut store = HashMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    return seen;
                }
                let request = PmiLine::parse(line.as_bytes()).unwrap();
                seen.push(request.command().to_string());
                let reply = match request.command() {
                    "initack" => {
                        "cmd=initack\ncmd=set size=3\ncmd=set rank=2\ncmd=set debug=0\n".to_string()
                    }
                    "init" => "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n".into(),
                    "get_my_kvsname" => "cmd=my_kvsname kvsname=kvs_test rc=0\n".into(),
                    "put" => {
                        store.insert(
                            request.get("key").unwrap().to_string(),
                            request.get("value").unwrap().to_string(),
                        );
                        "cmd=put_result rc=0 msg=success\n".into()
                    }
                    "barrier_in" => "cmd=barrier_out\n".into(),
                    "get" => match store.get(request.get("key").unwrap()) {
                        Some(v) => format!("cmd=get_result rc=0 msg=success value={v}\n"),
                        None => "cmd=get_result rc=-1 msg=key_not_found\n".into(),
                    },
                    "finalize" => "cmd=finalize_ack\n".into(),
                    other => panic!("unexpected {other}"),
                };
                writer.write_all(reply.as_bytes()).unwrap();
            }
        })
    }

    #[test]
    fn pmi_port_dialect_works_end_to_end() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = serve_one(listener);
        let stream = TcpStream::connect(address).unwrap();
        let mut b = Bootstrap::over_port(stream, 2).unwrap();
        assert_eq!((b.rank(), b.size()), (2, 3));
        b.put("card", "00ff").unwrap();
        b.fence().unwrap();
        assert_eq!(b.get("card").unwrap(), "00ff");
        assert!(matches!(b.get("missing"), Err(Error::Bootstrap(_))));
        b.finalize().unwrap();
        drop(b);
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                "initack",
                "init",
                "get_my_kvsname",
                "put",
                "barrier_in",
                "get",
                "get",
                "finalize"
            ]
        );
    }

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn srun_task_without_pmi_is_an_error_that_names_the_fix() {
        let srun_none = [
            ("SLURM_STEP_ID", "0"),
            ("SLURM_STEP_NUM_TASKS", "4"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_PROCID", "2"),
        ];
        let advice = srun_without_pmi(lookup(&srun_none)).expect("an error");
        assert!(advice.contains("task 2 of 4"), "{advice}");
        assert!(advice.contains("srun --mpi=pmi2"), "{advice}");
        // A batch script has SLURM_PROCID and SLURM_NTASKS but no step.
        let batch = [("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0")];
        assert_eq!(srun_without_pmi(lookup(&batch)), None);
        let one_task_step = [
            ("SLURM_STEP_ID", "1"),
            ("SLURM_STEP_NUM_TASKS", "1"),
            ("SLURM_NTASKS", "4"),
        ];
        assert_eq!(srun_without_pmi(lookup(&one_task_step)), None);
        assert_eq!(srun_without_pmi(lookup(&[])), None);
    }

    #[test]
    fn singleton_without_environment() {
        let mut b = Bootstrap {
            rank: 0,
            size: 1,
            kvsname: "singleton".into(),
            server: None,
            singleton_store: HashMap::new(),
        };
        b.put("k", "v").unwrap();
        b.fence().unwrap();
        assert_eq!(b.get("k").unwrap(), "v");
        b.finalize().unwrap();
    }
}
