//! Presence as a state machine, TXT parsing, probes and manual peers on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use qsync_base::DeviceId;
use qsync_discovery::*;

fn id(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 32])
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[derive(Debug, Clone)]
enum Step {
    Announce(u8, u16),
    Withdraw(u8),
    Answer(u8, u16),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, 1u16..4).prop_map(|(d, p)| Step::Announce(d, p)),
        (0u8..4).prop_map(Step::Withdraw),
        (0u8..4, 1u16..4).prop_map(|(d, p)| Step::Answer(d, p)),
        (0u64..40).prop_map(Step::Wait),
    ]
}

/// Steps over more devices than the table holds, announcing up to five addresses.
fn bounded_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6, 0u16..6).prop_map(|(d, p)| Step::Announce(d, p)),
        (0u8..6).prop_map(Step::Withdraw),
        (0u8..6, 1u16..6).prop_map(|(d, p)| Step::Answer(d, p)),
        (0u64..40).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Found and Lost alternate per device, never about ourselves, and a device silent for
    /// longer than the expiry is lost by the next tick.
    #[test]
    fn found_and_lost_alternate_and_silence_expires(steps in proptest::collection::vec(step(), 1..60)) {
        let me = id(0);
        let expiry = Duration::from_secs(30);
        let mut presence = Presence::new(me, expiry);
        let start = Instant::now();
        let mut now = start;
        let mut around: HashMap<DeviceId, Instant> = HashMap::new();
        for s in steps {
            let input = match s {
                Step::Announce(d, p) => Input::Announced(Peer { device: id(d), name: format!("d{d}"), addresses: vec![addr(p)] }),
                Step::Withdraw(d) => Input::Withdrawn(id(d)),
                Step::Answer(d, p) => Input::Answered { device: id(d), address: addr(p) },
                Step::Wait(secs) => { now += Duration::from_secs(secs); Input::Tick }
            };
            for event in presence.handle(input, now) {
                match event {
                    DiscoveryEvent::Found(peer) => {
                        prop_assert_ne!(peer.device, me);
                        around.insert(peer.device, now);
                    }
                    DiscoveryEvent::Lost(device) => {
                        prop_assert!(around.remove(&device).is_some(), "lost without found");
                    }
                }
            }
            let listed: Vec<DeviceId> = presence.peers().map(|p| p.device).collect();
            let mut expected: Vec<DeviceId> = around.keys().copied().collect();
            expected.sort();
            prop_assert_eq!(listed, expected);
        }
        now += expiry + Duration::from_secs(1);
        presence.handle(Input::Tick, now);
        prop_assert_eq!(presence.peers().count(), 0);
    }

    /// With room for two devices of two addresses each and devices 1 and 2 linked: never
    /// more than that is kept, `Found` and `Lost` still alternate, and a linked device is
    /// only ever dropped to make room for another linked one.
    #[test]
    fn a_full_table_drops_the_least_wanted(steps in proptest::collection::vec(bounded_step(), 1..80)) {
        let me = id(0);
        let limits = Limits { peers: 2, addresses: 2 };
        let mut presence = Presence::with_limits(me, Duration::from_secs(30), limits);
        let linked = [id(1), id(2)];
        let mut now = Instant::now();
        presence.handle(Input::Linked(linked.to_vec()), now);
        let mut around: HashMap<DeviceId, Instant> = HashMap::new();
        for s in steps {
            let (input, newcomer) = match s {
                Step::Announce(d, p) => {
                    let addresses = (0..p).map(|i| addr(u16::from(d) * 100 + i)).collect();
                    (Input::Announced(Peer { device: id(d), name: String::new(), addresses }), Some(id(d)))
                }
                Step::Withdraw(d) => (Input::Withdrawn(id(d)), None),
                Step::Answer(d, p) => (Input::Answered { device: id(d), address: addr(p) }, Some(id(d))),
                Step::Wait(secs) => { now += Duration::from_secs(secs); (Input::Tick, None) }
            };
            now += Duration::from_millis(1);
            for event in presence.handle(input, now) {
                match event {
                    DiscoveryEvent::Found(peer) => {
                        prop_assert!(peer.addresses.len() <= 2);
                        around.insert(peer.device, now);
                    }
                    DiscoveryEvent::Lost(device) => {
                        prop_assert!(around.remove(&device).is_some(), "lost without found");
                        if let (true, Some(by)) = (linked.contains(&device), newcomer) {
                            prop_assert!(linked.contains(&by), "a linked device dropped for a stranger");
                        }
                    }
                }
            }
            prop_assert!(presence.peers().count() <= 2);
            let listed: Vec<DeviceId> = presence.peers().map(|p| p.device).collect();
            let mut expected: Vec<DeviceId> = around.keys().copied().collect();
            expected.sort();
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn txt_parsing_never_panics(id in ".{0,80}", v in ".{0,4}", name in ".{0,100}") {
        let props: HashMap<&str, &str> = [("id", id.as_str()), ("v", v.as_str()), ("name", name.as_str())].into();
        if let Ok((_, n)) = parse_txt(|k| props.get(k).copied()) {
            prop_assert!(n.chars().count() <= 64);
        }
    }
}

#[test]
fn txt_records_of_other_services_or_versions_are_refused() {
    let d = DeviceId::random().to_string();
    let v = qsync_wire::PROTOCOL_VERSION.to_string();
    let ok: HashMap<&str, &str> =
        [("id", d.as_str()), ("v", v.as_str()), ("name", "laptop")].into();
    assert_eq!(parse_txt(|k| ok.get(k).copied()).unwrap().1, "laptop");
    // A device of an older build (random ids, no Noise) is not offered.
    let old: HashMap<&str, &str> = [("id", d.as_str()), ("v", "1")].into();
    assert!(matches!(
        parse_txt(|k| old.get(k).copied()),
        Err(TxtError::WrongVersion(_))
    ));
    let foreign: HashMap<&str, &str> = [("v", v.as_str()), ("model", "printer")].into();
    assert_eq!(
        parse_txt(|k| foreign.get(k).copied()),
        Err(TxtError::MissingId)
    );
    let bad: HashMap<&str, &str> = [("v", v.as_str()), ("id", "not-an-id!")].into();
    assert!(matches!(
        parse_txt(|k| bad.get(k).copied()),
        Err(TxtError::BadId(_))
    ));
}

#[test]
fn a_probe_learns_who_listens_and_nothing_from_a_stranger() {
    let identity = qsync_wire::Identity::generate().unwrap();
    let device = identity.device();
    let responder = Responder::bind(addr(0), identity).unwrap();
    assert_eq!(
        probe(responder.address(), Duration::from_secs(2)),
        Some(device)
    );

    let stranger = std::net::TcpListener::bind(addr(0)).unwrap();
    let stranger_addr = stranger.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut s, _)) = stranger.accept() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        }
    });
    assert_eq!(probe(stranger_addr, Duration::from_secs(2)), None);
    drop(responder);
}

/// Two instances in one process on loopback, with mDNS off (multicast may not leave this
/// test): B is added by address, found, then lost once it stops answering.
#[test]
fn manual_peer_is_found_then_lost_when_it_stops() {
    let b_key = qsync_wire::Identity::generate().unwrap();
    let (a, b) = (DeviceId::random(), b_key.device());
    let responder_b = Responder::bind(addr(0), b_key).unwrap();
    let mut config = Config::new(a, "a", 0);
    config.mdns = false;
    config.expiry = Duration::from_secs(2);
    config.probe_interval = Duration::from_millis(300);
    let (discovery, events) = Discovery::start(config).unwrap();
    discovery.add_manual(responder_b.address());

    match events.recv_timeout(Duration::from_secs(5)).unwrap() {
        DiscoveryEvent::Found(peer) => {
            assert_eq!(peer.device, b);
            assert_eq!(peer.addresses, vec![responder_b.address()]);
        }
        other => panic!("{other:?}"),
    }
    let stopped = Instant::now();
    drop(responder_b);
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)).unwrap(),
        DiscoveryEvent::Lost(b)
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "lost within the expiry (+ a probe round)"
    );
}
