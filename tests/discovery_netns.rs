//! Discovery between real `qsync` processes, on a loopback with multicast and across
//! hosts on a bridge, all inside network namespaces the test makes and removes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::{namespaces_available, Hosts};

const QSYNC: &str = env!("CARGO_BIN_EXE_qsync");

fn discover_args(port: &'static str, name: &'static str) -> Vec<&'static str> {
    vec![
        "discover",
        "--port",
        port,
        "--name",
        name,
        "--expiry",
        "3",
        "--probe-interval",
        "1",
        "--seconds",
        "60",
    ]
}

fn id_of(me_line: &str) -> String {
    me_line.trim_start_matches("me ").to_owned()
}

#[test]
fn two_daemons_on_one_loopback_find_each_other_and_notice_a_kill() {
    if !namespaces_available("two_daemons_on_one_loopback") {
        return;
    }
    let hosts = Hosts::loopback().unwrap();
    let a = hosts
        .spawn(0, QSYNC, &discover_args("17878", "alpha"))
        .unwrap();
    let mut b = hosts
        .spawn(0, QSYNC, &discover_args("17879", "beta"))
        .unwrap();
    let id_a = id_of(&a.wait_for("me ", Duration::from_secs(10)).unwrap());
    let id_b = id_of(&b.wait_for("me ", Duration::from_secs(10)).unwrap());

    let found = a
        .wait_for(&format!("found {id_b}"), Duration::from_secs(20))
        .unwrap();
    assert!(
        found.contains("beta") && found.contains(":17879"),
        "{found}"
    );
    b.wait_for(&format!("found {id_a}"), Duration::from_secs(20))
        .unwrap();

    b.kill();
    let t = Instant::now();
    a.wait_for(&format!("lost {id_b}"), Duration::from_secs(20))
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "lost after {:?}",
        t.elapsed()
    );
}

#[test]
fn daemons_on_separate_hosts_find_each_other_over_a_bridge() {
    if !namespaces_available("daemons_on_separate_hosts") {
        return;
    }
    let hosts = Hosts::bridged(2).unwrap();
    let a = hosts
        .spawn(0, QSYNC, &discover_args("7878", "host-one"))
        .unwrap();
    let mut b = hosts
        .spawn(1, QSYNC, &discover_args("7878", "host-two"))
        .unwrap();
    let id_b = id_of(&b.wait_for("me ", Duration::from_secs(10)).unwrap());
    a.wait_for("me ", Duration::from_secs(10)).unwrap();

    let found = a
        .wait_for(&format!("found {id_b}"), Duration::from_secs(20))
        .unwrap();
    assert!(found.contains("198.18.0.2:7878"), "{found}");

    b.kill();
    let t = Instant::now();
    a.wait_for(&format!("lost {id_b}"), Duration::from_secs(20))
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "lost after {:?}",
        t.elapsed()
    );
}

#[test]
fn a_manual_peer_is_found_without_multicast() {
    if !namespaces_available("a_manual_peer_is_found_without_multicast") {
        return;
    }
    // Two hosts on a bridge, but A looks B up by address.
    let hosts = Hosts::bridged(2).unwrap();
    let b = hosts
        .spawn(1, QSYNC, &discover_args("7900", "manual"))
        .unwrap();
    let id_b = id_of(&b.wait_for("me ", Duration::from_secs(10)).unwrap());
    let mut args = discover_args("7901", "asker");
    args.extend(["--peer", "198.18.0.2:7900"]);
    let a = hosts.spawn(0, QSYNC, &args).unwrap();
    let found = a
        .wait_for(&format!("found {id_b}"), Duration::from_secs(20))
        .unwrap();
    assert!(found.contains("198.18.0.2:7900"), "{found}");
}
