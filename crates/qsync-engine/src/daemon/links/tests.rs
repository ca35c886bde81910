//! Tests of the parent module.
#![allow(clippy::unwrap_used)]
use super::*;
use qsync_base::places::resolved;

#[test]
fn an_answer_is_the_code_then_the_folder() {
    let (code, folder) = split_answer("1234-5678 ~/Photos from laptop").unwrap();
    assert_eq!(code.to_string(), "1234-5678");
    assert_eq!(folder, "~/Photos from laptop");
    let (code, folder) = split_answer("1234 5678 /srv/x").unwrap();
    assert_eq!((code.to_string().as_str(), folder), ("1234-5678", "/srv/x"));
    assert!(split_answer("/srv/x").is_err());
    assert!(split_answer("1234 /srv/x").is_err());
}

/// An empty `~/.ssh` or `~/.config/autostart` (or one not made yet) is asked about
/// before it is linked, as the grapin guard asks, naming what it holds; an empty plain
/// folder is not, and one holding files is asked whether to send them.
#[test]
fn a_sensitive_folder_is_asked_about_even_empty() {
    let dir = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir_all(home.join(".ssh")).unwrap();
    fs::create_dir_all(home.join(".config/autostart")).unwrap();
    let ask = |folder: &str, found: (u64, u64)| {
        folder_question(&home.join(folder), Some(&home), found, "laptop")
    };
    let (flag, context) = ask(".ssh", (0, 0)).unwrap();
    assert_eq!(flag, btf::CONFIRM_SENSITIVE);
    assert!(context.contains("~/.ssh (SSH keys)"), "{context}");
    let (flag, context) = ask(".config/autostart", (0, 0)).unwrap();
    assert_eq!(flag, btf::CONFIRM_SENSITIVE);
    assert!(
        context.contains("laptop could make programs run here"),
        "{context}"
    );
    let (flag, _) = ask(".gnupg/not-yet", (0, 0)).unwrap();
    assert_eq!(flag, btf::CONFIRM_SENSITIVE);
    let (_, context) = ask(".ssh", (3, 2048)).unwrap();
    assert!(context.contains("3 files (2.0 KiB)"), "{context}");
    assert_eq!(ask("Music", (0, 0)), None);
    assert_eq!(ask("Music", (2, 10)).unwrap().0, btf::CONFIRM_SEND);
    // No home folder known: nothing to compare with.
    assert_eq!(folder_question(&home.join(".ssh"), None, (0, 0), "x"), None);
}

#[test]
fn a_folder_to_be_made_resolves_through_its_existing_parent() {
    let dir = tempfile::tempdir().unwrap();
    let real = fs::canonicalize(dir.path()).unwrap();
    assert_eq!(resolved(&dir.path().join("a/b")), real.join("a/b"));
    assert_eq!(human_bytes(2048), "2.0 KiB");
}
