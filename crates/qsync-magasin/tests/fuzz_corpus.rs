//! The `index` fuzz target's corpus, replayed as a plain test (no nightly needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/index")
}

fn signed_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/signed_index")
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        qsync_magasin::fuzzing::index(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0);
}

#[test]
fn signed_index_corpus_replays_without_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(signed_corpus()).unwrap() {
        qsync_magasin::fuzzing::signed_index(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count >= 4);
    // The seeds are what they say: the valid one passes, the changed one does not.
    let split = |name: &str| {
        let data = std::fs::read(signed_corpus().join(name)).unwrap();
        let at = data.windows(3).position(|w| w == b"\n\0\n").unwrap();
        (data[..at].to_vec(), data[at + 3..].to_vec())
    };
    let (signature, index) = split("valid");
    assert!(qsync_magasin::SignedIndex::verify(&index, Some(&signature), "seed").is_ok());
    let (signature, index) = split("one-byte-changed");
    assert!(qsync_magasin::SignedIndex::verify(&index, Some(&signature), "seed").is_err());
}

/// Writes the `signed_index` seeds: a valid signed index, the same with one byte changed, a
/// broken signature file and an unsigned index.
/// `cargo test -p qsync-magasin -- --ignored write_signed_index_seeds`.
#[test]
#[ignore]
fn write_signed_index_seeds() {
    let dir = signed_corpus();
    std::fs::create_dir_all(&dir).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = qsync_magasin::PublisherKey::create(&keys.path().join("k")).unwrap();
    let index = br#"{"sequence":2,"grapin_configs":[{"AppName":"Notes","AppSyncDataFolderPath":"~/.notes","SupportedPlatforms":["Linux"]}],
"tout_en_un_configs":[{"AppName":"Hello","AppDownloadUrl":"h.zip","AppLauncherPath":"run","AppSyncDataFolderPath":"data","AppDownloadSize":10,
"AppDownloadSHA256":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
    let signature = key.sign(index).to_json();
    let seed = |signature: &str, index: &[u8]| [signature.as_bytes(), b"\n\0\n", index].concat();
    std::fs::write(dir.join("valid"), seed(&signature, index)).unwrap();
    let mut changed = index.to_vec();
    changed[12] ^= 1;
    std::fs::write(dir.join("one-byte-changed"), seed(&signature, &changed)).unwrap();
    std::fs::write(dir.join("broken-signature"), seed("{\"format\":1}", index)).unwrap();
    std::fs::write(dir.join("unsigned"), index).unwrap();
}

/// Writes the seed corpus: `cargo test -p qsync-magasin -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("both"),
        r#"{"tout_en_un_configs":[{"AppName":"Hello","AppDownloadUrl":"hello.tar.gz","NeedsInstaller":false,"AppLauncherPath":"bin/h","AppSyncDataFolderPath":"data","AppDescription":"hi"}],
"grapin_configs":[{"AppName":"Notes","AppSyncDataFolderPath":{"Linux":"~/.notes/%any%","Windows":"C:/Users/%username%/Notes"},"NeedsFormat":true,"SupportedPlatforms":["Linux","Windows"]}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("empty"), "{}").unwrap();
    std::fs::write(
        dir.join("bad-entry"),
        r#"{"grapin_configs":[{"AppName":"x","AppSyncDataFolderPath":"rel"}]}"#,
    )
    .unwrap();
}
