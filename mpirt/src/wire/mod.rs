//! The wire format: one fixed little-endian frame header, and the handshake
//! that opens every connection. No I/O happens here.
//!
//! ```text
//! offset size field
//!      0    1 kind            FrameKind
//!      1    1 flags           FLAG_*
//!      2    2 reserved        must be zero
//!      4    4 context         communicator context id
//!      8    4 source          sending rank (world numbering)
//!     12    4 tag             user tag (i32)
//!     16    8 sequence        per-connection frame counter, checked on receipt
//!     24    8 length          message length in bytes (see FrameKind)
//!     32    8 sender_request  request id at the sender
//!     40    8 receiver_request request id at the receiver
//! ```
//! Only `Eager` and `Data` frames are followed by payload, of exactly
//! `payload_len()` bytes. Decoding a short buffer says "need more"; a corrupt
//! header is an error; neither allocates what a header claims.

pub mod handshake;

use std::fmt;

/// Bytes in an encoded [`Header`].
pub const HEADER_LEN: usize = 48;

/// Payload bytes are in big-endian order (the sender's memory order).
pub const FLAG_BIG_ENDIAN: u8 = 1;
/// An eager message sent by `synchronous_send`: the receiver acknowledges the
/// match with a `SyncAck`.
pub const FLAG_SYNC: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_BIG_ENDIAN | FLAG_SYNC;

/// What a frame means. The discriminants are the wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A whole message; `length` payload bytes follow.
    Eager = 1,
    /// Request to send a message of `length` bytes by rendezvous; no payload.
    RequestToSend = 2,
    /// The receiver matched `sender_request` and wants `length` bytes into
    /// `receiver_request`; no payload.
    ClearToSend = 3,
    /// Rendezvous payload for `receiver_request`; `length` bytes follow.
    Data = 4,
    /// The receive matching synchronous eager `sender_request` has started.
    SyncAck = 5,
    /// The receiver consumed `length` bytes of eager data: the sender may use
    /// them again.
    Credit = 6,
    /// The sender will send nothing more on this connection.
    Fin = 7,
}

impl FrameKind {
    fn from_wire(byte: u8) -> Option<FrameKind> {
        use FrameKind::*;
        [
            Eager,
            RequestToSend,
            ClearToSend,
            Data,
            SyncAck,
            Credit,
            Fin,
        ]
        .into_iter()
        .find(|k| *k as u8 == byte)
    }

    /// Whether `length` payload bytes follow the header.
    pub fn carries_payload(self) -> bool {
        matches!(self, FrameKind::Eager | FrameKind::Data)
    }
}

/// One frame header. See the module doc for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame means.
    pub kind: FrameKind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Communicator context id.
    pub context: u32,
    /// Sending rank in world numbering.
    pub source: i32,
    /// User tag.
    pub tag: i32,
    /// Per-connection frame counter.
    pub sequence: u64,
    /// Message length (or credit amount); see [`FrameKind`].
    pub length: u64,
    /// Request id at the sender.
    pub sender_request: u64,
    /// Request id at the receiver.
    pub receiver_request: u64,
}

/// Why a header could not be decoded. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The kind byte is not a [`FrameKind`].
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Flag bits or reserved bytes that this version never sets.
    #[error("unknown flags 0x{0:02x} or non-zero reserved bytes")]
    UnknownFlags(u8),
    /// A payload longer than the connection allows.
    #[error("frame claims {claimed} payload bytes, more than the {limit} allowed")]
    Oversized {
        /// What the header claimed.
        claimed: u64,
        /// What the receiver allows for this kind.
        limit: u64,
    },
    /// A frame whose source is not the rank that opened the connection.
    #[error(
        "frame claims to come from rank {claimed}, but the connection belongs to rank {actual}"
    )]
    WrongSource {
        /// What the header claimed.
        claimed: i32,
        /// The rank authenticated by the handshake.
        actual: i32,
    },
    /// A frame out of order.
    #[error("frame sequence {got}, expected {expected}")]
    Sequence {
        /// What the header carried.
        got: u64,
        /// What the receiver counted.
        expected: u64,
    },
}

impl Header {
    /// A header with every id field zero.
    pub fn new(kind: FrameKind, source: i32) -> Header {
        Header {
            kind,
            flags: 0,
            context: 0,
            source,
            tag: 0,
            sequence: 0,
            length: 0,
            sender_request: 0,
            receiver_request: 0,
        }
    }

    /// Payload bytes that follow this header on the wire.
    pub fn payload_len(&self) -> u64 {
        if self.kind.carries_payload() {
            self.length
        } else {
            0
        }
    }

    /// Writes the header into `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = self.kind as u8;
        out[1] = self.flags;
        out[2..4].copy_from_slice(&[0, 0]);
        out[4..8].copy_from_slice(&self.context.to_le_bytes());
        out[8..12].copy_from_slice(&self.source.to_le_bytes());
        out[12..16].copy_from_slice(&self.tag.to_le_bytes());
        out[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        out[24..32].copy_from_slice(&self.length.to_le_bytes());
        out[32..40].copy_from_slice(&self.sender_request.to_le_bytes());
        out[40..48].copy_from_slice(&self.receiver_request.to_le_bytes());
    }

    /// The encoded header as an array.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        self.encode(&mut out);
        out
    }

    /// Decodes a header from the front of `bytes`: `Ok(None)` when fewer than
    /// [`HEADER_LEN`] bytes are there yet. `max_payload` bounds what a
    /// payload-carrying frame may claim (the eager limit for `Eager`; callers
    /// check `Data` against the posted receive).
    pub fn decode(bytes: &[u8], max_payload: u64) -> Result<Option<Header>, WireError> {
        let Some(b) = bytes.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let kind = FrameKind::from_wire(b[0]).ok_or(WireError::UnknownKind(b[0]))?;
        let flags = b[1];
        if flags & !KNOWN_FLAGS != 0 || b[2] != 0 || b[3] != 0 {
            return Err(WireError::UnknownFlags(flags));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let header = Header {
            kind,
            flags,
            context: u32_at(4),
            source: u32_at(8) as i32,
            tag: u32_at(12) as i32,
            sequence: u64_at(16),
            length: u64_at(24),
            sender_request: u64_at(32),
            receiver_request: u64_at(40),
        };
        if kind == FrameKind::Eager && header.length > max_payload {
            return Err(WireError::Oversized {
                claimed: header.length,
                limit: max_payload,
            });
        }
        Ok(Some(header))
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} from rank {} (context {}, tag {}, {} bytes, seq {})",
            self.kind, self.source, self.context, self.tag, self.length, self.sequence
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Header {
        Header {
            kind: FrameKind::Eager,
            flags: FLAG_SYNC,
            context: 7,
            source: 3,
            tag: -5,
            sequence: 99,
            length: 12,
            sender_request: u64::MAX,
            receiver_request: 1,
        }
    }

    #[test]
    fn layout_is_fixed_little_endian() {
        let bytes = sample().to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], FLAG_SYNC);
        assert_eq!(&bytes[4..8], &[7, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &[3, 0, 0, 0]);
        assert_eq!(&bytes[12..16], &(-5i32).to_le_bytes());
        assert_eq!(&bytes[24..32], &[12, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Header::decode(&bytes, 100), Ok(Some(sample())));
    }

    #[test]
    fn short_input_needs_more() {
        let bytes = sample().to_bytes();
        for n in 0..HEADER_LEN {
            assert_eq!(Header::decode(&bytes[..n], 100), Ok(None));
        }
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let mut bytes = sample().to_bytes();
        bytes[0] = 0;
        assert_eq!(Header::decode(&bytes, 100), Err(WireError::UnknownKind(0)));
        let mut bytes = sample().to_bytes();
        bytes[1] = 0x80;
        assert!(matches!(
            Header::decode(&bytes, 100),
            Err(WireError::UnknownFlags(_))
        ));
        let mut bytes = sample().to_bytes();
        bytes[3] = 1;
        assert!(matches!(
            Header::decode(&bytes, 100),
            Err(WireError::UnknownFlags(_))
        ));
    }

    #[test]
    fn oversized_eager_frame_is_refused_without_allocating() {
        let mut h = sample();
        h.length = 1 << 63;
        assert_eq!(
            Header::decode(&h.to_bytes(), 65536),
            Err(WireError::Oversized {
                claimed: 1 << 63,
                limit: 65536
            })
        );
        // Control frames carry no payload whatever `length` says.
        h.kind = FrameKind::Credit;
        assert_eq!(
            Header::decode(&h.to_bytes(), 65536)
                .unwrap()
                .unwrap()
                .payload_len(),
            0
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(Some(h)) = Header::decode(&bytes, 1 << 20) {
                prop_assert_eq!(&h.to_bytes()[..], &bytes[..HEADER_LEN]);
            }
        }

        #[test]
        fn every_header_round_trips(kind in 1u8..=7, flags in 0u8..4, context: u32, source: i32, tag: i32,
                                    sequence: u64, length in 0u64..1000, s: u64, r: u64) {
            let h = Header { kind: FrameKind::from_wire(kind).unwrap(), flags, context, source, tag, sequence,
                             length, sender_request: s, receiver_request: r };
            prop_assert_eq!(Header::decode(&h.to_bytes(), 1000), Ok(Some(h)));
        }
    }
}
