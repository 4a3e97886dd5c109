//! The error type of every `try_` operation, with MPI's error classes where
//! they exist (MPI 4.1 §9.4).

use std::fmt;

/// An mpirt error. Each variant carries what a user needs to find the cause:
/// the ranks, tags and sizes involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// MPI_ERR_TRUNCATE: the message is longer than the receive buffer.
    #[error("message of {message_bytes} bytes from rank {sender} (tag {tag}) does not fit the receive buffer of {buffer_bytes} bytes")]
    Truncate {
        /// Sender, in the communicator's numbering.
        sender: i32,
        /// Tag of the message.
        tag: i32,
        /// Bytes sent.
        message_bytes: usize,
        /// Bytes the receive buffer holds.
        buffer_bytes: usize,
    },
    /// MPI_ERR_RANK: a rank outside the communicator.
    #[error("rank {rank} is not in a communicator of size {size}")]
    InvalidRank {
        /// The rank given.
        rank: i32,
        /// The communicator's size.
        size: i32,
    },
    /// MPI_ERR_TAG: a negative tag where a user tag is required, or above
    /// `TAG_UB`.
    #[error("tag {tag} is outside 0..={max}")]
    InvalidTag {
        /// The tag given.
        tag: i32,
        /// The largest valid tag.
        max: i32,
    },
    /// MPI_ERR_TYPE / MPI_ERR_COUNT: the message is not a whole number of
    /// elements of the receive type.
    #[error(
        "message of {message_bytes} bytes is not a whole number of {element_bytes}-byte elements"
    )]
    Datatype {
        /// Bytes received.
        message_bytes: usize,
        /// Size of one element of the receive type.
        element_bytes: usize,
    },
    /// The connection to a peer was lost (MPI_ERR_PROC_FAILED in MPI's fault
    /// tolerance proposals).
    #[error("lost rank {peer}: {reason}")]
    PeerLost {
        /// The peer, in world numbering.
        peer: i32,
        /// What happened.
        reason: String,
    },
    /// MPI_ERR_BUFFER: the attached buffer cannot hold the message.
    #[error("buffered send of {needed} bytes (with overhead) does not fit: {available} of {attached} attached bytes free")]
    BufferExhausted {
        /// Bytes the message needs, overhead included.
        needed: usize,
        /// Bytes free in the attached buffer.
        available: usize,
        /// Bytes attached in all.
        attached: usize,
    },
    /// A peer broke the protocol (a corrupt or unexpected frame).
    #[error("protocol error on the connection to rank {peer}: {detail}")]
    Protocol {
        /// The peer, in world numbering.
        peer: i32,
        /// What was wrong.
        detail: String,
    },
    /// A collective was called with arguments that cannot be right on some
    /// rank (mismatched lengths, a bad root, counts that do not fit).
    #[error("{0}")]
    Collective(String),
    /// The process manager could not be reached or answered wrongly.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// An operating-system call failed.
    #[error("{0}")]
    Io(String),
    /// A call after the universe was dropped.
    #[error("mpirt is finalized")]
    Finalized,
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// Which operation failed, on what: the context of a fatal error message.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// The API call, e.g. `"receive_into"`.
    pub name: &'a str,
    /// The peer or root, in the communicator's numbering, if any.
    pub peer: Option<i32>,
    /// The tag, if any.
    pub tag: Option<i32>,
    /// Bytes involved, if known.
    pub bytes: Option<usize>,
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(p) = self.peer {
            if p == crate::ANY_SOURCE {
                f.write_str(" from any rank")?;
            } else {
                write!(f, " with rank {p}")?;
            }
        }
        match self.tag {
            Some(crate::ANY_TAG) => f.write_str(", any tag")?,
            Some(t) => write!(f, ", tag {t}")?,
            None => {}
        }
        if let Some(b) = self.bytes {
            write!(f, ", {b} bytes")?;
        }
        Ok(())
    }
}
