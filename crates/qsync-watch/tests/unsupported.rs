//! Names QSync cannot carry to other devices are reported, never skipped silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use qsync_watch::scan_reporting;

#[test]
fn names_that_are_not_utf8_or_hold_a_backslash_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("fine.txt"), "ok").unwrap();
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
