//! QSync's HTTP API and web UI.
//!
//! A daemon's front end over HTTP, built on the control protocol alone
//! ([`qsync_control`]): each REST call becomes one typed [`Command`](qsync_control::Command)
//! handed to the daemon as a [`Request`], and its [`Reply`](qsync_control::Reply) is the
//! answer's JSON; the daemon's [`EventFeed`] becomes a Server-Sent Events stream with ids
//! and replay (`Last-Event-ID`, `?since=N`). The web UI (plain HTML, CSS and JavaScript,
//! embedded: no build step) is served from `/`.
//!
//! Safe by default: it listens on loopback (`127.0.0.1:8385`) and refuses any other
//! address unless asked ([`HttpConfig::allow_remote`]); every `/rest/` call needs the API
//! key (header `X-API-Key`, kept in the state folder's `http-api-key`) or a browser session
//! (a cookie, `HttpOnly`, `SameSite=Strict`, plus the session's CSRF token in
//! `X-CSRF-Token` for every change); requests whose `Host` is not the server's own are
//! refused (DNS rebinding), and so are changes whose `Origin` is another site's. The
//! routes are described in `openapi.yaml` beside this crate.
//!
//! ```no_run
//! use qsync_control::{EventFeed, Request};
//! use qsync_http::{HttpConfig, serve};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Runtime::new()?;
//! let feed = EventFeed::new();
//! // The daemon's side: here, every command is refused.
//! let deliver = |request: Request| {
//!     if let Request::Command(_, reply) = request {
//!         let _ = reply.send(qsync_control::Reply::error("no daemon here"));
//!     }
//!     true
//! };
//! let config = HttpConfig::new("/home/me/.local/share/qsync".into(), "laptop".into());
//! let server = serve(runtime.handle(), config, deliver, feed)?;
//! println!("web UI at {}", qsync_http::login_address(server.address, &server.login_secret)?);
//! # Ok(()) }
//! ```

mod assets;
mod auth;
mod routes;
mod sse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use qsync_control::{EventFeed, Request};

pub use auth::{api_key, api_key_path, login_address, API_KEY_FILE};

/// The address the HTTP API listens on unless told otherwise.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8385";

/// Clients served at once (browsers keep an event stream each).
const MAX_CONNECTIONS: usize = 64;

/// What a server needs to know.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Whether an address other than loopback may be listened on (a person's explicit
    /// choice: the API key then crosses the network in clear text).
    pub allow_remote: bool,
    /// The state folder, where the API key is kept.
    pub state_dir: PathBuf,
    /// This device's name, for the page's title.
    pub name: String,
    /// More host names the server answers to (`name` or `name:port`), besides its address
    /// and, on loopback, `localhost`.
    pub hosts: Vec<String>,
}

impl HttpConfig {
    /// Loopback, the default port.
    pub fn new(state_dir: PathBuf, name: String) -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8385)),
            allow_remote: false,
            state_dir,
            name,
            hosts: Vec::new(),
        }
    }
}

/// What can go wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Not loopback, and not allowed.
    #[error("the HTTP API would listen on {0}, which other machines can reach; set `http_allow_remote = true` in the config (the API key then crosses the network unencrypted) or use a loopback address")]
    Remote(SocketAddr),
    /// The address is taken or not ours.
    #[error("could not listen on {0} for the HTTP API: {1} (pick another with --http or the config key `http`)")]
    Bind(SocketAddr, std::io::Error),
    /// The API key file.
    #[error("could not read or make the HTTP API key {0}: {1}")]
    Key(PathBuf, std::io::Error),
    /// The API key file holds something else.
    #[error("{0} does not hold an API key; remove it and a new one is made")]
    BadKey(PathBuf),
    /// No randomness.
    #[error("the system gave no random bytes for a key")]
    Random,
}

/// A server started: where it listens, and the secret its login addresses are made with.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its address (the port chosen, when 0 was asked).
    pub address: SocketAddr,
    /// This run's secret of one-time login addresses ([`login_address`]): kept where only
    /// the person reads it (the daemon writes it in its state folder, 0700, for
    /// `qsync web`); a restart makes the addresses made before void.
    pub login_secret: String,
}

/// Event streams served at once (each holds a connection): fewer than the connections,
/// so that streams never leave the API without a slot.
pub(crate) const MAX_STREAMS: usize = 16;

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) deliver: Box<dyn Fn(Request) -> bool + Send + Sync>,
    pub(crate) feed: EventFeed,
    pub(crate) gate: auth::Gate,
    pub(crate) name: String,
    pub(crate) address: SocketAddr,
    /// The event streams' slots.
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
}

/// Serve the HTTP API and the web UI on `runtime`: each command goes to `deliver` (as the
/// control socket hands them to the daemon; `false`: the daemon stopped), events come
/// from `feed`. Returns once listening.
pub fn serve<D>(
    runtime: &tokio::runtime::Handle,
    config: HttpConfig,
    deliver: D,
    feed: EventFeed,
) -> Result<Server, HttpError>
where
    D: Fn(Request) -> bool + Send + Sync + 'static,
{
    if !config.listen.ip().is_loopback() && !config.allow_remote {
        return Err(HttpError::Remote(config.listen));
    }
    let key = api_key(&config.state_dir)?;
    let listener = {
        let _guard = runtime.enter();
        let socket = std::net::TcpListener::bind(config.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| HttpError::Bind(config.listen, e))?;
        tokio::net::TcpListener::from_std(socket).map_err(|e| HttpError::Bind(config.listen, e))?
    };
    let address = listener
        .local_addr()
        .map_err(|e| HttpError::Bind(config.listen, e))?;
    let gate = auth::Gate::new(key, auth::hosts_for(address, &config.hosts), address.port())?;
    let login_secret = gate.login_secret.clone();
    let shared = Arc::new(Shared {
        deliver: Box::new(deliver),
        feed,
        gate,
        name: config.name,
        address,
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
    });
    runtime.spawn(accept(listener, shared));
    Ok(Server {
        address,
        login_secret,
    })
}

/// Accept connections, at most [`MAX_CONNECTIONS`] at once (more wait in the kernel's
/// queue); each is served by hyper with a bound on how long its headers may take.
async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // A client gone before it was accepted, or no descriptor left for a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| routes::respond(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}
