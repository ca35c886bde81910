//! QSync against rsync and Syncthing, measured in the same run on this machine (issue 9).
//!
//! `cargo bench --bench compare` (or `just bench-compare`) runs the full sizes and writes
//! `benches/results.md`; `QSYNC_BENCH_SCALE=smoke` runs tiny sizes (CI does, through
//! `tests/bench_smoke.rs`, so the harness cannot rot). Everything runs on loopback: two
//! QSync daemons with mDNS off, an rsync daemon (`rsync://127.0.0.1`), and two Syncthing
//! instances configured by `syncthing.rs` (discovery, relays and NAT off).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_docs
)]

#[path = "live.rs"]
mod live;
#[path = "../tests/support/node.rs"]
mod node;
#[path = "reuse.rs"]
mod reuse;
#[path = "syncthing.rs"]
mod syncthing;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::{link, tree, Node};
use syncthing::Syncthing;

#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub name: &'static str,
    pub big_files: usize,
    pub big_file_size: usize,
    pub small_files: usize,
    pub edit_file_size: usize,
    pub latency_rounds: usize,
    pub watched_files: usize,
    /// Files moved into a linked folder: of 1 MiB, of 4 KiB, of 1 KiB.
    pub live_big_files: usize,
    pub live_small_files: usize,
    pub live_tiny_files: usize,
    /// Files of 100 bytes in the folder `task add` maps (the scan row).
    pub scan_files: usize,
    /// Files of 1 MiB in the folder moved within a task (the reuse rows).
    pub moved_files: usize,
}

pub const FULL: Scale = Scale {
    name: "full",
    big_files: 1000,
    big_file_size: 1024 * 1024,
    small_files: 10_000,
    edit_file_size: 100 * 1024 * 1024,
    latency_rounds: 100,
    watched_files: 100_000,
    live_big_files: 1000,
    live_small_files: 10_000,
    live_tiny_files: 100_000,
    scan_files: 1_000_000,
    moved_files: 1000,
};

pub const SMOKE: Scale = Scale {
    name: "smoke",
    big_files: 20,
    big_file_size: 200 * 1024,
    small_files: 200,
    edit_file_size: 4 * 1024 * 1024,
    latency_rounds: 10,
    watched_files: 1000,
    live_big_files: 3,
    live_small_files: 20,
    live_tiny_files: 50,
    scan_files: 2_000,
    moved_files: 20,
};

#[derive(Default)]
pub struct Row {
    pub scenario: String,
    pub qsync: String,
    pub rsync: String,
    /// rsync with `--fsync`: as durable as QSync, which flushes what it receives before
    /// acknowledging it.
    pub rsync_fsync: String,
    pub syncthing: String,
    pub ratio: String,
    pub fsync_ratio: String,
    pub st_ratio: String,
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ratio(q: f64, r: f64) -> String {
    if r > 0.0 {
        format!("{:.2}", q / r)
    } else {
        "-".into()
    }
}

/// An rsync daemon on loopback with one writable module.
struct RsyncDaemon {
    child: Child,
    port: u16,
    dest: PathBuf,
}

impl RsyncDaemon {
    fn start(dir: &Path) -> RsyncDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dest = dir.join("rsync-dest");
        fs::create_dir_all(&dest).unwrap();
        let id = |flag: &str| {
            String::from_utf8(Command::new("id").arg(flag).output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_owned()
        };
        let conf = dir.join("rsyncd.conf");
        fs::write(
            &conf,
            format!(
                "port = {port}\naddress = 127.0.0.1\nuse chroot = no\nuid = {}\ngid = {}\npid file = {}\n[dst]\n  path = {}\n  read only = no\n",
                id("-u"),
                id("-g"),
                dir.join("rsyncd.pid").display(),
                dest.display()
            ),
        )
        .unwrap();
        let child = Command::new("rsync")
            .args([
                "--daemon",
                "--no-detach",
                &format!("--config={}", conf.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsync is installed (./scripts/bench-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rsync daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        RsyncDaemon { child, port, dest }
    }

    /// Push `src` into the module: (time, bytes on the wire).
    fn push(&self, src: &Path) -> (Duration, u64) {
        self.push_with(src, &[])
    }

    /// [`RsyncDaemon::push`] with more options for the client.
    fn push_with(&self, src: &Path, extra: &[&str]) -> (Duration, u64) {
        let t = Instant::now();
        let out = Command::new("rsync")
            .args(extra)
            .args([
                "-a",
                "--stats",
                &format!("{}/", src.display()),
                &format!("rsync://127.0.0.1:{}/dst/", self.port),
            ])
            .output()
            .unwrap();
        let elapsed = t.elapsed();
        assert!(
            out.status.success(),
            "rsync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let number = |label: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(label))
                .map(|l| l.chars().filter(char::is_ascii_digit).collect::<String>())
                .and_then(|d| d.parse().ok())
                .unwrap_or(0)
        };
        (
            elapsed,
            number("Total bytes sent:") + number("Total bytes received:"),
        )
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wire(node: &Node) -> u64 {
    node.status("wire_sent") + node.status("wire_received")
}

/// QSync: link a fresh pair on `src` and time the setup copy until B acknowledged everything.
fn qsync_initial(base: &Path, src: &Path) -> (Duration, u64, Node, Node, PathBuf) {
    qsync_initial_with(base, src, "bench", &[])
}

/// [`qsync_initial`] with daemons named `name-a`, `name-b` (and their copy in `name-dest`)
/// started with more arguments.
fn qsync_initial_with(
    base: &Path,
    src: &Path,
    name: &str,
    extra: &[&str],
) -> (Duration, u64, Node, Node, PathBuf) {
    let a = Node::start_args(base, &format!("{name}-a"), extra);
    let b = Node::start_args(base, &format!("{name}-b"), extra);
    let task = a.add_task(src);
    let dest = base.join(format!("{name}-dest"));
    let t = Instant::now();
    let linked = link(&a, &task, &b, &dest);
    let device = linked.split_whitespace().nth(1).unwrap().to_owned();
    while a.cli(&["pending", &device]) != "0" {
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t.elapsed();
    assert_eq!(tree(src), tree(&dest), "QSync copy differs");
    let bytes = wire(&a);
    (elapsed, bytes, a, b, dest)
}

fn initial_sync(rows: &mut Vec<Row>, label: String, files: usize, size: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..files {
        fs::write(
            src.join(format!("f{i:05}")),
            pseudo_random(size, i as u64 + 1),
        )
        .unwrap();
    }
    let rsync = RsyncDaemon::start(base.path());
    let (rt, _) = rsync.push(&src);
    assert_eq!(tree(&src), tree(&rsync.dest));
    let fsync_dir = base.path().join("rsync-fsync");
    fs::create_dir_all(&fsync_dir).unwrap();
    let rsync_fsync = RsyncDaemon::start(&fsync_dir);
    let (rft, _) = rsync_fsync.push_with(&src, &["--fsync"]);
    assert_eq!(tree(&src), tree(&rsync_fsync.dest));
    let qt = qsync_initial(base.path(), &src).0;
    if !peer_wanted("syncthing") {
        rows.push(Row {
            scenario: label,
            qsync: secs(qt),
            rsync: secs(rt),
            rsync_fsync: secs(rft),
            syncthing: "skipped".into(),
            ratio: ratio(qt.as_secs_f64(), rt.as_secs_f64()),
            fsync_ratio: ratio(qt.as_secs_f64(), rft.as_secs_f64()),
            st_ratio: "-".into(),
        });
        return;
    }
    // Syncthing: A scans its folder first (as `qsync task add` does before `link`), then B
    // starts and the clock runs until B has everything.
    let st_dest = base.path().join("st-dest");
    let (mut sa, mut sb) = Syncthing::pair(base.path(), &src, &st_dest);
    sa.start();
    sa.wait_complete(files as u64, Duration::from_secs(900));
    let t = Instant::now();
    sb.start();
    sb.wait_complete(files as u64, Duration::from_secs(900));
    let st = t.elapsed();
    assert_eq!(tree(&src), tree(&st_dest), "Syncthing copy differs");
    rows.push(Row {
        scenario: label,
        qsync: secs(qt),
        rsync: secs(rt),
        rsync_fsync: secs(rft),
        syncthing: secs(st),
        ratio: ratio(qt.as_secs_f64(), rt.as_secs_f64()),
        fsync_ratio: ratio(qt.as_secs_f64(), rft.as_secs_f64()),
        st_ratio: ratio(qt.as_secs_f64(), st.as_secs_f64()),
    });
}

fn one_byte_change(rows: &mut Vec<Row>, size: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = pseudo_random(size, 42);
    fs::write(src.join("big.bin"), &data).unwrap();
    let rsync = RsyncDaemon::start(base.path());
    rsync.push(&src);
    let fsync_dir = base.path().join("rsync-fsync");
    fs::create_dir_all(&fsync_dir).unwrap();
    let rsync_fsync = RsyncDaemon::start(&fsync_dir);
    rsync_fsync.push_with(&src, &["--fsync"]);
    let (qt, qbytes) = {
        let (_, _, a, _b, dest) = qsync_initial(base.path(), &src);
        std::thread::sleep(Duration::from_millis(500));
        let before = wire(&a);
        let qt = flip_and_wait(&src, &dest, &mut data, size / 2);
        std::thread::sleep(Duration::from_millis(300));
        (qt, wire(&a) - before)
    };
    let (rt, rbytes) = rsync.push(&src);
    let (rft, _) = rsync_fsync.push_with(&src, &["--fsync"]);
    // The same edit between daemons that keep no copies of past versions: it travels as a
    // patch made from the receiver's block signature (rsync's exchange).
    let (nt, nbytes) = {
        let (_, _, a, _b, dest) =
            qsync_initial_with(base.path(), &src, "nobase", &["--base-share", "0"]);
        std::thread::sleep(Duration::from_millis(500));
        let before = wire(&a);
        let nt = flip_and_wait(&src, &dest, &mut data, size / 2 + 2);
        std::thread::sleep(Duration::from_millis(300));
        (nt, wire(&a) - before)
    };
    let (rt2, rbytes2) = rsync.push(&src);
    let (rft2, _) = rsync_fsync.push_with(&src, &["--fsync"]);

    let st_dest = base.path().join("st-dest");
    let (mut sa, mut sb) = Syncthing::pair(base.path(), &src, &st_dest);
    sa.start();
    sa.wait_complete(1, Duration::from_secs(300));
    sb.start();
    sb.wait_complete(1, Duration::from_secs(300));
    std::thread::sleep(Duration::from_millis(1500));
    let before = sa.wire_bytes();
    let st = flip_and_wait(&src, &st_dest, &mut data, size / 2 + 1);
    sb.wait_complete(1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    let sbytes = sa.wire_bytes() - before;

    let mb = size / (1024 * 1024);
    rows.push(Row {
        scenario: format!(
            "1 byte changed in a {mb} MiB file: time from the end of the save (QSync reports a closed file after 20 ms quiet, Syncthing scans after 1 s)"
        ),
        qsync: secs(qt),
        rsync: secs(rt),
        rsync_fsync: secs(rft),
        syncthing: secs(st),
        ratio: ratio(qt.as_secs_f64(), rt.as_secs_f64()),
        fsync_ratio: ratio(qt.as_secs_f64(), rft.as_secs_f64()),
        st_ratio: ratio(qt.as_secs_f64(), st.as_secs_f64()),
    });
    rows.push(Row {
        scenario: format!("1 byte changed in a {mb} MiB file: bytes on the wire"),
        qsync: qbytes.to_string(),
        rsync: rbytes.to_string(),
        syncthing: sbytes.to_string(),
        ratio: ratio(qbytes as f64, rbytes as f64),
        st_ratio: ratio(qbytes as f64, sbytes as f64),
        ..Row::default()
    });
    rows.push(Row {
        scenario: format!(
            "1 byte changed in a {mb} MiB file whose base is not kept (--base-share 0): time"
        ),
        qsync: secs(nt),
        rsync: secs(rt2),
        rsync_fsync: secs(rft2),
        syncthing: secs(st),
        ratio: ratio(nt.as_secs_f64(), rt2.as_secs_f64()),
        fsync_ratio: ratio(nt.as_secs_f64(), rft2.as_secs_f64()),
        st_ratio: ratio(nt.as_secs_f64(), st.as_secs_f64()),
    });
    rows.push(Row {
        scenario: format!(
            "1 byte changed in a {mb} MiB file whose base is not kept (--base-share 0): bytes on the wire"
        ),
        qsync: nbytes.to_string(),
        rsync: rbytes2.to_string(),
        syncthing: sbytes.to_string(),
        ratio: ratio(nbytes as f64, rbytes2 as f64),
        st_ratio: ratio(nbytes as f64, sbytes as f64),
        ..Row::default()
    });
}

/// Flip the byte at `at` in `data`, write it to `src/big.bin`, and time until `dest/big.bin`
/// has it. Only that byte is read each time (reading the whole file every few ms made the
/// look itself a tenth of a second late); a sync tool puts a file in place whole, by
/// rename, so a file with the new byte is the new file. The time starts once the file is
/// written (100 MiB take 0.3 s to write here), as rsync's starts when it is run after the
/// save.
fn flip_and_wait(src: &Path, dest: &Path, data: &mut [u8], at: usize) -> Duration {
    use std::os::unix::fs::FileExt;
    data[at] ^= 0xff;
    fs::write(src.join("big.bin"), &*data).unwrap();
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(file) = fs::File::open(dest.join("big.bin")) {
            let mut byte = [0u8];
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len == data.len() as u64
                && file.read_at(&mut byte, at as u64).is_ok()
                && byte[0] == data[at]
            {
                return t.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "the change was not delivered");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn latency(rows: &mut Vec<Row>, rounds: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("note.txt"), "0").unwrap();
    let (q50, q99) = {
        let (_, _, _a, _b, dest) = qsync_initial(base.path(), &src);
        edit_latency(&src, &dest, rounds)
    };
    let st_dest = base.path().join("st-dest");
    let (mut sa, mut sb) = Syncthing::pair(base.path(), &src, &st_dest);
    sa.start();
    sa.wait_complete(1, Duration::from_secs(60));
    sb.start();
    sb.wait_complete(1, Duration::from_secs(60));
    let (s50, s99) = edit_latency(&src, &st_dest, rounds);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    rows.push(Row {
        scenario: format!("change-to-remote latency, small file, {rounds} changes: p50 / p99"),
        qsync: format!("{:.0} / {:.0} ms", ms(q50), ms(q99)),
        rsync: "n/a (not live)".into(),
        syncthing: format!("{:.0} / {:.0} ms", ms(s50), ms(s99)),
        ratio: "-".into(),
        st_ratio: format!("{} / {}", ratio(ms(q50), ms(s50)), ratio(ms(q99), ms(s99))),
        ..Row::default()
    });
}

/// Write `rounds` changes to `src/note.txt`; the p50 and p99 of the time each took to show in
/// `dest`.
fn edit_latency(src: &Path, dest: &Path, rounds: usize) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(rounds);
    for i in 1..=rounds {
        let text = format!("change {i}");
        let t = Instant::now();
        fs::write(src.join("note.txt"), &text).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while fs::read_to_string(dest.join("note.txt")).ok().as_deref() != Some(text.as_str()) {
            assert!(Instant::now() < deadline, "change {i} never arrived");
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    samples.sort();
    let pick =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (pick(0.5), pick(0.99))
}

/// `files` files in `src`, a thousand per folder, file `i` holding `content(i)`.
fn many_files(src: &Path, files: usize, content: impl Fn(usize) -> Vec<u8>) {
    for i in 0..files {
        let dir = src.join(format!("d{}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        fs::write(dir.join(format!("f{i}")), content(i)).unwrap();
    }
}

fn peak_rss(rows: &mut Vec<Row>, files: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    many_files(&src, files, |i| i.to_string().into_bytes());
    let q = {
        let node = Node::start(base.path(), "rss");
        node.add_task(&src);
        std::thread::sleep(Duration::from_secs(1));
        peak_kib(node.pid().unwrap())
    };
    let (mut sa, _sb) = Syncthing::pair(base.path(), &src, &base.path().join("st-unused"));
    sa.start();
    sa.wait_complete(files as u64, Duration::from_secs(900));
    std::thread::sleep(Duration::from_secs(1));
    // `syncthing serve` runs a small monitor process and the worker as its child: count
    // the worker, the larger one.
    let s = children(sa.pid())
        .into_iter()
        .chain([sa.pid()])
        .map(peak_kib)
        .max()
        .unwrap_or(0);
    rows.push(Row {
        scenario: format!("daemon peak RSS watching {files} files (after the first scan)"),
        qsync: format!("{} MiB", q / 1024),
        rsync: "n/a (no daemon)".into(),
        syncthing: format!("{} MiB", s / 1024),
        ratio: "-".into(),
        st_ratio: ratio(q as f64, s as f64),
        ..Row::default()
    });
}

/// `task add` of a folder of `files` files of 100 bytes: how long until it answers, the
/// daemon's peak RSS, and the slowest `status` answer meanwhile (the daemon must keep
/// answering during a scan).
fn scan(rows: &mut Vec<Row>, files: usize) {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    many_files(&src, files, |i| pseudo_random(100, i as u64 + 1));
    let node = Node::start(base.path(), "scan");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (took, slowest) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut slowest = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                node.cli(&["status"]);
                slowest = slowest.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(200));
            }
            slowest
        });
        let t = Instant::now();
        node.add_task(&src);
        let took = t.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (took, watcher.join().unwrap())
    });
    let peak = peak_kib(node.pid().unwrap());
    rows.push(Row {
        scenario: format!(
            "task add of {files} files of 100 B (slowest status answer meanwhile: {} ms)",
            slowest.as_millis()
        ),
        qsync: format!("{}, peak RSS {} MiB", secs(took), peak / 1024),
        rsync: "n/a".into(),
        syncthing: "-".into(),
        ratio: "-".into(),
        st_ratio: "-".into(),
        ..Row::default()
    });
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let parent = format!("PPid:\t{pid}");
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| {
                    fs::read_to_string(format!("/proc/{p}/status"))
                        .is_ok_and(|s| s.lines().any(|l| l == parent))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A process's peak resident set (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Whether `peer` runs (`QSYNC_BENCH_PEERS=rsync` leaves Syncthing out of the initial
/// syncs, for quick rounds while profiling; the default runs every peer).
fn peer_wanted(peer: &str) -> bool {
    std::env::var("QSYNC_BENCH_PEERS").map_or(true, |p| p.split(',').any(|o| o == peer))
}

/// The live rows `wanted` picks (`live`: the 1 MiB and 4 KiB rows; `live-big`,
/// `live-small`, `live-tiny`: one each), each a first drop on a new pair and a second one.
fn live_rows(rows: &mut Vec<Row>, scale: Scale, wanted: &dyn Fn(&str) -> bool) {
    let sizes = [
        ("live-big", scale.live_big_files, 1024 * 1024, "1 MiB"),
        ("live-small", scale.live_small_files, 4096, "4 KiB"),
        ("live-tiny", scale.live_tiny_files, 1024, "1 KiB"),
    ];
    for (name, files, size, said) in sizes {
        if wanted(name) || (wanted("live") && name != "live-tiny") {
            live::moved_in(
                rows,
                format!("{files} × {said} moved into a linked folder"),
                files,
                size,
            );
        }
    }
}

/// Run the scenarios; `QSYNC_BENCH_ONLY=big,small,live,live-tiny,edit,latency,rss` picks
/// some of them (`live-big`, `live-small`: one of the two `live` rows).
pub fn run(scale: Scale) -> Vec<Row> {
    let only = std::env::var("QSYNC_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let mut rows = Vec::new();
    if wanted("big") {
        let total = scale.big_files * scale.big_file_size;
        initial_sync(
            &mut rows,
            format!(
                "initial sync of {} MiB in {} files",
                total / (1024 * 1024),
                scale.big_files
            ),
            scale.big_files,
            scale.big_file_size,
        );
    }
    if wanted("small") {
        initial_sync(
            &mut rows,
            format!("initial sync of {} files of 4 KiB", scale.small_files),
            scale.small_files,
            4096,
        );
    }
    if wanted("edit") {
        one_byte_change(&mut rows, scale.edit_file_size);
    }
    // `QSYNC_BENCH_RUNS=3` runs each live row three times (the disk here varies by 2–3×
    // between runs: quote ratios within a run).
    let runs: usize = std::env::var("QSYNC_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for _ in 0..runs {
        live_rows(&mut rows, scale, &wanted);
    }
    if wanted("reuse") {
        reuse::held_already(&mut rows, scale.edit_file_size, scale.moved_files);
    }
    if wanted("latency") {
        latency(&mut rows, scale.latency_rounds);
    }
    if wanted("rss") {
        peak_rss(&mut rows, scale.watched_files);
    }
    if wanted("scan") {
        scan(&mut rows, scale.scan_files);
    }
    rows
}

pub fn table(scale: Scale, rows: &[Row]) -> String {
    let mut out = String::new();
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(|l| l
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")))
            .unwrap_or_default()
    );
    let date = String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let rsync = String::from_utf8(
        Command::new("rsync")
            .arg("--version")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let _ = writeln!(
        out,
        "# QSync vs rsync and Syncthing ({} scale)\n",
        scale.name
    );
    let _ = writeln!(
        out,
        "{} on {machine}; {}; {}; QSync debug={}.\n",
        date.trim(),
        rsync.lines().next().unwrap_or("rsync ?"),
        syncthing::version(),
        cfg!(debug_assertions)
    );
    let _ = writeln!(out, "| scenario | QSync | rsync (daemon on loopback) | rsync --fsync | Syncthing (two instances on loopback) | QSync/rsync | QSync/rsync --fsync | QSync/Syncthing |\n| --- | --- | --- | --- | --- | --- | --- | --- |");
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.qsync,
            r.rsync,
            or_dash(&r.rsync_fsync),
            r.syncthing,
            r.ratio,
            or_dash(&r.fsync_ratio),
            r.st_ratio
        );
    }
    out
}

fn main() {
    let scale = match std::env::var("QSYNC_BENCH_SCALE").as_deref() {
        Ok("smoke") => SMOKE,
        _ => FULL,
    };
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = run(scale);
    let text = table(scale, &rows);
    println!("{text}");
    let partial = std::env::var("QSYNC_BENCH_ONLY").is_ok() || !peer_wanted("syncthing");
    if scale.name == "full" && !partial {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results.md");
        // Notes written by hand below the table (from the first `## ` heading) are kept.
        let old = fs::read_to_string(&path).unwrap_or_default();
        let notes = old.find("\n## ").map_or("", |at| &old[at..]);
        fs::write(&path, format!("{text}{notes}")).unwrap();
        println!("written to {}", path.display());
    }
}
