//! yawc, the peer that speaks permessage-deflate (the deflate scenarios only). Its own
//! client handshake (`WebSocket::handshake` on a TCP stream with Nagle disabled) with
//! `Options::default().with_low_latency_compression()`: its preset for speed (level 1, the
//! level wsstream uses by default; context takeover allowed, as offered and negotiated by
//! yawc itself; `with_balanced_compression()`, level 6, measured about 10x slower on the
//! send scenario, which compares levels rather than implementations), plus UTF-8
//! validation of text (`with_utf8`, off by default in yawc; RFC 6455 §8.1 requires it and
//! wsstream always does it) through simdutf8 (the `simd` feature). Reads with
//! `next_frame` (whole inflated messages), sends with the `Sink`'s `feed`.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::net::TcpStream;
use yawc::close::CloseCode;
use yawc::{Frame, OpCode, Options, WebSocket};

use crate::BoxError;
use crate::scenario::{Clock, Received, Span};

async fn open(addr: &str, path: &str) -> Result<WebSocket<TcpStream>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let options = Options::default()
        .with_low_latency_compression()
        .with_utf8();
    let ws = WebSocket::handshake(format!("ws://{addr}{path}").parse()?, tcp, options).await?;
    Ok(ws)
}

fn close_of(frame: &Frame) -> (u16, String) {
    (
        frame.close_code().map_or(1005, u16::from),
        frame
            .close_reason()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Reads (and so inflates) every compressed message the server sends, until its Close,
/// comparing each with `expected`.
pub(crate) async fn recv_deflate(
    addr: &str,
    path: &str,
    expected: &[u8],
) -> Result<(Received, Span), BoxError> {
    let mut ws = open(addr, path).await?;
    let mut received = Received::default();
    let start = Clock::start();
    loop {
        let frame = ws.next_frame().await?;
        match frame.opcode() {
            OpCode::Text => received.add_exact(true, true, frame.payload(), expected),
            OpCode::Binary => received.add_exact(false, true, frame.payload(), expected),
            OpCode::Close => {
                let elapsed = start.stop();
                received.close = Some(close_of(&frame));
                // Lets yawc flush its reply to the Close; it then reports the end.
                let _ = ws.next_frame().await;
                return Ok((received, elapsed));
            }
            _ => {}
        }
    }
}

/// Sends `n` text messages cycling through `messages` (`feed`, each compressed by yawc),
/// then Close; returns the server's count.
pub(crate) async fn send_deflate(
    addr: &str,
    path: &str,
    n: u64,
    messages: &[Vec<u8>],
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let mut ws = open(addr, path).await?;
    let mut texts = Vec::with_capacity(messages.len());
    for m in messages {
        std::str::from_utf8(m)?;
        texts.push(Bytes::copy_from_slice(m));
    }
    let start = Clock::start();
    for text in texts.iter().cycle().take(n as usize) {
        ws.feed(Frame::text(text.clone())).await?;
    }
    ws.send(Frame::close(CloseCode::Normal, b"")).await?;
    loop {
        let frame = ws.next_frame().await?;
        if frame.opcode() == OpCode::Close {
            return Ok((Some(close_of(&frame)), start.stop()));
        }
    }
}
