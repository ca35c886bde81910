//! Named cases of the exchange machine: resumes, stalls, waits, blame, limits.

use qsync_base::check_block_len;

use super::super::*;
use super::{HONEST, LIAR, MUTE, TASK};

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

#[test]
fn the_last_chunk_may_carry_the_last_bytes_and_must_end_the_content() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let content = vec![7u8; 50];
    x.want(now, want(HONEST, vec![], "one", &content, 0));
    x.want(now, want(LIAR, vec![], "short", &content[..40], 0));
    requests(&mut x);
    // A small file is one message: its bytes and the end.
    let key = (
        TASK,
        RelPath::new("one").unwrap(),
        ContentHash::of(&content),
    );
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Whole, 0, 50, true),
        Verdict::Finish
    );
    x.finished(&key, true);
    // An end that falls short of the size announced is a sender breaking the rules.
    let short = (
        TASK,
        RelPath::new("short").unwrap(),
        ContentHash::of(&content[..40]),
    );
    assert!(matches!(
        x.chunk(now, LIAR, &short, Chunk::Whole, 0, 30, true),
        Verdict::Refuse(_)
    ));
}

#[test]
fn a_patch_may_end_on_its_last_bytes_within_the_patch_limits() {
    let mut x = Exchange::default();
    let now = Instant::now();
    let base = ContentHash::of(b"base");
    let mut w = want(HONEST, vec![], "edited", b"new content", 0);
    w.base = Some(base);
    x.want(now, w);
    requests(&mut x);
    let key = (
        TASK,
        RelPath::new("edited").unwrap(),
        ContentHash::of(b"new content"),
    );
    // Past the largest patch taken, even as a last chunk: asked for whole instead.
    assert!(matches!(
        x.chunk(
            now,
            HONEST,
            &key,
            Chunk::Patch { base },
            0,
            MAX_PATCH + 1,
            true
        ),
        Verdict::Refuse(_)
    ));
    let mut w = want(HONEST, vec![], "edited2", b"newer content", 0);
    w.base = Some(base);
    x.want(now, w);
    requests(&mut x);
    let key = (
        TASK,
        RelPath::new("edited2").unwrap(),
        ContentHash::of(b"newer content"),
    );
    assert_eq!(
        x.chunk(now, HONEST, &key, Chunk::Patch { base }, 0, 40, true),
        Verdict::Finish
    );
    x.finished(&key, true);
}
