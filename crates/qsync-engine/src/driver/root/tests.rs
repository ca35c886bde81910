#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

#[test]
fn a_symlinked_folder_on_the_way_is_refused_by_both_resolvers() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    fs::create_dir(root.path().join("real")).unwrap();
    symlink(outside.path(), root.path().join("real/escape")).unwrap();
    let task = TaskRoot::open(root.path()).unwrap();
    assert!(matches!(
        task.folder(Some(&rel("real/escape"))),
        Err(RootError::Escapes { .. })
    ));
    assert!(matches!(
        task.open_file(&rel("real/escape/secret")),
        Err(RootError::Escapes { .. })
    ));
    assert!(task.folder(Some(&rel("real"))).unwrap().is_some());
    assert!(task.folder(Some(&rel("missing/deeper"))).unwrap().is_none());
    // The fallback walk, as on a kernel without openat2.
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    assert_eq!(
        walk(&task.fd, "real/escape", flags).unwrap_err(),
        Errno::LOOP
    );
    assert!(walk(&task.fd, "real", flags).is_ok());
    // A link climbing out with `..` alike.
    symlink("../..", root.path().join("up")).unwrap();
    assert!(matches!(
        task.stat(&rel("up/etc")),
        Err(RootError::Escapes { .. })
    ));
}

#[test]
fn content_is_read_only_from_regular_files() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("plain"), b"hello").unwrap();
    symlink("/dev/zero", root.path().join("zero")).unwrap();
    symlink("plain", root.path().join("inside")).unwrap();
    fs::create_dir(root.path().join("dir")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.path().join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let task = TaskRoot::open(root.path()).unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut task.open_file(&rel("plain")).unwrap(), &mut content)
        .unwrap();
    assert_eq!(content, "hello");
    for name in ["zero", "inside", "dir", "fifo"] {
        // A FIFO with no writer would block an ordinary open for ever.
        assert!(
            matches!(
                task.open_file(&rel(name)),
                Err(RootError::NotRegular { .. })
            ),
            "{name}"
        );
    }
    assert_eq!(task.read_link(&rel("zero")).unwrap(), "/dev/zero");
}

#[test]
fn modes_are_never_set_through_a_link() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o600)).unwrap();
    symlink(outside.path(), root.path().join("link")).unwrap();
    let task = TaskRoot::open(root.path()).unwrap();
    let top = task.top().unwrap();
    top.set_mode("link", 0o777).unwrap();
    let mode = fs::metadata(outside.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    top.create_dir("made", 0o750).unwrap();
    let mode = fs::metadata(root.path().join("made"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750, "the umask does not apply");
}

#[test]
fn a_temporary_file_is_gone_unless_renamed_into_place() {
    let root = tempfile::tempdir().unwrap();
    let task = TaskRoot::open(root.path()).unwrap();
    let top = task.top().unwrap();
    let (temp, mut file) = top.create_temp(".qsync-part-").unwrap();
    std::io::Write::write_all(&mut file, b"x").unwrap();
    drop(temp);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    let (temp, mut file) = top.create_temp(".qsync-part-").unwrap();
    std::io::Write::write_all(&mut file, b"kept").unwrap();
    temp.persist("final").unwrap();
    assert_eq!(fs::read(root.path().join("final")).unwrap(), b"kept");
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    assert!(top
        .symlink(&"x".repeat(MAX_LINK_TARGET + 1), "long")
        .is_err());
}

#[test]
fn stale_parts_are_removed_beneath_the_root_only() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join(".qsync-part-x"), b"theirs").unwrap();
    fs::create_dir(root.path().join("sub")).unwrap();
    fs::write(root.path().join("sub/.qsync-part-1"), b"cut short").unwrap();
    fs::write(root.path().join("sub/keep"), b"k").unwrap();
    symlink(outside.path(), root.path().join("away")).unwrap();
    let task = TaskRoot::open(root.path()).unwrap();
    assert_eq!(task.remove_stale(".qsync-part-"), 1);
    assert!(root.path().join("sub/keep").exists());
    assert!(outside.path().join(".qsync-part-x").exists());
}
