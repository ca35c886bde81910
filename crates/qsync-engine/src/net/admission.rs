//! Which new connections get a handshake answer at all: a rate per source address, and one
//! for every address together.
//!
//! Answering a connection's first handshake message costs this device its share of the
//! Noise key agreement while the other side can replay one message for free (about 4,900
//! answers a second took 1.4 cores before this rule). So each incoming connection spends a
//! token of its source's bucket (an IPv4 address, or an IPv6 /64: one host may hold a
//! whole /64) and one of the bucket of all sources, before anything is read; without
//! both, it is closed unanswered. A connection that proves a linked device's key gives
//! both back, and marks its address proven: a linked device's reconnects never use up
//! its address's rate, and a proven address does not wait on the bucket of all sources (a
//! flood from many addresses cannot keep a linked device out). Buckets refill at a steady
//! rate up to their burst; the table of addresses holds at most [`MAX_SOURCES`], dropping
//! addresses whose bucket is full again (nothing to remember) and then the one with the
//! most tokens, proven addresses last.
//!
//! The numbers: a host gets [`BURST_PER_SOURCE`] connections at once, then
//! [`RATE_PER_SOURCE`] a second; all hosts together [`BURST_ALL`], then [`RATE_ALL`] a
//! second (about 6% of a core of answers). Honest traffic stays far below: a linked device
//! reconnects a few times a minute at most (and gets its token back), a probe of discovery
//! comes every 10 s, a person links one device at a time. The tests run many daemons on
//! 127.0.0.1, but their connections are linked devices reconnecting (given back) and a
//! handful of links, well inside a burst of 20.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Connections one source may open at once before its rate applies.
pub const BURST_PER_SOURCE: u32 = 20;
/// New connections a second one source may open, past its burst.
pub const RATE_PER_SOURCE: u32 = 10;
/// Connections all sources together may open at once before their rate applies.
pub const BURST_ALL: u32 = 400;
/// New connections a second all sources together may open, past their burst.
pub const RATE_ALL: u32 = 200;
/// Source addresses remembered, at most (about 64 bytes each).
pub const MAX_SOURCES: usize = 4096;

/// Why a connection is closed unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its source opened too many connections lately.
    Source,
    /// All sources together did.
    Everyone,
}

/// A token bucket: `burst` tokens at most, refilled `rate` a second. Kept in thousandths of
/// a token, so that no float is needed.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            milli: u64::from(burst) * 1000,
            at: now,
        }
    }

    /// Add what `rate` gave since the bucket was last filled. Only the time worth of the
    /// thousandths added is counted as spent, so frequent calls lose no fraction.
    fn refill(&mut self, burst: u32, rate: u32, now: Instant) {
        let max = u64::from(burst) * 1000;
        // Nanoseconds per thousandth of a token.
        let step = 1_000_000 / u128::from(rate.max(1));
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        let gained = elapsed / step;
        let filled = u128::from(self.milli).saturating_add(gained);
        if filled >= u128::from(max) {
            self.milli = max;
            self.at = now;
        } else {
            // Below `max`, so it fits.
            self.milli = u64::try_from(filled).unwrap_or(max);
            let spent = u64::try_from(gained * step).unwrap_or(u64::MAX);
            self.at += Duration::from_nanos(spent);
        }
    }

    fn take(&mut self) -> bool {
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    fn give_back(&mut self, burst: u32) {
        self.milli = (self.milli + 1000).min(u64::from(burst) * 1000);
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    bucket: Bucket,
    /// A linked device proved its key from here.
    proven: bool,
    /// It was refused since it was last admitted (one log line per run of refusals).
    refusing: bool,
}

/// The rates of incoming connections (see the module's documentation).
#[derive(Debug)]
pub struct Admission {
    sources: HashMap<IpAddr, Source>,
    all: Bucket,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

/// The key of a source address: an IPv4 address (also when written as IPv6), or an IPv6
/// address's /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

impl Admission {
    /// Every bucket full at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            sources: HashMap::new(),
            all: Bucket::full(BURST_ALL, now),
        }
    }

    /// Whether a connection from `ip` at `now` gets an answer. `Err` says why not, with
    /// whether it is the first refusal of that source since it was last admitted (worth a
    /// log line; the rest of a flood is not).
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), (Refused, bool)> {
        let key = source_of(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_SOURCES {
            self.make_room(now);
        }
        let source = self.sources.entry(key).or_insert(Source {
            bucket: Bucket::full(BURST_PER_SOURCE, now),
            proven: false,
            refusing: false,
        });
        source.bucket.refill(BURST_PER_SOURCE, RATE_PER_SOURCE, now);
        self.all.refill(BURST_ALL, RATE_ALL, now);
        let first = !source.refusing;
        if !source.bucket.take() {
            source.refusing = true;
            return Err((Refused::Source, first));
        }
        if !self.all.take() && !source.proven {
            source.bucket.give_back(BURST_PER_SOURCE);
            source.refusing = true;
            return Err((Refused::Everyone, first));
        }
        source.refusing = false;
        Ok(())
    }

    /// A connection from `ip` proved a linked device's key: its tokens are given back, and
    /// the address is proven.
    pub fn proven(&mut self, ip: IpAddr) {
        if let Some(source) = self.sources.get_mut(&source_of(ip)) {
            source.bucket.give_back(BURST_PER_SOURCE);
            source.proven = true;
        }
        self.all.give_back(BURST_ALL);
    }

    /// How many source addresses are remembered.
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Room for one more source: those whose bucket is full again go (unless proven); if
    /// that is not enough, the eighth of them with the most tokens, proven addresses last
    /// (an eighth at once, so that a flood of new addresses costs one pass per 512 of them,
    /// not one each).
    fn make_room(&mut self, now: Instant) {
        let full = u64::from(BURST_PER_SOURCE) * 1000;
        for source in self.sources.values_mut() {
            source.bucket.refill(BURST_PER_SOURCE, RATE_PER_SOURCE, now);
        }
        self.sources
            .retain(|_, s| s.proven || s.bucket.milli < full);
        if self.sources.len() < MAX_SOURCES {
            return;
        }
        let mut ranked: Vec<(bool, u64, IpAddr)> = self
            .sources
            .iter()
            .map(|(ip, s)| (s.proven, u64::MAX - s.bucket.milli, *ip))
            .collect();
        let cut = MAX_SOURCES / 8;
        ranked.select_nth_unstable(cut);
        for (_, _, ip) in &ranked[..cut] {
            self.sources.remove(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::from([a, b, c, d])
    }

    /// One address gets its burst, then its rate; another address is not affected.
    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut admission = Admission::new(start);
        let flood = v4(10, 0, 0, 66);
        let admitted = (0..1000)
            .filter(|_| admission.admit(flood, start).is_ok())
            .count();
        assert_eq!(admitted, BURST_PER_SOURCE as usize);
        // The first refusal is the one worth a log line.
        let refusals: Vec<bool> = (0..3)
            .map(|_| {
                admission
                    .admit(flood, start)
                    .map_or_else(|(_, first)| first, |()| true)
            })
            .collect();
        assert_eq!(refusals, [false, false, false]);
        let later = start + Duration::from_secs(2);
        let admitted = (0..1000)
            .filter(|_| admission.admit(flood, later).is_ok())
            .count();
        assert_eq!(admitted, 2 * RATE_PER_SOURCE as usize);
        assert!(admission.admit(v4(10, 0, 0, 7), later).is_ok());
    }

    /// Connections a millisecond apart for two seconds: the burst, then exactly the rate
    /// (no fraction of a token lost between calls).
    #[test]
    fn frequent_attempts_lose_no_fraction_of_the_rate() {
        let start = Instant::now();
        let mut admission = Admission::new(start);
        let flood = v4(10, 0, 0, 66);
        let admitted = (0..2000u64)
            .filter(|ms| {
                admission
                    .admit(flood, start + Duration::from_millis(*ms))
                    .is_ok()
            })
            .count();
        // The last token of the second second comes at 2,000 ms, after the last attempt.
        assert_eq!(
            admitted,
            (BURST_PER_SOURCE + 2 * RATE_PER_SOURCE) as usize - 1
        );
    }

    /// A linked device's connections give their tokens back: it reconnects as often as it
    /// likes, and its address gets through a flood from every other address.
    #[test]
    fn a_proven_address_keeps_its_rate_and_passes_a_flood_of_many() {
        let now = Instant::now();
        let mut admission = Admission::new(now);
        let linked = v4(192, 168, 1, 2);
        for _ in 0..1000 {
            assert!(admission.admit(linked, now).is_ok());
            admission.proven(linked);
        }
        // Many addresses, a few connections each: the bucket of all runs dry.
        let mut admitted = 0;
        for i in 0..2000u32 {
            let ip = v4(10, 1, (i / 250) as u8, (i % 250) as u8);
            admitted += (0..5).filter(|_| admission.admit(ip, now).is_ok()).count();
        }
        assert_eq!(admitted, BURST_ALL as usize);
        assert_eq!(
            admission.admit(v4(10, 9, 9, 9), now),
            Err((Refused::Everyone, true))
        );
        assert!(admission.admit(linked, now).is_ok());
    }

    /// Twenty thousand addresses at once leave a table of at most [`MAX_SOURCES`], and an
    /// IPv6 host is one source for its whole /64.
    #[test]
    fn the_table_of_sources_stays_bounded() {
        let now = Instant::now();
        let mut admission = Admission::new(now);
        let linked = v4(192, 168, 1, 2);
        assert!(admission.admit(linked, now).is_ok());
        admission.proven(linked);
        for i in 0..20_000u32 {
            let _ = admission.admit(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), now);
            assert!(admission.sources() <= MAX_SOURCES);
        }
        assert!(
            admission.sources.contains_key(&linked),
            "the proven address was dropped"
        );
        let mut admission = Admission::new(now);
        let host = |low: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0xabc, low]);
        let admitted = (0..100u16)
            .filter(|i| admission.admit(host(*i), now).is_ok())
            .count();
        assert_eq!(admitted, BURST_PER_SOURCE as usize);
        assert_eq!(admission.sources(), 1);
    }
}
