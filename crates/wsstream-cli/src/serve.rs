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
//! `https://`), offering the ALPN protocols `h2` and `http/1.1`.
//!
//! Anything else gets a 404.
//!
//! hyper serves every connection, in HTTP/1.1 (one request per connection, like the
//! browser's page load and its WebSocket) or HTTP/2: over TLS the client's ALPN choice
//! decides, in cleartext a client that starts with the HTTP/2 connection preface (prior
//! knowledge, "h2c") gets HTTP/2. The page and the 404s are plain hyper responses, and the
//! WebSocket routes are accepted with [`wsstream::server::hyper::HyperUpgrade`], which
//! validates the request (RFC 6455 §4.2.1; 400, or 426 for a wrong version), returns the
//! `101` from the service and hands over a server-role `WebSocketStream` once hyper has
//! sent it. On HTTP/2 connections the server announces `SETTINGS_ENABLE_CONNECT_PROTOCOL`
//! (RFC 8441 §3) and a WebSocket is an extended CONNECT stream (RFC 8441 §4), answered
//! with `200` (§5); many WebSockets (and page loads) share one connection. A client gets
//! 10 s for its TLS handshake and then 10 s for its request head (hyper's header read
//! timeout: a deadline, so a client trickling its request, slowloris, is cut off at 10 s)
//! or for the HTTP/2 connection preface (a deadline of this server's), and a head larger
//! than 16 KiB gets 431. An HTTP/2 connection that stops answering pings for 20 s is
//! closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Args;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use wsstream::http::{HeaderMap, HeaderValue, header};
use wsstream::server::hyper::{Body, HyperUpgrade, error_response};
use wsstream::server::{ServerOptions, TlsAcceptor};
use wsstream::{AsyncIo, Message, WebSocketOpenInfo, WebSocketStream};

use crate::report;

/// The demo page served at `/`.
const PAGE: &str = include_str!("page.html");

/// Largest request head served (431 past it).
const MAX_HEAD: usize = 16 * 1024;

/// How long a client may take to send its whole request head (a deadline, not an idle
/// timeout: a client trickling bytes does not extend it), and separately its TLS
/// handshake.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP/2 connection preface (RFC 9113 §3.4), which a cleartext client with prior
/// knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 connection is pinged this often while it is idle, and closed when a ping
/// goes unanswered for as long.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);

/// Arguments of `wsstream serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the first line on stderr
    /// is `listening on ws://ADDR`, or `wss://` with TLS). Without TLS, HTTP/1.1 and
    /// HTTP/2 with prior knowledge (h2c) are both served.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Serve TLS (`wss://`, `https://`) with this certificate chain (PEM: the server's
    /// certificate first, then intermediates). Needs --tls-key. ALPN offers `h2` and
    /// `http/1.1`: HTTP/2 clients (browsers among them) may open their WebSockets as
    /// extended CONNECT streams of one connection (RFC 8441).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Reads the PEM files of --tls-cert and --tls-key into an acceptor offering the ALPN
/// protocols `h2` and `http/1.1`, in this order of preference (RFC 7301).
fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let acceptor = TlsAcceptor::from_pem(&read(cert)?, &read(key)?).map_err(|e| {
        format!(
            "cannot use {} and {} for TLS: {e}",
            cert.display(),
            key.display()
        )
    })?;
    let mut config = (**acceptor.config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::new(Arc::new(config)))
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

fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

/// The size of the request head as it was sent (request line, header lines, blank line).
fn head_size<B>(request: &Request<B>) -> usize {
    let line = request.method().as_str().len() + request.uri().to_string().len() + 12;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers + 2
}

/// A complete plain-text response that closes the connection.
fn plain(
    status: StatusCode,
    extra: &[(header::HeaderName, &'static str)],
    body: String,
) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", extra, Body::from(body))
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    extra: &[(header::HeaderName, &'static str)],
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in extra {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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

    /// Runs the TLS handshake (within [`HEAD_TIMEOUT`]) if `tls` is given, then serves
    /// the connection in HTTP/2 when the client chose `h2` by ALPN (or, in cleartext,
    /// sent the HTTP/2 preface), else in HTTP/1.1.
    async fn accepted(self, tcp: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return match starts_with_h2_preface(&tcp).await {
                Some(true) => self.h2_connection(tcp, peer, false).await,
                Some(false) => self.connection(tcp, peer, false).await,
                None => self.log(peer, "no complete request within 10 s: closed"),
            };
        };
        match tokio::time::timeout(HEAD_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                self.h2_connection(stream, peer, true).await;
            }
            Ok(Ok(stream)) => self.connection(stream, peer, true).await,
            Ok(Err(e)) => self.log(peer, format_args!("TLS handshake failed: {e}")),
            Err(_) => self.log(peer, "TLS handshake timed out"),
        }
    }

    /// Serves an HTTP/2 connection on `io` with hyper, announcing
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3) so that WebSockets can be opened
    /// as extended CONNECT streams; the client's preface must arrive within
    /// [`HEAD_TIMEOUT`] ([`PrefaceDeadline`]), and the connection is pinged every
    /// [`H2_KEEPALIVE`] and closed when a ping goes unanswered.
    async fn h2_connection<S: AsyncIo>(self, io: S, peer: SocketAddr, secure: bool) {
        let service = service_fn(move |request| {
            let response = self.respond(request, peer, secure);
            async move { Ok::<_, Infallible>(response) }
        });
        let served = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .enable_connect_protocol()
            .keep_alive_interval(H2_KEEPALIVE)
            .keep_alive_timeout(H2_KEEPALIVE)
            .serve_connection(TokioIo::new(PrefaceDeadline::new(io)), service)
            .await;
        let Err(e) = served else { return };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::TimedOut {
                    return self.log(peer, "no HTTP/2 connection preface within 10 s: closed");
                }
            }
            cause = error.source();
        }
        self.log(peer, format_args!("HTTP/2 connection failed: {e}"));
    }

    /// Serves one HTTP/1.1 request on `io` with hyper (upgrades on, no keep-alive), the
    /// request head within [`HEAD_TIMEOUT`].
    async fn connection<S: AsyncIo>(self, io: S, peer: SocketAddr, secure: bool) {
        let service = service_fn(move |request| {
            let response = self.respond(request, peer, secure);
            async move { Ok::<_, Infallible>(response) }
        });
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .keep_alive(false)
            // `Content-Type`, not `content-type`: the header names as this server always
            // wrote them (clients compare them case-insensitively anyway).
            .title_case_headers(true)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .await;
        let Err(e) = served else { return };
        if e.is_timeout() {
            self.log(peer, "no complete request within 10 s: closed");
        } else if e.is_incomplete_message() {
            self.log(peer, "closed before a complete request");
        } else if e.is_parse_too_large() {
            self.log(peer, "431: request head too large");
        } else if e.is_parse() {
            self.log(peer, format_args!("400: malformed request: {e}"));
        } else {
            self.log(peer, format_args!("connection failed: {e}"));
        }
    }

    /// The response to one request: the page, a 404, a refusal, or the `101` (over
    /// HTTP/2, the `200`) of a WebSocket route (whose session then runs on a task of its
    /// own).
    fn respond(self, request: Request<Incoming>, peer: SocketAddr, secure: bool) -> Response<Body> {
        let http2 = request.version() == Version::HTTP_2;
        let mut response = self.route(request, peer, secure);
        if http2 {
            // HTTP/2 has no `Connection` header (RFC 9113 §8.2.2): the stream ends, not
            // the connection.
            response.headers_mut().remove(header::CONNECTION);
        }
        response
    }

    fn route(
        self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
    ) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        if head_size(&request) > MAX_HEAD {
            self.log(peer, "431: request head larger than 16 KiB");
            let body = "request head too large\n".to_owned();
            return plain(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, &[], body);
        }
        // A WebSocket attempt: an `Upgrade` header (HTTP/1.1), or a CONNECT (HTTP/2's
        // extended CONNECT, RFC 8441 §4).
        let upgrade = method == Method::CONNECT
            || request
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|value| !value.as_bytes().trim_ascii().is_empty());
        if !upgrade {
            if path == "/" || path == "/index.html" {
                return self.page(&method, &path, peer);
            }
            if Route::of(&path).is_none() {
                self.log(peer, format_args!("{method} {path}: 404"));
                return plain(StatusCode::NOT_FOUND, &[], format!("nothing at {path}\n"));
            }
            // A WebSocket endpoint without an upgrade: wsstream answers with the proper
            // error status below.
        }
        self.websocket(&mut request, peer, secure)
    }

    fn page(self, method: &Method, path: &str, peer: SocketAddr) -> Response<Body> {
        if method == Method::GET || method == Method::HEAD {
            // hyper leaves the body out of the response to HEAD.
            self.log(peer, format_args!("{method} {path}: 200 demo page"));
            return response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                &[(header::CACHE_CONTROL, "no-store")],
                Body::from(PAGE),
            );
        }
        self.log(peer, format_args!("{method} {path}: 405"));
        plain(
            StatusCode::METHOD_NOT_ALLOWED,
            &[(header::ALLOW, "GET, HEAD")],
            "only GET and HEAD are allowed here\n".to_owned(),
        )
    }

    fn websocket(
        self,
        request: &mut Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
    ) -> Response<Body> {
        let mut upgrade = match HyperUpgrade::from_request(request) {
            Ok(upgrade) => upgrade,
            Err(e) => {
                self.log(peer, format_args!("upgrade refused: {e}"));
                return error_response(&e);
            }
        };
        upgrade.set_secure(secure);
        upgrade.set_peer_addr(peer);
        let over = if upgrade.is_http2() {
            " over HTTP/2"
        } else {
            ""
        };
        let request = upgrade.request();
        let path = path_of(&request.resource).to_owned();
        let Some(route) = Route::of(&path) else {
            self.log(
                peer,
                format_args!("{path}: 404 (no such WebSocket endpoint)"),
            );
            let body = format!("no WebSocket endpoint at {path}\n");
            return plain(StatusCode::NOT_FOUND, &[], body);
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
        let (response, upgrading) = match upgrade.accept(
            protocol.as_deref(),
            &HeaderMap::new(),
            ServerOptions::default(),
        ) {
            Ok(accepted) => accepted,
            Err(e) => {
                self.log(peer, format_args!("{path}: upgrade failed: {e}"));
                let body = format!("cannot accept the upgrade: {e}\n");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, &[], body);
            }
        };
        tokio::spawn(async move {
            let wss = match upgrading.await {
                Ok(wss) => wss,
                Err(e) => return self.log(peer, format_args!("{path}: upgrade failed: {e}")),
            };
            match &protocol {
                Some(p) => self.log(
                    peer,
                    format_args!("{path}: connected{over} (protocol {p:?})"),
                ),
                None => self.log(peer, format_args!("{path}: connected{over}")),
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
        });
        response
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

/// The I/O of an HTTP/2 connection whose client must send the whole connection preface
/// within [`HEAD_TIMEOUT`] of the connection being handed to hyper (hyper's HTTP/2 server
/// has no such deadline; its header read timeout is HTTP/1.1's): until the preface's bytes
/// have been read, a read still waiting past the deadline fails with `TimedOut`, which
/// ends the connection. A client that connects over TLS, picks `h2` and then sends
/// nothing is closed like a slowloris client of HTTP/1.1.
struct PrefaceDeadline<S> {
    io: S,
    /// Bytes read so far (counted up to the preface's length).
    read: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> PrefaceDeadline<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            read: 0,
            deadline: Box::pin(tokio::time::sleep(HEAD_TIMEOUT)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefaceDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read = this
                    .read
                    .saturating_add(buf.filled().len() - before)
                    .min(H2_PREFACE.len());
                Poll::Ready(result)
            }
            Poll::Pending
                if this.read < H2_PREFACE.len() && this.deadline.as_mut().poll(cx).is_ready() =>
            {
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no HTTP/2 connection preface within 10 s",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefaceDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Whether a cleartext client starts with the HTTP/2 connection preface (prior
/// knowledge), looking at its first bytes without consuming them; `None` when it sends
/// too little to tell within [`HEAD_TIMEOUT`] (or closes, or the socket fails).
async fn starts_with_h2_preface(tcp: &TcpStream) -> Option<bool> {
    let look = async {
        let mut buf = [0; H2_PREFACE.len()];
        loop {
            let n = tcp.peek(&mut buf).await.ok()?;
            if n == 0 {
                // Closed before a byte: let the HTTP/1.1 server report it.
                return Some(false);
            }
            if !H2_PREFACE.starts_with(&buf[..n]) {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
            // A prefix of the preface so far: wait for more (peek does not consume).
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, look)
        .await
        .ok()
        .flatten()
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
    fn routes() {
        assert_eq!(Route::of("/echo"), Some(Route::Echo));
        assert_eq!(Route::of("/pingpong"), Some(Route::PingPong));
        assert_eq!(Route::of("/"), None);
        assert_eq!(path_of("/a?b#c"), "/a");
    }

    #[test]
    fn head_size_counts_the_request_as_sent() {
        let request = Request::get("/echo?x=1")
            .header("Host", "a")
            .body(())
            .expect("a request");
        // "GET /echo?x=1 HTTP/1.1\r\n" + "host: a\r\n" + "\r\n"
        assert_eq!(head_size(&request), 24 + 9 + 2);
    }
}
