//! A hostile client built on QSync's own crates: it speaks the wire protocol well enough
//! to get as far as a stranger can (a Noise handshake with a key of its own) and then
//! sends whatever the attack needs. Blocking std sockets on loopback.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use qsync_wire::{Handshake, Identity, Session};

/// Write one length-prefixed frame.
pub fn send(stream: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(frame.len() as u32).to_be_bytes())?;
    stream.write_all(frame)
}

/// Read one length-prefixed frame (at most 16 MiB).
pub fn recv(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 16 << 20 {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame)?;
    Ok(frame)
}

/// Dial `port` on loopback as `me` and run the handshake as initiator.
pub fn connect(port: u16, me: &Identity) -> Result<(TcpStream, Session), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    handshake(stream, me)
}

/// Dial `port` on loopback from the loopback address `from` (any of 127.0.0.0/8): what
/// many hosts look like on one machine.
pub fn connect_from(
    from: std::net::Ipv4Addr,
    port: u16,
    me: &Identity,
) -> Result<(TcpStream, Session), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let stream = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((from, 0).into())?;
            socket
                .connect(([127, 0, 0, 1], port).into())
                .await?
                .into_std()
        })
        .map_err(|e| e.to_string())?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    handshake(stream, me)
}

fn handshake(mut stream: TcpStream, me: &Identity) -> Result<(TcpStream, Session), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let (mut hs, first) = Handshake::initiate(me, None).map_err(|e| e.to_string())?;
    send(&mut stream, &first).map_err(|e| e.to_string())?;
    let second = recv(&mut stream).map_err(|e| e.to_string())?;
    let third = hs
        .read(&second)
        .map_err(|e| e.to_string())?
        .ok_or("no third handshake message")?;
    send(&mut stream, &third).map_err(|e| e.to_string())?;
    let session = hs.into_session().map_err(|e| e.to_string())?;
    Ok((stream, session))
}

/// Accept one connection on `listener` as `me` and run the handshake as responder.
pub fn accept(
    listener: &std::net::TcpListener,
    me: &Identity,
) -> Result<(TcpStream, Session), String> {
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut hs = Handshake::respond(me).map_err(|e| e.to_string())?;
    let first = recv(&mut stream).map_err(|e| e.to_string())?;
    let second = hs
        .read(&first)
        .map_err(|e| e.to_string())?
        .ok_or("no second handshake message")?;
    send(&mut stream, &second).map_err(|e| e.to_string())?;
    let third = recv(&mut stream).map_err(|e| e.to_string())?;
    hs.read(&third).map_err(|e| e.to_string())?;
    let session = hs.into_session().map_err(|e| e.to_string())?;
    Ok((stream, session))
}
