//! fastwebsockets over a TCP stream whose handshake is done by hand (the crate's
//! `after_handshake` path, lighter than its hyper-based `upgrade` feature), reading through
//! `FragmentCollector` (its message-level API: reassembly and UTF-8 checks). The send
//! scenarios wrap the stream in tokio's `BufWriter` and flush at the end, because the crate
//! itself writes each frame straight to the socket; echo and idle use the bare stream.

use std::time::Instant;

use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, Role, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::TcpStream;

use crate::BoxError;
use crate::clients::{Held, park};
use crate::scenario::{Clock, Received, Span, payload};
use crate::wire;

async fn connect(addr: &str, path: &str) -> Result<TcpStream, BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    wire::client_handshake(&mut tcp, path).await?;
    Ok(tcp)
}

fn collector<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> FragmentCollector<S> {
    FragmentCollector::new(WebSocket::after_handshake(io, Role::Client))
}

/// Reads every message the server sends, until its Close.
pub(crate) async fn recv(addr: &str, path: &str, text: bool) -> Result<(Received, Span), BoxError> {
    let mut ws = collector(connect(addr, path).await?);
    let mut received = Received::default();
    let start = Clock::start();
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Binary => received.add(false, text, &frame.payload),
            OpCode::Text => received.add(true, text, &frame.payload),
            OpCode::Close => {
                // `read_frame` has already answered the Close (auto_close).
                received.close = Some(wire::parse_close(&frame.payload));
                return Ok((received, start.stop()));
            }
            _ => {}
        }
    }
}

/// Sends `n` binary frames through a `BufWriter`, then Close; returns the server's count.
pub(crate) async fn send(
    addr: &str,
    n: u64,
    size: usize,
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let mut ws =
        WebSocket::after_handshake(BufWriter::new(connect(addr, "/count").await?), Role::Client);
    let data = payload(size);
    let start = Clock::start();
    for _ in 0..n {
        ws.write_frame(Frame::binary(Payload::Borrowed(&data)))
            .await?;
    }
    ws.write_frame(Frame::close(1000, b"")).await?;
    ws.flush().await?;
    loop {
        let frame = ws.read_frame().await?;
        if frame.opcode == OpCode::Close {
            return Ok((Some(wire::parse_close(&frame.payload)), start.stop()));
        }
    }
}

/// `n` sequential round trips: `write_frame` then `read_frame`.
pub(crate) async fn echo(addr: &str, n: u64, size: usize) -> Result<(Vec<u64>, Span), BoxError> {
    let mut ws = collector(connect(addr, "/echo").await?);
    let data = payload(size);
    let mut rtts = Vec::with_capacity(n as usize);
    let clock = Clock::start();
    for _ in 0..n {
        let t = Instant::now();
        ws.write_frame(Frame::binary(Payload::Borrowed(&data)))
            .await?;
        let reply = ws.read_frame().await?;
        rtts.push(t.elapsed().as_nanos() as u64);
        if reply.opcode != OpCode::Binary || reply.payload[..] != data[..] {
            return Err("echo mismatch".into());
        }
    }
    let span = clock.stop();
    ws.write_frame(Frame::close(1000, b"")).await?;
    loop {
        let frame = ws.read_frame().await?;
        if frame.opcode == OpCode::Close {
            let (code, _) = wire::parse_close(&frame.payload);
            if code != 1000 {
                return Err(format!("closed with {code}").into());
            }
            return Ok((rtts, span));
        }
    }
}

/// One idle connection: a task waits for the next message.
pub(crate) async fn idle(addr: &str) -> Result<Held, BoxError> {
    let mut ws = collector(connect(addr, "/echo").await?);
    Ok(park(async move {
        let _ = ws.read_frame().await;
    }))
}
