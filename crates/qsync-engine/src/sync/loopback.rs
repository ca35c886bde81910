//! The sync driver's surroundings in one process, for the fuzzer and the in-process daemon
//! tests: a `MemLedger`, and connections with peers that are channels whose messages the
//! caller takes ([`Loopback::take_sent`]) and delivers where it likes. Content served by
//! the driver's serving threads arrives on the same channels, in order with the rest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, TaskId};
use qsync_core::MemLedger;
use qsync_wire::Message;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::Around;
use crate::net::{Outbound, PeerConn};

/// See the [module documentation](self).
#[derive(Default)]
pub(crate) struct Loopback {
    ledger: MemLedger,
    conns: HashMap<DeviceId, (PeerConn, UnboundedReceiver<Outbound>)>,
    next_conn: u64,
    /// How far this clock is ahead of the real one.
    ahead: Duration,
}

impl Loopback {
    /// The ledger as the last committed transaction left it.
    pub(crate) fn ledger(&self) -> &MemLedger {
        &self.ledger
    }

    /// Move this clock on by `by` (the core's timers fire as if that time had passed).
    #[cfg(test)]
    pub(crate) fn advance(&mut self, by: Duration) {
        self.ahead += by;
    }

    /// Sync `task` here (the ledger knows it before any device is linked to it).
    #[cfg(test)]
    pub(crate) fn add_task(&mut self, task: TaskId) {
        self.ledger.add_task(task);
    }

    /// Open a connection with `peer` (replacing one open already).
    pub(crate) fn connect(&mut self, peer: DeviceId) {
        let (tx, rx) = unbounded_channel();
        self.next_conn += 1;
        let conn = PeerConn {
            id: self.next_conn,
            urgent: tx.clone(),
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
        };
        self.conns.insert(peer, (conn, rx));
    }

    /// Close the connection with `peer`: what it had not taken is lost.
    #[cfg(test)]
    pub(crate) fn disconnect(&mut self, peer: &DeviceId) {
        self.conns.remove(peer);
    }

    /// Whether a connection with `peer` is open.
    #[cfg(test)]
    pub(crate) fn is_connected(&self, peer: &DeviceId) -> bool {
        self.conns.contains_key(peer)
    }

    /// The messages queued for `peer` so far, in order, each with its task.
    pub(crate) fn take_sent(&mut self, peer: &DeviceId) -> Vec<(TaskId, Message)> {
        let Some((conn, rx)) = self.conns.get_mut(peer) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Ok(Outbound::Message(task, message)) = rx.try_recv() {
            // Written: the serving thread may queue more (as the network's writer does).
            let len = message.served_len();
            let queued = conn.queued.load(Ordering::Relaxed);
            conn.queued.fetch_sub(len.min(queued), Ordering::Relaxed);
            out.push((task, message));
        }
        out
    }
}

impl Around for Loopback {
    type Ledgers = MemLedger;

    fn ledgers(&mut self) -> &mut MemLedger {
        &mut self.ledger
    }

    fn conn(&self, device: &DeviceId) -> Option<&PeerConn> {
        self.conns.get(device).map(|(conn, _)| conn)
    }

    fn close_all(&mut self) {
        self.conns.clear();
    }

    fn kept(&self, _hash: &ContentHash) -> Option<PathBuf> {
        None
    }

    fn now(&self) -> Instant {
        Instant::now() + self.ahead
    }
}
