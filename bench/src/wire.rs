//! The few RFC 6455 pieces the near-zero-cost server and the raw clients need: the accept
//! key, frame headers, masking, and minimal client and server handshakes that leave no
//! byte of the peer's first frames behind in a buffer.

use std::io;

use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// RFC 6455 §1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The key the hand-written client handshakes send (the RFC's example nonce).
pub(crate) const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The mask of every frame the raw client sends.
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for `key`.
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// RSV1 in a frame's first byte: the message is compressed (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0x40;

/// Appends a FIN frame header (masked with [`MASK`] if `masked`) to `out`.
pub(crate) fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize, masked: bool) {
    put_header_rsv(out, opcode, 0, len, masked);
}

/// [`put_header`] with the reserved bits `rsv` (e.g. [`RSV1`]) set in the first byte.
pub(crate) fn put_header_rsv(out: &mut Vec<u8>, opcode: u8, rsv: u8, len: usize, masked: bool) {
    out.push(0x80 | rsv | opcode);
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&MASK);
    }
}

/// Appends a whole FIN frame to `out`, masking the payload with [`MASK`] if `masked`.
pub(crate) fn put_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], masked: bool) {
    put_frame_rsv(out, opcode, 0, payload, masked);
}

/// [`put_frame`] with the reserved bits `rsv` set: with [`RSV1`], a compressed message whose
/// `payload` is already DEFLATE data.
pub(crate) fn put_frame_rsv(out: &mut Vec<u8>, opcode: u8, rsv: u8, payload: &[u8], masked: bool) {
    put_header_rsv(out, opcode, rsv, payload.len(), masked);
    let start = out.len();
    out.extend_from_slice(payload);
    if masked {
        apply_mask(&mut out[start..], MASK);
    }
}

/// XORs `data` with `mask` (RFC 6455 §5.3), starting at mask offset 0.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1: a compressed message's first frame (RFC 7692 §6).
    pub(crate) rsv1: bool,
    pub(crate) opcode: u8,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) len: u64,
    /// Bytes the header occupies.
    pub(crate) size: usize,
}

/// Parses the frame header at the start of `buf`, `None` if incomplete.
pub(crate) fn parse_header(buf: &[u8]) -> Option<Header> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut size) = match buf[1] & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(size..size + 4)?.try_into().ok()?;
        size += 4;
        Some(m)
    } else {
        None
    };
    Some(Header {
        fin: buf[0] & 0x80 != 0,
        rsv1: buf[0] & RSV1 != 0,
        opcode: buf[0] & 0x0f,
        mask,
        len,
        size,
    })
}

/// Builds a Close frame body: the code then the reason.
pub(crate) fn close_body(code: u16, reason: &str) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason.as_bytes());
    body
}

/// Splits a Close frame body into code and reason (1005 when empty).
pub(crate) fn parse_close(body: &[u8]) -> (u16, String) {
    if body.len() < 2 {
        return (1005, String::new());
    }
    (
        u16::from_be_bytes([body[0], body[1]]),
        String::from_utf8_lossy(&body[2..]).into_owned(),
    )
}

/// The minimal client handshake of the raw and fastwebsockets clients: sends the upgrade
/// request for `path`, then consumes exactly the response head (peeking for its end), so
/// the frames that follow stay in the socket for the WebSocket implementation to read.
pub(crate) async fn client_handshake(tcp: &mut TcpStream, path: &str) -> io::Result<()> {
    client_handshake_ext(tcp, path, None).await.map(drop)
}

/// [`client_handshake`] offering `extensions` in `Sec-WebSocket-Extensions`; returns the
/// server's `Sec-WebSocket-Extensions` answer (`""` if none).
pub(crate) async fn client_handshake_ext(
    tcp: &mut TcpStream,
    path: &str,
    extensions: Option<&str>,
) -> io::Result<String> {
    let host = tcp.peer_addr()?;
    let offer = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let head = read_head_exact(tcp).await?;
    let expected = accept_key(CLIENT_KEY);
    if !head.starts_with("HTTP/1.1 101") || !head.contains(&expected) {
        return Err(io::Error::other(format!("bad handshake response: {head}")));
    }
    Ok(header_value(&head, "sec-websocket-extensions").unwrap_or_default())
}

/// The minimal server handshake of the hand-written echo servers (fastwebsockets'
/// `after_handshake` path): consumes exactly the request head (the frames that follow stay
/// in the socket), requires a `Sec-WebSocket-Key`, and answers 101 with its accept key and
/// no `Sec-WebSocket-Extensions` (any permessage-deflate offer is declined).
pub(crate) async fn server_handshake(tcp: &mut TcpStream) -> io::Result<()> {
    let head = read_head_exact(tcp).await?;
    let key = header_value(&head, "sec-websocket-key")
        .ok_or_else(|| io::Error::other("no Sec-WebSocket-Key in the upgrade request"))?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    tcp.write_all(response.as_bytes()).await
}

/// Reads one HTTP head (up to and including its blank line) and not a byte more: peeks for
/// its end, then consumes exactly that many bytes.
async fn read_head_exact(tcp: &mut TcpStream) -> io::Result<String> {
    let mut peek = vec![0u8; 4096];
    let end = loop {
        let n = tcp.peek(&mut peek).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(pos) = find(&peek[..n], b"\r\n\r\n") {
            break pos + 4;
        }
        if n == peek.len() {
            return Err(io::Error::other("HTTP head too long"));
        }
        tokio::task::yield_now().await;
    };
    let mut head = vec![0u8; end];
    tcp.read_exact(&mut head).await?;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The value of the first header `name` (lowercase) in an HTTP head, trimmed.
pub(crate) fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
