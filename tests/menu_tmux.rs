//! The terminal menu in a real terminal (tmux), as a person uses it: while it waits at its
//! prompt, another device asks to link a folder; the question appears without a key
//! pressed, the person types the code and `~/Shared`, and the folder is linked there.
//! Without tmux the test says so in one line and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::process::Command;
use std::time::{Duration, Instant};

use node::{qsync, Linking, Node};

/// A tmux server of this test's own.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "menu", "-S", "-200"])
    }

    fn wait_for(&self, text: &str, time: Duration) -> String {
        let deadline = Instant::now() + time;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no `{text}` on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "menu", "-l", keys]);
        self.run(&["send-keys", "-t", "menu", "Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn a_link_request_appears_in_the_menu_without_a_key_pressed() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: the menu's terminal test needs tmux");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let home = base.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let a = Node::start(base.path(), "desk");
    let b = Node::start(base.path(), "laptop");
    let tmux = Tmux {
        socket: format!("qsync-test-{}", std::process::id()),
    };
    let menu = format!(
        "env HOME={} {} --state-dir {}",
        home.display(),
        qsync().to_string_lossy(),
        a.state.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "menu",
        "-x",
        "200",
        "-y",
        "50",
        &menu,
    ]);
    tmux.wait_for("choice:", Duration::from_secs(20));

    let shared = base.path().join("shared-laptop");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), b"from the laptop").unwrap();
    let task = b.add_task(&shared);
    let linking = Linking::start(&b.state, &task, &format!("127.0.0.1:{}", a.port), &[]).unwrap();
    // No key pressed: the question shows up at the prompt by itself.
    tmux.wait_for("Question (CHOOSELINKPATH)", Duration::from_secs(20));
    tmux.keys(&format!("{} ~/Shared", linking.code));
    let (linked, said) = linking.finish();
    assert!(linked, "{said}\n{}", tmux.screen());
    node::wait_for(
        "the linked folder in ~/Shared",
        Duration::from_secs(60),
        || std::fs::read(home.join("Shared/hello.txt")).is_ok_and(|c| c == b"from the laptop"),
    );
    // Enter alone shows the menu again, not an error.
    tmux.keys("");
    let screen = tmux.screen();
    assert!(!screen.contains("is not one of the choices"), "{screen}");
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("tmux")
        .args(["-L", &tmux.socket, "has-session", "-t", "menu"])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "the menu did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        a.cli(&["status"]).contains("device"),
        "the menu stopped a daemon it did not start"
    );
}
