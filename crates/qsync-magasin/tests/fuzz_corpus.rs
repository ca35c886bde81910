//! The `index` fuzz target's corpus, replayed as a plain test (no nightly needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/index")
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
