//! The live path, as people use it (issue #18): two devices already linked, a folder of
//! new files moved into the synced folder, the clock running until the other device's
//! copy holds every file whole. rsync has no live path: its time is one `rsync -a` of
//! the folder after the move (the older file already there), plain and with `--fsync`.
//! Syncthing runs its own watcher (`fsWatcherDelayS=1`, favourable to it).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::node::tree;
use super::syncthing::Syncthing;
use super::{pseudo_random, qsync_initial, ratio, secs, Row, RsyncDaemon};

/// How many files `dir/batch` holds and their bytes in all (QSync and Syncthing rename
/// each file into place whole, so the total size reached means done).
fn filled(dir: &Path) -> (usize, u64) {
    let Ok(entries) = fs::read_dir(dir.join("batch")) else {
        return (0, 0);
    };
    let mut count = 0;
    let mut bytes = 0;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(meta) = entry.metadata() {
            if meta.is_file() {
                count += 1;
                bytes += meta.len();
            }
        }
    }
    (count, bytes)
}

/// The bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => du(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Fill `dir` (outside any synced folder) with `files` files of `size` bytes.
fn prepare(dir: &Path, files: usize, size: usize, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("f{i:06}")),
            pseudo_random(size, seed + i as u64),
        )
        .unwrap();
    }
}

/// How many files `dir/batch` holds, by name only: one `getdents` pass, no `stat` (the
/// kind comes with the name on ext4).
fn named(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir.join("batch")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .count()
}

/// Wait until `dest/batch` has every file whole; the time since `t`, and how many files
/// had arrived one second after it.
///
/// The harness shares the 2 cores with the daemons it times. Looking at 100,000 files
/// with a `stat` each every 10 ms took a third of the machine (perf, the 100k row): so
/// files are counted by name, sizes are read only once the count is reached, and the
/// harness sleeps at least four times as long as its last look took.
fn wait_filled(dest: &Path, files: usize, size: usize, t: Instant) -> (Duration, usize) {
    let total = (files * size) as u64;
    let deadline = t + Duration::from_secs(1800);
    let mut after_one = None;
    loop {
        let looked = Instant::now();
        let count = named(dest);
        if after_one.is_none() && t.elapsed() >= Duration::from_secs(1) {
            after_one = Some(count);
        }
        if count == files && filled(dest) == (files, total) {
            return (t.elapsed(), after_one.unwrap_or(count));
        }
        assert!(
            Instant::now() < deadline,
            "the moved-in files never all arrived"
        );
        std::thread::sleep((looked.elapsed() * 4).max(Duration::from_millis(10)));
    }
}

/// `files` files of `size` bytes moved into a folder already linked.
pub fn moved_in(rows: &mut Vec<Row>, label: String, files: usize, size: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("already-there.txt"), "linked before").unwrap();

    // QSync: linked first, then the folder is moved in.
    let (qt, first_second, bases) = {
        let (_, _, a, b, dest) = qsync_initial(base.path(), &src);
        prepare(&base.path().join("incoming-q"), files, size, 7);
        let t = Instant::now();
        fs::rename(base.path().join("incoming-q"), src.join("batch")).unwrap();
        let (qt, first_second) = wait_filled(&dest, files, size, t);
        assert_eq!(tree(&src.join("batch")), tree(&dest.join("batch")));
        // The disk the bases of patches take on both devices once kept (the keeper works
        // after the transfer), against the data moved in on both.
        let blobs = || du(&a.state.join("blobs")) + du(&b.state.join("blobs"));
        let mut last = (blobs(), Instant::now());
        while last.1.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(100));
            let now = blobs();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        let bases = last.0 as f64 / (2 * files * size) as f64;
        (qt, first_second, bases)
    };
    fs::remove_dir_all(src.join("batch")).unwrap();

    // rsync: the folder as it was synced before, then one run after the move.
    let rsync = RsyncDaemon::start(base.path());
    rsync.push(&src);
    let fsync_dir = base.path().join("rsync-fsync");
    fs::create_dir_all(&fsync_dir).unwrap();
    let rsync_fsync = RsyncDaemon::start(&fsync_dir);
    rsync_fsync.push_with(&src, &["--fsync"]);
    prepare(&base.path().join("incoming-r"), files, size, 7);
    fs::rename(base.path().join("incoming-r"), src.join("batch")).unwrap();
    let (rt, _) = rsync.push(&src);
    let (rft, _) = rsync_fsync.push_with(&src, &["--fsync"]);
    assert_eq!(tree(&src), tree(&rsync.dest));
    fs::remove_dir_all(src.join("batch")).unwrap();

    let (syncthing, st_ratio) = if super::peer_wanted("syncthing") {
        let st_dest = base.path().join("st-dest");
        let (mut sa, mut sb) = Syncthing::pair(base.path(), &src, &st_dest);
        sa.start();
        sa.wait_complete(1, Duration::from_secs(120));
        sb.start();
        sb.wait_complete(1, Duration::from_secs(120));
        prepare(&base.path().join("incoming-s"), files, size, 7);
        let t = Instant::now();
        fs::rename(base.path().join("incoming-s"), src.join("batch")).unwrap();
        let (st, _) = wait_filled(&st_dest, files, size, t);
        assert_eq!(tree(&src.join("batch")), tree(&st_dest.join("batch")));
        (secs(st), ratio(qt.as_secs_f64(), st.as_secs_f64()))
    } else {
        ("skipped".into(), "-".into())
    };
    rows.push(Row {
        scenario: label,
        qsync: format!(
            "{} ({first_second} after 1 s; bases {bases:.2}× the data)",
            secs(qt)
        ),
        rsync: secs(rt),
        rsync_fsync: secs(rft),
        syncthing,
        ratio: ratio(qt.as_secs_f64(), rt.as_secs_f64()),
        fsync_ratio: ratio(qt.as_secs_f64(), rft.as_secs_f64()),
        st_ratio,
    });
}
