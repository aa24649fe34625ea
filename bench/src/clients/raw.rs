//! The physical limit: the same bytes over the same TCP socket with no WebSocket parsing.
//! Receive reads into one 1 MiB buffer until the expected byte count has arrived and checks
//! that the stream ends with the server's Close frame; send writes frames masked in advance
//! from one buffer; echo writes one pre-masked frame and reads the reply's exact size.
//!
//! Deflate: the raw client offers `permessage-deflate; client_no_context_takeover` and
//! moves the compressed bytes without inflating (receive) or compressing (send: one message
//! compressed once, its frame masked once and repeated), the physical limit again.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BoxError;
use crate::clients::{Held, park};
use crate::scenario::{Clock, Received, Span, deflate_message, payload};
use crate::wire::{self, OP_BINARY, OP_CLOSE, OP_TEXT, RSV1};

/// Bytes of pre-masked frames the send scenario writes per call.
const CHUNK: usize = 256 * 1024;

async fn connect(addr: &str, path: &str) -> Result<TcpStream, BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    wire::client_handshake(&mut tcp, path).await?;
    Ok(tcp)
}

/// What the raw client offers in the deflate scenarios: every message it sends is compressed
/// on its own.
const DEFLATE_OFFER: &str = "permessage-deflate; client_no_context_takeover";

/// Connects offering [`DEFLATE_OFFER`]; fails unless the server accepted it.
async fn connect_deflate(addr: &str, path: &str) -> Result<TcpStream, BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let agreed = wire::client_handshake_ext(&mut tcp, path, Some(DEFLATE_OFFER)).await?;
    if !agreed.starts_with("permessage-deflate") {
        return Err(format!("permessage-deflate not negotiated ({agreed:?})").into());
    }
    Ok(tcp)
}

fn masked_close() -> Vec<u8> {
    let mut close = Vec::new();
    wire::put_frame(&mut close, OP_CLOSE, &wire::close_body(1000, ""), true);
    close
}

/// Reads the server's frames as bytes until the expected total, then answers its Close.
pub(crate) async fn recv(
    addr: &str,
    path: &str,
    n: u64,
    size: usize,
    text: bool,
) -> Result<(Received, Span), BoxError> {
    let tcp = connect(addr, path).await?;
    let data = payload(size);
    let mut frame = Vec::new();
    let opcode = if text { OP_TEXT } else { OP_BINARY };
    wire::put_frame(&mut frame, opcode, &data, false);
    read_frames(tcp, &frame, n, text, &data).await
}

/// Reads the server's compressed frames as bytes until the expected total (the frame the
/// server builds: `expected` compressed with a 15-bit window, RSV1 set), then answers its
/// Close. Nothing is inflated: this is the limit of moving the compressed bytes.
pub(crate) async fn recv_deflate(
    addr: &str,
    path: &str,
    n: u64,
    expected: &[u8],
) -> Result<(Received, Span), BoxError> {
    let tcp = connect_deflate(addr, path).await?;
    let mut frame = Vec::new();
    wire::put_frame_rsv(
        &mut frame,
        OP_TEXT,
        RSV1,
        &deflate_message(expected, 15),
        false,
    );
    read_frames(tcp, &frame, n, true, expected).await
}

/// Reads `n` copies of `frame` and the server's Close 1000 "done" as bytes, checks the
/// count and the Close, answers it, and credits `n` messages of `data`.
async fn read_frames(
    mut tcp: TcpStream,
    frame: &[u8],
    n: u64,
    text: bool,
    data: &[u8],
) -> Result<(Received, Span), BoxError> {
    let mut close = Vec::new();
    wire::put_frame(&mut close, OP_CLOSE, &wire::close_body(1000, "done"), false);
    let total = n * frame.len() as u64 + close.len() as u64;
    let mut buf = vec![0u8; raw_buf()];
    let mut got = 0u64;
    let mut tail = Vec::new();
    let start = Clock::start();
    while got < total {
        let k = tcp.read(&mut buf).await?;
        if k == 0 {
            return Err(format!("EOF after {got} of {total} bytes").into());
        }
        got += k as u64;
        // Keep the last bytes to check the Close frame at the end.
        tail.extend_from_slice(&buf[k.saturating_sub(close.len())..k]);
        if tail.len() > close.len() {
            tail.drain(..tail.len() - close.len());
        }
    }
    let elapsed = start.stop();
    if got != total || tail != close {
        return Err(format!("received {got} bytes ending {tail:?}, expected {total}").into());
    }
    tcp.write_all(&masked_close()).await?;
    // The server closes TCP after our Close.
    while tcp.read(&mut buf).await? > 0 {}
    // Receiving the exact byte count ending in the Close is the raw client's check: credit
    // it with the messages the server sent.
    let mut received = Received::default();
    for _ in 0..n {
        received.add_exact(text, text, data, data);
    }
    received.close = Some((1000, "done".into()));
    Ok((received, elapsed))
}

/// Writes `n` frames masked in advance (from one buffer), then Close; returns the count.
pub(crate) async fn send(
    addr: &str,
    n: u64,
    size: usize,
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let tcp = connect(addr, "/count").await?;
    let mut frame = Vec::new();
    wire::put_frame(&mut frame, OP_BINARY, &payload(size), true);
    write_frames(tcp, &frame, n).await
}

/// Writes `n` text frames of `data` compressed once (each message on its own, as offered
/// with `client_no_context_takeover`), RSV1 set, masked in advance, from one buffer; then
/// Close; returns the count.
pub(crate) async fn send_deflate(
    addr: &str,
    path: &str,
    n: u64,
    data: &[u8],
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let tcp = connect_deflate(addr, path).await?;
    let mut frame = Vec::new();
    wire::put_frame_rsv(&mut frame, OP_TEXT, RSV1, &deflate_message(data, 15), true);
    write_frames(tcp, &frame, n).await
}

/// Writes `n` copies of the masked `frame` in chunks of [`CHUNK`] bytes, then Close; returns
/// the server's count reply.
async fn write_frames(
    mut tcp: TcpStream,
    frame: &[u8],
    n: u64,
) -> Result<(Option<(u16, String)>, Span), BoxError> {
    let per_chunk = (CHUNK / frame.len()).max(1);
    let chunk = frame.repeat(per_chunk);
    let start = Clock::start();
    for _ in 0..n / per_chunk as u64 {
        tcp.write_all(&chunk).await?;
    }
    tcp.write_all(&chunk[..(n % per_chunk as u64) as usize * frame.len()])
        .await?;
    tcp.write_all(&masked_close()).await?;
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await?;
    let elapsed = start.stop();
    let close = wire::parse_header(&reply)
        .filter(|h| h.opcode == OP_CLOSE && reply.len() == h.size + h.len as usize)
        .map(|h| wire::parse_close(&reply[h.size..]));
    Ok((close, elapsed))
}

/// `n` sequential round trips of one pre-masked frame.
pub(crate) async fn echo(addr: &str, n: u64, size: usize) -> Result<(Vec<u64>, Span), BoxError> {
    let mut tcp = connect(addr, "/echo").await?;
    let data = payload(size);
    let mut frame = Vec::new();
    wire::put_frame(&mut frame, OP_BINARY, &data, true);
    let mut expected = Vec::new();
    wire::put_frame(&mut expected, OP_BINARY, &data, false);
    let mut reply = vec![0u8; expected.len()];
    let mut rtts = Vec::with_capacity(n as usize);
    let clock = Clock::start();
    for _ in 0..n {
        let t = Instant::now();
        tcp.write_all(&frame).await?;
        tcp.read_exact(&mut reply).await?;
        rtts.push(t.elapsed().as_nanos() as u64);
        if reply != expected {
            return Err("echo mismatch".into());
        }
    }
    let span = clock.stop();
    tcp.write_all(&masked_close()).await?;
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).await?;
    match wire::parse_header(&rest) {
        Some(h) if h.opcode == OP_CLOSE && wire::parse_close(&rest[h.size..]).0 == 1000 => {
            Ok((rtts, span))
        }
        _ => Err("no Close 1000 after echo".into()),
    }
}

/// One idle connection: a task waits for the next bytes.
pub(crate) async fn idle(addr: &str) -> Result<Held, BoxError> {
    let mut tcp = connect(addr, "/echo").await?;
    Ok(park(async move {
        let mut byte = [0u8; 1];
        let _ = tcp.read(&mut byte).await;
    }))
}

/// The raw client's read buffer: `WSB_RAW_BUF` bytes, default 256 KiB.
fn raw_buf() -> usize {
    std::env::var("WSB_RAW_BUF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 * 1024)
}
