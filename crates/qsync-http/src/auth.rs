//! Who may talk to the HTTP API: the API key (kept in the state folder, for scripts and the
//! CLI), browser sessions, and the `Host` and `Origin` checks that keep other web sites and
//! DNS rebinding out.
//!
//! A session is two secrets: a cookie (`HttpOnly`, `SameSite=Strict`) and a page token the
//! login hands to the page in the address's fragment, which the page keeps in its origin's
//! storage and sends in `X-CSRF-Token` with every call. Both are needed: browsers send
//! cookies to every port of a host (another local server the person visits gets the
//! cookie), but storage and fragments stay with the exact origin, and no other site can
//! add the header.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use crate::HttpError;

/// The file in the state folder holding the API key.
pub const API_KEY_FILE: &str = "http-api-key";

/// How long a one-time login token may wait for its use.
const LOGIN_TOKEN_LIFE: Duration = Duration::from_secs(120);

/// How long a browser session lasts without the daemon restarting.
const SESSION_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Sessions and login tokens kept at once (the oldest go first).
const MAX_SESSIONS: usize = 64;
const MAX_LOGIN_TOKENS: usize = 16;

/// 32 random bytes, as 52 characters of base32 (no padding).
pub(crate) fn random_token() -> Result<String, HttpError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HttpError::Random)?;
    Ok(data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase())
}

/// The state folder's API key: read, or made at first use (mode 0600).
pub fn api_key(state_dir: &Path) -> Result<String, HttpError> {
    let path = state_dir.join(API_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if is_token(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(_) => return Err(HttpError::BadKey(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HttpError::Key(path, e)),
    }
    let key = random_token()?;
    std::fs::create_dir_all(state_dir).map_err(|e| HttpError::Key(path.clone(), e))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            writeln!(file, "{key}")?;
            file.sync_all()
        });
    match written {
        Ok(()) => Ok(key),
        // Another process made it first: its key is the one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => api_key(state_dir),
        Err(e) => Err(HttpError::Key(path, e)),
    }
}

fn is_token(text: &str) -> bool {
    text.len() >= 32 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Equal without telling, by its time, how much of a guess was right: the digests are
/// compared, and how much of a digest matches says nothing of the secret.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(a).as_ref() == digest(b).as_ref()
}

/// A browser session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// What the page sends back in `X-CSRF-Token` with every change.
    pub(crate) csrf: String,
    made: Instant,
}

/// The API key, the sessions and the one-time login tokens of one server.
#[derive(Debug)]
pub(crate) struct Gate {
    key: String,
    /// This run's secret of login tokens: a restart makes the tokens made before void.
    pub(crate) login_secret: String,
    sessions: Mutex<HashMap<String, Session>>,
    /// Login tokens already used, with when they expire (each is taken once).
    used_tokens: Mutex<Vec<(String, u64)>>,
    /// The `Host` values requests may carry (`name:port`, lower case).
    hosts: Vec<String>,
    /// The cookie's name: per port, as browsers share cookies between a host's ports.
    pub(crate) cookie: String,
}

/// How a request proved itself.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// With the API key (a script, the CLI): no CSRF token needed, no cookie involved.
    Key,
    /// With a browser session.
    Session(Session),
}

impl Gate {
    pub(crate) fn new(key: String, hosts: Vec<String>, port: u16) -> Result<Self, HttpError> {
        Ok(Gate {
            key,
            login_secret: random_token()?,
            sessions: Mutex::new(HashMap::new()),
            used_tokens: Mutex::new(Vec::new()),
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            cookie: format!("qsync_session_{port}"),
        })
    }

    /// Whether `host` (the request's `Host` header) is one this server answers to: anything
    /// else is a page of another site that made its name point here (DNS rebinding).
    pub(crate) fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| {
            self.hosts
                .iter()
                .any(|allowed| allowed == &h.to_ascii_lowercase())
        })
    }

    /// Whether `origin` (the request's `Origin` header, if any) is this server's own.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => origin
                .to_ascii_lowercase()
                .strip_prefix("http://")
                .is_some_and(|host| self.hosts.iter().any(|allowed| allowed == host)),
        }
    }

    /// Whether `given` is the API key.
    pub(crate) fn key_matches(&self, given: &str) -> bool {
        same(given.trim(), &self.key)
    }

    /// Who calls, from the request's key header or session cookie.
    pub(crate) fn caller(&self, key: Option<&str>, session: Option<&str>) -> Option<Caller> {
        if let Some(key) = key {
            return self.key_matches(key).then_some(Caller::Key);
        }
        let token = session?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.made.elapsed() < SESSION_LIFE);
        sessions
            .iter()
            .find(|(t, _)| same(t, token))
            .map(|(_, s)| Caller::Session(s.clone()))
    }

    /// Whether the session of cookie value `token` is still open.
    pub(crate) fn has_session(&self, token: &str) -> bool {
        self.caller(None, Some(token)).is_some()
    }

    /// A new session: its cookie value and its CSRF token.
    pub(crate) fn open_session(&self) -> Result<(String, String), HttpError> {
        let token = random_token()?;
        let csrf = random_token()?;
        let session = Session {
            csrf: csrf.clone(),
            made: Instant::now(),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.made)
                .map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token.clone(), session);
        Ok((token, csrf))
    }

    /// End the session of cookie value `token`.
    pub(crate) fn close_session(&self, token: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|t, _| !same(t, token));
    }

    /// A one-time login token, good for [`LOGIN_TOKEN_LIFE`].
    pub(crate) fn login_token(&self) -> Result<String, HttpError> {
        login_token_for(&self.login_secret, unix_now() + LOGIN_TOKEN_LIFE.as_secs())
    }

    /// Use a login token: true once, within its life. Only the exact form this server
    /// makes is taken (no other spelling of the same numbers passes as a new token).
    pub(crate) fn use_login_token(&self, given: &str) -> bool {
        let mut parts = given.split('.');
        let (Some(until), Some(nonce), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(until) = until.parse::<u64>() else {
            return false;
        };
        let now = unix_now();
        if until < now || until > now + LOGIN_TOKEN_LIFE.as_secs() {
            return false;
        }
        if !same(given, &login_token_with(&self.login_secret, until, nonce)) {
            return false;
        }
        let mut used = self.used_tokens.lock().unwrap_or_else(|e| e.into_inner());
        used.retain(|(_, until)| *until >= now);
        if used.len() >= MAX_LOGIN_TOKENS || used.iter().any(|(t, _)| t == given) {
            return false;
        }
        used.push((given.to_owned(), until));
        true
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `UNTIL.NONCE.MAC`: MAC is the HMAC, with the server's login secret, of the time the
/// token expires and a random nonce (two tokens made in the same second differ).
fn login_token_with(secret: &str, until: u64, nonce: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let message = format!("qsync web login until {until} nonce {nonce}");
    let mac = ring::hmac::sign(&key, message.as_bytes());
    format!(
        "{until}.{nonce}.{}",
        data_encoding::BASE32_NOPAD
            .encode(mac.as_ref())
            .to_lowercase()
    )
}

fn login_token_for(secret: &str, until: u64) -> Result<String, HttpError> {
    let nonce = random_token()?;
    Ok(login_token_with(secret, until, &nonce[..26]))
}

/// The address that logs a browser into the web UI at `http` once, within two minutes,
/// made with that server's login secret ([`crate::Server::login_secret`], which the
/// daemon keeps in its state folder for `qsync web`: only its person can read it).
pub fn login_address(http: std::net::SocketAddr, login_secret: &str) -> Result<String, HttpError> {
    let token = login_token_for(login_secret, unix_now() + LOGIN_TOKEN_LIFE.as_secs())?;
    Ok(format!("http://{http}/login?token={token}"))
}

/// The `Host` values a server on `listen` answers to: its address as given, and for a
/// loopback address the loopback names; then the configured ones.
pub(crate) fn hosts_for(listen: std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let port = listen.port();
    let mut hosts = vec![listen.to_string()];
    if listen.ip().is_loopback() {
        hosts.extend([
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    for name in extra {
        if name.contains(':') && !name.starts_with('[') {
            hosts.push(name.clone());
        } else {
            hosts.push(format!("{name}:{port}"));
        }
    }
    hosts
}

/// The path of the API key file in `state_dir`.
pub fn api_key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(API_KEY_FILE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn gate() -> Gate {
        let listen = "127.0.0.1:8385".parse().unwrap();
        Gate::new(
            "k".repeat(52),
            hosts_for(listen, &["laptop.lan".into()]),
            8385,
        )
        .unwrap()
    }

    #[test]
    fn only_our_own_names_and_origins_pass() {
        let gate = gate();
        for host in [
            "127.0.0.1:8385",
            "LOCALHOST:8385",
            "[::1]:8385",
            "laptop.lan:8385",
        ] {
            assert!(gate.host_allowed(Some(host)), "{host}");
        }
        for host in ["evil.example:8385", "127.0.0.1:80", "127.0.0.1", ""] {
            assert!(!gate.host_allowed(Some(host)), "{host}");
        }
        assert!(!gate.host_allowed(None));
        assert!(gate.origin_allowed(None));
        assert!(gate.origin_allowed(Some("http://localhost:8385")));
        assert!(!gate.origin_allowed(Some("http://evil.example")));
        assert!(!gate.origin_allowed(Some("null")));
    }

    #[test]
    fn sessions_and_login_tokens() {
        let gate = gate();
        assert!(gate.caller(None, Some("nothing")).is_none());
        assert!(matches!(
            gate.caller(Some(&"k".repeat(52)), None),
            Some(Caller::Key)
        ));
        assert!(gate.caller(Some("wrong"), None).is_none());
        let (cookie, _) = gate.open_session().unwrap();
        assert!(matches!(
            gate.caller(None, Some(&cookie)),
            Some(Caller::Session(_))
        ));
        gate.close_session(&cookie);
        assert!(gate.caller(None, Some(&cookie)).is_none());
        let token = gate.login_token().unwrap();
        assert_ne!(
            token,
            gate.login_token().unwrap(),
            "two tokens of one second differ"
        );
        let (until, rest) = token.split_once('.').unwrap();
        for respelled in [
            format!("0{until}.{rest}"),
            format!("+{until}.{rest}"),
            token.to_uppercase(),
            format!("{token}.x"),
        ] {
            assert!(!gate.use_login_token(&respelled), "{respelled}");
        }
        assert!(gate.use_login_token(&token));
        assert!(!gate.use_login_token(&token), "used once only");
        let other = Gate::new("k".repeat(52), vec![], 1).unwrap();
        assert!(
            !other.use_login_token(&gate.login_token().unwrap()),
            "another run's secret"
        );
        let late = login_token_for(&gate.login_secret, unix_now() - 1).unwrap();
        assert!(!gate.use_login_token(&late), "expired");
    }

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = api_key(dir.path()).unwrap();
        assert_eq!(api_key(dir.path()).unwrap(), key);
        let mode = std::fs::metadata(api_key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
