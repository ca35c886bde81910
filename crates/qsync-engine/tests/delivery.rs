//! The delivery state machine under random event orders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use qsync_base::{DeviceId, UpdateId};
use qsync_engine::delivery::{Action, Delivery, WINDOW};

#[derive(Debug, Clone)]
enum Ev {
    /// A change recorded for these devices; `true` if it is a creation.
    Record(BTreeSet<u8>, bool),
    Connect(u8),
    Disconnect(u8),
    /// The device answers the oldest update in flight to it (if any): answers come in order.
    Ack(u8),
    /// A stray acknowledgement of an arbitrary update.
    StrayAck(u8, u64),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => (proptest::collection::btree_set(0u8..3, 0..=3), any::<bool>()).prop_map(|(d, c)| Ev::Record(d, c)),
        2 => (0u8..3).prop_map(Ev::Connect),
        1 => (0u8..3).prop_map(Ev::Disconnect),
        4 => (0u8..3).prop_map(Ev::Ack),
        1 => (0u8..3, 0u64..20).prop_map(|(d, u)| Ev::StrayAck(d, u)),
    ]
}

fn dev(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 32])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Only to connected devices, oldest first; one update in flight per device, except up
    /// to WINDOW creations together; every recorded update reaches every device it was
    /// recorded for, exactly once, once everyone is connected and answers.
    #[test]
    fn every_update_reaches_every_device_once_in_order(events in proptest::collection::vec(ev(), 1..80)) {
        let mut delivery = Delivery::new();
        let mut next = 0u64;
        let mut pending: BTreeMap<u8, BTreeSet<u64>> = BTreeMap::new(); // the store's rows
        let mut connected: BTreeSet<u8> = BTreeSet::new();
        let mut in_flight: BTreeMap<u8, BTreeSet<u64>> = BTreeMap::new();
        let mut delivered: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
        let mut creations: BTreeSet<u64> = BTreeSet::new();

        let run = |actions: Vec<Action>, pending: &mut BTreeMap<u8, BTreeSet<u64>>, in_flight: &mut BTreeMap<u8, BTreeSet<u64>>, delivered: &mut BTreeMap<u8, Vec<u64>>, connected: &BTreeSet<u8>, creations: &BTreeSet<u64>| -> Result<(), TestCaseError> {
            for a in actions {
                match a {
                    Action::Send { device, update } => {
                        let d = device.as_bytes()[0];
                        prop_assert!(connected.contains(&d), "sent to a disconnected device");
                        let flying = in_flight.entry(d).or_default();
                        if !flying.is_empty() {
                            prop_assert!(flying.len() < WINDOW, "more than WINDOW in flight");
                            prop_assert!(
                                creations.contains(&update.0) && flying.iter().all(|u| creations.contains(u)),
                                "something other than a creation sent while another update was in flight"
                            );
                        }
                        let oldest = pending[&d].iter().find(|u| !flying.contains(u)).copied();
                        prop_assert_eq!(oldest, Some(update.0), "not the oldest pending");
                        flying.insert(update.0);
                    }
                    Action::MarkDone { device, update } => {
                        let d = device.as_bytes()[0];
                        prop_assert!(pending.get_mut(&d).unwrap().remove(&update.0));
                        delivered.entry(d).or_default().push(update.0);
                    }
                }
            }
            Ok(())
        };

        for e in events {
            let actions = match e {
                Ev::Record(devices, creation) => {
                    let u = next;
                    next += 1;
                    if creation {
                        creations.insert(u);
                    }
                    let mut acts = vec![];
                    for d in devices {
                        pending.entry(d).or_default().insert(u);
                        acts.extend(delivery.add(dev(d), UpdateId(u), creation));
                    }
                    acts
                }
                Ev::Connect(d) => {
                    if connected.contains(&d) { continue; }
                    connected.insert(d);
                    let missing: Vec<(UpdateId, bool)> = pending.get(&d).into_iter().flatten().map(|u| (UpdateId(*u), creations.contains(u))).collect();
                    delivery.connected(dev(d), missing)
                }
                Ev::Disconnect(d) => {
                    connected.remove(&d);
                    in_flight.remove(&d);
                    // The store keeps every row until acknowledged: nothing to change there.
                    delivery.disconnected(dev(d));
                    vec![]
                }
                Ev::Ack(d) => match in_flight.get_mut(&d).and_then(|f| f.pop_first()) {
                    Some(u) => delivery.acknowledged(dev(d), UpdateId(u)),
                    None => vec![],
                },
                Ev::StrayAck(d, u) => {
                    if in_flight.get(&d).is_some_and(|f| f.contains(&u)) { continue; }
                    let acts = delivery.acknowledged(dev(d), UpdateId(u));
                    prop_assert!(acts.is_empty(), "a stray acknowledgement had an effect");
                    acts
                }
            };
            run(actions, &mut pending, &mut in_flight, &mut delivered, &connected, &creations)?;
        }

        // Everyone connects and answers until quiet.
        for d in 0u8..3 {
            if !connected.contains(&d) {
                connected.insert(d);
                let missing: Vec<(UpdateId, bool)> = pending.get(&d).into_iter().flatten().map(|u| (UpdateId(*u), creations.contains(u))).collect();
                let acts = delivery.connected(dev(d), missing);
                run(acts, &mut pending, &mut in_flight, &mut delivered, &connected, &creations)?;
            }
        }
        while let Some(d) = in_flight.iter().find(|(_, f)| !f.is_empty()).map(|(d, _)| *d) {
            let u = in_flight.get_mut(&d).and_then(|f| f.pop_first()).unwrap();
            let acts = delivery.acknowledged(dev(d), UpdateId(u));
            run(acts, &mut pending, &mut in_flight, &mut delivered, &connected, &creations)?;
        }
        for d in 0u8..3 {
            prop_assert!(pending.get(&d).is_none_or(|p| p.is_empty()), "device {} still misses {:?}", d, pending.get(&d));
            prop_assert!(delivery.is_idle(dev(d)));
            let got = delivered.get(&d).cloned().unwrap_or_default();
            let mut sorted = got.clone();
            sorted.dedup();
            prop_assert_eq!(got.len(), sorted.len(), "delivered twice");
        }
    }
}
