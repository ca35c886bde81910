//! Peak memory on a 1 GiB file: encode_file + apply_file must stay within 2 × window
//! whatever the file size (issue 3's goal). Not run by CI:
//! `cargo bench -p qsync-delta --bench bigfile` (QSYNC_BIGFILE_MIB to change the size).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use qsync_delta::{apply_file, encode_blocks, encode_file, Delta, Encoded, Options, Signature};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.chars().filter(char::is_ascii_digit).collect::<String>())
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("QSYNC_BIGFILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/tmp".into())).unwrap();
    let (old, new, out) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("out"),
    );
    // Write both versions 1 MiB at a time: pseudo-random content, with an edit every 64 MiB
    // in the new one, and 4 KiB inserted in the middle.
    let mut seed = 7u64;
    let mut wo = BufWriter::new(File::create(&old).unwrap());
    let mut wn = BufWriter::new(File::create(&new).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib {
        for chunk in block.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        wo.write_all(&block).unwrap();
        if i % 64 == 10 {
            block[1000..1100].fill(0xee);
        }
        if i == mib / 2 {
            wn.write_all(&[0x42; 4096]).unwrap();
        }
        wn.write_all(&block).unwrap();
    }
    drop((wo, wn));
    let options = Options::default();
    let before = peak_rss_kib();

    let t = Instant::now();
    let mut patch = BufWriter::new(File::create(dir.path().join("patch")).unwrap());
    let encoded = encode_file(&old, &new, &mut patch, &options).unwrap();
    drop(patch);
    let encode_time = t.elapsed();
    let Encoded::Patch { len } = encoded else {
        panic!("expected a patch")
    };
    let t = Instant::now();
    apply_file(File::open(dir.path().join("patch")).unwrap(), &old, &out).unwrap();
    let apply_time = t.elapsed();
    let peak = peak_rss_kib();
    let window_kib = options.window as u64 / 1024;
    println!(
        "{mib} MiB file: patch {len} bytes; encode {encode_time:.2?} ({:.0} MiB/s), apply {apply_time:.2?}; \
         peak RSS {peak} KiB (before {before} KiB) for a window of {window_kib} KiB: {:.2} × window",
        mib as f64 / encode_time.as_secs_f64(),
        peak as f64 / window_kib as f64
    );
    assert!(peak <= 2 * window_kib, "peak RSS over 2 × window");

    // The same edit without the old version at hand: its signature, then a patch from it.
    let t = Instant::now();
    let old_len = std::fs::metadata(&old).unwrap().len();
    let sig = Signature::of(File::open(&old).unwrap(), old_len).unwrap();
    let sig_time = t.elapsed();
    let t = Instant::now();
    let Delta::Patch(blocks) = encode_blocks(&sig, File::open(&new).unwrap(), &options).unwrap()
    else {
        panic!("expected a patch from the signature")
    };
    let blocks_time = t.elapsed();
    println!(
        "without the old version: signature {} bytes in {sig_time:.2?} ({:.0} MiB/s), patch {} bytes in {blocks_time:.2?} ({:.0} MiB/s); peak RSS {} KiB",
        sig.encoded_len(),
        mib as f64 / sig_time.as_secs_f64(),
        blocks.len(),
        mib as f64 / blocks_time.as_secs_f64(),
        peak_rss_kib()
    );
}
