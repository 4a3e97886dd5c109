//! TCP: one connection per pair of ranks, non-blocking, framed as `wire`
//! says.
//!
//! Connections are made by a fixed rule, so two ranks never race to open two:
//! the higher rank connects to the lower. The connecting rank writes the
//! [`Handshake`] first; the accepting rank reads exactly that many bytes and
//! admits the connection only if the token is the job's and the rank is one
//! it still expects. Anything else — random bytes, a wrong token, a rank it
//! already has, a stranger that stalls — is closed and logged, and the rank
//! carries on.
//!
//! Payload moves without staging copies: rendezvous data is written from the
//! sender's buffer and read into the posted receive buffer.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};

use super::LinkError;
use crate::engine::{Engine, Transmit, UserBuffer};
use crate::wire::handshake::{Handshake, Token, HANDSHAKE_LEN};
use crate::wire::{FrameKind, Header, HEADER_LEN};

/// A stranger gets this long to present its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many strangers wait at once; a newcomer beyond that
/// evicts the oldest.
pub const MAX_PENDING: usize = 64;

/// Socket buffers asked for by default (`MPIRT_TCP_BUFFER` overrides; 0
/// leaves them to the kernel): a 1 MiB message then goes in one write and
/// one read, not in rounds of waiting for the kernel's autotuned buffers
/// to grow.
const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// The most bytes handed to one `write`. The kernel pushes a segment train
/// to the peer at the end of each write, so a payload written in pieces
/// reaches the reader while the rest is still being copied in: a 1 MiB
/// loopback ping-pong takes about 135 us in 256 KiB writes against 160 us
/// in one (and 4 MiB 590 against 650).
const WRITE_CHUNK: usize = 256 << 10;

/// Sets the socket options every connection uses.
pub fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (send, receive) = socket_buffers();
    let socket = socket2::SockRef::from(stream);
    if let Some(bytes) = send {
        let _ = socket.set_send_buffer_size(bytes);
    }
    if let Some(bytes) = receive {
        let _ = socket.set_recv_buffer_size(bytes);
    }
    Ok(())
}

/// The send and receive buffer sizes to set, if any; worked out once per
/// process. The kernel clamps a fixed size to `net.core.{w,r}mem_max`
/// (often 208 KiB), below what its autotuning reaches: then autotuning
/// stays.
fn socket_buffers() -> (Option<usize>, Option<usize>) {
    static BUFFERS: std::sync::OnceLock<(Option<usize>, Option<usize>)> =
        std::sync::OnceLock::new();
    *BUFFERS.get_or_init(|| {
        let wanted = std::env::var("MPIRT_TCP_BUFFER")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_SOCKET_BUFFER);
        let allowed = |limit: &str| {
            let max: usize = std::fs::read_to_string(format!("/proc/sys/net/core/{limit}"))
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0);
            (wanted > 0 && wanted <= max).then_some(wanted)
        };
        (allowed("wmem_max"), allowed("rmem_max"))
    })
}

/// Binds the listening socket on `address` (port 0: any free port), with
/// the longest accept queue the kernel allows (`somaxconn`): ranks of a
/// large job all connect at start-up, while strangers may be knocking.
pub fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    // The kernel clamps the backlog to net.core.somaxconn.
    socket.listen(i32::MAX)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// An accepted connection whose handshake has not arrived whole.
pub struct Stranger {
    /// The socket.
    pub stream: TcpStream,
    /// Where it came from, for the log.
    pub address: SocketAddr,
    since: Instant,
    bytes: [u8; HANDSHAKE_LEN],
    filled: usize,
}

/// What became of a stranger's handshake.
pub enum Admission {
    /// Not all bytes yet.
    Waiting,
    /// A valid handshake from this rank.
    Admitted(i32),
    /// Refused, with the reason for the log.
    Refused(String),
}

impl Stranger {
    /// A connection just accepted.
    pub fn new(stream: TcpStream, address: SocketAddr) -> Stranger {
        Stranger {
            stream,
            address,
            since: Instant::now(),
            bytes: [0; HANDSHAKE_LEN],
            filled: 0,
        }
    }

    /// Whether it has had its time.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) > HANDSHAKE_TIMEOUT
    }

    /// Reads handshake bytes (never more) and checks them when complete.
    pub fn read_handshake(&mut self, token: &Token, size: i32) -> Admission {
        while self.filled < HANDSHAKE_LEN {
            match self.stream.read(&mut self.bytes[self.filled..]) {
                Ok(0) => return Admission::Refused("closed before its handshake".into()),
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Admission::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Admission::Refused(e.to_string()),
            }
        }
        match Handshake::verify(&self.bytes, token, size) {
            Ok(h) => Admission::Admitted(h.rank),
            Err(e) => Admission::Refused(e.to_string()),
        }
    }
}

/// A frame being written: its encoded header and how far we got.
struct Outgoing {
    transmit: Transmit,
    header: [u8; HEADER_LEN],
    written: usize,
}

/// What the reader is in the middle of.
enum Reading {
    /// Frames, parsed from `buffer`.
    Frames,
    /// The payload of a `Data` frame, read straight into a posted receive.
    Data {
        header: Header,
        destination: UserBuffer,
        filled: usize,
    },
}

/// One established connection to a peer.
pub struct TcpConnection {
    stream: TcpStream,
    outgoing: Option<Outgoing>,
    /// Whether the socket may take more bytes (cleared on `WouldBlock`, set
    /// by a writable event).
    pub writable: bool,
    /// Whether the socket may have bytes to read (cleared on `WouldBlock`,
    /// set by a readable event).
    pub readable: bool,
    /// The peer has closed its side (set by an event): its last bytes and
    /// the end of the stream came with one edge, so a short read must not
    /// stop reading before the end-of-stream is seen.
    pub read_closed: bool,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    reading: Reading,
    /// Largest eager payload accepted (the remote buffer: credits bound
    /// what an honest sender can have outstanding).
    max_eager: u64,
}

impl TcpConnection {
    /// An established connection (handshake done).
    pub fn new(stream: TcpStream, max_eager: usize) -> TcpConnection {
        TcpConnection {
            stream,
            outgoing: None,
            writable: true,
            readable: true,
            read_closed: false,
            buffer: vec![0; 64 * 1024 + HEADER_LEN],
            start: 0,
            end: 0,
            reading: Reading::Frames,
            max_eager: max_eager as u64,
        }
    }

    /// The socket, for registering with the poller.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes frames for `peer` until done or the socket is full.
    pub fn flush(&mut self, peer: i32, engine: &mut Engine) -> Result<(), LinkError> {
        while self.writable {
            if self.outgoing.is_none() {
                let Some(transmit) = engine.poll_transmit(peer) else {
                    return Ok(());
                };
                let header = transmit.header.to_bytes();
                self.outgoing = Some(Outgoing {
                    transmit,
                    header,
                    written: 0,
                });
            }
            let Some(out) = &mut self.outgoing else {
                return Ok(());
            };
            let payload = out.transmit.payload.bytes();
            let total = HEADER_LEN + payload.len();
            let result = if out.written < HEADER_LEN {
                let parts = [
                    IoSlice::new(&out.header[out.written..]),
                    IoSlice::new(&payload[..payload.len().min(WRITE_CHUNK)]),
                ];
                self.stream.write_vectored(&parts)
            } else {
                let rest = &payload[out.written - HEADER_LEN..];
                self.stream.write(&rest[..rest.len().min(WRITE_CHUNK)])
            };
            match result {
                Ok(n) => {
                    out.written += n;
                    if out.written == total {
                        let header = out.transmit.header;
                        self.outgoing = None;
                        engine.handle_transmitted(peer, &header);
                    }
                }
                Err(e) => self.write_failed(e)?,
            }
        }
        Ok(())
    }

    fn write_failed(&mut self, e: io::Error) -> Result<(), LinkError> {
        match e.kind() {
            io::ErrorKind::WouldBlock => {
                self.writable = false;
                Ok(())
            }
            io::ErrorKind::Interrupted => Ok(()),
            _ => Err(LinkError::Lost(format!("write failed: {e}"))),
        }
    }

    /// Reads and dispatches frames from `peer` until the socket is empty.
    pub fn receive(&mut self, peer: i32, engine: &mut Engine) -> Result<(), LinkError> {
        loop {
            self.dispatch(peer, engine)?;
            if !self.readable {
                return Ok(());
            }
            let (read, wanted) = match &mut self.reading {
                Reading::Data {
                    destination,
                    filled,
                    ..
                } => {
                    // SAFETY: `destination` is the posted receive's buffer,
                    // valid and unaliased until `handle_data_done`.
                    let rest = unsafe {
                        std::slice::from_raw_parts_mut(
                            destination.ptr.add(*filled),
                            destination.len - *filled,
                        )
                    };
                    let wanted = rest.len();
                    (self.stream.read(rest).inspect(|&n| *filled += n), wanted)
                }
                Reading::Frames => {
                    if self.start > 0 && self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                    if self.end == self.buffer.len() {
                        self.buffer.copy_within(self.start..self.end, 0);
                        self.end -= self.start;
                        self.start = 0;
                    }
                    let wanted = self.buffer.len() - self.end;
                    let read = self.stream.read(&mut self.buffer[self.end..]);
                    (read.inspect(|&n| self.end += n), wanted)
                }
            };
            match read {
                Ok(0) if !self.at_rest() => {
                    return Err(LinkError::Lost(
                        "connection closed in the middle of a frame".into(),
                    ))
                }
                Ok(0) if engine.peer_finished(peer) => return Err(LinkError::Finished),
                Ok(0) => return Err(LinkError::Lost("connection closed without Fin".into())),
                // A short read of frames drained the socket: edge-triggered
                // epoll reports any byte that arrives later, so reading again
                // now would only return EAGAIN (unless the peer has closed:
                // then no edge will come, and the end must be read now). A large payload keeps
                // streaming in while we copy, so it is read until EAGAIN.
                Ok(n)
                    if n < wanted
                        && matches!(self.reading, Reading::Frames)
                        && !self.read_closed =>
                {
                    self.readable = false
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Lost(format!("read failed: {e}"))),
            }
        }
    }

    fn at_rest(&self) -> bool {
        matches!(self.reading, Reading::Frames) && self.start == self.end
    }

    /// Hands every complete frame in the buffer to the engine; starts a data
    /// payload read when a `Data` header arrives.
    fn dispatch(&mut self, peer: i32, engine: &mut Engine) -> Result<(), LinkError> {
        let lost = |e: crate::Error| LinkError::Lost(e.to_string());
        loop {
            if let Reading::Data {
                header,
                destination,
                filled,
            } = &mut self.reading
            {
                // Bytes of the payload that came with earlier reads.
                let take = (destination.len - *filled).min(self.end - self.start);
                // SAFETY: as in `receive`; the source is our own buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.buffer[self.start..].as_ptr(),
                        destination.ptr.add(*filled),
                        take,
                    )
                };
                *filled += take;
                self.start += take;
                if *filled < destination.len {
                    return Ok(());
                }
                engine.handle_data_done(header);
                self.reading = Reading::Frames;
            }
            let available = &self.buffer[self.start..self.end];
            let header = match Header::decode(available, self.max_eager) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) => return Err(LinkError::Lost(format!("corrupt frame: {e}"))),
            };
            if header.kind == FrameKind::Data {
                let destination = engine.data_destination(peer, &header).map_err(lost)?;
                self.start += HEADER_LEN;
                self.reading = Reading::Data {
                    header,
                    destination,
                    filled: 0,
                };
                continue;
            }
            let frame_len = HEADER_LEN + header.payload_len() as usize;
            if available.len() < frame_len {
                if frame_len > self.buffer.len() {
                    // A large eager frame (bounded by max_eager): grow once.
                    self.buffer.resize(frame_len, 0);
                }
                return Ok(());
            }
            let payload = &self.buffer[self.start + HEADER_LEN..self.start + frame_len];
            engine.handle_frame(peer, &header, payload).map_err(lost)?;
            self.start += frame_len;
        }
    }
}
