//! `wsstream serve`: the compatible server.
//!
//! * `/echo`: echoes text and binary messages; the runtime echoes the close code and
//!   reason when the client closes.
//! * `/pingpong`: answers `ping` with `pong`, echoes everything else.
//! * `/protocol`: selects the first subprotocol the client offered, sends its name as a
//!   text message (`""` if none was offered), then echoes.
//! * `/headers`: sends the request headers it received as one text message
//!   (`Name: value` lines), then echoes.
//! * `/` and `/index.html` (a plain HTTP GET): the demo page, which uses the browser's own
//!   `WebSocketStream` against `/pingpong`.
//!
//! With `--tls-cert` and `--tls-key` everything is served over TLS (`wss://` and
//! `https://`).
//!
//! Anything else gets a 404. The request head is read here first (to tell a page request
//! from an upgrade without wsstream answering the page request with a 400), then handed to
//! [`wsstream::server::read_request`] through [`Prefixed`].

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{AsyncIo, Message, WebSocketOpenInfo, WebSocketStream};

use crate::prefixed::Prefixed;
use crate::report;

/// The demo page served at `/`.
const PAGE: &str = include_str!("page.html");

/// Largest request head read before deciding what the request is.
const MAX_HEAD: usize = 16 * 1024;

/// How long a client may take to send its whole request head (a deadline, not an idle
/// timeout: a client trickling bytes does not extend it), and separately its TLS
/// handshake. The upgrade itself then runs with `ServerOptions::default()`, whose
/// `handshake_timeout` is the same 10 s.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `wsstream serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the first line on stderr
    /// is `listening on ws://ADDR`, or `wss://` with TLS).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Serve TLS (`wss://`, `https://`) with this certificate chain (PEM: the server's
    /// certificate first, then intermediates). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Reads the PEM files of --tls-cert and --tls-key into an acceptor.
fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    TlsAcceptor::from_pem(&read(cert)?, &read(key)?).map_err(|e| {
        format!(
            "cannot use {} and {} for TLS: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// Runs `wsstream serve` until the process is stopped.
pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match load_tls(cert, key) {
            Ok(tls) => Some(tls),
            Err(e) => return report::fail(e),
        },
        _ => None,
    };
    let listener = match TcpListener::bind(&args.addr).await {
        Ok(listener) => listener,
        Err(e) => return report::fail(format_args!("cannot listen on {}: {e}", args.addr)),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return report::fail(format_args!("cannot read the listening address: {e}")),
    };
    let (ws, http) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    eprintln!("listening on {ws}://{addr}");
    eprintln!("endpoints: /echo /pingpong /protocol /headers; demo page: {http}://{addr}/");
    Server { log: true }.serve(listener, tls).await;
    ExitCode::SUCCESS
}

/// The server: accepts connections and serves each on its own task.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Server {
    /// Log each connection to stderr.
    pub(crate) log: bool,
}

/// The WebSocket endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Echo,
    PingPong,
    Protocol,
    Headers,
}

impl Route {
    fn of(path: &str) -> Option<Self> {
        match path {
            "/echo" => Some(Self::Echo),
            "/pingpong" => Some(Self::PingPong),
            "/protocol" => Some(Self::Protocol),
            "/headers" => Some(Self::Headers),
            _ => None,
        }
    }
}

/// What the peeked request head says.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// An `Upgrade` header is present (with a non-empty value).
    upgrade: bool,
}

impl Head {
    /// Parses the request line and looks for an `Upgrade` header; `None` if the request
    /// line is malformed.
    fn parse(head: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let method = request_line.next().filter(|m| !m.is_empty())?.to_owned();
        let target = request_line.next().filter(|t| !t.is_empty())?.to_owned();
        request_line.next().filter(|v| v.starts_with("HTTP/"))?;
        let upgrade = lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("upgrade") && !value.trim().is_empty()
            })
        });
        Some(Self {
            method,
            target,
            upgrade,
        })
    }

    /// The path of the target, without query or fragment.
    fn path(&self) -> &str {
        path_of(&self.target)
    }
}

fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

/// Result of peeking at the request head.
enum Peek {
    /// The bytes read so far, with the head ending at `head_len`.
    Complete { buf: Vec<u8>, head_len: usize },
    /// The head grew past [`MAX_HEAD`].
    TooLarge,
    /// The client closed the connection before the head was complete.
    Incomplete,
    /// The head was not complete within [`HEAD_TIMEOUT`].
    TimedOut,
}

async fn peek_head<S: AsyncIo>(tcp: &mut S) -> io::Result<Peek> {
    tokio::time::timeout(HEAD_TIMEOUT, read_head(tcp))
        .await
        .unwrap_or(Ok(Peek::TimedOut))
}

async fn read_head<S: AsyncIo>(tcp: &mut S) -> io::Result<Peek> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Peek::Incomplete);
        }
        // Search only where the terminator can newly appear.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let head_len = from + at + 4;
            if head_len > MAX_HEAD {
                return Ok(Peek::TooLarge);
            }
            return Ok(Peek::Complete { buf, head_len });
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Peek::TooLarge);
        }
    }
}

/// A complete HTTP/1.1 response that closes the connection.
fn http_response(status: u16, reason: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    http_response_with(
        status,
        reason,
        "text/plain; charset=utf-8",
        extra,
        body,
        true,
    )
}

fn http_response_with(
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
    include_body: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    if include_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

impl Server {
    /// Accepts connections forever (accept errors such as running out of file
    /// descriptors are logged and retried).
    pub(crate) async fn run(self, listener: TcpListener) {
        self.serve(listener, None).await;
    }

    /// [`run`](Self::run), over TLS when `tls` is given.
    async fn serve(self, listener: TcpListener, tls: Option<TlsAcceptor>) {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    tokio::spawn(self.accepted(tcp, peer, tls.clone()));
                }
                Err(e) => {
                    if self.log {
                        eprintln!("accept failed: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn log(self, peer: SocketAddr, message: impl std::fmt::Display) {
        if self.log {
            eprintln!("{peer} {message}");
        }
    }

    /// Sends a complete response and closes the connection. Unread request bytes are
    /// drained for a moment first ("lingering close"): closing a socket with unread data
    /// makes the kernel send a reset, which can destroy the response before the client
    /// has read it.
    async fn respond<S: AsyncIo>(self, mut tcp: S, response: &[u8]) {
        if tcp.write_all(response).await.is_err() || tcp.shutdown().await.is_err() {
            return;
        }
        let drain = async {
            let mut sink = [0u8; 4096];
            let mut total = 0usize;
            while total < 1 << 20 {
                match tcp.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Runs the TLS handshake (bounded like the request head) if `tls` is given, then
    /// serves the connection.
    async fn accepted(self, tcp: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return self.connection(tcp, peer).await;
        };
        match tokio::time::timeout(HEAD_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(stream)) => self.connection(stream, peer).await,
            Ok(Err(e)) => self.log(peer, format_args!("TLS handshake failed: {e}")),
            Err(_) => self.log(peer, "TLS handshake timed out"),
        }
    }

    async fn connection<S: AsyncIo>(self, mut tcp: S, peer: SocketAddr) {
        let (buf, head_len) = match peek_head(&mut tcp).await {
            Ok(Peek::Complete { buf, head_len }) => (buf, head_len),
            Ok(Peek::TooLarge) => {
                self.log(peer, "431: request head larger than 16 KiB");
                let response = http_response(
                    431,
                    "Request Header Fields Too Large",
                    &[],
                    "request head too large\n",
                );
                return self.respond(tcp, &response).await;
            }
            Ok(Peek::Incomplete) => return self.log(peer, "closed before a complete request"),
            Ok(Peek::TimedOut) => {
                return self.log(peer, "no complete request within 10 s: closed");
            }
            Err(e) => return self.log(peer, format_args!("read failed: {e}")),
        };
        let Some(head) = Head::parse(&buf[..head_len]) else {
            self.log(peer, "400: malformed request line");
            let response = http_response(400, "Bad Request", &[], "malformed request\n");
            return self.respond(tcp, &response).await;
        };
        let path = head.path();
        if !head.upgrade {
            if path == "/" || path == "/index.html" {
                return self.page(tcp, peer, &head).await;
            }
            if Route::of(path).is_none() {
                self.log(peer, format_args!("{} {path}: 404", head.method));
                let body = format!("nothing at {path}\n");
                let response = http_response(404, "Not Found", &[], &body);
                return self.respond(tcp, &response).await;
            }
            // A WebSocket endpoint without an upgrade: wsstream answers with the proper
            // error status below.
        }
        self.websocket(Prefixed::new(buf, tcp), peer).await;
    }

    async fn page<S: AsyncIo>(self, tcp: S, peer: SocketAddr, head: &Head) {
        let path = head.path();
        let response = match head.method.as_str() {
            "GET" | "HEAD" => {
                self.log(peer, format_args!("{} {path}: 200 demo page", head.method));
                http_response_with(
                    200,
                    "OK",
                    "text/html; charset=utf-8",
                    &[("Cache-Control", "no-store")],
                    PAGE,
                    head.method == "GET",
                )
            }
            method => {
                self.log(peer, format_args!("{method} {path}: 405"));
                http_response(
                    405,
                    "Method Not Allowed",
                    &[("Allow", "GET, HEAD")],
                    "only GET and HEAD are allowed here\n",
                )
            }
        };
        self.respond(tcp, &response).await;
    }

    async fn websocket<S: AsyncIo>(self, io: Prefixed<S>, peer: SocketAddr) {
        let upgrade = match server::read_request(io).await {
            Ok(upgrade) => upgrade,
            Err(e) => return self.log(peer, format_args!("upgrade refused: {e}")),
        };
        let request = upgrade.request();
        let path = path_of(&request.resource).to_owned();
        let Some(route) = Route::of(&path) else {
            self.log(
                peer,
                format_args!("{path}: 404 (no such WebSocket endpoint)"),
            );
            let body = format!("no WebSocket endpoint at {path}\n");
            if let Err(e) = upgrade.reject(404, "Not Found", &body).await {
                self.log(peer, format_args!("{path}: writing the 404 failed: {e}"));
            }
            return;
        };
        let protocol = match route {
            Route::Protocol => request.protocols.first().cloned(),
            _ => None,
        };
        let greeting = match route {
            Route::Protocol => Some(protocol.clone().unwrap_or_default()),
            Route::Headers => Some(
                request
                    .headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value)))
                    .collect::<String>(),
            ),
            Route::Echo | Route::PingPong => None,
        };
        let wss = match upgrade
            .accept(protocol.as_deref(), ServerOptions::default())
            .await
        {
            Ok(wss) => wss,
            Err(e) => return self.log(peer, format_args!("{path}: upgrade failed: {e}")),
        };
        match &protocol {
            Some(p) => self.log(peer, format_args!("{path}: connected (protocol {p:?})")),
            None => self.log(peer, format_args!("{path}: connected")),
        }
        match wss.opened().await {
            Ok(info) => session(info, route == Route::PingPong, greeting).await,
            Err(e) => {
                return self.log(
                    peer,
                    format_args!("{path}: failed: {}", report::connection_error(&e)),
                );
            }
        }
        self.closed(&wss, peer, &path).await;
    }

    async fn closed(self, wss: &WebSocketStream, peer: SocketAddr, path: &str) {
        match wss.closed().await {
            Ok(info) => self.log(
                peer,
                format_args!(
                    "{path}: closed: code {}, reason {:?}",
                    info.close_code.unwrap_or(1005),
                    info.reason
                ),
            ),
            Err(e) => self.log(
                peer,
                format_args!(
                    "{path}: closed uncleanly: {}",
                    report::connection_error(&e).replace('\n', " ")
                ),
            ),
        }
    }
}

/// Sends `greeting` (if any), then echoes every message back (answering `ping` with
/// `pong` when `pingpong` is set) until the client closes. Each reply is written before
/// the next message is read, so a client that does not read slows this loop down.
async fn session(info: WebSocketOpenInfo, pingpong: bool, greeting: Option<String>) {
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    if let Some(text) = greeting {
        if writer.write(text).await.is_err() {
            return;
        }
    }
    while let Ok(Some(message)) = reader.read().await {
        let reply = if pingpong && message.as_text() == Some("ping") {
            Message::from("pong")
        } else {
            message
        };
        if writer.write(reply).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_heads() {
        let head = Head::parse(b"GET /echo?x=1 HTTP/1.1\r\nHost: a\r\nupgrade: websocket\r\n\r\n")
            .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path(), "/echo");
        assert!(head.upgrade);
        let head = Head::parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(head.path(), "/");
        assert!(!head.upgrade);
        assert!(Head::parse(b"garbage\r\n\r\n").is_none());
        assert!(Head::parse(b"GET /\r\n\r\n").is_none());
    }

    #[test]
    fn routes() {
        assert_eq!(Route::of("/echo"), Some(Route::Echo));
        assert_eq!(Route::of("/pingpong"), Some(Route::PingPong));
        assert_eq!(Route::of("/"), None);
        assert_eq!(path_of("/a?b#c"), "/a");
    }
}
