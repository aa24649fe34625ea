//! wsstream through its public WebSocketStream API only: `reader.read()`, `writer.write()`
//! and the writer's `Sink` (`feed` batches into the send buffer; `WSB_OPT=write` makes the
//! send scenarios use `writer.write()` per message instead), default options. The
//! deflate scenarios use the same defaults (permessage-deflate is on by default: level 1,
//! 1 KiB threshold) and fail unless `extensions` reports permessage-deflate.

use std::time::Instant;

use bytes::Bytes;
use futures_util::SinkExt;
use wsstream::{
    Message, Utf8Bytes, WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream,
    WebSocketStreamOptions, WebSocketWriter,
};

use crate::BoxError;
use crate::clients::{Held, park};
use crate::scenario::{Clock, Received, Span, payload};

async fn open(addr: &str, path: &str) -> Result<(WebSocketStream, WebSocketOpenInfo), BoxError> {
    let wss = WebSocketStream::new(
        &format!("ws://{addr}{path}"),
        WebSocketStreamOptions::default(),
    )?;
    let info = wss.opened().await?;
    Ok((wss, info))
}

/// Reads every message the server sends, until its Close.
pub(crate) async fn recv(addr: &str, path: &str, text: bool) -> Result<(Received, Span), BoxError> {
    let (wss, info) = open(addr, path).await?;
    let mut reader = info.readable.get_reader()?;
    let mut received = Received::default();
    let start = Clock::start();
    while let Some(message) = reader.read().await? {
        received.add(message.is_text(), text, message.as_bytes());
    }
    let elapsed = start.stop();
    let closed = wss.closed().await?;
    received.close = Some((closed.close_code.unwrap_or(0), closed.reason));
    Ok((received, elapsed))
}

/// Fails unless the handshake agreed on permessage-deflate.
fn require_deflate(info: &WebSocketOpenInfo) -> Result<(), BoxError> {
    if info.extensions.starts_with("permessage-deflate") {
        Ok(())
    } else {
        Err(format!(
            "permessage-deflate not negotiated (extensions {:?})",
            info.extensions
        )
        .into())
    }
}

/// Reads (and so inflates) every compressed message the server sends, until its Close,
/// comparing each with `expected`.
pub(crate) async fn recv_deflate(
    addr: &str,
    path: &str,
    expected: &[u8],
) -> Result<(Received, Span), BoxError> {
    let (wss, info) = open(addr, path).await?;
    require_deflate(&info)?;
    let mut reader = info.readable.get_reader()?;
    let mut received = Received::default();
    let start = Clock::start();
    while let Some(message) = reader.read().await? {
        received.add_exact(message.is_text(), true, message.as_bytes(), expected);
    }
    let elapsed = start.stop();
    let closed = wss.closed().await?;
    received.close = Some((closed.close_code.unwrap_or(0), closed.reason));
    Ok((received, elapsed))
}

/// Sends `n` text messages, cycling through `messages`, through the `Sink` (each
/// compressed by wsstream), then closes; returns the server's count.
pub(crate) async fn send_deflate(
    addr: &str,
    path: &str,
    n: u64,
    messages: &[Vec<u8>],
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let (wss, info) = open(addr, path).await?;
    require_deflate(&info)?;
    let mut writer = info.writable.get_writer()?;
    let texts = messages
        .iter()
        .map(|m| Utf8Bytes::try_from(Bytes::copy_from_slice(m)))
        .collect::<Result<Vec<_>, _>>()?;
    let messages = texts.iter().cycle().take(n as usize);
    feed_then_close(
        &wss,
        &mut writer,
        messages.map(|t| Message::Text(t.clone())),
    )
    .await
}

/// Sends `n` binary messages through the `Sink`, then closes; returns the server's count.
pub(crate) async fn send(
    addr: &str,
    n: u64,
    size: usize,
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let (wss, info) = open(addr, "/count").await?;
    let mut writer = info.writable.get_writer()?;
    let data = Bytes::from(payload(size));
    let messages = (0..n).map(|_| Message::from(data.clone()));
    feed_then_close(&wss, &mut writer, messages).await
}

/// The measured part of a send scenario: feeds every message through the `Sink`, then
/// `close()` (which sends Close after the queued writes and waits for the closing
/// handshake); returns the server's Close (its count) and the time taken. With
/// `WSB_OPT=write` (for investigation, not in the matrix) each message goes through
/// `writer.write(message).await` instead of `feed`.
async fn feed_then_close(
    wss: &WebSocketStream,
    writer: &mut WebSocketWriter,
    messages: impl Iterator<Item = Message>,
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let write = std::env::var("WSB_OPT").is_ok_and(|v| v == "write");
    let start = Clock::start();
    if write {
        for message in messages {
            writer.write(message).await?;
        }
    } else {
        for message in messages {
            writer.feed(message).await?;
        }
    }
    writer.close().await?;
    let elapsed = start.stop();
    let closed = wss.closed().await?;
    Ok((
        Some((closed.close_code.unwrap_or(0), closed.reason)),
        elapsed,
    ))
}

/// `n` sequential round trips: `write()` then `read()`.
pub(crate) async fn echo(addr: &str, n: u64, size: usize) -> Result<(Vec<u64>, Span), BoxError> {
    let (wss, info) = open(addr, "/echo").await?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    let data = Bytes::from(payload(size));
    let mut rtts = Vec::with_capacity(n as usize);
    let clock = Clock::start();
    for _ in 0..n {
        let t = Instant::now();
        writer.write(Message::from(data.clone())).await?;
        let reply = reader.read().await?.ok_or("closed during echo")?;
        rtts.push(t.elapsed().as_nanos() as u64);
        if reply.is_text() || reply.as_bytes() != &data[..] {
            return Err("echo mismatch".into());
        }
    }
    let span = clock.stop();
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: String::new(),
    })?;
    let closed = wss.closed().await?;
    if closed.close_code != Some(1000) {
        return Err(format!("closed with {closed:?}").into());
    }
    Ok((rtts, span))
}

/// One idle connection: a task waits for the next message with the reader and writer.
pub(crate) async fn idle(addr: &str) -> Result<Held, BoxError> {
    let (wss, info) = open(addr, "/echo").await?;
    let mut reader = info.readable.get_reader()?;
    let writer = info.writable.get_writer()?;
    drop(info);
    let task = park(async move {
        let _ = reader.read().await;
        drop(writer);
    });
    Ok(Box::new((wss, task)))
}
