//! A plain HTTP/1.1 client for the tests of the HTTP API: every header as the test writes
//! it (a wrong `Host`, a foreign `Origin`), the answer read whole; and a reader of the
//! event stream (Server-Sent Events).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Where the daemon of `state` serves HTTP (its `http.address`), once it does.
pub fn address(state: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(addr) = std::fs::read_to_string(state.join("http.address"))
            .ok()
            .and_then(|t| t.lines().next()?.parse().ok())
        {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "no http.address in {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The API key of the daemon of `state`.
pub fn key(state: &Path) -> String {
    std::fs::read_to_string(state.join("http-api-key"))
        .expect("the API key file")
        .trim()
        .to_owned()
}

fn head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    text
}

/// Send one request, read the whole answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP API");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(head(addr, method, path, headers, body).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Answer {
        status,
        headers,
        body: if chunked {
            unchunk(body)
        } else {
            body.to_owned()
        },
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// An open event stream.
pub struct Events {
    reader: BufReader<TcpStream>,
}

/// One message of the stream: its id (if any) and data.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Option<u64>,
    pub data: serde_json::Value,
}

impl Events {
    /// `GET /rest/events` with `headers` (the key, a `Last-Event-ID`...).
    pub fn open(addr: SocketAddr, headers: &[(&str, &str)]) -> Events {
        let mut stream = TcpStream::connect(addr).expect("connect to the HTTP API");
        stream
            .write_all(head(addr, "GET", "/rest/events", headers, "").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "the event stream answered {line}");
        while {
            line.clear();
            reader.read_line(&mut line).unwrap() > 0 && line.trim() != ""
        } {}
        Events { reader }
    }

    /// The next message with data within `wait` (comments and `retry` skipped).
    pub fn next(&mut self, wait: Duration) -> Option<Message> {
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        let (mut id, mut data) = (None, None);
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            // A chunk's size line of the chunked body: not part of the stream's text.
            let text = line.trim_end();
            if let Some(value) = text.strip_prefix("id: ") {
                id = value.parse().ok();
            } else if let Some(value) = text.strip_prefix("data: ") {
                data = serde_json::from_str(value).ok();
            } else if text.is_empty() {
                if let Some(data) = data.take() {
                    return Some(Message { id, data });
                }
                id = None;
            }
        }
    }
}
