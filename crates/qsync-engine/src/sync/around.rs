//! What the sync driver works with and does not own, as traits the daemon (and the tests'
//! and the fuzzer's stand-ins) implement: the ledger's transactions ([`Ledgers`]) and the
//! connections, blobs and clock ([`Around`]).

use std::path::PathBuf;
use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, TaskId};
use qsync_core::Ledger;
use qsync_wire::Message;

use crate::net::{Outbound, PeerConn};

/// Where the driver's ledger transactions come from: the daemon's SQLite store, or a
/// `MemLedger` in tests and the fuzzer.
pub(crate) trait Ledgers {
    /// Why a transaction failed.
    type Error: std::fmt::Display;
    /// One transaction.
    type Tx<'a>: Ledger<Error = Self::Error>
    where
        Self: 'a;
    /// Run `f` in one transaction, committed if it succeeds (rolled back otherwise).
    fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<R, Self::Error>,
    ) -> Result<R, Self::Error>;
}

impl Ledgers for qsync_store::Store {
    type Error = qsync_store::StoreError;
    type Tx<'a> = qsync_store::LedgerTx<'a>;

    fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<R, Self::Error>,
    ) -> Result<R, Self::Error> {
        let mut tx = self.ledger()?;
        let result = f(&mut tx)?;
        tx.commit()?;
        Ok(result)
    }
}

impl Ledgers for qsync_core::MemLedger {
    type Error = <qsync_core::MemLedger as Ledger>::Error;
    type Tx<'a> = qsync_core::MemLedger;

    fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<R, Self::Error>,
    ) -> Result<R, Self::Error> {
        // Rolled back by working on a copy: tests' ledgers are small.
        let mut copy = self.clone();
        let result = f(&mut copy)?;
        *self = copy;
        Ok(result)
    }
}

/// What the driver works with and does not own.
pub(crate) trait Around {
    /// Where transactions come from.
    type Ledgers: Ledgers;
    /// The ledger.
    fn ledgers(&mut self) -> &mut Self::Ledgers;
    /// The connection with `device`, if it is connected.
    fn conn(&self, device: &DeviceId) -> Option<&PeerConn>;
    /// Close every connection (the ledger failed: the peers redial and greet afresh).
    fn close_all(&mut self);
    /// Where this device keeps a copy of content `hash`, if it does (a base of patches).
    fn kept(&self, hash: &ContentHash) -> Option<PathBuf>;
    /// The time the core's timers go by (the clock; tests move it on faster).
    fn now(&self) -> Instant {
        Instant::now()
    }
    /// Send `message` about `task` to `to`; whether it was queued (it is connected).
    fn send(&mut self, to: DeviceId, task: TaskId, message: Message) -> bool {
        self.conn(&to)
            .is_some_and(|c| c.tx.send(Outbound::Message(task, message)).is_ok())
    }
}
