//! The live path, as people use it (issue #18): two devices already linked, a folder of
//! new files moved into the synced folder, the clock running until the other device's
//! copy holds every file whole. rsync has no live path: its time is one `rsync -a` of
//! the folder after the move (the older file already there), plain and with `--fsync`.
//! Syncthing runs its own watcher (`fsWatcherDelayS=1`, favourable to it).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::node::{tree, Node};
use super::syncthing::Syncthing;
use super::{peak_kib, pseudo_random, qsync_initial, ratio, secs, Row, RsyncDaemon};

/// How many files `dir` holds and their bytes in all (QSync and Syncthing rename each
/// file into place whole, so the total size reached means done).
fn filled(dir: &Path) -> (usize, u64) {
    let Ok(entries) = fs::read_dir(dir) else {
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

/// How many files `dir` holds, by name only: one `getdents` pass, no `stat` (the kind
/// comes with the name on ext4).
fn named(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
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

/// The seed of the contents of the drop into `name`: each drop's files are new contents,
/// never those of another drop (file `i` of a drop is `pseudo_random(size, seed + i)`).
fn drop_seed(name: &str) -> u64 {
    7 + name.len() as u64 * 1_000_003
}

/// The CPU seconds (user and system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which ends at the last ')': state is the
    // first, utime the 12th and stime the 13th; both in clock ticks (100 per second).
    let after = stat.rfind(')').map_or("", |at| &stat[at + 1..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Start a new peak for `pid`'s resident set (writing 5 to `clear_refs` sets VmHWM to the
/// resident set now), so a drop's peak is its own.
fn reset_peak(pid: u32) {
    let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// What one drop into a linked folder cost.
struct Dropped {
    took: Duration,
    /// Files whole on the other device one second after the move.
    first_second: usize,
    /// CPU seconds of both daemons per GiB moved in, from the move until their blobs
    /// settled (the keeper's work after the transfer counted).
    cpu_per_gib: f64,
    /// The receiving daemon's peak resident set during the drop, in MiB.
    receiver_mib: u64,
    /// The disk the bases of patches take on both devices once kept, against the data.
    bases: f64,
}

/// `files` new files of `size` bytes moved with one `rename(2)` into `src/name`, on a
/// pair of QSync daemons already linked (`a` holds `src`, `b` holds `dest`).
#[allow(clippy::too_many_arguments)]
fn qsync_drop(
    base: &Path,
    src: &Path,
    dest: &Path,
    a: &Node,
    b: &Node,
    name: &str,
    files: usize,
    size: usize,
) -> Dropped {
    let incoming = base.join(format!("incoming-{name}"));
    prepare(&incoming, files, size, drop_seed(name));
    let (pa, pb) = (a.pid().unwrap(), b.pid().unwrap());
    let cpu = || cpu_secs(pa) + cpu_secs(pb);
    let blobs = || du(&a.state.join("blobs")) + du(&b.state.join("blobs"));
    reset_peak(pb);
    let (cpu_before, blobs_before) = (cpu(), blobs());
    let t = Instant::now();
    fs::rename(&incoming, src.join(name)).unwrap();
    let (took, first_second) = wait_filled(&dest.join(name), files, size, t);
    assert_eq!(tree(&src.join(name)), tree(&dest.join(name)));
    // The keeper works after the transfer: wait for the blobs to settle.
    let mut last = (blobs(), Instant::now());
    while last.1.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(100));
        let now = blobs();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let gib = (files * size) as f64 / (1u64 << 30) as f64;
    Dropped {
        took,
        first_second,
        cpu_per_gib: (cpu() - cpu_before) / gib,
        receiver_mib: peak_kib(pb) / 1024,
        bases: last.0.saturating_sub(blobs_before) as f64 / (2 * files * size) as f64,
    }
}

/// `files` files of `size` bytes moved into a folder already linked: twice, as two rows,
/// the first drop on a pair of daemons just started and linked, then a second drop of as
/// many new files on the same pair.
pub fn moved_in(rows: &mut Vec<Row>, label: String, files: usize, size: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("already-there.txt"), "linked before").unwrap();
    let drops = ["batch", "batch2"];

    // QSync: linked first, then the folders are moved in, one after the other.
    let qsync: Vec<Dropped> = {
        let (_, _, a, b, dest) = qsync_initial(base.path(), &src);
        drops
            .iter()
            .map(|name| qsync_drop(base.path(), &src, &dest, &a, &b, name, files, size))
            .collect()
    };
    for name in drops {
        fs::remove_dir_all(src.join(name)).unwrap();
    }

    // rsync: the folder as it was synced before, then one run after each move.
    let rsync = RsyncDaemon::start(base.path());
    rsync.push(&src);
    let fsync_dir = base.path().join("rsync-fsync");
    fs::create_dir_all(&fsync_dir).unwrap();
    let rsync_fsync = RsyncDaemon::start(&fsync_dir);
    rsync_fsync.push_with(&src, &["--fsync"]);
    let rsynced: Vec<(Duration, Duration)> = drops
        .iter()
        .map(|name| {
            let incoming = base.path().join(format!("incoming-r{name}"));
            prepare(&incoming, files, size, drop_seed(name));
            fs::rename(&incoming, src.join(name)).unwrap();
            let (rt, _) = rsync.push(&src);
            let (rft, _) = rsync_fsync.push_with(&src, &["--fsync"]);
            assert_eq!(tree(&src), tree(&rsync.dest));
            (rt, rft)
        })
        .collect();
    for name in drops {
        fs::remove_dir_all(src.join(name)).unwrap();
    }

    let synced: Vec<Option<Duration>> = if super::peer_wanted("syncthing") {
        let st_dest = base.path().join("st-dest");
        let (mut sa, mut sb) = Syncthing::pair(base.path(), &src, &st_dest);
        sa.start();
        sa.wait_complete(1, Duration::from_secs(120));
        sb.start();
        sb.wait_complete(1, Duration::from_secs(120));
        drops
            .iter()
            .map(|name| {
                let incoming = base.path().join(format!("incoming-s{name}"));
                prepare(&incoming, files, size, drop_seed(name));
                let t = Instant::now();
                fs::rename(&incoming, src.join(name)).unwrap();
                let (st, _) = wait_filled(&st_dest.join(name), files, size, t);
                assert_eq!(tree(&src.join(name)), tree(&st_dest.join(name)));
                Some(st)
            })
            .collect()
    } else {
        vec![None; drops.len()]
    };

    let kinds = ["first drop after start", "second drop"];
    for (i, kind) in kinds.iter().enumerate() {
        let q = &qsync[i];
        let (rt, rft) = rsynced[i];
        let qt = q.took.as_secs_f64();
        rows.push(Row {
            scenario: format!("{label}, {kind}"),
            qsync: format!(
                "{} ({} after 1 s; {:.1} CPU-s/GiB; receiver peak {} MiB; bases {:.2}× the data)",
                secs(q.took),
                q.first_second,
                q.cpu_per_gib,
                q.receiver_mib,
                q.bases
            ),
            rsync: secs(rt),
            rsync_fsync: secs(rft),
            syncthing: synced[i].map_or("skipped".into(), secs),
            ratio: ratio(qt, rt.as_secs_f64()),
            fsync_ratio: ratio(qt, rft.as_secs_f64()),
            st_ratio: synced[i].map_or("-".into(), |st| ratio(qt, st.as_secs_f64())),
        });
    }
}
