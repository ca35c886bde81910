//! Turning a data folder template (`~/.app/%username%/%any%/data`) into a folder on this
//! machine.
//!
//! - `~` (first part only) is the home folder; `%username%` the current user's name;
//! - a part holding `%any%` or `%version%` matches the existing child folders of the folder
//!   reached so far (each placeholder stands for one or more characters). Among the matches,
//!   `%any%` takes the first in sorted order and `%version%` the newest version (digits
//!   compared as numbers: `10.2` after `9.7`). Every pick is reported as a [`Choice`], with the
//!   folders it passed over, so the person can see what QSync chose.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::AppsError;

/// What the placeholders stand for on this machine.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    /// The home folder, for `~`.
    pub home: PathBuf,
    /// The user's name, for `%username%`.
    pub username: String,
}

/// One folder picked for a `%any%` or `%version%` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The part of the template, after `%username%` was replaced.
    pub pattern: String,
    /// The folder whose children were matched.
    pub parent: PathBuf,
    /// The child folder taken.
    pub chosen: String,
    /// Every matching child folder, sorted, the chosen one included.
    pub candidates: Vec<String>,
}

/// A resolved template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The folder. Parts after the last placeholder need not exist yet.
    pub path: PathBuf,
    /// One entry per `%any%`/`%version%` part, in template order.
    pub choices: Vec<Choice>,
}

/// Resolve `template` (already checked by [`crate::Grapin`]) on this machine.
pub fn resolve(template: &str, ctx: &ResolveContext) -> Result<Resolved, AppsError> {
    let unresolved = |problem: String| AppsError::Unresolved {
        template: template.to_owned(),
        problem,
    };
    let mut parts = template.split('/').peekable();
    let mut path = match parts.peek() {
        Some(&"~") => {
            parts.next();
            ctx.home.clone()
        }
        Some(&"") => {
            parts.next();
            PathBuf::from("/")
        }
        Some(drive) if drive.ends_with(':') => {
            let root = PathBuf::from(format!("{drive}/"));
            parts.next();
            root
        }
        _ => return Err(unresolved("it does not start at `~` or at a root".into())),
    };
    let mut choices = Vec::new();
    for part in parts.filter(|p| !p.is_empty()) {
        let part = part.replace("%username%", &ctx.username);
        if !part.contains("%any%") && !part.contains("%version%") {
            path.push(&part);
            continue;
        }
        let pattern = Pattern::new(&part);
        let entries = std::fs::read_dir(&path).map_err(|e| {
            unresolved(format!(
                "cannot list {} to match `{part}`: {e}",
                path.display()
            ))
        })?;
        let mut candidates: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| pattern.matches(name))
            .collect();
        candidates.sort();
        let chosen = if part.contains("%version%") {
            candidates
                .iter()
                .max_by(|a, b| version_order(a, b))
                .cloned()
        } else {
            candidates.first().cloned()
        };
        let Some(chosen) = chosen else {
            return Err(unresolved(format!(
                "no folder in {} matches `{part}`",
                path.display()
            )));
        };
        choices.push(Choice {
            pattern: part,
            parent: path.clone(),
            chosen: chosen.clone(),
            candidates,
        });
        path.push(chosen);
    }
    Ok(Resolved { path, choices })
}

/// A folder name pattern: literal pieces around wildcards, each wildcard one or more
/// characters.
struct Pattern {
    pieces: Vec<String>,
}

impl Pattern {
    fn new(part: &str) -> Self {
        let marked = part.replace("%any%", "\0").replace("%version%", "\0");
        Self {
            pieces: marked.split('\0').map(str::to_owned).collect(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        // pieces[0] * pieces[1] * ... * pieces[n]; every `*` at least one character.
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return false,
        };
        let Some(mut tail) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        match_rest(&mut tail, rest)
    }
}

fn match_rest(tail: &mut &str, rest: &[String]) -> bool {
    let Some((piece, more)) = rest.split_first() else {
        return tail.is_empty();
    };
    // The wildcard before `piece` takes at least one character; try every split point.
    let mut chars = tail
        .char_indices()
        .skip(1)
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    chars.push(tail.len());
    for at in chars {
        let mut after = &tail[at..];
        if let Some(stripped) = after.strip_prefix(piece.as_str()) {
            after = stripped;
            if more.is_empty() && !after.is_empty() {
                continue;
            }
            if match_rest(&mut after, more) {
                return true;
            }
        }
    }
    false
}

/// Order version-like names: runs of digits compare as numbers, the rest as text.
fn version_order(a: &str, b: &str) -> Ordering {
    let (ka, kb) = (version_key(a), version_key(b));
    for (x, y) in ka.iter().zip(&kb) {
        let order = match (x, y) {
            (Run::Digits(x), Run::Digits(y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (Run::Digits(_), Run::Text(_)) => Ordering::Greater,
            (Run::Text(_), Run::Digits(_)) => Ordering::Less,
            (Run::Text(x), Run::Text(y)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    ka.len().cmp(&kb.len()).then_with(|| a.cmp(b))
}

enum Run<'a> {
    Digits(&'a str),
    Text(&'a str),
}

fn version_key(name: &str) -> Vec<Run<'_>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let bytes = name.as_bytes();
    for i in 1..=bytes.len() {
        let boundary =
            i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit();
        if boundary {
            let run = &name[start..i];
            runs.push(if bytes[start].is_ascii_digit() {
                Run::Digits(run)
            } else {
                Run::Text(run)
            });
            start = i;
        }
    }
    runs
}

/// The user's name from the environment (`USER`, then `LOGNAME`, then `USERNAME`), or the last
/// part of `home`.
pub fn current_username(home: &Path) -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(|| home.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(dirs: &[&str]) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        for d in dirs {
            std::fs::create_dir_all(home.path().join(d)).unwrap();
        }
        home
    }

    fn ctx(home: &Path) -> ResolveContext {
        ResolveContext {
            home: home.into(),
            username: "alice".into(),
        }
    }

    #[test]
    fn username_and_home_are_replaced() {
        let home = tree(&[]);
        let r = resolve("~/.app/%username%/data", &ctx(home.path())).unwrap();
        assert_eq!(r.path, home.path().join(".app/alice/data"));
        assert!(r.choices.is_empty());
        let r = resolve("/srv/%username%", &ctx(home.path())).unwrap();
        assert_eq!(r.path, Path::new("/srv/alice"));
    }

    #[test]
    fn any_takes_the_first_sorted_folder_and_says_so() {
        let home = tree(&[".app/zeta/data", ".app/alpha/data", ".app/mid/data"]);
        std::fs::write(home.path().join(".app/aaa-a-file"), b"").unwrap();
        let r = resolve("~/.app/%any%/data", &ctx(home.path())).unwrap();
        assert_eq!(r.path, home.path().join(".app/alpha/data"));
        assert_eq!(r.choices.len(), 1);
        assert_eq!(r.choices[0].chosen, "alpha");
        assert_eq!(r.choices[0].candidates, ["alpha", "mid", "zeta"]);
    }

    #[test]
    fn placeholders_can_sit_inside_a_name() {
        let home = tree(&[
            ".mozilla/x1.default",
            ".mozilla/ab.default-release",
            ".mozilla/cd.default-release",
        ]);
        let r = resolve("~/.mozilla/%any%.default-release", &ctx(home.path())).unwrap();
        assert_eq!(r.path, home.path().join(".mozilla/ab.default-release"));
    }

    #[test]
    fn version_takes_the_newest() {
        let home = tree(&["app/9.7", "app/10.2", "app/10.10", "app/2.0-beta"]);
        let r = resolve("~/app/%version%", &ctx(home.path())).unwrap();
        assert_eq!(r.choices[0].chosen, "10.10");
    }

    #[test]
    fn username_then_any_in_one_template() {
        let home = tree(&[
            "apps/alice/p2/save",
            "apps/alice/p1/save",
            "apps/bob/p0/save",
        ]);
        let r = resolve("~/apps/%username%/%any%/save", &ctx(home.path())).unwrap();
        assert_eq!(r.path, home.path().join("apps/alice/p1/save"));
    }

    #[test]
    fn nothing_to_match_is_a_clear_error() {
        let home = tree(&[".app"]);
        let err = resolve("~/.app/%any%", &ctx(home.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no folder in") && err.contains("%any%"),
            "{err}"
        );
        let err = resolve("~/.missing/%any%", &ctx(home.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot list"), "{err}");
    }

    proptest! {
        #[test]
        fn a_name_matches_itself_with_any_middle_replaced(
            name in "[a-z0-9.]{1,12}", start in 0usize..12, len in 1usize..12,
        ) {
            let start = start.min(name.len() - 1);
            let end = (start + len).min(name.len());
            let pattern = format!("{}%any%{}", &name[..start], &name[end..]);
            prop_assert!(Pattern::new(&pattern).matches(&name));
            // a wildcard never matches nothing
            let empty = format!("{}%any%{}", &name[..start], &name[start..]);
            let shorter = format!("{}{}", &name[..start], &name[start..]);
            prop_assert!(!Pattern::new(&empty).matches(&shorter));
        }

        #[test]
        fn version_order_is_a_total_order(a in "[0-9a-c.]{0,8}", b in "[0-9a-c.]{0,8}") {
            prop_assert_eq!(version_order(&a, &b), version_order(&b, &a).reverse());
            prop_assert_eq!(version_order(&a, &b) == Ordering::Equal, a == b);
        }
    }
}
