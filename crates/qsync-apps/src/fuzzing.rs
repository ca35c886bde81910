//! Entry points shared by the `apps` fuzz target and the corpus test. Not stable API.

/// Unpack arbitrary bytes as an archive into a fresh temporary folder (1 MiB cap), and
/// parse them as both kinds of app description. Must never panic nor write outside the
/// folder.
pub fn apps(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::Grapin::from_json(text);
        let _ = crate::ToutEnUn::from_json(text);
    }
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let archive = dir.path().join("archive");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let out = dir.path().join("out");
    let _ = crate::archive::unpack(&archive, &out, &crate::archive::Limits::with_bytes(1 << 20));
    if let Ok(entries) = std::fs::read_dir(dir.path()) {
        let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        assert!(
            names.iter().all(|n| n == "archive" || n == "out"),
            "the archive wrote outside its folder: {names:?}"
        );
    }
}
