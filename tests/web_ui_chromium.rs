//! The web UI in a real browser (headless Chromium through chromedriver), as a person
//! uses it with two daemons on loopback: log in from `qsync web`'s address, add a folder,
//! link it to the other daemon (its person types the code the page shows), see a file
//! made there arrive in the live feed and the folder go to "in sync", pause and resume
//! it, restore the version a change from there replaced, answer the other daemon's link
//! request in the page, and all of it usable 360 px wide. A screenshot is kept in the target folder. Without Debian's `chromium` and
//! `chromium-driver` (`.ci/run` installs them) the test says so in one line and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use node::Node;
use webdriver::Browser;

const WAIT: Duration = Duration::from_secs(60);

/// The `li.folder` of the task whose root is `root`, as a CSS selector.
fn folder_of(browser: &Browser, root: &std::path::Path) -> String {
    let text = root.display().to_string();
    browser.wait_text("li.folder .root", WAIT, |t| t == text);
    let task = browser.script(&format!(
        "return [...document.querySelectorAll('li.folder')].find(li => li.querySelector('.root').textContent === {:?}).dataset.task",
        text
    ));
    format!("li.folder[data-task=\"{}\"]", task.as_str().unwrap())
}

/// A browser `width` pixels wide, or `None` with the one line that says why the test
/// skips.
fn browser_or_skip(width: u32) -> Option<Browser> {
    Browser::start(width)
        .map_err(|why| eprintln!("skipped: the web UI test needs headless Chromium ({why})"))
        .ok()
}

#[test]
fn a_person_links_syncs_pauses_and_answers_in_the_browser() {
    let Some(browser) = browser_or_skip(1200) else {
        return;
    };
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "desk");
    let b = Node::start(base.path(), "laptop");

    // Logged in by the one-time address `qsync web` prints.
    let login = a.cli(&["web"]);
    browser.goto(login.lines().next().unwrap());
    browser.wait_text("#connection", WAIT, |t| t == "live");
    assert!(browser.text("#device-id").len() > 20);

    // A folder added in the page.
    let root_a = base.path().join("photos-desk");
    std::fs::create_dir_all(&root_a).unwrap();
    browser.type_into("#add-folder-path", &root_a.display().to_string());
    browser.click("#add-folder");
    let folder = folder_of(&browser, &root_a);
    browser.wait_text(&format!("{folder} .state"), WAIT, |t| t == "in sync");

    // Linked to the other daemon: the page shows the code, its person types it there.
    browser.click(&format!("{folder} button.link"));
    browser.type_into(
        &format!("{folder} .link-address"),
        &format!("127.0.0.1:{}", b.port),
    );
    browser.click(&format!("{folder} button.link-go"));
    let code = browser.wait_text(&format!("{folder} .link-code"), WAIT, |t| t.len() >= 9);
    let (id, _, _) = node::wait_question(&b.state, &["CHOOSELINKPATH"]);
    let root_b = base.path().join("photos-laptop");
    b.cli(&["answer", &id, &format!("{code} {}", root_b.display())]);
    browser.wait_text("#feed li.event", WAIT, |t| {
        t.contains("laptop") || t.contains("link")
    });
    browser.wait_text("li.device .connected", WAIT, |t| t == "connected");

    // A file made on the other device arrives, and the page says so.
    node::wait_for("the linked folder", WAIT, || root_b.is_dir());
    std::fs::write(root_b.join("beach.jpg"), b"sand and sea").unwrap();
    browser.wait_text("#feed li.event", WAIT, |t| t.contains("beach.jpg"));
    node::wait_for("the file on this device", WAIT, || {
        std::fs::read(root_a.join("beach.jpg")).is_ok_and(|c| c == b"sand and sea")
    });
    browser.wait_text(&format!("{folder} .state"), WAIT, |t| t == "in sync");

    // Paused and resumed with its buttons.
    browser.click(&format!("{folder} button.pause"));
    browser.wait_text(&format!("{folder} .state"), WAIT, |t| t == "paused");
    assert!(a.cli(&["task", "list"]).contains("paused"));
    browser.click(&format!("{folder} button.resume"));
    browser.wait_text(&format!("{folder} .state"), WAIT, |t| t == "in sync");

    // The other device replaces the file: the version it replaced here is listed, and
    // restored from the page.
    std::fs::write(root_b.join("beach.jpg"), b"only sand").unwrap();
    node::wait_for("the new version here", WAIT, || {
        std::fs::read(root_a.join("beach.jpg")).is_ok_and(|c| c == b"only sand")
    });
    browser.wait_text("li.version", WAIT, |t| t.contains("beach.jpg"));
    browser.click("li.version button.restore");
    node::wait_for("the version restored, here and there", WAIT, || {
        std::fs::read(root_a.join("beach.jpg")).is_ok_and(|c| c == b"sand and sea")
            && std::fs::read(root_b.join("beach.jpg")).is_ok_and(|c| c == b"sand and sea")
    });

    // The other device links a folder of its own: the question is answered in the page.
    let notes_b = base.path().join("notes-laptop");
    std::fs::create_dir_all(&notes_b).unwrap();
    let notes_task = b.add_task(&notes_b);
    let linking =
        node::Linking::start(&b.state, &notes_task, &format!("127.0.0.1:{}", a.port), &[]).unwrap();
    let question = "li.question[data-flag=\"CHOOSELINKPATH\"]";
    browser.wait(question, WAIT);
    let notes_a = base.path().join("notes-desk");
    browser.type_into(&format!("{question} .answer-code"), &linking.code);
    browser.type_into(
        &format!("{question} .answer-folder"),
        &notes_a.display().to_string(),
    );
    browser.click(&format!("{question} .answer"));
    let (linked, said) = linking.finish();
    assert!(linked, "the link answered in the page failed: {said}");
    folder_of(&browser, &notes_a);

    // Usable on a phone: nothing wider than 360 px.
    drop(browser);
    let narrow = Browser::start(360).unwrap();
    narrow.goto(a.cli(&["web"]).lines().next().unwrap());
    narrow.wait_text("#connection", WAIT, |t| t == "live");
    folder_of(&narrow, &root_a);
    assert_eq!(
        narrow.script("return window.innerWidth"),
        serde_json::json!(360)
    );
    let fits = narrow.script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth",
    );
    assert_eq!(
        fits,
        serde_json::json!(true),
        "the page scrolls sideways at 360 px"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-ui-360px.png");
    narrow.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());
}

/// Keyboard only: Tab to the folder path, type it, Enter adds the folder; Tab to its Pause
/// button, Enter pauses it; every control shows where the focus is.
#[test]
fn the_web_ui_works_from_the_keyboard_alone() {
    let Some(browser) = browser_or_skip(1200) else {
        return;
    };
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "keys");
    browser.goto(a.cli(&["web"]).lines().next().unwrap());
    browser.wait_text("#connection", WAIT, |t| t == "live");
    let root = base.path().join("letters");
    std::fs::create_dir_all(&root).unwrap();
    browser.tab_to("#add-folder-path", 40);
    browser.keys(&format!("{}\u{e007}", root.display()));
    let folder = folder_of(&browser, &root);
    browser.tab_to(&format!("{folder} button.pause"), 40);
    let outline = browser.script("return getComputedStyle(document.activeElement).outlineStyle");
    assert_ne!(outline, serde_json::json!("none"), "the focus is not shown");
    browser.keys("\u{e007}");
    browser.wait_text(&format!("{folder} .state"), WAIT, |t| t == "paused");
    assert!(a.cli(&["task", "list"]).contains("paused"));
}
