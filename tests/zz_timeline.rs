#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "support/node.rs"]
mod node;
use node::{link, wait_same, Node};
use std::fs;
use std::time::{Duration, Instant};

#[test]
#[ignore]
fn timeline() {
    let base = tempfile::tempdir_in("/tmp").unwrap();
    let share = std::env::var("SHARE").unwrap_or("25".into());
    let a = Node::start_full_pub(base.path(), "a", Some("qsync_engine=debug,qsync=debug"), &["--base-share", &share]);
    let b = Node::start_full_pub(base.path(), "b", Some("qsync_engine=debug,qsync=debug"), &["--base-share", &share]);
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    let mut data: Vec<u8> = (0..100 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fs::write(da.join("big.bin"), &data).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let at = 50 * 1024 * 1024;
    data[at] ^= 0xff;
    let t = Instant::now();
    eprintln!("EDIT at {:?}", std::time::SystemTime::now());
    fs::write(da.join("big.bin"), &data).unwrap();
    eprintln!("WRITTEN after {:?}", t.elapsed());
    loop {
        if let Ok(got) = fs::read(db.join("big.bin")) {
            if got[at] == data[at] { break; }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("ARRIVED after {:?} at {:?}", t.elapsed(), std::time::SystemTime::now());
    std::thread::sleep(Duration::from_secs(1));
    fs::copy(a.state.with_extension("log"), "/tmp/tl-a.log").unwrap();
    fs::copy(b.state.with_extension("log"), "/tmp/tl-b.log").unwrap();
}
