//! The store index: which apps a store offers.

use qsync_apps::{Grapin, ToutEnUn};
use serde::Deserialize;

use crate::MagasinError;

/// One app a store offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An app built on QSync.
    ToutEnUn(ToutEnUn),
    /// A way to sync an existing app's data.
    Grapin(Grapin),
}

impl Entry {
    /// The app's name.
    pub fn name(&self) -> &str {
        match self {
            Entry::ToutEnUn(app) => app.name().as_str(),
            Entry::Grapin(grapin) => grapin.name().as_str(),
        }
    }

    /// `tout-en-un` or `grapin`.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::ToutEnUn(_) => "tout-en-un",
            Entry::Grapin(_) => "grapin",
        }
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        match self {
            Entry::ToutEnUn(app) => app.description(),
            Entry::Grapin(grapin) => grapin.description(),
        }
    }
}

/// An entry of the index that failed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// `tout_en_un_configs[3]`, say.
    pub at: String,
    /// Why, naming the field.
    pub problem: String,
}

/// A store's index, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// The valid entries, tout-en-un apps first, in the index's order.
    pub entries: Vec<Entry>,
    /// The entries that failed their checks.
    pub rejected: Vec<Rejected>,
    /// The index's sequence number: `qsync store sign` makes each signed index's one more
    /// than the last, and clients refuse an index older than one they have seen.
    pub sequence: u64,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    tout_en_un_configs: Vec<serde_json::Value>,
    #[serde(default)]
    grapin_configs: Vec<serde_json::Value>,
    #[serde(default)]
    sequence: u64,
}

impl Index {
    /// Parse an index; `at` names where it came from, for errors.
    pub fn parse(json: &str, at: &str) -> Result<Self, MagasinError> {
        let invalid = |problem: String| MagasinError::Index {
            at: at.to_owned(),
            problem,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        if !value.is_object() {
            return Err(invalid(
                "it must be a JSON object with tout_en_un_configs and grapin_configs".into(),
            ));
        }
        let raw: RawIndex = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        let mut index = Index {
            sequence: raw.sequence,
            ..Index::default()
        };
        for (i, value) in raw.tout_en_un_configs.into_iter().enumerate() {
            match ToutEnUn::from_value(value) {
                Ok(app) if app.pinned_archive().is_none() => index.rejected.push(Rejected {
                    at: format!("tout_en_un_configs[{i}]"),
                    problem: format!(
                        "{} has no AppDownloadSize and AppDownloadSHA256: its archive could not be checked (`qsync store sign` records them)",
                        app.name()
                    ),
                }),
                Ok(app) => index.add(Entry::ToutEnUn(app), format!("tout_en_un_configs[{i}]")),
                Err(e) => index.rejected.push(Rejected {
                    at: format!("tout_en_un_configs[{i}]"),
                    problem: e.to_string(),
                }),
            }
        }
        for (i, value) in raw.grapin_configs.into_iter().enumerate() {
            match Grapin::from_value(value) {
                Ok(grapin) => index.add(Entry::Grapin(grapin), format!("grapin_configs[{i}]")),
                Err(e) => index.rejected.push(Rejected {
                    at: format!("grapin_configs[{i}]"),
                    problem: e.to_string(),
                }),
            }
        }
        Ok(index)
    }

    fn add(&mut self, entry: Entry, at: String) {
        if self.find(entry.name()).is_some() {
            self.rejected.push(Rejected {
                at,
                problem: format!("another entry is already named {}", entry.name()),
            });
        } else {
            self.entries.push(entry);
        }
    }

    /// The entry named `name` (exactly, or ignoring case when only one matches that way).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name() == name).or_else(|| {
            let mut folded = self
                .entries
                .iter()
                .filter(|e| e.name().eq_ignore_ascii_case(name));
            match (folded.next(), folded.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
    }

    /// Entries whose name or description holds `term`, ignoring case.
    pub fn search<'a>(&'a self, term: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        let term = term.to_lowercase();
        self.entries.iter().filter(move |e| {
            e.name().to_lowercase().contains(&term)
                || e.description()
                    .is_some_and(|d| d.to_lowercase().contains(&term))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HELLO: &str = r#"{"AppName":"Hello","AppDownloadUrl":"h.tar.gz","AppLauncherPath":"run","AppSyncDataFolderPath":"data","AppDescription":"Says hello",
        "AppDownloadSize":3,"AppDownloadSHA256":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
    const NOTES: &str =
        r#"{"AppName":"Notes","AppSyncDataFolderPath":"~/.notes","SupportedPlatforms":["Linux"]}"#;

    #[test]
    fn entries_are_checked_one_by_one() {
        let json = format!(
            r#"{{"sequence":4,"tout_en_un_configs":[{HELLO},{{"AppName":"x"}},
                {{"AppName":"Unpinned","AppDownloadUrl":"u.zip","AppLauncherPath":"run","AppSyncDataFolderPath":"data"}}],
               "grapin_configs":[{NOTES},{NOTES}]}}"#
        );
        let index = Index::parse(&json, "test").unwrap();
        assert_eq!(index.sequence, 4);
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.rejected.len(), 3);
        assert_eq!(index.rejected[0].at, "tout_en_un_configs[1]");
        assert!(index.rejected[1].problem.contains("AppDownloadSHA256"));
        assert!(index.rejected[2].problem.contains("already named"));
        assert_eq!(index.find("hello").map(Entry::kind), Some("tout-en-un"));
        assert_eq!(index.search("SAYS").count(), 1);
        assert_eq!(index.search("").count(), 2);
    }

    #[test]
    fn a_broken_index_is_an_error() {
        assert!(Index::parse("[]", "test").is_err());
        assert!(Index::parse(r#"{"grapin_configs": 3}"#, "test").is_err());
        assert_eq!(Index::parse("{}", "test").unwrap(), Index::default());
    }

    proptest! {
        #[test]
        fn any_json_value_as_an_entry_is_accepted_or_rejected_never_a_panic(
            name in ".{0,20}", url in ".{0,20}", launcher in "[a-z./]{0,10}", data in "[a-z./]{0,10}",
            platforms in proptest::collection::vec("[A-Za-z]{0,8}", 0..3),
        ) {
            let tout = serde_json::json!({"AppName": name, "AppDownloadUrl": url,
                "AppLauncherPath": launcher, "AppSyncDataFolderPath": data});
            let grapin = serde_json::json!({"AppName": name, "AppSyncDataFolderPath": format!("~/{data}"),
                "SupportedPlatforms": platforms});
            let json = serde_json::json!({"tout_en_un_configs": [tout], "grapin_configs": [grapin]});
            let index = Index::parse(&json.to_string(), "prop").unwrap();
            prop_assert_eq!(index.entries.len() + index.rejected.len(), 2);
        }
    }
}
