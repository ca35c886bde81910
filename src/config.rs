//! The config file: one TOML file of the daemon's settings, made with defaults at the first
//! start, read by `qsync daemon` (its flags win), changed with `qsync config set` and
//! applied live, where a setting can change live, by SIGHUP or `qsync config reload`.
//!
//! Where it is: `--config FILE` (or `QSYNC_CONFIG`); else `qsync.toml` in the state folder
//! when one is given (`--state-dir`, `QSYNC_STATE_DIR`: several daemons side by side keep
//! their own); else `qsync.toml` in the user's config folder (`~/.config/qsync/`).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The file's name in its folder.
pub const FILE_NAME: &str = "qsync.toml";

/// The daemon's settings, as the file holds them (every key optional in the file: a
/// missing one takes its default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// This device's name, as other devices see it (default: the host's name).
    pub name: String,
    /// The address to listen on for other devices.
    pub listen_ip: IpAddr,
    /// The TCP port for other devices.
    pub port: u16,
    /// Announce and browse with mDNS.
    pub mdns: bool,
    /// Seconds between whole scans of every task's folder (0: never). Changes live.
    pub rescan_every: u64,
    /// Seconds a question to the person may wait for an answer.
    pub answer_timeout: u64,
    /// Percent of the synced data the bases of patches may take in the state folder.
    pub base_share: u8,
    /// Where the HTTP API and web UI listen (`off`: nowhere).
    pub http: String,
    /// Whether `http` may be an address other machines can reach.
    pub http_allow_remote: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: host_name(),
            listen_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 7878,
            mdns: true,
            rescan_every: 60,
            answer_timeout: 600,
            base_share: 20,
            http: qsync_http::DEFAULT_ADDRESS.to_owned(),
            http_allow_remote: false,
        }
    }
}

/// The keys, in the file's order, with what each is for (the file's comments).
const KEYS: &[(&str, &str)] = &[
    ("name", "this device's name, as other devices see it"),
    ("listen_ip", "the address to listen on for other devices"),
    ("port", "the TCP port for other devices"),
    ("mdns", "announce this device and find others with mDNS"),
    (
        "rescan_every",
        "seconds between whole scans of the folders (0: never); changes live",
    ),
    (
        "answer_timeout",
        "seconds a question to you may wait for its answer",
    ),
    (
        "base_share",
        "percent of the synced data that bases of patches may take",
    ),
    (
        "http",
        "where the HTTP API and web UI listen (\"off\": nowhere)",
    ),
    (
        "http_allow_remote",
        "let `http` be an address other machines reach (the API key crosses the network in clear)",
    ),
];

/// The host's name, or `qsync` when it has none.
fn host_name() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_owned();
    if name.is_empty() || name == "(none)" {
        "qsync".to_owned()
    } else {
        name
    }
}

/// Where the config file is, by the rules in the module's header.
pub fn path(explicit: Option<&Path>, state_dir_given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(state_dir) = state_dir_given {
        return Ok(state_dir.join(FILE_NAME));
    }
    directories::ProjectDirs::from("", "", "qsync")
        .map(|d| d.config_dir().join(FILE_NAME))
        .context("could not find a config folder for QSync; pass --config")
}

/// The settings in `path`; a missing file is made with the defaults first.
pub fn load_or_create(path: &Path) -> Result<Settings> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let settings = Settings::default();
            save(path, &settings)?;
            Ok(settings)
        }
        Err(e) => {
            Err(e).with_context(|| format!("could not read the config file {}", path.display()))
        }
    }
}

/// The settings in `path`, or the defaults when there is no file (nothing is written).
pub fn load(path: &Path) -> Result<Settings> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => {
            Err(e).with_context(|| format!("could not read the config file {}", path.display()))
        }
    }
}

/// The settings in `text`. A key this build does not know (a newer QSync's, or a typo) is
/// warned of and skipped, not a reason to stop: a service must start.
fn parse(text: &str, path: &Path) -> Result<Settings> {
    let invalid = || format!("the config file {} is not valid", path.display());
    let mut table: toml::Table = toml::from_str(text).with_context(invalid)?;
    let unknown: Vec<String> = table
        .keys()
        .filter(|key| !KEYS.iter().any(|(known, _)| known == key))
        .cloned()
        .collect();
    for key in &unknown {
        table.remove(key);
        let warning = format!(
            "{}: `{key}` is not a setting this qsync knows; skipped (the settings are: {})",
            path.display(),
            key_names()
        );
        tracing::warn!("{warning}");
        eprintln!("warning: {warning}");
    }
    let settings: Settings = table.try_into().with_context(invalid)?;
    settings.check().with_context(invalid)?;
    Ok(settings)
}

impl Settings {
    /// What TOML's types do not say.
    pub fn check(&self) -> Result<()> {
        if self.base_share > 100 {
            bail!("base_share is a percentage: 0 to 100");
        }
        // Beyond these, times overflow (a question waits a week at most).
        if self.answer_timeout == 0 || self.answer_timeout > 7 * 24 * 3600 {
            bail!("answer_timeout is 1 to 604800 seconds (a week)");
        }
        if self.rescan_every > 365 * 24 * 3600 {
            bail!("rescan_every is 0 (never) to a year, in seconds");
        }
        if self.name.trim().is_empty() || self.name.len() > 64 {
            bail!("name must be 1 to 64 bytes");
        }
        self.http_address()?;
        Ok(())
    }

    /// The HTTP API's address, `None` when `off`.
    pub fn http_address(&self) -> Result<Option<SocketAddr>> {
        if self.http.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        self.http
            .parse()
            .map(Some)
            .with_context(|| format!("http = {:?} is not ADDRESS:PORT or \"off\"", self.http))
    }

    /// The file's text: each key with its comment.
    fn to_text(&self) -> Result<String> {
        let table = toml::Table::try_from(self).context("could not write the settings")?;
        let mut text = String::from(
            "# QSync's settings (https://example.invalid/qsync). Flags of `qsync daemon` win over\n# these; `qsync config set KEY VALUE` changes one, SIGHUP or `qsync config reload`\n# applies what can change while the daemon runs.\n",
        );
        for (key, about) in KEYS {
            if let Some(value) = table.get(*key) {
                text.push_str(&format!("\n# {about}\n{key} = {value}\n"));
            }
        }
        Ok(text)
    }

    /// The value of `key`, as the file writes it.
    pub fn get(&self, key: &str) -> Result<String> {
        let table = toml::Table::try_from(self).context("could not read the settings")?;
        match table.get(key) {
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(value) => Ok(value.to_string()),
            None => bail!("no setting `{key}`; the settings are: {}", key_names()),
        }
    }

    /// These settings with `key` set to `value` (a string, number or true/false, as the
    /// key takes), checked.
    pub fn with(&self, key: &str, value: &str) -> Result<Settings> {
        let mut table = toml::Table::try_from(self).context("could not read the settings")?;
        let typed = match table.get(key) {
            Some(toml::Value::Integer(_)) => toml::Value::Integer(
                value
                    .parse()
                    .with_context(|| format!("`{key}` takes a whole number, not {value:?}"))?,
            ),
            Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
                value
                    .parse()
                    .with_context(|| format!("`{key}` takes true or false, not {value:?}"))?,
            ),
            Some(_) => toml::Value::String(value.to_owned()),
            None => bail!("no setting `{key}`; the settings are: {}", key_names()),
        };
        table.insert(key.to_owned(), typed);
        let settings: Settings = table
            .try_into()
            .with_context(|| format!("{value:?} is not a value `{key}` takes"))?;
        settings.check()?;
        Ok(settings)
    }
}

fn key_names() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// Write `settings` to `path` whole: a new file renamed over the old one, so that a
/// reader never sees half of it.
pub fn save(path: &Path, settings: &Settings) -> Result<()> {
    let text = settings.to_text()?;
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)
        .with_context(|| format!("could not make the folder {}", folder.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("could not write in {}", folder.display()))?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("could not write in {}", folder.display()))?;
    temp.persist(path)
        .with_context(|| format!("could not write the config file {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_file_has_every_key_and_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let made = load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for (key, _) in KEYS {
            assert!(text.contains(&format!("\n{key} = ")), "{key} in {text}");
        }
        assert_eq!(load(&path).unwrap(), made);
    }

    #[test]
    fn set_takes_each_key_in_its_own_type_and_refuses_the_rest() {
        let settings = Settings::default();
        assert_eq!(settings.with("port", "9000").unwrap().port, 9000);
        assert!(!settings.with("mdns", "false").unwrap().mdns);
        assert_eq!(
            settings.with("name", "desk").unwrap().get("name").unwrap(),
            "desk"
        );
        assert!(settings.with("port", "70000").is_err());
        assert!(settings.with("mdns", "maybe").is_err());
        assert!(settings.with("base_share", "101").is_err());
        assert!(settings.with("http", "nowhere").is_err());
        assert!(settings
            .with("http", "off")
            .unwrap()
            .http_address()
            .unwrap()
            .is_none());
        assert!(settings.with("colour", "blue").is_err());
    }

    #[test]
    fn a_missing_key_takes_its_default_and_an_unknown_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "port = 9001\n").unwrap();
        let settings = load(&path).unwrap();
        assert_eq!(settings.port, 9001);
        assert_eq!(settings.rescan_every, 60);
        // A key of another version (or a typo) is skipped, not a reason to stop.
        std::fs::write(&path, "prot = 9001\nport = 9002\n").unwrap();
        assert_eq!(load(&path).unwrap().port, 9002);
        std::fs::write(&path, "answer_timeout = 18446744073709551615\n").unwrap();
        assert!(load(&path).is_err(), "a time that would overflow");
    }
}
