//! The exchange machine driven by random schedules of chunks, lies, stalls, unanswered
//! requests and closed connections, with several holders; a model driver keeps the part
//! files' bytes and checks each order against them.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use qsync_base::check_block_len;

use super::super::*;
use super::{check_counts, DEVICES, HONEST, LIAR, MUTE, TASK};

/// The contents wanted: a few paths, two of them holding the same bytes.
fn contents() -> Vec<(RelPath, Vec<u8>)> {
    let bytes = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(seed)).collect();
    vec![
        (RelPath::new("a").unwrap(), bytes(40, 3)),
        (RelPath::new("b").unwrap(), bytes(0, 5)),
        (RelPath::new("c").unwrap(), bytes(40, 3)), // the same as "a"
        (RelPath::new("d").unwrap(), bytes(25, 7)),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    /// The core wants content `i` from `from`, these holders also named.
    Want {
        i: usize,
        from: usize,
        holders: Vec<usize>,
    },
    /// Device `d` answers its oldest request: honest chunks of `len` bytes (the liar:
    /// wrong bytes, a wrong offset, too many bytes, or an early end, by `lie`).
    Answer { d: usize, len: u64, lie: u8 },
    /// Device `d` answers its oldest request with the first `percent` of what it sends,
    /// then stops (the liar's bytes wrong, by `lie`).
    Partial { d: usize, percent: u8, lie: u8 },
    /// Device `d` says it has not got what it was asked last.
    Unavailable { d: usize },
    /// The connection with `d` closes: requests sent to it are lost until it is back.
    Disconnect { d: usize },
    /// Device `d` is connected again.
    Reconnect { d: usize },
    /// Time passes.
    Wait { secs: u64 },
    /// Writing the next chunk fails here.
    DiskFails,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..4usize, 0..3usize, prop::collection::vec(0..3usize, 0..3))
            .prop_map(|(i, from, holders)| Step::Want { i, from, holders }),
        6 => (0..3usize, 1..30u64, any::<u8>()).prop_map(|(d, len, lie)| Step::Answer { d, len, lie }),
        2 => (0..3usize, 0..100u8, any::<u8>()).prop_map(|(d, percent, lie)| Step::Partial { d, percent, lie }),
        1 => (0..3usize).prop_map(|d| Step::Unavailable { d }),
        1 => (0..3usize).prop_map(|d| Step::Disconnect { d }),
        1 => (0..3usize).prop_map(|d| Step::Reconnect { d }),
        2 => (1..30u64).prop_map(|secs| Step::Wait { secs }),
        1 => Just(Step::DiskFails),
    ]
}

/// The driver's side, modelled: part files, staged contents, requests each device has.
struct Model {
    x: Exchange,
    now: Instant,
    truth: Vec<(RelPath, Vec<u8>)>,
    parts: HashMap<ContentHash, Vec<u8>>,
    staged: HashSet<ContentHash>,
    /// Requests each device was sent, oldest first: (key, offset, where an honest
    /// holder starts: the first block at which the part kept then differs from the
    /// content, as the checks sent with the request tell it).
    asked: HashMap<DeviceId, Vec<(FetchKey, u64, u64)>>,
    /// What the core was told, per path: ok or not.
    told: HashMap<RelPath, bool>,
    fail_next_write: bool,
    /// Devices not connected: requests to them are lost, and the core names only the
    /// others.
    down: HashSet<DeviceId>,
}

impl Model {
    fn new() -> Self {
        Self {
            x: Exchange::default(),
            now: Instant::now(),
            truth: contents(),
            parts: HashMap::new(),
            staged: HashSet::new(),
            asked: HashMap::new(),
            told: HashMap::new(),
            fail_next_write: false,
            down: HashSet::new(),
        }
    }

    fn key(&self, i: usize) -> FetchKey {
        let (path, bytes) = &self.truth[i];
        (TASK, path.clone(), ContentHash::of(bytes))
    }

    /// The core wants content `i`, announced by `from`, held by `from` and `holders`.
    fn want(&mut self, i: usize, from: DeviceId, mut holders: Vec<DeviceId>) {
        holders.insert(0, from);
        // As the core: only connected holders are named; with none, it waits.
        holders.retain(|h| !self.down.contains(h));
        if holders.is_empty() {
            return;
        }
        let (task, path, hash) = self.key(i);
        if self.staged.contains(&hash) {
            // As the driver: content staged already is not fetched again.
            self.told.insert(path, true);
            return;
        }
        let kept = self.parts.get(&hash).map_or(0, |p| p.len() as u64);
        let size = self.truth[i].1.len() as u64;
        self.x.want(
            self.now,
            Want {
                from,
                holders,
                task,
                path,
                hash,
                size,
                base: None,
                kept,
            },
        );
        self.orders();
    }

    /// Carry out the exchange's orders, checking each.
    fn orders(&mut self) {
        while let Some(order) = self.x.poll_order() {
            match order {
                Order::Request {
                    to,
                    task,
                    path,
                    hash,
                    offset,
                    size,
                    ..
                } => {
                    let kept = self.parts.get(&hash).map_or(0, |p| p.len() as u64);
                    assert!(offset <= kept, "asked from {offset}, {kept} bytes kept");
                    assert!(offset <= size);
                    if self.down.contains(&to) {
                        continue; // lost on the way
                    }
                    let start = self.resume_point(&path, &hash, offset);
                    self.asked
                        .entry(to)
                        .or_default()
                        .push(((task, path, hash), offset, start));
                }
                Order::Fetched { path, hash, ok, .. } => {
                    if ok {
                        assert!(self.staged.contains(&hash), "told ok, not staged: {path}");
                    }
                    self.told.insert(path, ok);
                }
                Order::Close { key, discard } => {
                    if discard {
                        self.parts.remove(&key.2);
                    }
                }
            }
        }
    }

    /// Where an honest holder of `path`'s content answers a request from `offset`: there,
    /// or at the first block boundary at which the part kept here differs from it.
    fn resume_point(&self, path: &RelPath, hash: &ContentHash, offset: u64) -> u64 {
        let truth = &self.truth.iter().find(|(p, _)| p == path).unwrap().1;
        let part = self.parts.get(hash).map_or(&[][..], |p| &p[..]);
        let upto = (offset as usize).min(part.len());
        let differs = (0..upto)
            .find(|&i| truth.get(i) != Some(&part[i]))
            .or((upto < offset as usize).then_some(upto));
        let block = check_block_len(offset);
        differs.map_or(offset, |i| i as u64 / block * block)
    }

    /// Deliver one chunk from `from` and carry out the verdict as the driver does.
    fn chunk(&mut self, from: DeviceId, key: &FetchKey, offset: u64, data: &[u8], last: bool) {
        let verdict = self.x.chunk(
            self.now,
            from,
            key,
            Chunk::Whole,
            offset,
            data.len() as u64,
            last,
        );

        match verdict {
            Verdict::Ignore | Verdict::Refuse(_) => {}
            Verdict::Write => {
                if std::mem::take(&mut self.fail_next_write) {
                    self.x.failed(key);
                } else {
                    let part = self.parts.entry(key.2).or_default();
                    // The part file is opened at `offset` (cut there): it must hold as many.
                    assert!(part.len() as u64 >= offset, "a write past the part's end");
                    part.truncate(offset as usize);
                    part.extend_from_slice(data);
                    let size = self.x.size_of(key).unwrap();
                    assert!(part.len() as u64 <= size, "more bytes than announced");
                }
            }
            Verdict::Finish if !data.is_empty() && std::mem::take(&mut self.fail_next_write) => {
                // The driver could not write the last bytes: the fetch fails as for a write.
                self.parts.remove(&key.2);
                self.x.failed(key);
            }
            Verdict::Finish => {
                let mut part = self.parts.remove(&key.2).unwrap_or_default();
                if !data.is_empty() {
                    // The last chunk carries the last bytes (protocol 7).
                    assert!(part.len() as u64 >= offset, "a write past the part's end");
                    part.truncate(offset as usize);
                    part.extend_from_slice(data);
                    let size = self.x.size_of(key).unwrap_or(0);
                    assert!(part.len() as u64 <= size, "more bytes than announced");
                }
                let ok = ContentHash::of(&part) == key.2;
                if ok {
                    self.staged.insert(key.2);
                }
                self.x.finished(key, ok);
            }
        }
        self.orders();
        assert!(self.x.open_from(&from) <= MAX_OPEN_INCOMING);
    }

    /// Device `d` answers its oldest request, whole.
    fn answer(&mut self, d: DeviceId, len: u64, lie: u8) {
        self.answer_part(d, len, lie, None);
    }

    /// Device `d` answers its oldest request: all of it, or the first `percent` of it
    /// and nothing more.
    fn answer_part(&mut self, d: DeviceId, len: u64, lie: u8, percent: Option<u8>) {
        let Some(list) = self.asked.get_mut(&d) else {
            return;
        };
        if list.is_empty() {
            return;
        }
        let (key, offset, start) = list.remove(0);
        let truth = self
            .truth
            .iter()
            .find(|(p, _)| *p == key.1)
            .map(|(_, b)| b.clone())
            .unwrap();
        if d == MUTE {
            return;
        }
        // The honest holder compares the asker's checks with its own copy; the liar does
        // not care.
        let mut at = offset;
        if d == HONEST && start < offset {
            // It says so first, then sends from there.
            self.x.resend(self.now, d, &key, offset, start);
            self.orders();
            at = start;
        }
        let mut bytes = truth.get(at as usize..).unwrap_or(&[]).to_vec();
        if d == LIAR {
            match lie % 4 {
                0 => bytes.iter_mut().for_each(|b| *b ^= 0x55), // wrong bytes
                1 => at += 1 + u64::from(lie % 7),              // a wrong offset
                2 => bytes.extend_from_slice(&[0; 9]),          // past the size
                _ => bytes.truncate(bytes.len() / 2),           // ends early
            }
        }
        if let Some(percent) = percent {
            bytes.truncate(bytes.len() * usize::from(percent) / 100);
        }
        // Half the answers end on their last bytes (protocol 7), half with an empty end.
        let merged = percent.is_none() && len.is_multiple_of(2) && !bytes.is_empty();
        let pieces: Vec<&[u8]> = bytes.chunks(len as usize).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let last = merged && i + 1 == pieces.len();
            self.chunk(d, &key, at, piece, last);
            at += piece.len() as u64;
        }
        if percent.is_none() && !merged {
            self.chunk(d, &key, at, &[], true);
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Want { i, from, holders } => {
                let holders = holders.into_iter().map(|h| DEVICES[h]).collect();
                self.want(i, DEVICES[from], holders);
            }
            Step::Answer { d, len, lie } => self.answer(DEVICES[d], len, lie),
            Step::Partial { d, percent, lie } => {
                self.answer_part(DEVICES[d], 7, lie, Some(percent));
            }
            Step::Unavailable { d } => {
                let d = DEVICES[d];
                if let Some((key, _, _)) = self.asked.get_mut(&d).and_then(|l| l.pop()) {
                    self.x.unavailable(self.now, d, &key);
                    self.orders();
                }
            }
            Step::Disconnect { d } => {
                let d = DEVICES[d];
                self.asked.remove(&d);
                self.down.insert(d);
                self.x.disconnected(self.now, d);
                self.orders();
            }
            Step::Reconnect { d } => {
                self.down.remove(&DEVICES[d]);
            }
            Step::Wait { secs } => {
                self.now += Duration::from_secs(secs);
                self.x.handle_timeout(self.now);
                self.orders();
            }
            Step::DiskFails => self.fail_next_write = true,
        }
        assert!(self.x.patch_memory() <= MAX_PATCH_MEMORY);
        check_counts(&self.x);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the schedule, no bytes are written out of place or past the size, nothing
    /// is said staged that is not the content, the limits hold; and once the honest
    /// holder is asked (the core asks again after each failure, naming it among the
    /// holders), every content arrives.
    #[test]
    fn every_content_arrives_right_from_an_honest_holder(steps in prop::collection::vec(step(), 0..60)) {
        let mut m = Model::new();
        for step in steps {
            m.run(step);
        }
        // From now on every device is connected, the core asks again for what it was not
        // given, naming the liar and the mute one first, and the honest holder last; the
        // devices answer.
        m.down.clear();
        for _round in 0..40 {
            let missing: Vec<usize> = (0..m.truth.len())
                .filter(|&i| !m.staged.contains(&m.key(i).2))
                .collect();
            if missing.is_empty() {
                break;
            }
            for i in missing {
                // As the core does: again after a failure; again naming a new holder
                // while a fetch is under way (the exchange adds it).
                m.want(i, LIAR, vec![MUTE, HONEST]);
            }
            // Every request is answered (the answers may bring new ones) before time passes.
            while let Some(d) = DEVICES
                .into_iter()
                .find(|d| m.asked.get(d).is_some_and(|l| !l.is_empty()))
            {
                m.answer(d, 16, 0);
            }
            m.now += REQUEST_WAIT + Duration::from_secs(1);
            m.x.handle_timeout(m.now);
            m.orders();
        }
        for i in 0..m.truth.len() {
            let key = m.key(i);
            prop_assert!(m.staged.contains(&key.2), "content {i} never arrived");
        }
        for (path, _) in &m.truth {
            // Every path was told (the one of the same content as another, too), and last "ok".
            if let Some(told) = m.told.get(path) {
                let staged = m.truth.iter().any(|(p, b)| p == path && m.staged.contains(&ContentHash::of(b)));
                prop_assert!(*told || staged);
            }
        }
        prop_assert_eq!(m.x.reserved(), 0, "nothing reserved once all is here");
        for d in DEVICES {
            prop_assert_eq!(m.x.open_from(&d), 0);
        }
    }
}
