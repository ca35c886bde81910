//! QSync device discovery.
//!
//! Each device announces itself over mDNS as a `_qsync._tcp.local.` service whose TXT record
//! holds its device id (`id`), protocol version (`v`) and human name (`name`), on the port
//! its daemon listens on. [`Discovery`] announces, browses, and turns what it hears into
//! [`DiscoveryEvent::Found`] / [`DiscoveryEvent::Lost`] events.
//!
//! - Its own announcement is ignored; malformed or foreign TXT records are logged and
//!   ignored, never a panic.
//! - The seed's `UpdateDevicesConnectionStateLoop`: every known device is probed by TCP on
//!   a fixed interval (the daemon answers a connection with its wire `Open` frame, which
//!   names it), so a device that vanished without a goodbye is `Lost` within
//!   [`Config::expiry`] (default 30 s).
//! - Manual fallback for networks that block multicast: [`Discovery::add_manual`] probes a
//!   `host:port`; the device it finds is reported exactly like one found by mDNS.
//! - Bounded, whatever the LAN announces: at most [`MAX_PEERS`] devices (linked devices
//!   kept over others, see [`Presence`]), [`MAX_ADDRESSES`] addresses each, and probes on
//!   a fixed pool of [`PROBE_WORKERS`] threads fed by a queue of [`MAX_QUEUED_PROBES`]
//!   addresses (linked devices first).
//!
//! The bookkeeping is the sans-IO [`Presence`] state machine; the threads around it only
//! feed it what mDNS and the probes report.
//!
//! ```no_run
//! use qsync_discovery::{Config, Discovery, DiscoveryEvent};
//! use qsync_base::DeviceId;
//!
//! let (discovery, events) = Discovery::start(Config::new(DeviceId::random(), "laptop", 7878))?;
//! for event in events {
//!     match event {
//!         DiscoveryEvent::Found(peer) => println!("found {} at {:?}", peer.device, peer.addresses),
//!         DiscoveryEvent::Lost(device) => println!("lost {device}"),
//!     }
//! }
//! # drop(discovery);
//! # Ok::<(), qsync_discovery::DiscoveryError>(())
//! ```

mod presence;
mod probe;
mod service;

pub use presence::{Input, Limits, Peer, Presence, MAX_ADDRESSES, MAX_PEERS};
pub use probe::{probe, Responder, MAX_QUEUED_PROBES, PROBE_WORKERS};
pub use service::{parse_txt, Config, Discovery, TxtError, SERVICE_TYPE};

use qsync_base::DeviceId;

/// What discovery reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// A device is reachable (newly, or at new addresses).
    Found(Peer),
    /// A device is gone: it said goodbye, or did not answer for the expiry time.
    Lost(DeviceId),
}

/// What went wrong starting discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The mDNS daemon failed.
    #[error("mDNS failed: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// A socket or thread could not be set up.
    #[error("could not {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
}
