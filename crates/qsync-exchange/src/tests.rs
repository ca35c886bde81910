//! The exchange machine driven by random schedules of chunks, lies, stalls, unanswered
//! requests and closed connections, with several holders; a model driver keeps the part
//! files' bytes and checks each order against them.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use qsync_base::check_block_len;

const HONEST: DeviceId = DeviceId::from_bytes([1; 32]);
const LIAR: DeviceId = DeviceId::from_bytes([2; 32]);
const MUTE: DeviceId = DeviceId::from_bytes([3; 32]);
const TASK: TaskId = TaskId::from_bytes([9; 32]);
const DEVICES: [DeviceId; 3] = [HONEST, LIAR, MUTE];

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
            Verdict::Finish => {
                let part = self.parts.remove(&key.2).unwrap_or_default();
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
        for piece in bytes.chunks(len as usize) {
            self.chunk(d, &key, at, piece, false);
            at += piece.len() as u64;
        }
        if percent.is_none() {
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

fn want(from: DeviceId, mut holders: Vec<DeviceId>, path: &str, content: &[u8], kept: u64) -> Want {
    holders.insert(0, from);
    Want {
        from,
        holders,
        task: TASK,
        path: RelPath::new(path).unwrap(),
        hash: ContentHash::of(content),
        size: content.len() as u64,
        base: None,
        kept,
    }
}

fn requests(x: &mut Exchange) -> Vec<(DeviceId, u64)> {
    let mut out = Vec::new();
    while let Some(order) = x.poll_order() {
        if let Order::Request { to, offset, .. } = order {
            out.push((to, offset));
        }
    }
    out
}

#[test]
fn a_transfer_cut_by_a_stall_resumes_from_another_holder_where_it_stopped() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let content = vec![7u8; 100];
    x.want(now, want(MUTE, vec![HONEST], "v", &content, 0));
    assert_eq!(requests(&mut x), vec![(MUTE, 0)]);
    let key = (TASK, RelPath::new("v").unwrap(), ContentHash::of(&content));
    assert_eq!(
        x.chunk(now, MUTE, &key, Chunk::Whole, 0, 60, false),
        Verdict::Write
    );
    // Then nothing: after STALL_SWITCH the other holder is asked for the rest.
    x.handle_timeout(now + STALL_SWITCH);
    let orders: Vec<Order> = std::iter::from_fn(|| x.poll_order()).collect();
    assert!(orders.contains(&Order::Close {
        key: key.clone(),
        discard: false
    }));
    assert!(orders
        .iter()
        .any(|o| matches!(o, Order::Request { to, offset: 60, .. } if *to == HONEST)));
    // The stalled holder's late bytes are not taken; the honest one's are.
    let later = now + STALL_SWITCH;
    assert_eq!(
        x.chunk(later, MUTE, &key, Chunk::Whole, 60, 40, false),
        Verdict::Ignore
    );
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, 60, 40, false),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, 100, 0, true),
        Verdict::Finish
    );
    x.finished(&key, true);
    assert!(matches!(x.poll_order(), Some(Order::Fetched { from, ok: true, .. }) if from == MUTE));
}

#[test]
fn a_request_never_answered_goes_to_the_next_holder_or_is_given_up_when_there_is_none() {
    let mut x = Exchange::default();
    let now = Instant::now();
    x.want(now, want(MUTE, vec![], "alone", b"one", 0));
    x.want(now, want(MUTE, vec![HONEST], "two", b"two", 0));
    requests(&mut x);
    x.handle_timeout(now + REQUEST_WAIT);
    assert_eq!(
        requests(&mut x),
        vec![(HONEST, 0)],
        "only the one with another holder moves"
    );
    x.handle_timeout(now + TRANSFER_IDLE);
    let told: Vec<Order> = std::iter::from_fn(|| x.poll_order()).collect();
    assert!(
        told.iter().any(
            |o| matches!(o, Order::Fetched { path, ok: false, .. } if path.as_str() == "alone")
        ),
        "given up at last (the core asks again later): {told:?}"
    );
}

#[test]
fn a_device_busy_sending_other_contents_keeps_its_requests() {
    let mut x = Exchange::default();
    let now = Instant::now();
    x.want(now, want(MUTE, vec![HONEST], "queued", b"queued", 0));
    let smalls: Vec<FetchKey> = (0..20)
        .map(|i| {
            let content = format!("small {i}");
            x.want(
                now,
                want(MUTE, vec![], &format!("s{i}"), content.as_bytes(), 0),
            );
            (
                TASK,
                RelPath::new(format!("s{i}")).unwrap(),
                ContentHash::of(content.as_bytes()),
            )
        })
        .collect();
    requests(&mut x);
    // MUTE works through its queue: one small content a second.
    for (s, key) in smalls.iter().enumerate() {
        let at = now + Duration::from_secs(s as u64);
        let len = format!("small {s}").len() as u64;
        assert_eq!(
            x.chunk(at, MUTE, key, Chunk::Whole, 0, len, false),
            Verdict::Write
        );
        assert_eq!(
            x.chunk(at, MUTE, key, Chunk::Whole, len, 0, true),
            Verdict::Finish
        );
        x.finished(key, true);
        x.handle_timeout(at);
    }
    assert_eq!(
        requests(&mut x),
        vec![],
        "not moved while its device makes progress"
    );
}

#[test]
fn a_liar_cannot_take_over_from_a_slow_honest_holder_for_ever() {
    let mut x = Exchange::default();
    let t0 = Instant::now();
    let content = vec![3u8; 4096];
    let key = (
        TASK,
        RelPath::new("slow").unwrap(),
        ContentHash::of(&content),
    );
    let mut now = t0;
    // Round 1: the honest holder is slow, the liar takes over and lies; both are
    // suspected, the fetch ends.
    x.want(now, want(HONEST, vec![LIAR], "slow", &content, 0));
    requests(&mut x);
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 0, 10, false),
        Verdict::Write
    );
    now += SLOW_AFTER;
    x.handle_timeout(now);
    assert_eq!(requests(&mut x), vec![(LIAR, 10)], "slow: moved");
    assert_eq!(
        x.chunk(now, LIAR, &key, Chunk::Whole, 10, 4086, false),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(now, LIAR, &key, Chunk::Whole, 4096, 0, true),
        Verdict::Finish
    );
    x.finished(&key, false);
    assert_eq!(requests(&mut x), vec![(LIAR, 0)], "the last sender alone");
    assert_eq!(
        x.chunk(now, LIAR, &key, Chunk::Whole, 0, 4096, false),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(now, LIAR, &key, Chunk::Whole, 4096, 0, true),
        Verdict::Finish
    );
    x.finished(&key, false);
    while x.poll_order().is_some() {}
    // Round 2: the honest holder first again; slow, but the only other holder is a
    // suspect: it is left to finish.
    x.want(now, want(HONEST, vec![LIAR], "slow", &content, 0));
    assert_eq!(requests(&mut x), vec![(HONEST, 0)]);
    for step in 0..40u64 {
        let at = now + Duration::from_secs(step);
        assert_eq!(
            x.chunk(at, HONEST, &key, Chunk::Whole, step * 100, 100, false),
            Verdict::Write
        );
        x.handle_timeout(at);
        assert_eq!(requests(&mut x), vec![], "not moved to the liar");
    }
}

#[test]
fn a_trickle_of_one_content_does_not_keep_a_device_busy() {
    let mut x = Exchange::default();
    let now = Instant::now();
    x.want(now, want(MUTE, vec![], "big", &[0u8; 100], 0));
    x.want(now, want(MUTE, vec![HONEST], "queued", b"queued", 0));
    requests(&mut x);
    let big = (
        TASK,
        RelPath::new("big").unwrap(),
        ContentHash::of(&[0u8; 100]),
    );
    for s in 0..=REQUEST_WAIT.as_secs() {
        let at = now + Duration::from_secs(s);
        assert_eq!(
            x.chunk(at, MUTE, &big, Chunk::Whole, s, 1, false),
            Verdict::Write
        );
        x.handle_timeout(at);
    }
    assert_eq!(
        requests(&mut x),
        vec![(HONEST, 0)],
        "moved to the other holder"
    );
}

#[test]
fn a_holder_gone_before_the_request_left_is_replaced_when_the_core_asks_again() {
    let mut x = Exchange::default();
    let now = Instant::now();
    x.want(now, want(MUTE, vec![], "p", b"content", 0));
    requests(&mut x);
    // MUTE went away; the core asks again, naming the holders connected now.
    x.want(
        now,
        Want {
            holders: vec![HONEST],
            ..want(MUTE, vec![], "p", b"content", 0)
        },
    );
    assert_eq!(requests(&mut x), vec![(HONEST, 0)]);
}

#[test]
fn a_kept_part_is_resumed_and_a_wrong_result_is_asked_again_whole_of_the_same_holder() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let content = vec![1u8; 50];
    x.want(now, want(HONEST, vec![], "r", &content, 30));
    assert_eq!(requests(&mut x), vec![(HONEST, 30)]);
    let key = (TASK, RelPath::new("r").unwrap(), ContentHash::of(&content));
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 10, 40, false),
        Verdict::Ignore,
        "from before the part's end, not at a block's start: an older answer"
    );
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 30, 20, false),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 50, 0, true),
        Verdict::Finish
    );
    // The part from disk (a crash, a power cut) may be what is wrong, not the sender:
    // its bytes go, and the same holder sends it all.
    x.finished(&key, false);
    let orders: Vec<Order> = std::iter::from_fn(|| x.poll_order()).collect();
    assert!(orders.contains(&Order::Close {
        key: key.clone(),
        discard: true
    }));
    assert!(orders
        .iter()
        .any(|o| matches!(o, Order::Request { to, offset: 0, .. } if *to == HONEST)));
    assert!(!orders.iter().any(|o| matches!(o, Order::Fetched { .. })));
}

#[test]
fn a_liars_prefix_is_dropped_when_the_honest_holder_s_copy_differs_and_sent_once() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let size = (5u64 << 20) + 100;
    let content = vec![4u8; size as usize];
    let key = (
        TASK,
        RelPath::new("film").unwrap(),
        ContentHash::of(&content),
    );
    x.want(now, want(LIAR, vec![HONEST], "film", &content, 0));
    assert_eq!(requests(&mut x), vec![(LIAR, 0)]);
    // The liar sends 60% of wrong bytes, then nothing.
    let cut = size * 6 / 10;
    assert_eq!(
        x.chunk(now, LIAR, &key, Chunk::Whole, 0, cut, false),
        Verdict::Write
    );
    let later = now + STALL_SWITCH;
    x.handle_timeout(later);
    assert_eq!(requests(&mut x), vec![(HONEST, cut)]);
    // A chunk at a block's start before the part's end, unannounced, is not a resend
    // (a late chunk of an older answer): dropped.
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, 0, 1 << 20, false),
        Verdict::Ignore
    );
    // The honest holder's first block differs from the part: it says so, and sends from
    // 0, once. A resend from elsewhere than a block's start, or of another request, is
    // not taken.
    assert!(!x.resend(later, HONEST, &key, cut, 5));
    assert!(!x.resend(later, HONEST, &key, cut - 1, 0));
    assert!(!x.resend(later, LIAR, &key, cut, 0));
    assert!(x.resend(later, HONEST, &key, cut, 0));
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, 0, size, false),
        Verdict::Write
    );
    let shown = x.transfers(later, 10);
    assert_eq!(shown[0].done, size, "the part counts from its new start");
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, size, 0, true),
        Verdict::Finish
    );
    x.finished(&key, true);
    assert!(matches!(
        x.poll_order(),
        Some(Order::Fetched { ok: true, .. })
    ));
    assert!(
        !x.suspects.of(key.2, &HONEST),
        "the honest holder is not blamed"
    );
}

#[test]
fn a_part_torn_in_the_middle_is_sent_again_from_the_torn_block_only() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let size = 4u64 << 20;
    let content = vec![8u8; size as usize];
    let key = (TASK, RelPath::new("t").unwrap(), ContentHash::of(&content));
    // 3 MiB kept on disk; a power cut tore the third MiB.
    let kept = 3 << 20;
    x.want(now, want(HONEST, vec![], "t", &content, kept));
    assert_eq!(requests(&mut x), vec![(HONEST, kept)]);
    let block = check_block_len(kept);
    assert_eq!(block, 1 << 20);
    assert!(
        !x.resend(now, HONEST, &key, kept, 2 * block + 5),
        "not a block's start"
    );
    assert!(x.resend(now, HONEST, &key, kept, 2 * block));
    assert_eq!(
        x.chunk(
            now,
            HONEST,
            &key,
            Chunk::Whole,
            2 * block,
            size - 2 * block,
            false
        ),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, size, 0, true),
        Verdict::Finish
    );
    x.finished(&key, true);
    assert!(matches!(
        x.poll_order(),
        Some(Order::Fetched { ok: true, .. })
    ));
}

#[test]
fn a_holder_that_has_the_part_dropped_then_stalls_is_suspected() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let content = vec![6u8; 3 << 20];
    let key = (TASK, RelPath::new("w").unwrap(), ContentHash::of(&content));
    let kept = 2 << 20;
    x.want(now, want(LIAR, vec![HONEST], "w", &content, kept));
    assert_eq!(requests(&mut x), vec![(LIAR, kept)]);
    assert!(x.resend(now, LIAR, &key, kept, 0));
    // Then nothing: the honest holder is asked (from 0 now), and the liar goes last
    // from then on.
    let later = now + STALL_SWITCH + REQUEST_WAIT;
    x.handle_timeout(later);
    assert_eq!(requests(&mut x), vec![(HONEST, 0)]);
    assert!(x.suspects.of(key.2, &LIAR));
    assert!(!x.suspects.of(key.2, &HONEST));
}

#[test]
fn wrong_bytes_from_one_holder_then_the_rest_from_another_blame_the_first() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let content = vec![2u8; 40];
    let key = (TASK, RelPath::new("m").unwrap(), ContentHash::of(&content));
    x.want(now, want(LIAR, vec![HONEST], "m", &content, 0));
    requests(&mut x);
    assert_eq!(
        x.chunk(now, LIAR, &key, Chunk::Whole, 0, 10, false),
        Verdict::Write
    );
    x.handle_timeout(now + STALL_SWITCH);
    assert_eq!(requests(&mut x), vec![(HONEST, 10)]);
    let later = now + STALL_SWITCH;
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, 10, 30, false),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(later, HONEST, &key, Chunk::Whole, 40, 0, true),
        Verdict::Finish
    );
    x.finished(&key, false);
    assert_eq!(
        requests(&mut x),
        vec![(HONEST, 0)],
        "the honest holder sends it all"
    );
    // Asked again by the core later, the liar goes last.
    x.finished(&key, true);
    while x.poll_order().is_some() {}
    x.want(later, want(LIAR, vec![HONEST], "m", &content, 0));
    assert_eq!(requests(&mut x), vec![(HONEST, 0)]);
}

#[test]
fn the_same_content_for_two_paths_travels_once() {
    let mut x = Exchange::default();
    let now = Instant::now();
    x.want(now, want(HONEST, vec![], "one", b"same", 0));
    x.want(now, want(HONEST, vec![], "two", b"same", 0));
    assert_eq!(requests(&mut x).len(), 1);
    let key = (TASK, RelPath::new("one").unwrap(), ContentHash::of(b"same"));
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 0, 4, false),
        Verdict::Write
    );
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 4, 0, true),
        Verdict::Finish
    );
    x.finished(&key, true);
    let told: Vec<String> = std::iter::from_fn(|| x.poll_order())
        .filter_map(|o| match o {
            Order::Fetched { path, ok: true, .. } => Some(path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["one", "two"]);
}

#[test]
fn open_transfers_per_device_and_patch_memory_are_capped() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let mut keys = Vec::new();
    for i in 0..=MAX_OPEN_INCOMING {
        let content = format!("content {i}");
        let path = format!("f{i}");
        x.want(now, want(LIAR, vec![], &path, content.as_bytes(), 0));
        keys.push((
            TASK,
            RelPath::new(path).unwrap(),
            ContentHash::of(content.as_bytes()),
        ));
    }
    for key in &keys[..MAX_OPEN_INCOMING] {
        assert_eq!(
            x.chunk(now, LIAR, key, Chunk::Whole, 0, 1, false),
            Verdict::Write
        );
    }
    assert!(matches!(
        x.chunk(
            now,
            LIAR,
            &keys[MAX_OPEN_INCOMING],
            Chunk::Whole,
            0,
            1,
            false
        ),
        Verdict::Refuse(_)
    ));
    assert_eq!(x.open_from(&LIAR), MAX_OPEN_INCOMING);
    x.disconnected(now, LIAR);
    assert_eq!(x.open_from(&LIAR), 0, "given back when the transfers end");

    // Patches: each at most MAX_PATCH, all at most MAX_PATCH_MEMORY.
    let base = ContentHash::of(b"base");
    let mut patch_keys = Vec::new();
    for i in 0..(MAX_PATCH_MEMORY / MAX_PATCH + 1) {
        let content = format!("edited {i}");
        let path = format!("p{i}");
        let mut w = want(HONEST, vec![], &path, content.as_bytes(), 0);
        w.base = Some(base);
        w.size = 1 << 40;
        x.want(now, w);
        patch_keys.push((
            TASK,
            RelPath::new(path).unwrap(),
            ContentHash::of(content.as_bytes()),
        ));
    }
    let patch = Chunk::Patch { base };
    assert!(matches!(
        x.chunk(now, HONEST, &patch_keys[0], patch, 0, MAX_PATCH + 1, false),
        Verdict::Refuse(_)
    ));
    for key in &patch_keys[1..] {
        let verdict = x.chunk(now, HONEST, key, patch, 0, MAX_PATCH, false);
        assert!(x.patch_memory() <= MAX_PATCH_MEMORY);
        if x.patch_memory() == MAX_PATCH_MEMORY && verdict != Verdict::Write {
            assert!(matches!(verdict, Verdict::Refuse(_)));
        }
    }
    assert_eq!(x.patch_memory(), MAX_PATCH_MEMORY);
    x.disconnected(now, HONEST);
    assert_eq!(x.patch_memory(), 0);
}

/// Check the counts the exchange keeps beside its fetch table against the table.
fn check_counts(x: &Exchange) {
    let begun = |f: &&Fetch| matches!(f.progress, Progress::Whole | Progress::Patch(_));
    let reserved: u64 = x.fetches.values().filter(begun).map(|f| f.size).sum();
    assert_eq!(x.reserved, reserved, "reserved bytes");
    let patches: u64 = x
        .fetches
        .values()
        .map(|f| match f.progress {
            Progress::Patch(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(x.patch_memory, patches, "patch memory");
    let mut open: HashMap<DeviceId, usize> = HashMap::new();
    for f in x.fetches.values() {
        if f.progress == Progress::Whole {
            *open.entry(f.asked).or_default() += 1;
        }
    }
    assert_eq!(x.open, open, "open transfers");
    for (key, f) in &x.fetches {
        assert_eq!(x.by_hash.get(&key.2), Some(key), "one fetch per content");
        assert!(f.kept <= f.size);
    }
    assert_eq!(x.by_hash.len(), x.fetches.len());
}
