//! Transports: each moves framed bytes between this rank and one peer.
//!
//! The set is closed and dispatched by `enum` ([`Link`]), as
//! crossbeam-channel dispatches its flavors: `Loopback` (this rank), `Shm`
//! (a peer on this host, [`shm`]), `Tcp` (any peer, [`tcp`]). The progress
//! layer, the only caller, pumps each link with [`Link::exchange`]: a
//! `flush`, a `receive`, and a `flush` of the answers reading queued. Every
//! transport obeys one contract for these two steps:
//! - `flush`: write frames taken from [`Engine::poll_transmit`] for this
//!   peer, in order, until the link would block; call
//!   [`Engine::handle_transmitted`] for each frame once the peer no longer
//!   needs the frame's memory: when it is written whole (TCP, eager frames
//!   in a ring), or when the peer has copied it (shared memory's single
//!   copy of a `Data` frame, acknowledged by a link record of its own). A
//!   frame partly written, or that did not fit, stays with the link and is
//!   finished first next time.
//! - `receive`: read what has arrived and hand each frame to the engine in
//!   arrival order (`handle_frame`, or `data_destination` +
//!   `handle_data_done` for rendezvous data, copied straight into the posted
//!   buffer), until nothing more has arrived. A link may finish a `Data`
//!   frame's payload after later frames of the same peer (shared memory
//!   streams it in chunks among them); the engine takes that since the data
//!   belongs to a receive that has already matched.
//! - Both return whether anything moved, where the link can tell (shared
//!   memory does; TCP reports readiness through the poller and says no).
//! - Neither ever blocks, and reading never waits for room to write (else
//!   two ranks flooding each other could deadlock). A broken link or a peer
//!   that breaks the protocol is reported as [`LinkError`]; the progress
//!   layer then tells the engine the peer is lost. A link never panics on
//!   what a peer sends.
//! - Waking: a link whose peer may sleep wakes it after writing (shared
//!   memory rings the peer's doorbell; TCP relies on socket readiness).
//! - One shortcut: a small standard send to a shared-memory peer may be
//!   written at once, past `poll_transmit` (`State::send_now`), but only
//!   when neither the link nor the engine holds anything for that peer, so
//!   frames still leave in order.
//!
//! [`Engine::poll_transmit`]: crate::engine::Engine::poll_transmit
//! [`Engine::handle_transmitted`]: crate::engine::Engine::handle_transmitted

pub mod shm;
pub mod tcp;

use crate::engine::Engine;

/// Why a link stopped.
#[derive(Debug)]
pub enum LinkError {
    /// The peer closed after saying `Fin`: a normal end.
    Finished,
    /// The connection broke or the peer broke the protocol.
    Lost(String),
}

/// The way to one peer.
pub enum Link {
    /// Not connected yet; frames wait in the engine.
    Pending,
    /// This rank itself: frames go straight back into the engine.
    Loopback,
    /// Shared memory with a peer on this host.
    Shm(Box<shm::ShmLink>),
    /// A TCP connection.
    Tcp(Box<tcp::TcpConnection>),
    /// Closed (finished or lost).
    Closed,
}

impl Link {
    /// One pump of the link (see the module doc): writes what the engine
    /// has for `peer`, reads what arrived, and writes the answers reading
    /// queued (clear-to-send, acknowledgements). Returns whether anything
    /// moved, where the link can tell. Inlined into the pump, so that a link
    /// with nothing to do (this rank's own, one not connected) costs no
    /// call.
    #[inline]
    pub fn exchange(&mut self, peer: i32, engine: &mut Engine) -> Result<bool, LinkError> {
        match self {
            Link::Shm(s) => s.exchange(peer, engine),
            // Frames to self are answered inside the same loop.
            Link::Loopback => Ok(engine.has_transmit(peer) && loopback(peer, engine)),
            Link::Tcp(c) => {
                c.flush(peer, engine)?;
                c.receive(peer, engine)?;
                c.flush(peer, engine)?;
                Ok(false)
            }
            Link::Pending | Link::Closed => Ok(false),
        }
    }
}

/// Frames to self: each is handed back to the engine as if it had arrived.
/// Returns whether there were any.
fn loopback(me: i32, engine: &mut Engine) -> bool {
    let mut moved = false;
    while let Some(t) = engine.poll_transmit(me) {
        moved = true;
        let header = t.header;
        let delivered = if header.kind == crate::wire::FrameKind::Data {
            engine.data_destination(me, &header).map(|dest| {
                let bytes = t.payload.bytes();
                // SAFETY: `dest` is a posted receive's buffer of `dest.len`
                // bytes, `bytes` a live send buffer of the same length (the
                // engine checked both against the clear-to-send); a receive
                // buffer and a send buffer never overlap (Rust's borrows).
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dest.ptr, dest.len) };
                engine.handle_data_done(&header);
            })
        } else {
            engine.handle_frame(me, &header, t.payload.bytes())
        };
        // Our own frames cannot break the protocol; if they do, it is a bug.
        debug_assert!(delivered.is_ok(), "loopback frame refused: {delivered:?}");
        engine.handle_transmitted(me, &header);
    }
    moved
}
