//! Bytes a device has do not travel again (issue #35): on a pair already linked and in
//! step, a 100 MiB file renamed, a copy of it made, and a folder of 1 MiB files moved
//! within the task; the clock stops when the other device's folder shows the change
//! whole. Each row gives the time and the bytes on the wire. rsync runs `-a --delete`
//! (plain and `--fsync`) after the same change on the same data: it has no rename, and
//! sends what is new at a path whole (`--fuzzy` would find a basis in the same folder).
//! Syncthing runs on a pair of instances in step, after the same change (its bytes are
//! what its connections carried both ways, halved as QSync's are).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::node::tree;
use super::syncthing::Syncthing;
use super::{pseudo_random, qsync_initial, ratio, secs, wire, Row, RsyncDaemon};

/// The folder every row starts from: a file of `big` bytes, and `files` files of 1 MiB.
#[derive(Clone, Copy)]
struct Shape {
    big: usize,
    files: usize,
}

/// A change on the source folder, and how to know the copy shows it.
struct Change {
    label: String,
    /// Make it in `src`.
    make: fn(&Path, Shape),
    /// Whether `dest` shows it (cheap: names and sizes, no hashing).
    done: fn(&Path, Shape) -> bool,
}

impl Change {
    /// Make the change in `src`; how long until `dest` shows it.
    fn timed(&self, src: &Path, dest: &Path, shape: Shape) -> Duration {
        let t = Instant::now();
        (self.make)(src, shape);
        while !(self.done)(dest, shape) {
            assert!(t.elapsed() < Duration::from_secs(600), "never arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
        t.elapsed()
    }
}

/// The size of a file, 0 when missing.
fn size_of(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

fn rename_big(src: &Path, _: Shape) {
    fs::rename(src.join("big.bin"), src.join("big-renamed.bin")).unwrap();
}

fn renamed(dest: &Path, shape: Shape) -> bool {
    size_of(&dest.join("big-renamed.bin")) == shape.big as u64 && !dest.join("big.bin").exists()
}

fn copy_big(src: &Path, _: Shape) {
    fs::copy(src.join("big.bin"), src.join("big-copy.bin")).unwrap();
}

fn copied(dest: &Path, shape: Shape) -> bool {
    size_of(&dest.join("big-copy.bin")) == shape.big as u64
}

fn move_folder(src: &Path, _: Shape) {
    fs::rename(src.join("photos"), src.join("archive/photos")).unwrap();
}

fn moved(dest: &Path, shape: Shape) -> bool {
    // (Not QSync's temporary files: a file being placed has its full length before it is
    // renamed into place, and counting those ended the wait early.)
    let count = fs::read_dir(dest.join("archive/photos")).map_or(0, |d| {
        d.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.metadata().is_ok_and(|m| m.len() == 1 << 20))
            .count()
    });
    count == shape.files && !dest.join("photos").exists()
}

/// Make the folder of `shape` at `src`.
fn prepare(src: &Path, shape: Shape) {
    fs::create_dir_all(src.join("photos")).unwrap();
    fs::create_dir_all(src.join("archive")).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(shape.big, 35)).unwrap();
    for i in 0..shape.files {
        let data = pseudo_random(1 << 20, 3500 + i as u64);
        fs::write(src.join(format!("photos/p{i:05}.jpg")), data).unwrap();
    }
}

/// One row: QSync on a linked pair, then rsync, for `change`.
fn row(rows: &mut Vec<Row>, change: &Change, shape: Shape) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    prepare(&src, shape);
    let (qt, qbytes) = {
        let (_, _, a, b, dest) = qsync_initial(base.path(), &src);
        std::thread::sleep(Duration::from_secs(2)); // the keepers keep their bases
        let before = wire(&a) + wire(&b);
        let took = change.timed(&src, &dest, shape);
        assert_eq!(tree(&src), tree(&dest), "QSync copy differs");
        (took, (wire(&a) + wire(&b) - before) / 2)
    };
    fs::remove_dir_all(&src).unwrap();
    prepare(&src, shape);
    let rsync = RsyncDaemon::start(base.path());
    rsync.push_with(&src, &["--delete"]);
    let fsync_dir = base.path().join("rsync-fsync");
    fs::create_dir_all(&fsync_dir).unwrap();
    let rsync_fsync = RsyncDaemon::start(&fsync_dir);
    rsync_fsync.push_with(&src, &["--delete", "--fsync"]);
    (change.make)(&src, shape);
    let (rt, rbytes) = rsync.push_with(&src, &["--delete"]);
    let (rft, _) = rsync_fsync.push_with(&src, &["--delete", "--fsync"]);
    let (syncthing, st_ratio) = match super::peer_wanted("syncthing") {
        true => {
            let (st, sbytes) = syncthing_leg(base.path(), change, shape);
            let ratio = ratio(qt.as_secs_f64(), st.as_secs_f64());
            (format!("{} ({sbytes} bytes)", secs(st)), ratio)
        }
        false => ("skipped".into(), "-".into()),
    };
    rows.push(Row {
        scenario: change.label.clone(),
        qsync: format!("{} ({qbytes} bytes)", secs(qt)),
        rsync: format!("{} ({rbytes} bytes)", secs(rt)),
        rsync_fsync: secs(rft),
        syncthing,
        ratio: ratio(qt.as_secs_f64(), rt.as_secs_f64()),
        fsync_ratio: ratio(qt.as_secs_f64(), rft.as_secs_f64()),
        st_ratio,
    });
}

/// How many files are at or under `dir` (Syncthing counts files, not folders).
fn files_in(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".stfolder")
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => files_in(&e.path()),
            false => 1,
        })
        .sum()
}

/// Syncthing's time and bytes for `change`, on a pair of instances in step.
fn syncthing_leg(base: &Path, change: &Change, shape: Shape) -> (Duration, u64) {
    let (src, dest) = (base.join("st-src"), base.join("st-dest"));
    prepare(&src, shape);
    fs::create_dir_all(&dest).unwrap();
    let (mut sa, mut sb) = Syncthing::pair(base, &src, &dest);
    let files = files_in(&src);
    sa.start();
    sa.wait_complete(files, Duration::from_secs(300));
    sb.start();
    sb.wait_complete(files, Duration::from_secs(600));
    std::thread::sleep(Duration::from_secs(2));
    let before = sa.wire_bytes() + sb.wire_bytes();
    let took = change.timed(&src, &dest, shape);
    let files = files_in(&src);
    sb.wait_complete(files, Duration::from_secs(120));
    sa.wait_complete(files, Duration::from_secs(120));
    (took, (sa.wire_bytes() + sb.wire_bytes() - before) / 2)
}

/// The three rows: a file of `big` bytes renamed and copied, a folder of `files` files of
/// 1 MiB moved.
pub fn held_already(rows: &mut Vec<Row>, big: usize, files: usize) {
    let shape = Shape { big, files };
    let mib = big >> 20;
    let changes = [
        Change {
            label: format!("rename of a {mib} MiB file (linked pair)"),
            make: rename_big,
            done: renamed,
        },
        Change {
            label: format!("copy of a {mib} MiB synced file (linked pair)"),
            make: copy_big,
            done: copied,
        },
        Change {
            label: format!("folder of {files} × 1 MiB moved within the task"),
            make: move_folder,
            done: moved,
        },
    ];
    for change in &changes {
        row(rows, change, shape);
    }
}
