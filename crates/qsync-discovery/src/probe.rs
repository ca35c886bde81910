//! The TCP probe: connect, start a Noise handshake, and learn who answers from the key the
//! daemon proves in its first handshake answer (then hang up, before showing a key back).
//! Probes run on a fixed pool of [`PROBE_WORKERS`] threads fed by a queue of at most
//! [`MAX_QUEUED_PROBES`] addresses ([`Prober`]): however many addresses the LAN announces,
//! discovery never holds more threads or sockets than that.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qsync_base::DeviceId;
use qsync_wire::{Handshake, Identity, PRE_AUTH_MAX_FRAME_LEN};

use crate::{DiscoveryError, Input};

/// Probes running at once, at most. A probe that is answered takes a few milliseconds; one
/// of an address where nothing answers holds its worker for the probe timeout (2 s), so
/// four workers still probe 20 such addresses within a 10-s round, the linked devices'
/// first.
pub const PROBE_WORKERS: usize = 4;

/// Addresses waiting for a worker, at most; beyond, an address waits for the next round.
pub const MAX_QUEUED_PROBES: usize = 64;

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > PRE_AUTH_MAX_FRAME_LEN {
        return None;
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> Option<()> {
    let len = u32::try_from(frame.len()).ok()?;
    stream.write_all(&len.to_be_bytes()).ok()?;
    stream.write_all(frame).ok()
}

/// Connect to `address` and learn the device id its daemon proves in the handshake.
/// `None` if nothing answers in `timeout`, or the answer proves no key.
pub fn probe(address: SocketAddr, timeout: Duration) -> Option<DeviceId> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    // A throwaway key: the probe never shows it (it hangs up before its turn).
    let me = Identity::generate().ok()?;
    let (mut hs, first) = Handshake::initiate(&me, None).ok()?;
    write_frame(&mut stream, &first)?;
    let answer = read_frame(&mut stream)?;
    hs.read(&answer).ok()?;
    hs.peer()
}

/// The pool that probes addresses and reports who answered as [`Input::Answered`]. Its
/// workers end once every clone of it is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Prober {
    queue: SyncSender<SocketAddr>,
    /// Addresses queued or being probed (one probe of an address at a time).
    pending: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl Prober {
    /// Start the workers; each probe gives up after `timeout`.
    pub(crate) fn start(timeout: Duration, answers: Sender<Input>) -> Result<Self, DiscoveryError> {
        let (queue, jobs) = sync_channel::<SocketAddr>(MAX_QUEUED_PROBES);
        let jobs = Arc::new(Mutex::new(jobs));
        let pending = Arc::new(Mutex::new(HashSet::new()));
        for _ in 0..PROBE_WORKERS {
            let (jobs, pending, answers) = (jobs.clone(), pending.clone(), answers.clone());
            std::thread::Builder::new()
                .name("qsync-probe".into())
                .spawn(move || work(&jobs, &pending, &answers, timeout))
                .map_err(|source| DiscoveryError::Io {
                    op: "start a probe thread",
                    source,
                })?;
        }
        Ok(Self { queue, pending })
    }

    /// Probe `address` soon. False if it is being probed already, or the queue is full
    /// (it waits for the next round).
    pub(crate) fn queue(&self, address: SocketAddr) -> bool {
        let Ok(mut pending) = self.pending.lock() else {
            return false;
        };
        if !pending.insert(address) {
            return false;
        }
        match self.queue.try_send(address) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                pending.remove(&address);
                false
            }
        }
    }
}

/// A worker of [`Prober`]: probes what the queue gives until every sender is gone.
fn work(
    jobs: &Mutex<Receiver<SocketAddr>>,
    pending: &Mutex<HashSet<SocketAddr>>,
    answers: &Sender<Input>,
    timeout: Duration,
) {
    loop {
        let next = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(address) = next else {
            return;
        };
        let device = probe(address, timeout);
        if let Ok(mut pending) = pending.lock() {
            pending.remove(&address);
        }
        if let Some(device) = device {
            // The presence thread may be gone (discovery stopping): nothing to tell then.
            let _ = answers.send(Input::Answered { device, address });
        }
    }
}

/// A minimal listener that answers the first handshake message of every connection, then
/// closes it: enough to be found by probes. The engine's real listener does the same as
/// the first step of every connection.
#[derive(Debug)]
pub struct Responder {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Responder {
    /// Listen on `address` (port 0 picks one) as `identity`.
    pub fn bind(address: SocketAddr, identity: Identity) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("qsync-responder".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                            let answered = (|| {
                                let mut hs = Handshake::respond(&identity).ok()?;
                                let first = read_frame(&mut stream)?;
                                let answer = hs.read(&first).ok()??;
                                write_frame(&mut stream, &answer)
                            })();
                            let _ = answered;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })?;
        Ok(Self { address, stop })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Instant;

    /// Sixteen addresses where a listener takes the connection and never answers: they are
    /// probed four at a time (no thread per address), each only once however often it is
    /// queued, and a queue past its bound refuses more.
    #[test]
    fn silent_addresses_are_probed_four_at_a_time() {
        let listeners: Vec<TcpListener> = (0..16)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addresses: Vec<SocketAddr> =
            listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let (answers, _heard) = channel();
        let prober = Prober::start(Duration::from_secs(2), answers).unwrap();
        for address in &addresses {
            assert!(prober.queue(*address));
        }
        assert!(!prober.queue(addresses[0]), "queued twice");
        // Accept (and hold) what connects during the first second.
        let mut held = Vec::new();
        let until = Instant::now() + Duration::from_secs(1);
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
        }
        while Instant::now() < until {
            for l in &listeners {
                if let Ok((stream, _)) = l.accept() {
                    held.push(stream);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(held.len(), PROBE_WORKERS, "probes running at once");

        let far: Vec<SocketAddr> = (1..=MAX_QUEUED_PROBES as u16 + 8)
            .map(|p| SocketAddr::from(([192, 0, 2, 1], p)))
            .collect();
        let queued = far.iter().filter(|a| prober.queue(**a)).count();
        // The twelve silent ones still waiting hold their places.
        assert_eq!(queued, MAX_QUEUED_PROBES - (16 - PROBE_WORKERS));
    }
}
