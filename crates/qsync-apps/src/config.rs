//! The two JSON descriptions, parsed and checked once: a value of these types is valid.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::AppsError;

/// A platform a grapin can name a data folder for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Platform {
    /// Linux desktops.
    Linux,
    /// Windows.
    Windows,
    /// Android.
    Android,
}

impl Platform {
    /// The platform this program was built for, if it is one of the three.
    pub fn current() -> Option<Platform> {
        if cfg!(target_os = "android") {
            Some(Platform::Android)
        } else if cfg!(target_os = "linux") {
            Some(Platform::Linux)
        } else if cfg!(windows) {
            Some(Platform::Windows)
        } else {
            None
        }
    }

    fn parse(s: &str) -> Option<Platform> {
        match s {
            "Linux" => Some(Platform::Linux),
            "Windows" => Some(Platform::Windows),
            "Android" => Some(Platform::Android),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Platform::Linux => "Linux",
            Platform::Windows => "Windows",
            Platform::Android => "Android",
        })
    }
}

/// An app name that is also safe as a folder name: 1 to 100 characters, no `/`, `\`,
/// control characters or leading dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AppFolderName(String);

impl AppFolderName {
    /// Check `name`.
    pub fn new(name: &str) -> Result<Self, AppsError> {
        let bad = |problem: &str| AppsError::field("?", "AppName", problem);
        if name.trim().is_empty() {
            return Err(bad("is empty"));
        }
        if name.chars().count() > 100 {
            return Err(bad("is longer than 100 characters"));
        }
        if name.starts_with('.') {
            return Err(bad("starts with a dot"));
        }
        if name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(bad("holds `/`, `\\` or a control character"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppFolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path inside an app's folder: relative, `/`-separated, with no empty, `.` or `..` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AppRelPath(String);

impl AppRelPath {
    fn new(app: &str, field: &str, path: &str) -> Result<Self, AppsError> {
        let bad = |problem: &str| AppsError::field(app, field, format!("`{path}` {problem}"));
        if path.is_empty() {
            return Err(bad("is empty"));
        }
        if path.starts_with('/') || path.contains(':') {
            return Err(bad("must be relative to the app's folder"));
        }
        if path.contains('\\') {
            return Err(bad("must use `/` as separator"));
        }
        if path.chars().any(char::is_control) {
            return Err(bad("holds a control character"));
        }
        if path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad("has an empty, `.` or `..` part"));
        }
        Ok(Self(path.to_owned()))
    }

    /// The path, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path is `other` or inside it (by whole parts: `data2` is not in `data`).
    pub fn starts_with(&self, other: &AppRelPath) -> bool {
        let (mine, theirs) = (self.0.split('/'), other.0.split('/'));
        let theirs: Vec<&str> = theirs.collect();
        let mine: Vec<&str> = mine.collect();
        mine.len() >= theirs.len() && mine[..theirs.len()] == theirs[..]
    }

    /// This path under `root`.
    pub fn under(&self, root: &std::path::Path) -> std::path::PathBuf {
        self.0.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
    }
}

/// Placeholders a data folder template may hold.
pub(crate) const PLACEHOLDERS: [&str; 3] = ["%username%", "%version%", "%any%"];

/// A grapin: where an existing app keeps its data, per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Grapin {
    app_name: AppFolderName,
    app_sync_data_folder_path: BTreeMap<Platform, String>,
    needs_format: bool,
    supported_platforms: Vec<Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_description: Option<String>,
    #[serde(rename = "AppIconURL", skip_serializing_if = "Option::is_none")]
    app_icon_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFolderPath {
    Same(String),
    PerPlatform(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawGrapin {
    app_name: String,
    app_sync_data_folder_path: RawFolderPath,
    #[serde(default)]
    needs_format: bool,
    supported_platforms: Vec<String>,
    #[serde(default)]
    app_description: Option<String>,
    #[serde(default, rename = "AppIconURL")]
    app_icon_url: Option<String>,
}

impl Grapin {
    /// Parse and check a grapin description.
    pub fn from_json(json: &str) -> Result<Self, AppsError> {
        let raw: RawGrapin = serde_json::from_str(json).map_err(|source| AppsError::Json {
            what: "grapin",
            source,
        })?;
        Self::from_raw(raw)
    }

    /// Check a grapin description already parsed as JSON.
    pub fn from_value(value: serde_json::Value) -> Result<Self, AppsError> {
        let raw: RawGrapin = serde_json::from_value(value).map_err(|source| AppsError::Json {
            what: "grapin",
            source,
        })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawGrapin) -> Result<Self, AppsError> {
        let app_name = AppFolderName::new(&raw.app_name)?;
        let app = app_name.as_str();
        let platforms = parse_platforms(app, &raw.supported_platforms)?;
        let paths: BTreeMap<Platform, String> = match raw.app_sync_data_folder_path {
            RawFolderPath::Same(path) => platforms.iter().map(|p| (*p, path.clone())).collect(),
            RawFolderPath::PerPlatform(map) => {
                let mut out = BTreeMap::new();
                for (key, path) in map {
                    let platform = Platform::parse(&key).ok_or_else(|| {
                        AppsError::field(
                            app,
                            format!("AppSyncDataFolderPath.{key}"),
                            "is not a platform (Linux, Windows or Android)",
                        )
                    })?;
                    if !platforms.contains(&platform) {
                        return Err(AppsError::field(
                            app,
                            format!("AppSyncDataFolderPath.{key}"),
                            "names a platform missing from SupportedPlatforms",
                        ));
                    }
                    out.insert(platform, path);
                }
                out
            }
        };
        for platform in &platforms {
            let field = format!("AppSyncDataFolderPath.{platform}");
            let Some(path) = paths.get(platform) else {
                return Err(AppsError::field(
                    app,
                    field,
                    "is missing, but SupportedPlatforms lists this platform",
                ));
            };
            check_template(app, &field, *platform, path, raw.needs_format)?;
        }
        Ok(Self {
            app_name,
            app_sync_data_folder_path: paths,
            needs_format: raw.needs_format,
            supported_platforms: platforms,
            app_description: raw.app_description.filter(|d| !d.is_empty()),
            app_icon_url: raw.app_icon_url.filter(|u| !u.is_empty()),
        })
    }

    /// The app's name.
    pub fn name(&self) -> &AppFolderName {
        &self.app_name
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.app_description.as_deref()
    }

    /// The platforms this grapin supports.
    pub fn platforms(&self) -> &[Platform] {
        &self.supported_platforms
    }

    /// The data folder template for `platform`, if it is supported.
    pub fn template(&self, platform: Platform) -> Option<&str> {
        self.app_sync_data_folder_path
            .get(&platform)
            .map(String::as_str)
    }

    /// Whether the templates hold placeholders to resolve.
    pub fn needs_format(&self) -> bool {
        self.needs_format
    }

    /// The description as JSON again (for recording it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn parse_platforms(app: &str, names: &[String]) -> Result<Vec<Platform>, AppsError> {
    if names.is_empty() {
        return Err(AppsError::field(app, "SupportedPlatforms", "is empty"));
    }
    let mut out = Vec::new();
    for name in names {
        let platform = Platform::parse(name).ok_or_else(|| {
            AppsError::field(
                app,
                "SupportedPlatforms",
                format!("holds `{name}`, not one of Linux, Windows, Android"),
            )
        })?;
        if out.contains(&platform) {
            return Err(AppsError::field(
                app,
                "SupportedPlatforms",
                format!("lists {name} twice"),
            ));
        }
        out.push(platform);
    }
    Ok(out)
}

fn check_template(
    app: &str,
    field: &str,
    platform: Platform,
    path: &str,
    needs_format: bool,
) -> Result<(), AppsError> {
    let bad = |problem: String| AppsError::field(app, field, format!("`{path}` {problem}"));
    if path.is_empty() {
        return Err(bad("is empty".into()));
    }
    if path.contains('\\') {
        return Err(bad("must use `/` as separator".into()));
    }
    let absolute = match platform {
        Platform::Windows => {
            path.starts_with('~')
                || path.as_bytes().get(1) == Some(&b':') && path.as_bytes()[0].is_ascii_alphabetic()
        }
        Platform::Linux | Platform::Android => {
            path == "~" || path.starts_with("~/") || path.starts_with('/')
        }
    };
    if !absolute {
        return Err(bad(
            "must start at the home folder (`~/`) or at the root".into()
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(bad("holds a `..` part".into()));
    }
    let mut rest = path;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(len) = after.find('%') else {
            return Err(bad("has a `%` with no closing `%`".into()));
        };
        let word = &rest[start..start + len + 2];
        if !PLACEHOLDERS.contains(&word) {
            return Err(bad(format!(
                "holds {word}, not one of %username%, %version%, %any%"
            )));
        }
        if !needs_format {
            return Err(bad(format!("holds {word} but NeedsFormat is false")));
        }
        rest = &after[len + 1..];
    }
    Ok(())
}

/// A tout-en-un app: an app built on QSync, installed under `<qsync root>/apps/<AppName>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ToutEnUn {
    app_name: AppFolderName,
    app_download_url: String,
    needs_installer: bool,
    app_launcher_path: AppRelPath,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_installer_path: Option<AppRelPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_uninstaller_path: Option<AppRelPath>,
    app_sync_data_folder_path: AppRelPath,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_description: Option<String>,
    #[serde(rename = "AppIconURL", skip_serializing_if = "Option::is_none")]
    app_icon_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_download_size: Option<u64>,
    #[serde(rename = "AppDownloadSHA256", skip_serializing_if = "Option::is_none")]
    app_download_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawToutEnUn {
    app_name: String,
    app_download_url: String,
    #[serde(default)]
    needs_installer: bool,
    app_launcher_path: String,
    #[serde(default)]
    app_installer_path: Option<String>,
    #[serde(default)]
    app_uninstaller_path: Option<String>,
    app_sync_data_folder_path: String,
    #[serde(default)]
    app_description: Option<String>,
    #[serde(default, rename = "AppIconURL")]
    app_icon_url: Option<String>,
    #[serde(default)]
    app_download_size: Option<u64>,
    #[serde(default, rename = "AppDownloadSHA256")]
    app_download_sha256: Option<String>,
}

/// Check a SHA-256 written as 64 hexadecimal digits; returns it in lower case.
fn sha256_hex(app: &str, value: &str) -> Result<String, AppsError> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppsError::field(
            app,
            "AppDownloadSHA256",
            "must be 64 hexadecimal digits",
        ));
    }
    Ok(value.to_ascii_lowercase())
}

impl ToutEnUn {
    /// Parse and check a tout-en-un description.
    pub fn from_json(json: &str) -> Result<Self, AppsError> {
        let raw: RawToutEnUn = serde_json::from_str(json).map_err(|source| AppsError::Json {
            what: "tout-en-un",
            source,
        })?;
        Self::from_raw(raw)
    }

    /// Check a tout-en-un description already parsed as JSON.
    pub fn from_value(value: serde_json::Value) -> Result<Self, AppsError> {
        let raw: RawToutEnUn = serde_json::from_value(value).map_err(|source| AppsError::Json {
            what: "tout-en-un",
            source,
        })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawToutEnUn) -> Result<Self, AppsError> {
        let app_name = AppFolderName::new(&raw.app_name)?;
        let app = app_name.as_str();
        let url = raw.app_download_url.trim();
        if url.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(AppsError::field(
                app,
                "AppDownloadUrl",
                "is empty or holds spaces",
            ));
        }
        let optional = |field: &str, value: Option<String>| {
            value
                .filter(|v| !v.is_empty())
                .map(|v| AppRelPath::new(app, field, &v))
                .transpose()
        };
        let app_installer_path = optional("AppInstallerPath", raw.app_installer_path)?;
        if raw.needs_installer && app_installer_path.is_none() {
            return Err(AppsError::field(
                app,
                "AppInstallerPath",
                "is missing, but NeedsInstaller is true",
            ));
        }
        let app_launcher_path = AppRelPath::new(app, "AppLauncherPath", &raw.app_launcher_path)?;
        let app_uninstaller_path = optional("AppUninstallerPath", raw.app_uninstaller_path)?;
        let app_sync_data_folder_path =
            AppRelPath::new(app, "AppSyncDataFolderPath", &raw.app_sync_data_folder_path)?;
        // The data folder is synced: every linked device can write there. A program inside
        // it could be replaced by any of them and then run here with no new consent.
        for (field, program) in [
            ("AppLauncherPath", Some(&app_launcher_path)),
            ("AppInstallerPath", app_installer_path.as_ref()),
            ("AppUninstallerPath", app_uninstaller_path.as_ref()),
        ] {
            if let Some(program) = program {
                if program.starts_with(&app_sync_data_folder_path) {
                    return Err(AppsError::field(
                        app,
                        field,
                        format!(
                            "`{}` is inside the synced data folder `{}`, where other devices can change it",
                            program.as_str(),
                            app_sync_data_folder_path.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            app_download_url: url.to_owned(),
            needs_installer: raw.needs_installer,
            app_launcher_path,
            app_installer_path,
            app_uninstaller_path,
            app_sync_data_folder_path,
            app_description: raw.app_description.filter(|d| !d.is_empty()),
            app_icon_url: raw.app_icon_url.filter(|u| !u.is_empty()),
            app_download_size: raw.app_download_size,
            app_download_sha256: raw
                .app_download_sha256
                .map(|h| sha256_hex(app, &h))
                .transpose()?,
            app_name,
        })
    }

    /// The archive's size and SHA-256 (64 lower-case hex digits), when the description
    /// pins them (a signed store's entries must: see `qsync-magasin`).
    pub fn pinned_archive(&self) -> Option<(u64, &str)> {
        Some((
            self.app_download_size?,
            self.app_download_sha256.as_deref()?,
        ))
    }

    /// This description with its archive at `url`, pinned to `size` bytes and `sha256` (hex).
    pub fn with_archive(mut self, url: &str, size: u64, sha256: &str) -> Result<Self, AppsError> {
        let app = self.app_name.as_str().to_owned();
        if url.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(AppsError::field(
                &app,
                "AppDownloadUrl",
                "is empty or holds spaces",
            ));
        }
        self.app_download_url = url.to_owned();
        self.app_download_size = Some(size);
        self.app_download_sha256 = Some(sha256_hex(&app, sha256)?);
        Ok(self)
    }

    /// Every program of the app QSync may run, with what it is for: the installer (run at
    /// install), the launcher and the uninstaller.
    pub fn programs(&self) -> Vec<(&'static str, &AppRelPath)> {
        let mut out = Vec::new();
        if let Some(installer) = self.installer() {
            out.push(("installer", installer));
        }
        out.push(("launcher", self.launcher()));
        if let Some(uninstaller) = self.uninstaller() {
            out.push(("uninstaller", uninstaller));
        }
        out
    }

    /// The app's name (also its folder's name).
    pub fn name(&self) -> &AppFolderName {
        &self.app_name
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.app_description.as_deref()
    }

    /// Where to download the archive from, as written (absolute or relative to the store).
    pub fn download_url(&self) -> &str {
        &self.app_download_url
    }

    /// The installer to run after unpacking, when the app needs one.
    pub fn installer(&self) -> Option<&AppRelPath> {
        if self.needs_installer {
            self.app_installer_path.as_ref()
        } else {
            None
        }
    }

    /// The program that starts the app.
    pub fn launcher(&self) -> &AppRelPath {
        &self.app_launcher_path
    }

    /// The program to run before the app's files are removed, if any.
    pub fn uninstaller(&self) -> Option<&AppRelPath> {
        self.app_uninstaller_path.as_ref()
    }

    /// The folder QSync syncs, inside the app's folder.
    pub fn data_folder(&self) -> &AppRelPath {
        &self.app_sync_data_folder_path
    }

    /// The description as JSON again (for recording it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grapin(json: &str) -> Result<Grapin, String> {
        Grapin::from_json(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_grapin_parses_and_round_trips() {
        let g = grapin(
            r#"{"AppName":"Notes","AppSyncDataFolderPath":{"Linux":"~/.notes/%username%","Windows":"C:/Users/%username%/AppData/Notes"},
               "NeedsFormat":true,"SupportedPlatforms":["Linux","Windows"],"AppDescription":"notes","AppIconURL":"http://x/i.png"}"#,
        )
        .unwrap();
        assert_eq!(g.template(Platform::Linux), Some("~/.notes/%username%"));
        assert_eq!(g.template(Platform::Android), None);
        assert_eq!(Grapin::from_json(&g.to_json()).unwrap(), g);
    }

    #[test]
    fn one_path_for_every_platform_is_accepted() {
        let g = grapin(r#"{"AppName":"A","AppSyncDataFolderPath":"~/a","SupportedPlatforms":["Linux","Android"]}"#).unwrap();
        assert_eq!(g.template(Platform::Android), Some("~/a"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"AppName":"","AppSyncDataFolderPath":"~/a","SupportedPlatforms":["Linux"]}"#,
                "AppName",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"~/a","SupportedPlatforms":["Mac"]}"#,
                "SupportedPlatforms",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"~/a","SupportedPlatforms":[]}"#,
                "SupportedPlatforms",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":{"Linux":"~/a"},"SupportedPlatforms":["Linux","Windows"]}"#,
                "AppSyncDataFolderPath.Windows",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":{"Android":"~/a"},"SupportedPlatforms":["Linux"]}"#,
                "AppSyncDataFolderPath.Android",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"a\\b","SupportedPlatforms":["Linux"]}"#,
                "AppSyncDataFolderPath.Linux",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"relative/x","SupportedPlatforms":["Linux"]}"#,
                "AppSyncDataFolderPath.Linux",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"~/../etc","SupportedPlatforms":["Linux"]}"#,
                "AppSyncDataFolderPath.Linux",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"~/%user%","NeedsFormat":true,"SupportedPlatforms":["Linux"]}"#,
                "AppSyncDataFolderPath.Linux",
            ),
            (
                r#"{"AppName":"A","AppSyncDataFolderPath":"~/%any%","NeedsFormat":false,"SupportedPlatforms":["Linux"]}"#,
                "AppSyncDataFolderPath.Linux",
            ),
            (
                r#"{"AppName":"../x","AppSyncDataFolderPath":"~/a","SupportedPlatforms":["Linux"]}"#,
                "AppName",
            ),
        ];
        for (json, field) in cases {
            let err = grapin(json).unwrap_err();
            assert!(err.contains(&format!("field {field} ")), "{json}: {err}");
        }
        let err = grapin(r#"{"AppName":"A","SupportedPlatforms":["Linux"]}"#).unwrap_err();
        assert!(err.contains("AppSyncDataFolderPath"), "{err}");
        assert!(grapin("{").is_err());
    }

    fn tout(json: &str) -> Result<ToutEnUn, String> {
        ToutEnUn::from_json(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_tout_en_un_parses_and_round_trips() {
        let t = tout(
            r#"{"AppName":"Hello","AppDownloadUrl":"hello.tar.gz","NeedsInstaller":true,"AppLauncherPath":"bin/run.sh",
               "AppInstallerPath":"install.sh","AppUninstallerPath":"","AppSyncDataFolderPath":"data"}"#,
        )
        .unwrap();
        assert_eq!(t.installer().map(AppRelPath::as_str), Some("install.sh"));
        assert_eq!(t.uninstaller(), None);
        assert_eq!(
            t.launcher().under(std::path::Path::new("/r")),
            std::path::Path::new("/r/bin/run.sh")
        );
        assert_eq!(ToutEnUn::from_json(&t.to_json()).unwrap(), t);
        assert_eq!(t.pinned_archive(), None);
        let hash = "AB".repeat(32);
        let pinned = t.clone().with_archive("h.tar.gz", 7, &hash).unwrap();
        assert_eq!(pinned.pinned_archive(), Some((7, "ab".repeat(32).as_str())));
        assert_eq!(ToutEnUn::from_json(&pinned.to_json()).unwrap(), pinned);
        assert!(t.clone().with_archive("h.tar.gz", 7, "abc").is_err());
        let names: Vec<&str> = pinned.programs().iter().map(|(what, _)| *what).collect();
        assert_eq!(names, ["installer", "launcher"]);
    }

    #[test]
    fn tout_en_un_paths_stay_inside_the_app() {
        for (path, field) in [
            ("../x", "AppLauncherPath"),
            ("/bin/sh", "AppLauncherPath"),
            ("a//b", "AppLauncherPath"),
            ("C:/x", "AppLauncherPath"),
        ] {
            let json = format!(
                r#"{{"AppName":"A","AppDownloadUrl":"u","AppLauncherPath":"{path}","AppSyncDataFolderPath":"data"}}"#
            );
            let err = tout(&json).unwrap_err();
            assert!(err.contains(&format!("field {field} ")), "{err}");
        }
        let err = tout(r#"{"AppName":"A","AppDownloadUrl":"u","NeedsInstaller":true,"AppLauncherPath":"r","AppSyncDataFolderPath":"d"}"#).unwrap_err();
        assert!(err.contains("AppInstallerPath"), "{err}");
        let err = tout(r#"{"AppName":"A","AppDownloadUrl":"u","AppLauncherPath":"r","AppSyncDataFolderPath":"."}"#).unwrap_err();
        assert!(err.contains("AppSyncDataFolderPath"), "{err}");
        let err = tout(r#"{"AppName":"A","AppDownloadUrl":"u","AppLauncherPath":"bin/run","AppSyncDataFolderPath":"bin"}"#).unwrap_err();
        assert!(
            err.contains("field AppLauncherPath") && err.contains("synced data folder"),
            "{err}"
        );
        assert!(tout(r#"{"AppName":"A","AppDownloadUrl":"u","AppLauncherPath":"bin2/run","AppSyncDataFolderPath":"bin"}"#).is_ok());
    }
}
