//! The handshake that opens every connection between two ranks: the
//! connecting rank proves it belongs to the job by presenting the job's
//! random token, and says which rank it is.
//!
//! ```text
//! offset size field
//!      0    8 magic   b"MPIRT\0\x01\0" (protocol version 1)
//!      8   16 token   random per-job token, published through PMI
//!     24    4 rank    connecting rank (little-endian)
//!     28    4 size    job size the connecting rank believes in
//! ```

/// Bytes in an encoded handshake.
pub const HANDSHAKE_LEN: usize = 32;
const MAGIC: [u8; 8] = *b"MPIRT\0\x01\0";

/// Bytes of the per-job token.
pub const TOKEN_LEN: usize = 16;

/// A per-job secret.
pub type Token = [u8; TOKEN_LEN];

/// The first bytes on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The job's token.
    pub token: Token,
    /// The connecting rank.
    pub rank: i32,
    /// The job size as the connecting rank knows it.
    pub size: i32,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not an mpirt connection, or another protocol version.
    #[error("bad magic: not an mpirt peer of this version")]
    BadMagic,
    /// The token does not match this job's.
    #[error("wrong job token")]
    WrongToken,
    /// A rank outside the job, or the wrong job size.
    #[error("rank {rank} of size {size} does not fit this job (size {expected_size})")]
    BadRank {
        /// The claimed rank.
        rank: i32,
        /// The claimed size.
        size: i32,
        /// This job's size.
        expected_size: i32,
    },
}

impl Handshake {
    /// The bytes sent on the wire.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0; HANDSHAKE_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..24].copy_from_slice(&self.token);
        out[24..28].copy_from_slice(&self.rank.to_le_bytes());
        out[28..32].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// Checks a received handshake against this job. Compares the token in
    /// constant time so a stranger cannot learn it byte by byte.
    pub fn verify(
        bytes: &[u8; HANDSHAKE_LEN],
        token: &Token,
        size: i32,
    ) -> Result<Handshake, HandshakeError> {
        if bytes[..8] != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let difference = bytes[8..24]
            .iter()
            .zip(token)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(HandshakeError::WrongToken);
        }
        let rank = i32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        let claimed_size = i32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
        if claimed_size != size || !(0..size).contains(&rank) {
            return Err(HandshakeError::BadRank {
                rank,
                size: claimed_size,
                expected_size: size,
            });
        }
        let mut t = [0; TOKEN_LEN];
        t.copy_from_slice(&bytes[8..24]);
        Ok(Handshake {
            token: t,
            rank,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: Token = [7; TOKEN_LEN];

    #[test]
    fn good_handshake_verifies() {
        let h = Handshake {
            token: TOKEN,
            rank: 2,
            size: 4,
        };
        assert_eq!(Handshake::verify(&h.encode(), &TOKEN, 4), Ok(h));
    }

    #[test]
    fn strangers_are_refused() {
        let h = Handshake {
            token: TOKEN,
            rank: 2,
            size: 4,
        };
        let mut wrong_token = h.encode();
        wrong_token[10] ^= 1;
        assert_eq!(
            Handshake::verify(&wrong_token, &TOKEN, 4),
            Err(HandshakeError::WrongToken)
        );
        let mut bad_magic = h.encode();
        bad_magic[0] = b'X';
        assert_eq!(
            Handshake::verify(&bad_magic, &TOKEN, 4),
            Err(HandshakeError::BadMagic)
        );
        let out_of_range = Handshake {
            token: TOKEN,
            rank: 4,
            size: 4,
        };
        assert!(matches!(
            Handshake::verify(&out_of_range.encode(), &TOKEN, 4),
            Err(HandshakeError::BadRank { .. })
        ));
        let negative = Handshake {
            token: TOKEN,
            rank: -1,
            size: 4,
        };
        assert!(Handshake::verify(&negative.encode(), &TOKEN, 4).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_pass(bytes in proptest::array::uniform32(any::<u8>())) {
            prop_assert!(Handshake::verify(&bytes, &TOKEN, 4).is_err() || bytes[8..24] == TOKEN);
        }
    }
}
