//! The error type of every `try_` operation, with MPI's error classes where
//! they exist (MPI 4.1 §9.4), and the error handlers that decide what the
//! operations without a `Result` do with one (MPI 4.1 §9.3).

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

/// What a communicator's operations do with an error they cannot return
/// (MPI_Comm_set_errhandler, MPI 4.1 §9.3.1). Set with
/// [`Communicator::set_error_handler`](crate::traits::Communicator::set_error_handler);
/// communicators made from one (duplicate, split) inherit its handler, as
/// MPI 4.1 §9.3 says.
///
/// The `try_` forms always return their error: choosing one is choosing
/// MPI_ERRORS_RETURN for that call. The handler decides for the rsmpi-shaped
/// forms, whose signatures have no room for an error, and for errors found
/// where no call can return them (a request dropped in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorHandler {
    /// MPI_ERRORS_ARE_FATAL, the default: print one line naming the rank,
    /// the operation, the peer or root, the tag, the sizes and the error,
    /// and end the whole job (exit code 1, or the launcher's report of the
    /// lost peer).
    #[default]
    Fatal,
    /// MPI_ERRORS_RETURN: the error goes back to the caller. The
    /// rsmpi-shaped forms return nothing, so they unwind instead (a panic
    /// whose payload is the same one-line message, as the C++ bindings'
    /// `ERRORS_THROW_EXCEPTIONS` throw): the calling thread can catch it
    /// with `std::panic::catch_unwind` and go on; uncaught, it ends the job
    /// as any panic in a rank does (code 101, the rank named).
    Return,
}

impl ErrorHandler {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ErrorHandler::Fatal => 0,
            ErrorHandler::Return => 1,
        }
    }

    pub(crate) fn from_u8(value: u8) -> ErrorHandler {
        match value {
            1 => ErrorHandler::Return,
            _ => ErrorHandler::Fatal,
        }
    }
}

/// Which operation failed, on what: the context of an error message.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// The API call, e.g. `"receive_into"`.
    pub name: &'a str,
    /// The peer, in the communicator's numbering, if any.
    pub peer: Option<i32>,
    /// The root of a rooted collective, in the communicator's numbering.
    pub root: Option<i32>,
    /// The tag, if any.
    pub tag: Option<i32>,
    /// Bytes involved, if known.
    pub bytes: Option<usize>,
}

impl<'a> Operation<'a> {
    /// An operation on no particular rank (a communicator constructor).
    pub fn named(name: &'a str) -> Self {
        Operation {
            name,
            peer: None,
            root: None,
            tag: None,
            bytes: None,
        }
    }

    /// A point-to-point operation with `peer` (or [`ANY_SOURCE`](crate::ANY_SOURCE)).
    pub fn point_to_point(name: &'a str, peer: i32, tag: i32, bytes: Option<usize>) -> Self {
        Operation {
            peer: Some(peer),
            tag: Some(tag),
            bytes,
            ..Operation::named(name)
        }
    }

    /// A collective operation, rooted at `root` if it has one.
    pub fn collective(name: &'a str, root: Option<i32>, bytes: usize) -> Self {
        Operation {
            root,
            bytes: Some(bytes),
            ..Operation::named(name)
        }
    }
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut details = Vec::new();
        match self.peer {
            Some(crate::ANY_SOURCE) => details.push("peer any".to_string()),
            Some(p) => details.push(format!("peer {p}")),
            None => {}
        }
        if let Some(r) = self.root {
            details.push(format!("root {r}"));
        }
        match self.tag {
            Some(crate::ANY_TAG) => details.push("tag any".to_string()),
            Some(t) => details.push(format!("tag {t}")),
            None => {}
        }
        if let Some(b) = self.bytes {
            details.push(format!("{b} bytes"));
        }
        f.write_str(self.name)?;
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_names_its_peer_tag_and_size_in_one_line() {
        let op = Operation::point_to_point("receive_into", 3, 7, Some(16));
        assert_eq!(op.to_string(), "receive_into (peer 3, tag 7, 16 bytes)");
        let any = Operation::point_to_point("probe", crate::ANY_SOURCE, crate::ANY_TAG, None);
        assert_eq!(any.to_string(), "probe (peer any, tag any)");
        let rooted = Operation::collective("broadcast_into", Some(2), 8);
        assert_eq!(rooted.to_string(), "broadcast_into (root 2, 8 bytes)");
        assert_eq!(Operation::named("duplicate").to_string(), "duplicate");
    }

    #[test]
    fn error_handlers_round_trip_through_their_stored_form() {
        for h in [ErrorHandler::Fatal, ErrorHandler::Return] {
            assert_eq!(ErrorHandler::from_u8(h.to_u8()), h);
        }
        assert_eq!(ErrorHandler::default(), ErrorHandler::Fatal);
    }
}
