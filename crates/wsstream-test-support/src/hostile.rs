//! Hostile servers, scripted at the byte level: a raw TCP listener on `127.0.0.1:0` whose
//! connection is driven by a test's script through a [`ScriptedPeer`] — answer the
//! handshake properly or not at all, send whatever bytes (well-formed frames from
//! [`frames`](crate::frames) or garbage), read what the client sends and parse it.
//!
//! ```no_run
//! use wsstream_test_support::frames::Frame;
//! use wsstream_test_support::hostile::serve_once;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let server = serve_once(|mut peer| async move {
//!     peer.accept().await?;
//!     peer.send_frame(&Frame::ping(vec![0u8; 126])).await?; // control frame > 125 bytes
//!     peer.read_until_close(std::time::Duration::from_secs(5)).await?;
//!     Ok(peer.close_frame())
//! })
//! .await?;
//! // connect a WebSocketStream to server.url(), then:
//! let close = server.finish().await?;
//! assert_eq!(close.and_then(|f| f.close_code()), Some(1002));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsstream_proto::handshake::{HandshakeRequest, parse_request};

use crate::frames::{Frame, ParsedFrame, parse_frame};

/// A listener that runs one script on its first connection.
#[derive(Debug)]
pub struct HostileServer<T> {
    addr: SocketAddr,
    task: JoinHandle<io::Result<T>>,
}

/// Binds `127.0.0.1:0` and runs `script` on the first connection accepted.
pub async fn serve_once<F, Fut, T>(script: F) -> io::Result<HostileServer<T>>
where
    F: FnOnce(ScriptedPeer) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        script(ScriptedPeer::new(tcp)).await
    });
    Ok(HostileServer { addr, task })
}

impl<T> HostileServer<T> {
    /// `ws://127.0.0.1:port/hostile`.
    pub fn url(&self) -> String {
        format!("ws://{}/hostile", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the script's result (a panic in the script becomes an `io::Error`).
    pub async fn finish(self) -> io::Result<T> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(format!("the script failed: {e}"))),
        }
    }

    /// Stops the script (dropping its connection).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// The server end of one connection, as a script sees it. Everything the client sends
/// after its handshake request is kept in [`received`](Self::received).
#[derive(Debug)]
pub struct ScriptedPeer {
    tcp: TcpStream,
    head: Vec<u8>,
    received: Vec<u8>,
    eof: bool,
}

/// The `Sec-WebSocket-Key` → response head helper for scripts that craft their own 101.
pub fn accept_key(key: &str) -> String {
    // Reuse the engine's key derivation through a request: build a minimal valid one.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let Ok(Some((request, _))) = parse_request(request.as_bytes()) else {
        return String::new();
    };
    let response = String::from_utf8_lossy(&request.accept(None, None, &[])).into_owned();
    response
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Accept: "))
        .unwrap_or_default()
        .to_owned()
}

impl ScriptedPeer {
    fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            head: Vec::new(),
            received: Vec::new(),
            eof: false,
        }
    }

    /// Reads the client's opening handshake request (bytes after it stay in
    /// [`received`](Self::received)).
    pub async fn read_request(&mut self) -> io::Result<HandshakeRequest> {
        let mut buf = [0u8; 4096];
        loop {
            match parse_request(&self.head) {
                Ok(Some((request, n))) => {
                    self.received.extend_from_slice(&self.head[n..]);
                    self.head.truncate(n);
                    return Ok(request);
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            let n = self.tcp.read(&mut buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.head.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads the request and answers with a proper `101` (no subprotocol, no extension).
    pub async fn accept(&mut self) -> io::Result<HandshakeRequest> {
        let request = self.read_request().await?;
        let response = request.accept(None, None, &[]);
        self.send(&response).await?;
        Ok(request)
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Writes one frame (as built, e.g. unmasked as a server sends).
    pub async fn send_frame(&mut self, frame: &Frame) -> io::Result<()> {
        self.send(&frame.encode()).await
    }

    /// Writes `bytes` one byte at a time, sleeping `interval` before each (slowloris).
    /// Stops with the first write error (the client went away).
    pub async fn trickle(&mut self, bytes: &[u8], interval: Duration) -> io::Result<()> {
        for b in bytes {
            tokio::time::sleep(interval).await;
            self.tcp.write_all(std::slice::from_ref(b)).await?;
        }
        Ok(())
    }

    /// Writes `chunk` repeatedly until the client stops taking bytes for `idle` or closes
    /// the connection; returns how many bytes were written. Used for heads and floods that
    /// never end.
    pub async fn send_forever(&mut self, chunk: &[u8], idle: Duration) -> io::Result<u64> {
        let mut sent = 0u64;
        loop {
            match tokio::time::timeout(idle, self.tcp.write_all(chunk)).await {
                Ok(Ok(())) => sent += chunk.len() as u64,
                Ok(Err(_)) | Err(_) => return Ok(sent),
            }
        }
    }

    /// Reads once (up to 64 KiB), waiting at most `timeout`; returns the bytes read
    /// (0 at EOF or on timeout). A reset counts as EOF.
    pub async fn read_some(&mut self, timeout: Duration) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(timeout, self.tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                0
            }
            Ok(Ok(n)) => {
                self.received.extend_from_slice(&buf[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Reads until the client's Close frame has arrived whole, the connection ends, or
    /// `timeout` passes (then `Err(TimedOut)`).
    pub async fn read_until_close(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.close_frame().is_none() && !self.eof {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.read_some(left).await;
        }
        Ok(())
    }

    /// Reads until the client closes the connection (EOF or reset) or `timeout` passes
    /// (then `Err(TimedOut)`).
    pub async fn read_to_eof(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.eof {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.read_some(left).await;
        }
        Ok(())
    }

    /// The next whole frame the client sent, reading as needed: `Ok(None)` at EOF,
    /// `Err(TimedOut)` after `timeout`. The frame's bytes are removed from
    /// [`received`](Self::received) (so a long stream of frames, such as a pong per ping of
    /// a flood, costs no memory); [`frames`](Self::frames) only sees what is left.
    pub async fn next_frame(&mut self, timeout: Duration) -> io::Result<Option<ParsedFrame>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((frame, used)) = parse_frame(&self.received) {
                self.received.drain(..used);
                return Ok(Some(frame));
            }
            if self.eof {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.read_some(left).await;
        }
    }

    /// Whether the client has closed the connection.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// The raw request head.
    pub fn request_head(&self) -> &[u8] {
        &self.head
    }

    /// Everything the client sent after its request.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// The whole frames the client sent, payloads unmasked (a trailing partial frame is
    /// left out).
    pub fn frames(&self) -> Vec<ParsedFrame> {
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = parse_frame(&self.received[at..]) {
            frames.push(frame);
            at += used;
        }
        frames
    }

    /// The client's Close frame, once received.
    pub fn close_frame(&self) -> Option<ParsedFrame> {
        self.frames().into_iter().find(ParsedFrame::is_close)
    }

    /// The TCP stream, for scripts that need it directly.
    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }
}

/// The status line and headers of a `101` that accepts `key` properly, without the final
/// blank line (append `"\r\n"` to end the head, or more headers first).
pub fn switching_protocols_head(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    )
}

/// Peak resident memory of this process, for "bounded memory" assertions: reset the
/// peak, run the attack, read the peak again.
pub mod memory {
    /// A `VmXxx:` line of `/proc/self/status`, in bytes.
    fn status_bytes(key: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kib: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// The resident set size now (`VmRSS`), in bytes; `None` where `/proc` is missing.
    pub fn rss() -> Option<u64> {
        status_bytes("VmRSS:")
    }

    /// The size of the private data mappings (`VmData`), in bytes: memory reserved, touched
    /// or not (an allocation made for an announced length shows here before any byte of
    /// it is written).
    pub fn data() -> Option<u64> {
        status_bytes("VmData:")
    }

    /// The peak resident set size (`VmHWM`) since the last [`reset_peak`], in bytes.
    pub fn peak() -> Option<u64> {
        status_bytes("VmHWM:")
    }

    /// Resets the peak to the current RSS (`5` into `/proc/self/clear_refs`, Linux 4.0+).
    /// Returns whether that worked; if not, [`peak`] is the peak since the process began.
    pub fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// Measures how far the resident memory rises above its level at the start while
    /// `f` runs: the peak (`VmHWM`) when it can be reset, else the RSS at the end.
    pub async fn growth_during<F: Future>(f: F) -> (F::Output, Option<u64>) {
        let base = rss();
        let peak_ok = reset_peak();
        let out = f.await;
        let end = if peak_ok { peak() } else { rss() };
        let growth = match (base, end) {
            (Some(b), Some(e)) => Some(e.saturating_sub(b)),
            _ => None,
        };
        (out, growth)
    }
}

/// What the client reported, for assertions: the `Display` of every error in a
/// `source()` chain, outermost first.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

/// Finds an `io::Error` in a `source()` chain.
pub fn find_io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        next = e.source();
    }
    None
}

/// Finds an error of type `E` in a `source()` chain.
pub fn find_source<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measurement sees memory that is touched during the measured future.
    #[tokio::test]
    async fn growth_during_sees_an_allocation() {
        if memory::rss().is_none() {
            return;
        }
        let (len, growth) = memory::growth_during(async {
            let big = vec![1u8; 64 << 20];
            std::hint::black_box(&big);
            big.len()
        })
        .await;
        assert_eq!(len, 64 << 20);
        let growth = growth.unwrap_or(0);
        assert!(growth >= 48 << 20, "grew by {growth}");
    }

    #[test]
    fn accept_key_matches_rfc_6455_section_1_3() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
