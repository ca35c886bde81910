//! How a [`Message`] travels: its postcard bytes without its task.
//!
//! Every message is about one task, and the sealed frame that carries it already names that
//! task in its authenticated header (`qsync-wire`). Sending the task again inside the body
//! cost 32 bytes a message (three of the four messages of an edit) and left the driver a
//! check to make (a body naming another task than its frame). So the body leaves the task
//! out, and the receiver puts back the one its frame named: a message can only ever be about
//! the task of the frame it came in.

use std::fmt;

use qsync_base::{ContentHash, TaskId};
use serde::{Deserialize, Serialize};

use crate::fold::Fold;
use crate::io::Message;
use crate::state::Record;

/// A [`Message`] without its task. Generic over how records and paths are held, so one
/// shape serves both ways: borrowed to encode (no copy of the records), owned to decode.
/// postcard writes a slice and a `Vec`, a `&RelPath` and a `RelPath`, the same way.
#[derive(Serialize, Deserialize)]
enum Body<Rs, P, Cs, F> {
    Hello {
        after: u64,
        reply: bool,
    },
    Records {
        records: Rs,
        upto: u64,
    },
    Ack {
        upto: u64,
    },
    Request {
        path: P,
        hash: ContentHash,
        size: u64,
        base: Option<ContentHash>,
    },
    /// A request for the rest of a content from `offset`, with the checks of the bytes
    /// the asker has (added last, so that the other bodies are written as before; a
    /// request from 0 is still a `Request`).
    RequestFrom {
        path: P,
        hash: ContentHash,
        size: u64,
        offset: u64,
        checks: Cs,
    },
    /// (Added after the bodies above, which are written as before.)
    Fold {
        fold: F,
        upto: u64,
    },
    Unfold {
        first: u64,
        last: u64,
    },
    Unfolded {
        first: u64,
        last: u64,
        records: Rs,
    },
}

/// A message body that could not be written, or bytes (from a peer, so never trusted) that
/// are not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// postcard could not write the message (only when memory runs out).
    Encode(postcard::Error),
    /// The bytes are not a message: what postcard said.
    Decode(postcard::Error),
    /// A whole message, then more bytes.
    TrailingBytes,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Encode(e) => write!(f, "could not write a sync message: {e}"),
            BodyError::Decode(e) => write!(f, "not a sync message: {e}"),
            BodyError::TrailingBytes => write!(f, "bytes after a sync message"),
        }
    }
}

impl std::error::Error for BodyError {}

impl Message {
    /// The task this message is about.
    pub fn task(&self) -> TaskId {
        match self {
            Message::Hello { task, .. }
            | Message::Records { task, .. }
            | Message::Ack { task, .. }
            | Message::Request { task, .. }
            | Message::Fold { task, .. }
            | Message::Unfold { task, .. }
            | Message::Unfolded { task, .. } => *task,
        }
    }

    /// The bytes that carry this message to a peer, without its task: send them in a frame
    /// that names [`Message::task`].
    pub fn to_wire(&self) -> Result<Vec<u8>, BodyError> {
        let body: Body<&[Record], _, &[ContentHash], &Fold> = match self {
            Message::Hello { after, reply, .. } => Body::Hello {
                after: *after,
                reply: *reply,
            },
            Message::Records { records, upto, .. } => Body::Records {
                records: records.as_slice(),
                upto: *upto,
            },
            Message::Ack { upto, .. } => Body::Ack { upto: *upto },
            Message::Request {
                path,
                hash,
                size,
                base,
                offset: 0,
                ..
            } => Body::Request {
                path,
                hash: *hash,
                size: *size,
                base: *base,
            },
            // From an offset, the rest goes whole: no base.
            Message::Request {
                path,
                hash,
                size,
                offset,
                checks,
                ..
            } => Body::RequestFrom {
                path,
                hash: *hash,
                size: *size,
                offset: *offset,
                checks: checks.as_slice(),
            },
            Message::Fold { fold, upto, .. } => Body::Fold { fold, upto: *upto },
            Message::Unfold { first, last, .. } => Body::Unfold {
                first: *first,
                last: *last,
            },
            Message::Unfolded {
                first,
                last,
                records,
                ..
            } => Body::Unfolded {
                first: *first,
                last: *last,
                records: records.as_slice(),
            },
        };
        postcard::to_allocvec(&body).map_err(BodyError::Encode)
    }

    /// The message in `bytes` (made by [`Message::to_wire`]), about `task`: the task named
    /// by the frame that carried it. Bytes left over after the message are refused.
    pub fn from_wire(task: TaskId, bytes: &[u8]) -> Result<Self, BodyError> {
        match Self::take_from_wire(task, bytes)? {
            (message, []) => Ok(message),
            _ => Err(BodyError::TrailingBytes),
        }
    }

    /// The first message in `bytes` and what follows it (the fuzz target reads sequences).
    pub(crate) fn take_from_wire(task: TaskId, bytes: &[u8]) -> Result<(Self, &[u8]), BodyError> {
        let (body, rest) =
            postcard::take_from_bytes::<Body<Vec<Record>, _, Vec<ContentHash>, Fold>>(bytes)
                .map_err(BodyError::Decode)?;
        let message = match body {
            Body::Hello { after, reply } => Message::Hello { task, after, reply },
            Body::Records { records, upto } => Message::Records {
                task,
                records,
                upto,
            },
            Body::Ack { upto } => Message::Ack { task, upto },
            Body::Request {
                path,
                hash,
                size,
                base,
            } => Message::Request {
                task,
                path,
                hash,
                size,
                base,
                offset: 0,
                checks: Vec::new(),
            },
            Body::RequestFrom {
                path,
                hash,
                size,
                offset,
                checks,
            } => Message::Request {
                task,
                path,
                hash,
                size,
                base: None,
                offset,
                checks,
            },
            Body::Fold { fold, upto } => Message::Fold { task, fold, upto },
            Body::Unfold { first, last } => Message::Unfold { task, first, last },
            Body::Unfolded {
                first,
                last,
                records,
            } => Message::Unfolded {
                task,
                first,
                last,
                records,
            },
        };
        Ok((message, rest))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fold::Shape;
    use crate::state::State;
    use proptest::prelude::*;
    use qsync_base::{DeviceId, RelPath, VersionVector};

    fn record(path: String, n: u64, content: Vec<u8>) -> Record {
        Record {
            path: RelPath::new(path).unwrap(),
            state: State::File {
                hash: ContentHash::of(&content),
                size: content.len() as u64,
                mode: 0o644,
            },
            version: VersionVector::new().bumped(DeviceId::from_bytes([n as u8; 32])),
            mtime_ns: n as i64,
            seq: n,
            retimed: None,
            by: None,
        }
    }

    fn message() -> impl Strategy<Value = Message> {
        let task = TaskId::from_bytes([9; 32]);
        let path = "[a-z]{1,8}(/[a-z]{1,8}){0,2}";
        prop_oneof![
            (any::<u64>(), any::<bool>()).prop_map(move |(after, reply)| Message::Hello {
                task,
                after,
                reply
            }),
            (
                prop::collection::vec((path, any::<u64>(), any::<Vec<u8>>()), 0..5),
                any::<u64>()
            )
                .prop_map(move |(records, upto)| Message::Records {
                    task,
                    records: records
                        .into_iter()
                        .map(|(p, n, c)| record(p, n, c))
                        .collect(),
                    upto,
                }),
            any::<u64>().prop_map(move |upto| Message::Ack { task, upto }),
            (
                path,
                path,
                any::<bool>(),
                any::<u32>(),
                any::<u64>(),
                any::<i64>()
            )
                .prop_map(move |(a, b, moved, count, first_seq, n)| {
                    let (a, b) = (RelPath::new(a).unwrap(), RelPath::new(b).unwrap());
                    let shape = match moved {
                        true => Shape::Moved {
                            from: a.clone(),
                            to: b,
                        },
                        false => Shape::Deleted {
                            root: b,
                            mtime_ns: n,
                        },
                    };
                    let fold = Fold {
                        shape,
                        start: a,
                        count,
                        first_seq,
                        digest: ContentHash::of(b"d"),
                    };
                    Message::Fold {
                        task,
                        fold,
                        upto: first_seq,
                    }
                }),
            (any::<u64>(), any::<u64>()).prop_map(move |(first, last)| Message::Unfold {
                task,
                first,
                last
            }),
            (
                prop::collection::vec((path, any::<u64>(), any::<Vec<u8>>()), 0..3),
                any::<u64>()
            )
                .prop_map(move |(records, first)| Message::Unfolded {
                    task,
                    first,
                    last: first,
                    records: records
                        .into_iter()
                        .map(|(p, n, c)| record(p, n, c))
                        .collect(),
                }),
            (path, any::<u64>(), any::<bool>(), any::<u64>(), 0usize..4).prop_map(
                move |(p, size, based, offset, checks)| {
                    // A request from an offset carries no base (the rest goes whole), and
                    // one from 0 no checks.
                    let offset = if based { 0 } else { offset };
                    let checks = if offset == 0 { 0 } else { checks };
                    Message::Request {
                        task,
                        path: RelPath::new(p).unwrap(),
                        hash: ContentHash::of(b"x"),
                        size,
                        base: based.then(|| ContentHash::of(b"y")),
                        offset,
                        checks: (0..checks).map(|i| ContentHash::of(&[i as u8])).collect(),
                    }
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn every_message_comes_back_about_its_frame_s_task(m in message()) {
            let bytes = m.to_wire().unwrap();
            prop_assert_eq!(Message::from_wire(m.task(), &bytes).unwrap(), m.clone());
            // Whatever task a body once had, the frame's is the one it is about.
            let other = TaskId::from_bytes([1; 32]);
            prop_assert_eq!(Message::from_wire(other, &bytes).unwrap().task(), other);
            // Truncated, or followed by anything, it is refused.
            prop_assert!(Message::from_wire(other, &bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(Message::from_wire(other, &longer).is_err());
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in any::<Vec<u8>>()) {
            let _ = Message::from_wire(TaskId::from_bytes([9; 32]), &bytes);
        }
    }

    #[test]
    fn the_task_is_not_sent() {
        let task = TaskId::from_bytes([0xAB; 32]);
        let bytes = Message::Ack { task, upto: 7 }.to_wire().unwrap();
        assert_eq!(bytes, [2, 7]);
    }
}
