//! Tasks paused on this device: it records its person's changes and sends and takes
//! nothing of the task until resumed. Nothing is said to the peers: this device's streams
//! of the task stop where they are (`Streams::pause`), and what peers send of it (records,
//! greetings, acknowledgements) is held here, in order, to be handled when the task
//! resumes, as if it had just arrived. An honest peer sends at most its window of records
//! before it waits for an acknowledgement, which a paused task never sends, so what is
//! held is bounded by the window; a peer that sends more has everything of it dropped,
//! and nothing more of it is taken on that connection once resumed (as for records past
//! the window: they come again after it reconnects). The peers' versions kept as rivals
//! are not decided again while paused either. Requests for the task's content are
//! answered as unavailable: the asking device tries another holder, or again later. Work
//! taken in before the pause (a fetch or a placement under way) finishes.

use std::collections::{BTreeMap, BTreeSet};

use qsync_base::{DeviceId, RelPath, TaskId};

use super::budget::{record_cost, MAX_HELLOS, MIN_RECORD_COST, WINDOW_BYTES, WINDOW_RECORDS};
use crate::io::{Effect, Message};

/// What becomes of a received message (see [`Paused::sort`]).
#[derive(Debug)]
pub(super) enum Sorted {
    /// Handled now.
    Now(Message),
    /// Held (or dropped: a peer past its window).
    Held,
    /// Answered so.
    Refuse(Effect),
}

/// The paused tasks and what peers sent of them meanwhile.
#[derive(Debug, Default)]
pub(super) struct Paused {
    tasks: BTreeMap<TaskId, Held>,
}

/// What peers sent of one paused task.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// In the order received.
    pub(super) messages: Vec<(DeviceId, Message)>,
    /// Per peer: messages and bytes held.
    cost: BTreeMap<DeviceId, (usize, usize)>,
    /// Peers that sent more than a window: nothing of theirs is held, and nothing more
    /// of them is taken on this connection once resumed.
    pub(super) overflowed: BTreeSet<DeviceId>,
    /// Greetings held per peer (at most a connection's worth).
    hellos: BTreeMap<DeviceId, u8>,
    /// Paths whose rivals are to be decided again once resumed.
    pub(super) marks: BTreeSet<RelPath>,
}

impl Paused {
    /// Whether `task` is paused.
    pub(super) fn is_paused(&self, task: &TaskId) -> bool {
        self.tasks.contains_key(task)
    }

    /// Pause `task` (nothing if it is already).
    pub(super) fn pause(&mut self, task: TaskId) {
        self.tasks.entry(task).or_default();
    }

    /// Resume `task`: what was held of it, if it was paused.
    pub(super) fn resume(&mut self, task: &TaskId) -> Option<Held> {
        self.tasks.remove(task)
    }

    /// `message` from `from`: given back when it is to be handled now (not of a paused
    /// task), or held here (all of a paused task's, greetings and acknowledgements
    /// included, to be handled in the order they came), or refused (a request: the
    /// refusal to send is given back). Records are counted as the window counts them
    /// (a fold at the least its records cost); of the greetings, only as many as a
    /// connection may send are held, and of the acknowledgements, only the last.
    pub(super) fn sort(&mut self, from: DeviceId, message: Message) -> Sorted {
        let Some(held) = self.tasks.get_mut(&message.task()) else {
            return Sorted::Now(message);
        };
        if held.overflowed.contains(&from) {
            return Sorted::Held;
        }
        let (records, bytes) = match &message {
            Message::Request {
                task, path, hash, ..
            } => {
                let (task, path, hash) = (*task, path.clone(), *hash);
                return Sorted::Refuse(Effect::Unavailable {
                    to: from,
                    task,
                    path,
                    hash,
                });
            }
            Message::Hello { .. } => {
                let hellos = held.hellos.entry(from).or_default();
                *hellos = hellos.saturating_add(1);
                if *hellos <= MAX_HELLOS {
                    held.messages.push((from, message));
                }
                return Sorted::Held;
            }
            Message::Ack { .. } => {
                let older = |(peer, m): &(DeviceId, Message)| {
                    *peer == from && matches!(m, Message::Ack { .. })
                };
                held.messages.retain(|m| !older(m));
                held.messages.push((from, message));
                return Sorted::Held;
            }
            Message::Records { records, .. } | Message::Unfolded { records, .. } => (
                records.len(),
                records.iter().map(record_cost).sum::<usize>(),
            ),
            Message::Fold { fold, .. } => {
                let count = fold.count as usize;
                (count, count.saturating_mul(MIN_RECORD_COST))
            }
            Message::Unfold { .. } => (0, 0),
        };
        let cost = held.cost.entry(from).or_default();
        cost.0 = cost.0.saturating_add(records.max(1));
        cost.1 = cost.1.saturating_add(bytes);
        if cost.0 > WINDOW_RECORDS || cost.1 > WINDOW_BYTES {
            held.overflowed.insert(from);
            held.cost.remove(&from);
            held.messages.retain(|(peer, _)| *peer != from);
            return Sorted::Held;
        }
        held.messages.push((from, message));
        Sorted::Held
    }

    /// Paths of `task` whose peers' versions are to be decided again (a rule that a
    /// paused task follows only once resumed: taking a rival is taking a change).
    pub(super) fn defer_marks(&mut self, task: &TaskId, paths: Vec<RelPath>) {
        if let Some(held) = self.tasks.get_mut(task) {
            held.marks.extend(paths);
        }
    }

    /// The paused tasks.
    pub(super) fn tasks(&self) -> impl Iterator<Item = &TaskId> {
        self.tasks.keys()
    }

    /// `peer` is gone: what it sent is dropped (it sends it again after the next
    /// greeting, which a new connection begins with).
    pub(super) fn disconnected(&mut self, peer: DeviceId) {
        for held in self.tasks.values_mut() {
            held.forget(peer);
        }
    }

    /// `task` is no longer synced with `peer`.
    pub(super) fn unlinked(&mut self, task: &TaskId, peer: DeviceId) {
        if let Some(held) = self.tasks.get_mut(task) {
            held.forget(peer);
        }
    }
}

impl Held {
    fn forget(&mut self, peer: DeviceId) {
        self.messages.retain(|(from, _)| *from != peer);
        self.cost.remove(&peer);
        self.overflowed.remove(&peer);
        self.hellos.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(task: TaskId, n: u64) -> Message {
        Message::Records {
            task,
            records: Vec::new(),
            upto: n,
        }
    }

    #[test]
    fn a_paused_task_holds_what_peers_send_in_order_and_refuses_requests() {
        let (task, other) = (TaskId::from_bytes([1; 32]), TaskId::from_bytes([2; 32]));
        let (a, b) = (DeviceId::from_bytes([3; 32]), DeviceId::from_bytes([4; 32]));
        let mut paused = Paused::default();
        paused.pause(task);
        assert!(
            matches!(paused.sort(a, records(other, 1)), Sorted::Now(_)),
            "another task's"
        );
        assert!(matches!(paused.sort(a, records(task, 1)), Sorted::Held));
        assert!(matches!(paused.sort(b, records(task, 2)), Sorted::Held));
        assert!(matches!(paused.sort(a, records(task, 3)), Sorted::Held));
        let request = Message::Request {
            task,
            path: qsync_base::RelPath::new("x").unwrap(),
            hash: qsync_base::ContentHash::of(b"x"),
            size: 1,
            base: None,
            offset: 0,
            checks: Vec::new(),
        };
        assert!(matches!(
            paused.sort(a, request),
            Sorted::Refuse(Effect::Unavailable { .. })
        ));
        paused.disconnected(b);
        let held = paused.resume(&task).unwrap();
        let order: Vec<u64> = held
            .messages
            .iter()
            .map(|(_, m)| match m {
                Message::Records { upto, .. } => *upto,
                _ => 0,
            })
            .collect();
        assert_eq!(order, vec![1, 3]);
        assert!(paused.resume(&task).is_none(), "resumed once");
    }

    #[test]
    fn a_peer_that_sends_past_its_window_has_nothing_held() {
        let task = TaskId::from_bytes([1; 32]);
        let a = DeviceId::from_bytes([3; 32]);
        let mut paused = Paused::default();
        paused.pause(task);
        for n in 0..=WINDOW_RECORDS as u64 {
            assert!(matches!(paused.sort(a, records(task, n)), Sorted::Held));
        }
        let held = paused.resume(&task).unwrap();
        assert!(held.messages.is_empty());
        assert!(held.overflowed.contains(&a));
    }
}
