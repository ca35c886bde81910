//! A headless Chromium driven through chromedriver (the W3C WebDriver protocol: JSON over
//! HTTP), for the tests of the web UI: open a page, find elements by CSS, click, type,
//! read, take a screenshot. `Browser::start` is `None` when Debian's `chromium` or
//! `chromedriver` is missing (the test then skips with one line).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    base: String,
    session: String,
    agent: ureq::Agent,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

impl Browser {
    /// A new headless browser `width` pixels wide, or `None` (with the reason) when
    /// chromium or chromedriver is not installed.
    pub fn start(width: u32) -> Result<Browser, String> {
        let chromium = which("chromium").ok_or("chromium is not installed")?;
        let driver_bin = which("chromedriver").ok_or("chromedriver is not installed")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver did not start: {e}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut browser = Browser {
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            agent,
            driver,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.raw("GET", "/status", None).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver does not answer".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The flags Chromium needs as root in a sandboxed machine with a closed network.
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},900"),
        ];
        // A window narrower than Chromium allows (about 500 px) is a phone's screen.
        let mut options = json!({"binary": chromium, "args": args});
        if width < 500 {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": 800, "pixelRatio": 1}});
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
        }}});
        let made = browser.raw("POST", "/session", Some(capabilities))?;
        browser.session = made["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {made}"))?
            .to_owned();
        Ok(browser)
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if response.status().is_success() {
            Ok(value["value"].clone())
        } else {
            Err(format!("{}", value["value"]["message"]))
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The elements matching `css`, by WebDriver id.
    pub fn all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .unwrap_or(Value::Null);
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    /// The first element matching `css` (and visible), waiting up to `time` for one.
    pub fn wait(&self, css: &str, time: Duration) -> String {
        let deadline = Instant::now() + time;
        loop {
            let shown = self.all(css).into_iter().find(|e| {
                self.call("GET", &format!("/element/{e}/displayed"), None) == Ok(json!(true))
            });
            if let Some(element) = shown {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no visible `{css}` within {time:?}; the page says:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, css: &str) {
        let element = self.wait(css, Duration::from_secs(10));
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.wait(css, Duration::from_secs(10));
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The text of the first visible `css`.
    pub fn text(&self, css: &str) -> String {
        let element = self.wait(css, Duration::from_secs(10));
        self.call("GET", &format!("/element/{element}/text"), None)
            .unwrap_or_default()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Wait until some visible `css` has text that `ok` accepts; returns that text.
    pub fn wait_text(&self, css: &str, time: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + time;
        loop {
            for element in self.all(css) {
                let text = self
                    .call("GET", &format!("/element/{element}/text"), None)
                    .unwrap_or_default();
                if let Some(text) = text.as_str().filter(|t| ok(t)) {
                    return text.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no `{css}` with the text wanted within {time:?}; the page says:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Press keys as a person at the keyboard does, into whatever has the focus (`\u{e004}`
    /// is Tab, `\u{e007}` Enter).
    pub fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            let c = c.to_string();
            actions.push(json!({"type": "keyDown", "value": c}));
            actions.push(json!({"type": "keyUp", "value": c}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.call("POST", "/actions", Some(body))
            .unwrap_or_else(|e| panic!("keys {text:?}: {e}"));
    }

    /// Press Tab until the focused element matches `css` (at most `tabs` times): how many
    /// it took.
    pub fn tab_to(&self, css: &str, tabs: usize) -> usize {
        let focused = format!("return document.activeElement.matches({css:?})");
        for n in 0..tabs {
            if self.script(&focused) == json!(true) {
                return n;
            }
            self.keys("\u{e004}");
        }
        panic!(
            "`{css}` not reached with {tabs} presses of Tab:\n{}",
            self.page_text()
        );
    }

    /// Run `script` in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub fn page_text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let data = self.call("GET", "/screenshot", None).unwrap();
        let png = data_encoding::BASE64
            .decode(data.as_str().unwrap_or_default().as_bytes())
            .unwrap();
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
