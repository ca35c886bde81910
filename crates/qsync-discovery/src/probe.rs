//! The TCP probe: connect, start a Noise handshake, and learn who answers from the key the
//! daemon proves in its first handshake answer (then hang up, before showing a key back).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qsync_base::DeviceId;
use qsync_wire::{Handshake, Identity, PRE_AUTH_MAX_FRAME_LEN};

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
