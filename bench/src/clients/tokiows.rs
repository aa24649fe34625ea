//! tokio-websockets with its own client handshake (`connect_on` a TCP stream with Nagle
//! disabled) and default config (8 KiB flush threshold, fastrand masks, no nightly SIMD).

use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, CloseCode, Message, WebSocketStream};

use crate::BoxError;
use crate::clients::{Held, park};
use crate::scenario::{Clock, Received, Span, payload};

async fn open(addr: &str, path: &str) -> Result<WebSocketStream<TcpStream>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (ws, _) = ClientBuilder::new()
        .uri(&format!("ws://{addr}{path}"))?
        .connect_on(tcp)
        .await?;
    Ok(ws)
}

fn close_of(message: &Message) -> Option<(u16, String)> {
    message
        .as_close()
        .map(|(code, reason)| (u16::from(code), reason.to_owned()))
}

/// Reads every message the server sends, until its Close.
pub(crate) async fn recv(addr: &str, path: &str, text: bool) -> Result<(Received, Span), BoxError> {
    let mut ws = open(addr, path).await?;
    let mut received = Received::default();
    let start = Clock::start();
    let mut elapsed = None;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_binary() || message.is_text() {
            received.add(message.is_text(), text, message.as_payload());
        } else if message.is_close() {
            elapsed = Some(start.stop());
            received.close = close_of(&message);
        }
    }
    Ok((received, elapsed.ok_or("no Close frame")?))
}

/// Sends `n` binary messages (`feed`), then Close; returns the server's count.
pub(crate) async fn send(
    addr: &str,
    n: u64,
    size: usize,
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let mut ws = open(addr, "/count").await?;
    let data = Bytes::from(payload(size));
    let start = Clock::start();
    for _ in 0..n {
        ws.feed(Message::binary(data.clone())).await?;
    }
    ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
        .await?;
    let mut close = None;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_close() {
            close = close_of(&message);
            break;
        }
    }
    Ok((close, start.stop()))
}

/// `n` sequential round trips: `send` then `next`.
pub(crate) async fn echo(addr: &str, n: u64, size: usize) -> Result<(Vec<u64>, Span), BoxError> {
    let mut ws = open(addr, "/echo").await?;
    let data = Bytes::from(payload(size));
    let mut rtts = Vec::with_capacity(n as usize);
    let clock = Clock::start();
    for _ in 0..n {
        let t = Instant::now();
        ws.send(Message::binary(data.clone())).await?;
        let reply = ws.next().await.ok_or("closed during echo")??;
        rtts.push(t.elapsed().as_nanos() as u64);
        if !reply.is_binary() || reply.as_payload()[..] != data[..] {
            return Err("echo mismatch".into());
        }
    }
    let span = clock.stop();
    ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
        .await?;
    let mut code = None;
    while let Some(message) = ws.next().await {
        let message = message?;
        if let Some((c, _)) = close_of(&message) {
            code = Some(c);
        }
    }
    if code != Some(1000) {
        return Err(format!("closed with {code:?}").into());
    }
    Ok((rtts, span))
}

/// One idle connection: a task waits for the next message.
pub(crate) async fn idle(addr: &str) -> Result<Held, BoxError> {
    let mut ws = open(addr, "/echo").await?;
    Ok(park(async move {
        let _ = ws.next().await;
    }))
}
