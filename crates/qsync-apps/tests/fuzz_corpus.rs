//! The `apps` fuzz target's corpus, replayed as a plain test (no nightly needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/apps")
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        qsync_apps::fuzzing::apps(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0);
}

/// Writes the seed corpus: `cargo test -p qsync-apps -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    // a tar.gz with a folder, an executable and a plain file
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    for (name, data, mode) in [
        ("app/bin/run.sh", &b"#!/bin/sh\n"[..], 0o755),
        ("app/data/x", b"x", 0o644),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        tar.append_data(&mut header, name, data).unwrap();
    }
    std::fs::write(
        dir.join("tar-gz"),
        tar.into_inner().unwrap().finish().unwrap(),
    )
    .unwrap();
    // a zip
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        "bin/run.sh",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    zip.write_all(b"#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("zip"), zip.finish().unwrap().into_inner()).unwrap();
    // descriptions
    std::fs::write(
        dir.join("grapin"),
        r#"{"AppName":"N","AppSyncDataFolderPath":{"Linux":"~/.n/%username%/%any%"},"NeedsFormat":true,"SupportedPlatforms":["Linux"]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("tout-en-un"),
        r#"{"AppName":"H","AppDownloadUrl":"h.zip","NeedsInstaller":true,"AppInstallerPath":"i.sh","AppLauncherPath":"bin/run.sh","AppSyncDataFolderPath":"data"}"#,
    )
    .unwrap();
}
