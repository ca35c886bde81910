//! The local control socket: one command line in, the answer out. The CLI talks to a
//! running daemon through it rather than opening its database behind its back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use crate::daemon::Event;
use crate::EngineError;

/// Serve the control socket at `path` (created 0600).
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    path: PathBuf,
    events: Sender<Event>,
) -> Result<(), EngineError> {
    let _ = std::fs::remove_file(&path);
    let listener = {
        let _guard = runtime.enter();
        UnixListener::bind(&path)
            .map_err(|e| EngineError::io("create the control socket", &path, e))?
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| EngineError::io("restrict", &path, e))?;
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let events = events.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_err() {
                    return;
                }
                let (reply, answer) = oneshot::channel();
                if events
                    .send(Event::Control(line.trim().to_owned(), reply))
                    .is_err()
                {
                    return;
                }
                let text = answer
                    .await
                    .unwrap_or_else(|_| "error: the daemon stopped".into());
                let _ = write.write_all(format!("{text}\n").as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// Send one command to the daemon whose state is in `state_dir`; returns its answer.
pub fn request(state_dir: &Path, command: &str) -> Result<String, EngineError> {
    let path = crate::daemon::control_socket(state_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::io("start a runtime for", &path, e))?;
    runtime.block_on(async {
        let mut stream =
            UnixStream::connect(&path)
                .await
                .map_err(|source| EngineError::NoDaemon {
                    socket: path.clone(),
                    source,
                })?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| EngineError::io("talk to the daemon at", &path, e))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .map_err(|e| EngineError::io("read the daemon's answer at", &path, e))?;
        Ok(answer.trim_end().to_owned())
    })
}

/// Bytes quoted in a control word besides every non-ASCII byte: controls, space and `%`.
const CONTROL_WORD: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'%');

/// Make `text` one word of a control line: percent-encoded, so that paths with spaces and
/// JSON survive the line protocol. [`unquote`] undoes it.
pub fn quote(text: &str) -> String {
    if text.is_empty() {
        return "%".into(); // an empty word, which splitting on spaces would lose
    }
    percent_encoding::utf8_percent_encode(text, CONTROL_WORD).to_string()
}

/// Undo [`quote`]; `None` if `word` is not a quoted word.
pub fn unquote(word: &str) -> Option<String> {
    if word == "%" {
        return Some(String::new());
    }
    percent_encoding::percent_decode_str(word)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn quoted_words_survive_a_control_line(text in any::<String>()) {
            let word = quote(&text);
            prop_assert_eq!(word.split_whitespace().count(), 1);
            prop_assert_eq!(unquote(&word), Some(text));
        }
    }
}
