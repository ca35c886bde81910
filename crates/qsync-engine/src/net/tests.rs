//! Tests of the parent module.
use super::*;

#[test]
fn a_new_stranger_beyond_the_cap_closes_the_oldest() {
    let strangers = Arc::new(Strangers::default());
    // Many hosts, a few connections each.
    let host = |i: usize| IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
    let slots: Vec<StrangerSlot> = (0..MAX_STRANGERS)
        .map(|i| strangers.enter(host(i)))
        .collect();
    assert_eq!(strangers.count(), MAX_STRANGERS);
    let newest = strangers.enter(host(1000));
    assert_eq!(strangers.count(), MAX_STRANGERS);
    // The oldest was told to close (a stored permit: its next wait returns at once).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let told = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(100), slots[0].evicted.notified())
            .await
            .is_ok()
    });
    assert!(told);
    let spared = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(20), newest.evicted.notified())
            .await
            .is_ok()
    });
    assert!(!spared);
    drop(slots);
    assert_eq!(strangers.count(), 1);
    drop(newest);

    // One host beyond its share closes its own oldest, not another host's.
    let other = strangers.enter(host(2000));
    let flood: Vec<StrangerSlot> = (0..=MAX_STRANGERS_PER_HOST)
        .map(|_| strangers.enter(host(3000)))
        .collect();
    assert_eq!(strangers.count(), 1 + MAX_STRANGERS_PER_HOST);
    let told = |slot: &StrangerSlot| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(20), slot.evicted.notified())
                .await
                .is_ok()
        })
    };
    assert!(told(&flood[0]));
    assert!(!told(&other));
}
