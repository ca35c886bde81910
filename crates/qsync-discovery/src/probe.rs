//! The TCP probe: connect, read the `Open` frame the daemon sends first, learn who it is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qsync_base::DeviceId;
use qsync_wire::{Handshake, Opening, MAX_FRAME_LEN};

/// Connect to `address` and read the device id its daemon announces in its `Open` frame.
/// `None` if nothing answers in `timeout`, or the answer is not a QSync `Open` frame.
pub fn probe(address: SocketAddr, timeout: Duration) -> Option<DeviceId> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 128.min(MAX_FRAME_LEN) {
        return None;
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).ok()?;
    Opening::parse(&frame).ok().map(|o| o.sender())
}

/// A minimal listener that answers every connection with this device's `Open` frame and
/// closes it: enough to be found by probes. The engine's real listener does the same as
/// the first step of every connection.
#[derive(Debug)]
pub struct Responder {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Responder {
    /// Listen on `address` (port 0 picks one) as `device`.
    pub fn bind(address: SocketAddr, device: DeviceId) -> std::io::Result<Self> {
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
                            if let Ok((_, open)) = Handshake::start(device) {
                                let _ = stream.set_nonblocking(false);
                                let _ = stream.write_all(&(open.len() as u32).to_be_bytes());
                                let _ = stream.write_all(&open);
                            }
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
