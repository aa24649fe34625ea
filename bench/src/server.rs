//! The near-zero-cost server: a hand-written handshake, then one of three modes chosen by
//! the request path.
//!
//! * `/send?n=N&size=S&text=0|1`: writes N pre-encoded frames of S bytes from one buffer
//!   built once (a run of identical frames, written again and again), then Close 1000
//!   "done", then waits for the client's Close and closes TCP.
//! * `/count`: reads frames by their headers without unmasking (reads of up to 1 MiB,
//!   payloads skipped by arithmetic, runs of equal small frames counted by testing their
//!   header bytes), counts data messages and payload bytes, and answers the client's Close
//!   with Close 1000 "count=N bytes=B".
//! * `/echo`: unmasks each frame and echoes it unmasked; answers Ping with Pong and Close
//!   with Close. Idle connections use this mode too.
//!
//! With `deflate=1` in the query (the deflate scenarios), and only then, the server accepts
//! the client's permessage-deflate offer (RFC 7692), always adding
//! `server_no_context_takeover` (§7.1.1.1 lets a server add it unasked) and echoing
//! `client_no_context_takeover` and `server_max_window_bits` if offered. `/send` then
//! compresses the message once ([`deflate_message`]) and sends that frame, RSV1 set, from the
//! repeated buffer; without an acceptable offer it sends Close 1008 instead of any data.
//! `/count` also counts the messages whose first frame has RSV1 and reports them as
//! `compressed=C`; `bytes` is then the wire (compressed) payload.
//!
//! It runs on a current-thread runtime in its own process, so it uses at most one of the
//! two cores and the client measured gets the other one.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::scenario::{deflate_message, json_payload, payload};
use crate::wire::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RSV1};

/// Bytes of frames in the buffer the send mode writes repeatedly.
const SEND_CHUNK: usize = 1 << 20;
/// How long the server waits for a client's Close after its own.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Serves until the process ends.
pub(crate) async fn serve(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = connection(tcp).await
                && !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                )
            {
                eprintln!("server: {e}");
            }
        });
    }
}

async fn connection(mut tcp: TcpStream) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let end = loop {
        if tcp.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(pos) = wire::find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(io::Error::other("request head too long"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end);
    let path = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| io::Error::other("no request target"))?
        .to_owned();
    let key = wire::header_value(&head, "sec-websocket-key")
        .ok_or_else(|| io::Error::other("no Sec-WebSocket-Key"))?;
    let (route, query) = path.split_once('?').unwrap_or((&path, ""));
    let param = |name: &str| -> usize {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deflate_route = param("deflate") == 1;
    // Every Sec-WebSocket-Extensions header, joined as one list (RFC 7230 §3.2.2).
    let offers = head
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-extensions")
                .then_some(value.trim())
        })
        .collect::<Vec<_>>()
        .join(",");
    let deflate = if deflate_route {
        accept_deflate(&offers)
    } else {
        None
    };
    let extensions = deflate
        .as_ref()
        .map(|d| format!("Sec-WebSocket-Extensions: {}\r\n", d.response))
        .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extensions}\r\n",
        wire::accept_key(&key)
    );
    tcp.write_all(response.as_bytes()).await?;
    match route {
        "/send" => {
            let (n, size) = (param("n"), param("size"));
            let frame = match (deflate_route, &deflate) {
                (false, _) => {
                    let mut frame = Vec::new();
                    let opcode = if param("text") == 1 {
                        OP_TEXT
                    } else {
                        OP_BINARY
                    };
                    wire::put_frame(&mut frame, opcode, &payload(size), false);
                    Some(frame)
                }
                (true, Some(d)) => {
                    let mut frame = Vec::new();
                    let compressed = deflate_message(&json_payload(size), d.window_bits);
                    wire::put_frame_rsv(&mut frame, OP_TEXT, RSV1, &compressed, false);
                    Some(frame)
                }
                (true, None) => None,
            };
            send(&mut tcp, buf, n, frame).await
        }
        "/count" => count(&mut tcp, buf, deflate_route).await,
        _ => echo(&mut tcp, buf).await,
    }
}

/// The permessage-deflate agreement of a deflate route.
struct Deflate {
    /// The `Sec-WebSocket-Extensions` value of the response.
    response: String,
    /// The LZ77 window the server compresses with.
    window_bits: u8,
}

/// Accepts the first permessage-deflate offer in `offers` (a comma-separated
/// `Sec-WebSocket-Extensions` list) whose parameters are valid (RFC 7692 §7.1): always with
/// `server_no_context_takeover`, plus `client_no_context_takeover` if offered, and
/// `server_max_window_bits=N` if the client asked for N (9 to 15; zlib cannot compress a
/// raw stream with 8, so such an offer is declined). `client_max_window_bits` is left out of
/// the answer: the client may then use any window, and this server never inflates.
fn accept_deflate(offers: &str) -> Option<Deflate> {
    'offers: for offer in offers.split(',') {
        let mut parts = offer.split(';').map(str::trim);
        if parts.next() != Some("permessage-deflate") {
            continue;
        }
        let mut client_no_context_takeover = false;
        let mut server_window = None;
        let mut seen = Vec::new();
        for param in parts.filter(|p| !p.is_empty()) {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (param, None),
            };
            if seen.contains(&name) {
                continue 'offers;
            }
            seen.push(name);
            match (name, value) {
                ("server_no_context_takeover", None) => {}
                ("client_no_context_takeover", None) => client_no_context_takeover = true,
                ("server_max_window_bits", Some(v)) => match v.parse::<u8>() {
                    Ok(bits @ 9..=15) => server_window = Some(bits),
                    _ => continue 'offers,
                },
                ("client_max_window_bits", None) => {}
                ("client_max_window_bits", Some(v)) => {
                    if !matches!(v.parse::<u8>(), Ok(8..=15)) {
                        continue 'offers;
                    }
                }
                _ => continue 'offers,
            }
        }
        let mut response = String::from("permessage-deflate; server_no_context_takeover");
        if client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = server_window {
            response.push_str(&format!("; server_max_window_bits={bits}"));
        }
        return Some(Deflate {
            response,
            window_bits: server_window.unwrap_or(15),
        });
    }
    None
}

/// Writes `n` copies of `frame` from one buffer, then Close 1000 "done"; without a frame
/// (a deflate route whose offer was missing or declined), Close 1008 alone.
async fn send(
    tcp: &mut TcpStream,
    mut buf: BytesMut,
    n: usize,
    frame: Option<Vec<u8>>,
) -> io::Result<()> {
    let Some(frame) = frame else {
        let mut close = Vec::new();
        let body = wire::close_body(1008, "permessage-deflate not negotiated");
        wire::put_frame(&mut close, OP_CLOSE, &body, false);
        return tcp.write_all(&close).await;
    };
    let per_chunk = (SEND_CHUNK / frame.len()).max(1);
    let chunk = frame.repeat(per_chunk);
    for _ in 0..n / per_chunk {
        tcp.write_all(&chunk).await?;
    }
    tcp.write_all(&chunk[..(n % per_chunk) * frame.len()])
        .await?;
    let mut close = Vec::new();
    wire::put_frame(&mut close, OP_CLOSE, &wire::close_body(1000, "done"), false);
    tcp.write_all(&close).await?;
    // Wait for the client's Close (discarding anything else), then close TCP first, as
    // the server should (RFC 6455 §7.1.1).
    let wait = async {
        loop {
            while let Some(h) = wire::parse_header(&buf) {
                let total = h.size + h.len as usize;
                if buf.len() < total {
                    break;
                }
                if h.opcode == OP_CLOSE {
                    return Ok(());
                }
                buf.advance(total);
            }
            if tcp.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
    };
    let result: io::Result<()> = tokio::time::timeout(CLOSE_WAIT, wait)
        .await
        .unwrap_or(Ok(()));
    result
}

/// Bytes the count mode asks for per read: a 64 KiB frame then costs a sixteenth of a
/// read, and the server stays well below the cost of any client it measures.
const COUNT_READ: usize = 1 << 20;

/// Counts the whole masked data frames with a 7-bit length at the start of `buf`, up to
/// the first other frame or incomplete one: returns (messages, payload bytes, messages
/// with RSV1, bytes used), the same tally as the general path of [`count`]. A run of
/// frames with the same first two header bytes (same flags, opcode and length, as a client
/// sending equal messages produces) is counted by testing those bytes at each frame's
/// offset, tests that do not wait for one another, rather than by walking from one header
/// to the next.
fn count_small(buf: &[u8]) -> (u64, u64, u64, usize) {
    let (mut messages, mut bytes, mut compressed, mut at) = (0, 0, 0, 0);
    while let [b0, b1, ..] = buf[at..] {
        let len = usize::from(b1 & 0x7f);
        let opcode = b0 & 0x0f;
        let step = 6 + len;
        // Masked, 7-bit length, a data or continuation frame, and all of it here.
        if b1 & 0x80 == 0 || len >= 126 || opcode >= 0x8 || buf.len() - at < step {
            break;
        }
        let whole = (buf.len() - at) / step;
        let run = 1 + buf[at + step..]
            .chunks_exact(step)
            .take(whole - 1)
            .take_while(|frame| frame[0] == b0 && frame[1] == b1)
            .count();
        let run64 = run as u64;
        messages += run64 * u64::from(b0 >> 7);
        if b0 & RSV1 != 0 && (opcode == OP_TEXT || opcode == OP_BINARY) {
            compressed += run64;
        }
        bytes += run64 * len as u64;
        at += run * step;
    }
    (messages, bytes, compressed, at)
}

/// The count mode: parses frame headers in a [`COUNT_READ`]-byte buffer and skips payloads
/// by arithmetic (never touching or unmasking them), so its cost per byte is the kernel's
/// copy and per frame a header parse. Ping is answered; Close gets the count.
async fn count(tcp: &mut TcpStream, leftover: BytesMut, deflate: bool) -> io::Result<()> {
    let mut messages = 0u64;
    let mut bytes = 0u64;
    // Messages whose first frame has RSV1 (compressed, RFC 7692 §6).
    let mut compressed = 0u64;
    // Payload bytes of the current data frame still to skip.
    let mut skip = 0u64;
    let mut buf = vec![0u8; COUNT_READ.max(2 * leftover.len())];
    buf[..leftover.len()].copy_from_slice(&leftover);
    // `buf[start..end]` is read and not yet parsed.
    let (mut start, mut end) = (0, leftover.len());
    loop {
        loop {
            if skip == 0 {
                // The fast path: whole masked data frames of up to 125 bytes (the send-16
                // stream is nothing else) are counted with a few byte tests each.
                let (n, b, c, used) = count_small(&buf[start..end]);
                messages += n;
                bytes += b;
                compressed += c;
                start += used;
            }
            if skip > 0 {
                let k = skip.min((end - start) as u64);
                start += k as usize;
                skip -= k;
                if skip > 0 {
                    break;
                }
            }
            let Some(h) = wire::parse_header(&buf[start..end]) else {
                break;
            };
            match h.opcode {
                OP_CLOSE | OP_PING => {
                    let total = h.size + h.len as usize;
                    if end - start < total {
                        break;
                    }
                    let mut body = buf[start + h.size..start + total].to_vec();
                    if let Some(mask) = h.mask {
                        wire::apply_mask(&mut body, mask);
                    }
                    start += total;
                    let mut out = Vec::new();
                    if h.opcode == OP_PING {
                        wire::put_frame(&mut out, OP_PONG, &body, false);
                        tcp.write_all(&out).await?;
                        continue;
                    }
                    let mut reason = format!("count={messages} bytes={bytes}");
                    if deflate {
                        reason.push_str(&format!(" compressed={compressed}"));
                    }
                    wire::put_frame(&mut out, OP_CLOSE, &wire::close_body(1000, &reason), false);
                    tcp.write_all(&out).await?;
                    return Ok(());
                }
                _ => {
                    if h.fin && h.opcode != OP_PONG {
                        messages += 1;
                    }
                    if h.rsv1 && (h.opcode == OP_TEXT || h.opcode == OP_BINARY) {
                        compressed += 1;
                    }
                    if h.opcode != OP_PONG {
                        bytes += h.len;
                    }
                    start += h.size;
                    skip = h.len;
                }
            }
        }
        // What is left unparsed (part of a header or of a control frame) moves to the front.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let k = tcp.read(&mut buf[end..]).await?;
        if k == 0 {
            return Ok(());
        }
        end += k;
    }
}

async fn echo(tcp: &mut TcpStream, mut buf: BytesMut) -> io::Result<()> {
    let mut out = Vec::new();
    loop {
        while let Some(h) = wire::parse_header(&buf) {
            let total = h.size + h.len as usize;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                break;
            }
            let mut frame = buf.split_to(total);
            let body = &mut frame[h.size..];
            if let Some(mask) = h.mask {
                wire::apply_mask(body, mask);
            }
            match h.opcode {
                OP_PING => wire::put_frame(&mut out, OP_PONG, body, false),
                OP_PONG => {}
                OP_CLOSE => {
                    wire::put_frame(&mut out, OP_CLOSE, body, false);
                    tcp.write_all(&out).await?;
                    return Ok(());
                }
                op => {
                    out.push((u8::from(h.fin) << 7) | op);
                    let mut header = Vec::new();
                    wire::put_header(&mut header, op, body.len(), false);
                    out.extend_from_slice(&header[1..]);
                    out.extend_from_slice(body);
                }
            }
        }
        if !out.is_empty() {
            tcp.write_all(&out).await?;
            out.clear();
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        if tcp.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}
