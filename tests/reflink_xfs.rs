//! Bases as reflinks: with the task folders and the state folders on an XFS file system
//! with reflinks (made here on a loop device: needs root, `mkfs.xfs` and loop devices; the
//! test says so and is skipped without them), the copies kept as bases of patches cost no
//! disk, and edits still travel as small patches from them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use node::{link, wait_same, Node};

/// An XFS file system with reflinks, mounted on a loop device for the test's length.
struct Xfs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl Xfs {
    fn make(test: &str) -> Option<Xfs> {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("xfs.img");
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount).unwrap();
        let run = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    o.status
                        .success()
                        .then_some(())
                        .ok_or_else(|| String::from_utf8_lossy(&o.stderr).trim().to_owned())
                })
        };
        let image_s = image.to_str().unwrap();
        let made = run("truncate", &["-s", "1G", image_s])
            .and_then(|()| run("mkfs.xfs", &["-q", "-m", "reflink=1", image_s]))
            .and_then(|()| run("mount", &["-o", "loop", image_s, mount.to_str().unwrap()]));
        match made {
            Ok(()) => Some(Xfs { mount, _dir: dir }),
            Err(why) => {
                eprintln!("{test}: skipped, no XFS file system could be made here ({why}); it needs root, xfsprogs and loop devices");
                None
            }
        }
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn used_bytes(path: &Path) -> u64 {
    let vfs = rustix::fs::statvfs(path).unwrap();
    (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
}

#[test]
fn bases_are_reflinks_and_cost_no_disk() {
    let Some(xfs) = Xfs::make("bases_are_reflinks_and_cost_no_disk") else {
        return;
    };
    let root = &xfs.mount;
    let (da, db) = (root.join("A"), root.join("B"));
    fs::create_dir_all(&da).unwrap();
    let size = 4 * 1024 * 1024u32;
    let mut files: Vec<Vec<u8>> = (0..8u32)
        .map(|f| {
            let mut x = (u64::from(f) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 32) as u8
                })
                .collect()
        })
        .collect();
    for (i, data) in files.iter().enumerate() {
        fs::write(da.join(format!("f{i}.bin")), data).unwrap();
    }
    let data = u64::from(size) * files.len() as u64;
    let a = Node::start(root, "alpha");
    let b = Node::start(root, "beta");
    let before = used_bytes(root);
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, Duration::from_secs(60));
    // Quiet for a while: both keepers keep their bases.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        (a.blob_count(), b.blob_count()),
        (8, 8),
        "a base for every file"
    );
    let grown = used_bytes(root) - before;
    // B's copy of the data, plus the ledgers; bases as copies would make it three times.
    eprintln!(
        "disk used grew by {grown} bytes for {data} bytes synced ({:.2}x)",
        grown as f64 / data as f64
    );
    assert!(
        grown < data + data / 4,
        "disk grew by {grown} bytes for {data} bytes of data: the bases were copied"
    );

    // An edit travels as a small patch from the reflinked base.
    let wire = || a.status("wire_sent") + b.status("wire_sent");
    let sent_before = wire();
    files[3][1_000_000] ^= 0xff;
    fs::write(da.join("f3.bin"), &files[3]).unwrap();
    wait_same(&da, &db, Duration::from_secs(60));
    let sent = wire() - sent_before;
    assert!(sent < 16 * 1024, "{sent} bytes for a 1-byte edit");
    // The new version's base replaces the old one's (which, no longer shared with the
    // file, would cost its whole size).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        (a.blob_count(), b.blob_count()),
        (8, 8),
        "one base per file after the edit"
    );
}

/// A copy of a synced file made on one device is made on the other from what it holds,
/// as a reflink: nothing travels, and the disk does not grow by the file's size.
#[test]
fn a_copy_made_on_one_device_is_a_reflink_on_the_other() {
    let Some(xfs) = Xfs::make("a_copy_made_on_one_device_is_a_reflink_on_the_other") else {
        return;
    };
    let root = &xfs.mount;
    let (da, db) = (root.join("A"), root.join("B"));
    fs::create_dir_all(&da).unwrap();
    let size = 32 << 20;
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    fs::write(da.join("film.bin"), &data).unwrap();
    let a = Node::start(root, "alpha");
    let b = Node::start(root, "beta");
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let (disk, wire) = (used_bytes(root), b.status("wire_received"));
    // A copy on A (itself a reflink: `cp --reflink`, `copy_file_range`).
    let ok = Command::new("cp")
        .args(["--reflink=always"])
        .arg(da.join("film.bin"))
        .arg(da.join("film-copy.bin"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cp --reflink");
    wait_same(&da, &db, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let (grown, came) = (
        used_bytes(root).saturating_sub(disk),
        b.status("wire_received") - wire,
    );
    eprintln!("a copy of {size} bytes: {came} bytes in, the disk grew by {grown} bytes");
    assert!(came <= 4096, "{came} bytes came in for a copy");
    assert!(grown < size as u64 / 4, "the disk grew by {grown} bytes");
}
