//! Transports: each moves framed bytes between this rank and one peer.
//!
//! The set is closed and dispatched by `enum` ([`Link`]), as
//! crossbeam-channel dispatches its flavors. Every link obeys one contract
//! with the progress layer, which is the only caller:
//! - `flush`: write frames taken from [`Engine::poll_transmit`] for this
//!   peer, in order, until the link would block; call
//!   [`Engine::handle_transmitted`] for each frame written whole. A frame
//!   partly written stays with the link and is finished first next time.
//! - `receive`: read what has arrived and hand each frame to the engine in
//!   arrival order (`handle_frame`, or `data_destination` +
//!   `handle_data_done` for rendezvous data, read straight into the posted
//!   buffer), until the link would block.
//! - Neither ever blocks. A broken link or a peer that breaks the protocol is
//!   reported as [`LinkError`]; the progress layer then tells the engine the
//!   peer is lost. A link never panics on what a peer sends.
//!
//! [`Engine::poll_transmit`]: crate::engine::Engine::poll_transmit
//! [`Engine::handle_transmitted`]: crate::engine::Engine::handle_transmitted

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
    /// A TCP connection.
    Tcp(Box<tcp::TcpConnection>),
    /// Closed (finished or lost).
    Closed,
}

impl Link {
    /// Writes what the engine has for `peer` (see the module doc).
    pub fn flush(&mut self, peer: i32, engine: &mut Engine) -> Result<(), LinkError> {
        match self {
            Link::Loopback => {
                loopback(peer, engine);
                Ok(())
            }
            Link::Tcp(c) => c.flush(peer, engine),
            Link::Pending | Link::Closed => Ok(()),
        }
    }

    /// Reads what arrived from `peer` (see the module doc).
    pub fn receive(&mut self, peer: i32, engine: &mut Engine) -> Result<(), LinkError> {
        match self {
            Link::Tcp(c) => c.receive(peer, engine),
            Link::Loopback | Link::Pending | Link::Closed => Ok(()),
        }
    }
}

/// Frames to self: each is handed back to the engine as if it had arrived.
fn loopback(me: i32, engine: &mut Engine) {
    while let Some(t) = engine.poll_transmit(me) {
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
}
