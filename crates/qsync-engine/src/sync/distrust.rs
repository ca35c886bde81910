//! What each linked peer sent that the sync core refused or did not trust as it stood
//! (`qsync_core::Effect::Distrust`): counted per peer for `qsync status`, and logged at the
//! default level with the peer and the task. A peer that keeps sending such things is
//! logged once per kind and then every [`LOG_EVERY`]th time, so that it cannot fill the
//! log either.

use std::collections::BTreeMap;

use qsync_base::{DeviceId, TaskId};
use qsync_core::{Distrust, Report};

use crate::control::{printable, PeerDistrust};

/// After the first report of a kind from a peer, one in this many is logged.
const LOG_EVERY: u64 = 1000;

/// The counts, per peer.
#[derive(Debug, Default)]
pub(crate) struct DistrustBook {
    peers: BTreeMap<DeviceId, Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Records (or greetings) refused: not stored, never acknowledged.
    refused: u64,
    /// Records claiming more of this device's changes than it made (taken as concurrent).
    doubted: u64,
    /// Reports per kind, for the log's pacing.
    seen: BTreeMap<&'static str, u64>,
    /// The last report, in words.
    last: String,
}

impl DistrustBook {
    /// Count `report` from `from` about `task`, and log it.
    pub(super) fn report(&mut self, from: DeviceId, task: TaskId, report: &Report) {
        let counts = self.peers.entry(from).or_default();
        if report.why.refused() {
            counts.refused += report.count;
        } else {
            counts.doubted += report.count;
        }
        let path = report
            .path
            .as_ref()
            .map(|p| printable(p.as_str()))
            .unwrap_or_default();
        counts.last = format!("{} ({path})", report.why);
        let seen = counts.seen.entry(kind(report.why)).or_insert(0);
        *seen += 1;
        if *seen == 1 || (*seen).is_multiple_of(LOG_EVERY) {
            let (why, count, seen) = (report.why, report.count, *seen);
            if report.why.refused() {
                tracing::warn!(%from, %task, %path, count, reports = seen, "refused from a linked device: {why}");
            } else {
                tracing::warn!(%from, %task, %path, count, reports = seen, "not trusted as sent by a linked device: {why}; kept as concurrent with this device's version");
            }
        }
    }

    /// Each peer with something counted, for `qsync status`.
    pub(crate) fn status(&self) -> Vec<PeerDistrust> {
        self.peers
            .iter()
            .map(|(device, c)| PeerDistrust {
                device: *device,
                refused: c.refused,
                doubted: c.doubted,
                last: c.last.clone(),
            })
            .collect()
    }
}

fn kind(why: Distrust) -> &'static str {
    match why {
        Distrust::NumberTooLarge => "number",
        Distrust::TooManyDevices => "devices",
        Distrust::LinkTooLong => "link",
        Distrust::OverWindow => "window",
        Distrust::RepeatedHello => "hello",
        Distrust::ClaimAboveIssued => "claim",
    }
}
