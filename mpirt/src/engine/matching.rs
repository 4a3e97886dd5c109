//! Matching of incoming messages against posted receives (MPI 4.1 §3.5).
//!
//! Two queues per engine, both searched front to back so that receives match
//! in posting order and messages from one sender in arrival order (the
//! non-overtaking rule): `posted_receives`, receives still waiting for a
//! message, and `unexpected_messages`, messages (or rendezvous requests) that
//! arrived before any receive wanted them. A message is never in both.

use std::collections::VecDeque;

use super::RequestId;

/// What a receive or probe accepts. `None` is a wildcard
/// (`ANY_SOURCE`/`ANY_TAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Communicator context id.
    pub context: u32,
    /// Source rank (world numbering), or any.
    pub source: Option<i32>,
    /// Tag, or any.
    pub tag: Option<i32>,
}

impl Envelope {
    /// Whether a message from `source` with `tag` on `context` fits.
    pub fn accepts(&self, context: u32, source: i32, tag: i32) -> bool {
        self.context == context
            && self.source.is_none_or(|s| s == source)
            && self.tag.is_none_or(|t| t == tag)
    }
}

/// The body of a message nobody asked for yet.
#[derive(Debug)]
pub enum UnexpectedBody {
    /// The whole message, copied out of the transport.
    Eager {
        /// Payload bytes.
        data: Vec<u8>,
        /// The sender's request to acknowledge on match (synchronous mode).
        sync_request: Option<u64>,
    },
    /// Only the announcement; the data stays with the sender until a
    /// receive matches and answers with clear-to-send.
    Rendezvous {
        /// The sender's request id.
        sender_request: u64,
    },
}

/// A message waiting for a receive.
#[derive(Debug)]
pub struct UnexpectedMessage {
    /// Communicator context id.
    pub context: u32,
    /// Sending rank (world numbering).
    pub source: i32,
    /// Tag.
    pub tag: i32,
    /// Message length in bytes.
    pub length: usize,
    /// Where the bytes are.
    pub body: UnexpectedBody,
}

impl UnexpectedMessage {
    /// Bytes of the remote buffer this entry occupies: an eager message's
    /// payload plus a header, as credits count it. A rendezvous announcement
    /// occupies none (it is bounded by the sender's open requests instead).
    pub fn held_bytes(&self) -> usize {
        match &self.body {
            UnexpectedBody::Eager { data, .. } => data.len() + crate::wire::HEADER_LEN,
            UnexpectedBody::Rendezvous { .. } => 0,
        }
    }
}

/// The two matching queues.
#[derive(Debug, Default)]
pub struct Matcher {
    /// Receives waiting for a message, in posting order.
    posted_receives: VecDeque<(Envelope, RequestId)>,
    /// Messages waiting for a receive, in arrival order.
    unexpected_messages: VecDeque<UnexpectedMessage>,
}

impl Matcher {
    /// Takes the first posted receive that accepts this message.
    pub fn take_posted(&mut self, context: u32, source: i32, tag: i32) -> Option<RequestId> {
        // Most often the oldest receive takes the message.
        if let Some((env, _)) = self.posted_receives.front() {
            if env.accepts(context, source, tag) {
                return self.posted_receives.pop_front().map(|(_, id)| id);
            }
        }
        let index = self
            .posted_receives
            .iter()
            .position(|(env, _)| env.accepts(context, source, tag))?;
        self.posted_receives.remove(index).map(|(_, id)| id)
    }

    /// Queues a receive that found nothing unexpected.
    pub fn post(&mut self, envelope: Envelope, id: RequestId) {
        self.posted_receives.push_back((envelope, id));
    }

    /// Removes a posted receive (cancel). Returns whether it was still there.
    pub fn unpost(&mut self, id: RequestId) -> bool {
        let before = self.posted_receives.len();
        self.posted_receives.retain(|(_, r)| *r != id);
        before != self.posted_receives.len()
    }

    /// The first unexpected message an envelope accepts, left in place.
    pub fn peek_unexpected(&self, envelope: &Envelope) -> Option<&UnexpectedMessage> {
        self.unexpected_messages
            .iter()
            .find(|m| envelope.accepts(m.context, m.source, m.tag))
    }

    /// Takes the first unexpected message an envelope accepts.
    pub fn take_unexpected(&mut self, envelope: &Envelope) -> Option<UnexpectedMessage> {
        if self.unexpected_messages.is_empty() {
            return None;
        }
        let index = self
            .unexpected_messages
            .iter()
            .position(|m| envelope.accepts(m.context, m.source, m.tag))?;
        self.unexpected_messages.remove(index)
    }

    /// Stores a message that no posted receive accepted.
    pub fn push_unexpected(&mut self, message: UnexpectedMessage) {
        self.unexpected_messages.push_back(message);
    }

    /// Posted receives that name `source` explicitly (for failing them when
    /// the peer is lost).
    pub fn take_posted_from(&mut self, source: i32) -> Vec<RequestId> {
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .posted_receives
            .drain(..)
            .partition(|(env, _)| env.source == Some(source));
        self.posted_receives = kept.into();
        gone.into_iter().map(|(_, id)| id).collect()
    }

    /// Number of posted receives.
    pub fn posted_len(&self) -> usize {
        self.posted_receives.len()
    }

    /// Number of unexpected messages.
    pub fn unexpected_len(&self) -> usize {
        self.unexpected_messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eager(source: i32, tag: i32, byte: u8) -> UnexpectedMessage {
        UnexpectedMessage {
            context: 0,
            source,
            tag,
            length: 1,
            body: UnexpectedBody::Eager {
                data: vec![byte],
                sync_request: None,
            },
        }
    }

    #[test]
    fn posted_receives_match_in_posting_order() {
        let mut m = Matcher::default();
        let any = Envelope {
            context: 0,
            source: None,
            tag: None,
        };
        m.post(
            Envelope {
                context: 0,
                source: Some(1),
                tag: Some(5),
            },
            10,
        );
        m.post(any, 11);
        m.post(any, 12);
        assert_eq!(m.take_posted(0, 2, 5), Some(11));
        assert_eq!(m.take_posted(0, 1, 5), Some(10));
        assert_eq!(m.take_posted(0, 1, 5), Some(12));
        assert_eq!(m.take_posted(0, 1, 5), None);
    }

    #[test]
    fn contexts_never_cross() {
        let mut m = Matcher::default();
        m.post(
            Envelope {
                context: 1,
                source: None,
                tag: None,
            },
            1,
        );
        assert_eq!(m.take_posted(0, 0, 0), None);
        assert_eq!(m.take_posted(1, 0, 0), Some(1));
    }

    #[test]
    fn unexpected_messages_match_in_arrival_order_per_envelope() {
        let mut m = Matcher::default();
        m.push_unexpected(eager(1, 7, b'a'));
        m.push_unexpected(eager(2, 8, b'b'));
        m.push_unexpected(eager(1, 8, b'c'));
        let from1 = Envelope {
            context: 0,
            source: Some(1),
            tag: None,
        };
        let tag8 = Envelope {
            context: 0,
            source: None,
            tag: Some(8),
        };
        assert_eq!(m.peek_unexpected(&tag8).unwrap().source, 2);
        assert_eq!(m.take_unexpected(&tag8).unwrap().source, 2);
        assert_eq!(m.take_unexpected(&from1).unwrap().tag, 7);
        assert_eq!(m.take_unexpected(&from1).unwrap().tag, 8);
        assert!(m.take_unexpected(&from1).is_none());
    }

    #[test]
    fn cancel_and_peer_loss_remove_posted_receives() {
        let mut m = Matcher::default();
        m.post(
            Envelope {
                context: 0,
                source: Some(3),
                tag: None,
            },
            1,
        );
        m.post(
            Envelope {
                context: 0,
                source: None,
                tag: None,
            },
            2,
        );
        m.post(
            Envelope {
                context: 0,
                source: Some(4),
                tag: None,
            },
            3,
        );
        assert!(m.unpost(3));
        assert!(!m.unpost(3));
        assert_eq!(m.take_posted_from(3), vec![1]);
        assert_eq!(m.posted_len(), 1);
    }
}
