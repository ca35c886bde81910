//! QSync's sync rules, as a state machine that does no I/O.
//!
//! Each path of a sync task has a [`Record`] per device: what it holds ([`State`]: a file,
//! a folder, a symlink, or a deletion) and a [`VersionVector`](qsync_base::VersionVector)
//! saying which changes it has seen. A device that receives a record keeps it, takes it,
//! merges it or resolves a conflict by one deterministic rule ([`rules`]), so all devices
//! end with the same tree whatever order changes reach them in, and a deletion can never
//! silently win over an edit it had not seen.
//!
//! [`Core`] carries those rules out for one device, shaped like quinn-proto's `Connection`:
//! facts go in ([`Core::handle`] with an [`Input`], [`Core::handle_timeout`]), orders come
//! out ([`Core::poll_effect`] gives [`Effect`]s, [`Core::poll_timeout`] says when to call
//! back). Persistent state goes through the [`Ledger`] trait. A driver (the daemon, or the
//! deterministic simulator in `tests/`) carries the orders out and reports the results.
//!
//! ```
//! use std::time::Instant;
//! use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
//! use qsync_core::{Core, Effect, Input, Ledger, MemLedger, Message, State};
//!
//! let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
//! let task = TaskId::from_bytes([7; 32]);
//! let (mut core, mut ledger) = (Core::new(a), MemLedger::new());
//! let now = Instant::now(); // the driver reads the clock and passes it in
//!
//! core.handle(now, Input::Link { task, peer: b }, &mut ledger)?;
//! core.handle(now, Input::Connected { peer: b }, &mut ledger)?;
//! assert!(matches!(core.poll_effect(), Some(Effect::Send { message: Message::Hello { after: 0, .. }, .. })));
//!
//! // B answers: it wants A's records from the start. A's person writes a file; A sends
//! // its record to B.
//! core.handle(now, Input::Received { from: b, message: Message::Hello { task, after: 0, reply: false } }, &mut ledger)?;
//! let state = State::File { hash: ContentHash::of(b"hello"), size: 5, mode: 0o644 };
//! let path = RelPath::new("notes.txt")?;
//! core.handle(now, Input::Observed { task, path: path.clone(), state, mtime_ns: 0 }, &mut ledger)?;
//! // What the watcher saw goes out together, at the next call: due at once.
//! assert_eq!(core.poll_timeout(), Some(now));
//! core.handle_timeout(now, &mut ledger)?;
//! let Some(Effect::Send { to, message: Message::Records { records, .. } }) = core.poll_effect() else { panic!() };
//! assert_eq!((to, records[0].path.clone(), records[0].version.get(&a)), (b, path, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod core;
mod fold;
#[doc(hidden)]
pub mod fuzzing;
mod io;
mod ledger;
pub mod rules;
mod state;
mod wire;

pub use crate::core::{
    record_cost, Awaits, Core, Distrust, Report, Unsettled, ACK_DELAY, ACK_EVERY, MAX_COUNTER,
    MAX_HELLOS, MAX_LINK_TARGET, MAX_NUMBER, MAX_RETRY_AFTER, MAX_VERSION_ENTRIES, PATIENCE,
    RECORDS_PER_MESSAGE, RETRY_AFTER, WINDOW_BYTES, WINDOW_RECORDS,
};
pub use fold::{Fold, Shape, MIN_FOLD};
pub use io::{Effect, Input, Message, PlaceOutcome, Placement};
pub use ledger::{live_scan_bound, Ledger, MemLedger};
pub use state::{Record, State, MODE_MASK};
pub use wire::BodyError;
