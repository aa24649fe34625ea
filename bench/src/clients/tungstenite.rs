//! tokio-tungstenite with its defaults (128 KiB read and write buffers), Nagle disabled as
//! its docs advise; `feed` batches sends, `send` (feed + flush) in the echo loop.

use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::BoxError;
use crate::clients::{Held, park};
use crate::scenario::{Clock, Received, Span, payload};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(addr: &str, path: &str) -> Result<Ws, BoxError> {
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}{path}"), None, true)
            .await?;
    Ok(ws)
}

fn close_of(frame: Option<CloseFrame>) -> (u16, String) {
    frame.map_or((1005, String::new()), |f| {
        (u16::from(f.code), f.reason.to_string())
    })
}

/// Reads every message the server sends, until its Close.
pub(crate) async fn recv(addr: &str, path: &str, text: bool) -> Result<(Received, Span), BoxError> {
    let mut ws = open(addr, path).await?;
    let mut received = Received::default();
    let start = Clock::start();
    let mut elapsed = None;
    while let Some(message) = ws.next().await {
        match message? {
            Message::Binary(b) => received.add(false, text, &b),
            Message::Text(t) => received.add(true, text, t.as_bytes()),
            Message::Close(frame) => {
                elapsed = Some(start.stop());
                received.close = Some(close_of(frame));
            }
            _ => {}
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
        ws.feed(Message::Binary(data.clone())).await?;
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .await?;
    let mut close = None;
    while let Some(message) = ws.next().await {
        if let Message::Close(frame) = message? {
            close = Some(close_of(frame));
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
        ws.send(Message::Binary(data.clone())).await?;
        let reply = ws.next().await.ok_or("closed during echo")??;
        rtts.push(t.elapsed().as_nanos() as u64);
        match reply {
            Message::Binary(b) if b == data => {}
            _ => return Err("echo mismatch".into()),
        }
    }
    let span = clock.stop();
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .await?;
    let mut code = None;
    while let Some(message) = ws.next().await {
        if let Message::Close(frame) = message? {
            code = Some(close_of(frame).0);
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
