//! Names QSync cannot carry to other devices are reported, never skipped silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use std::fs;

use qsync_watch::scan_reporting;

#[test]
fn names_that_are_not_utf8_or_hold_a_backslash_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("fine.txt"), "ok").unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"caf\xe9.txt")), "latin-1 name").unwrap();
    std::fs::write(root.join("back\\slash"), "windows separator").unwrap();
    std::fs::create_dir(root.join(OsStr::from_bytes(b"dir\xff"))).unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"dir\xff")).join("inside"), "x").unwrap();

    let scan = scan_reporting(root, &HashMap::new()).unwrap();
    let synced: Vec<&str> = scan.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(synced, ["fine.txt"]);
    // The folder is listed once; what is under it goes with it.
    assert_eq!(scan.unsupported.len(), 3, "{:?}", scan.unsupported);
}

/// A `.qsyncignore` may come from another device: a broken line (`[`, bytes that are not
/// UTF-8) is skipped and reported, the other lines still apply, and a `.qsyncignore` that
/// is a link (to `/dev/zero`, say) is not read at all.
#[test]
fn a_broken_ignore_line_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut text = b"*.log\n[z-a]\n".to_vec();
    text.extend_from_slice(b"\xff\xfe.bin\nbuild/\n");
    fs::write(root.join(".qsyncignore"), &text).unwrap();
    fs::write(root.join("a.log"), b"x").unwrap();
    fs::write(root.join("kept.txt"), b"x").unwrap();
    let filter = qsync_watch::Filter::for_root(root).unwrap();
    assert_eq!(filter.problems().len(), 2, "{:?}", filter.problems());
    assert!(filter.problems()[0].starts_with("line 2:"));
    assert!(filter.problems()[1].starts_with("line 3: not UTF-8"));
    let rel = |s: &str| qsync_base::RelPath::new(s).unwrap();
    assert!(!filter.includes(&rel("a.log"), false));
    assert!(!filter.includes(&rel("build"), true));
    assert!(filter.includes(&rel("kept.txt"), false));
    let paths: Vec<String> = qsync_watch::scan(root, &Default::default())
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(paths, [".qsyncignore", "kept.txt"]);

    fs::remove_file(root.join(".qsyncignore")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join(".qsyncignore")).unwrap();
    let filter = qsync_watch::Filter::for_root(root).unwrap();
    assert_eq!(filter.problems().len(), 1);
    assert!(filter.includes(&rel("a.log"), false));
}
