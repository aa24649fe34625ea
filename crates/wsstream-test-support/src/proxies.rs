//! Proxy servers for tests, each on `127.0.0.1:0` in spawned tokio tasks: HTTP
//! `CONNECT` (optionally with Basic authentication, optionally over TLS), SOCKS5
//! (optionally with RFC 1929 username/password), and proxies that refuse every tunnel.
//!
//! They open tunnels only to loopback addresses (a target that resolves elsewhere is
//! refused), and count the connections they accepted and the tunnels they opened.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wsstream_test_support::proxies::ProxyServer;
//!
//! let proxy = ProxyServer::http_connect(Some(("user", "secret"))).await?;
//! // proxy.url() is "http://user:secret@127.0.0.1:PORT"
//! # let _ = proxy.tunnels(); Ok(()) }
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Largest request head the HTTP proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// Which protocol a [`ProxyServer`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP `CONNECT` over plain TCP.
    Http,
    /// HTTP `CONNECT` over TLS.
    Https,
    /// SOCKS5 (`CONNECT` command).
    Socks5,
}

#[derive(Debug, Default)]
struct Stats {
    connections: AtomicUsize,
    tunnels: AtomicUsize,
    targets: Mutex<Vec<String>>,
    requests: Mutex<Vec<String>>,
}

impl Stats {
    fn push(list: &Mutex<Vec<String>>, value: String) {
        if let Ok(mut list) = list.lock() {
            list.push(value);
        }
    }
}

#[derive(Clone, Debug)]
struct Config {
    kind: ProxyKind,
    credentials: Option<(String, String)>,
    refuse: bool,
}

/// A running test proxy; the listener stops when this is dropped (open tunnels go on
/// until either side closes).
#[derive(Debug)]
pub struct ProxyServer {
    addr: SocketAddr,
    config: Config,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProxyServer {
    /// An HTTP `CONNECT` proxy; with `auth`, requests without
    /// `Proxy-Authorization: Basic` of exactly these credentials get `407`.
    pub async fn http_connect(auth: Option<(&str, &str)>) -> io::Result<Self> {
        Self::start(ProxyKind::Http, auth, false, None).await
    }

    /// An HTTP `CONNECT` proxy over TLS, presenting `acceptor`'s certificate.
    pub async fn https_connect(
        acceptor: TlsAcceptor,
        auth: Option<(&str, &str)>,
    ) -> io::Result<Self> {
        Self::start(ProxyKind::Https, auth, false, Some(acceptor)).await
    }

    /// A SOCKS5 proxy; with `auth`, only username/password authentication with exactly
    /// these credentials is accepted.
    pub async fn socks5(auth: Option<(&str, &str)>) -> io::Result<Self> {
        Self::start(ProxyKind::Socks5, auth, false, None).await
    }

    /// An HTTP proxy that answers every `CONNECT` with `403 Forbidden`.
    pub async fn refusing_http() -> io::Result<Self> {
        Self::start(ProxyKind::Http, None, true, None).await
    }

    /// A SOCKS5 proxy that answers every request with "connection not allowed by
    /// ruleset" (reply code 2).
    pub async fn refusing_socks5() -> io::Result<Self> {
        Self::start(ProxyKind::Socks5, None, true, None).await
    }

    async fn start(
        kind: ProxyKind,
        auth: Option<(&str, &str)>,
        refuse: bool,
        acceptor: Option<TlsAcceptor>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = Config {
            kind,
            credentials: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
            refuse,
        };
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn({
            let config = config.clone();
            let stats = stats.clone();
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    stats.connections.fetch_add(1, Ordering::SeqCst);
                    let config = config.clone();
                    let stats = stats.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let _ = match (config.kind, acceptor) {
                            (ProxyKind::Socks5, _) => serve_socks5(tcp, &config, &stats).await,
                            (ProxyKind::Https, Some(acceptor)) => {
                                match acceptor.accept(tcp).await {
                                    Ok(tls) => serve_http(tls, &config, &stats).await,
                                    Err(e) => Err(e),
                                }
                            }
                            _ => serve_http(tcp, &config, &stats).await,
                        };
                    });
                }
            }
        });
        Ok(Self {
            addr,
            config,
            stats,
            task,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy URL, with the configured credentials if any:
    /// `http://[user:password@]127.0.0.1:PORT` (`https://localhost:PORT` for TLS, to
    /// match a certificate for `localhost`; `socks5://…` for SOCKS5).
    pub fn url(&self) -> String {
        match &self.config.credentials {
            Some((user, password)) => self.url_with(user, password),
            None => self.url_without_credentials(),
        }
    }

    /// The proxy URL with other credentials (percent-encode them yourself if needed).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        let (scheme, host) = self.scheme_and_host();
        format!("{scheme}://{user}:{password}@{host}:{}", self.addr.port())
    }

    /// The proxy URL without credentials.
    pub fn url_without_credentials(&self) -> String {
        let (scheme, host) = self.scheme_and_host();
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    fn scheme_and_host(&self) -> (&'static str, &'static str) {
        match self.config.kind {
            ProxyKind::Http => ("http", "127.0.0.1"),
            ProxyKind::Https => ("https", "localhost"),
            ProxyKind::Socks5 => ("socks5", "127.0.0.1"),
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Tunnels opened to a target so far.
    pub fn tunnels(&self) -> usize {
        self.stats.tunnels.load(Ordering::SeqCst)
    }

    /// The target of every request, as the client sent it: `host:port` of a `CONNECT`
    /// line, or a SOCKS5 address (`name:port` for a domain name, `ip:port` for an
    /// address, IPv6 in brackets).
    pub fn targets(&self) -> Vec<String> {
        self.stats
            .targets
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// The head of every HTTP request received (request line and headers, as text).
    pub fn requests(&self) -> Vec<String> {
        self.stats
            .requests
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }
}

/// Resolves `host` and connects to its loopback addresses in turn.
async fn connect_loopback(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the test proxy only tunnels to loopback addresses",
    );
    for addr in tokio::net::lookup_host((host, port)).await? {
        if !addr.ip().is_loopback() {
            continue;
        }
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn respond<S: AsyncWrite + Unpin>(io: &mut S, status: &str, extra: &str) -> io::Result<()> {
    let response = format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\n\r\n");
    io.write_all(response.as_bytes()).await?;
    io.shutdown().await
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    config: &Config,
    stats: &Stats,
) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let (head, method, target, authorization) = loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(head)) => {
                let authorization = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("Proxy-Authorization"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                break (
                    head,
                    request.method.unwrap_or_default().to_owned(),
                    request.path.unwrap_or_default().to_owned(),
                    authorization,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return respond(&mut io, "400 Bad Request", "").await,
        }
    };
    Stats::push(
        &stats.requests,
        String::from_utf8_lossy(&buf[..head]).into_owned(),
    );
    Stats::push(&stats.targets, target.clone());
    if method != "CONNECT" {
        return respond(&mut io, "405 Method Not Allowed", "").await;
    }
    if config.refuse {
        return respond(&mut io, "403 Forbidden", "").await;
    }
    if let Some((user, password)) = &config.credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        if authorization.as_deref() != Some(&format!("Basic {token}")) {
            return respond(
                &mut io,
                "407 Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"wsstream-test\"\r\n",
            )
            .await;
        }
    }
    let Some((host, port)) = target.rsplit_once(':') else {
        return respond(&mut io, "400 Bad Request", "").await;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(port) = port.parse::<u16>() else {
        return respond(&mut io, "400 Bad Request", "").await;
    };
    let Ok(mut upstream) = connect_loopback(host, port).await else {
        return respond(&mut io, "502 Bad Gateway", "").await;
    };
    io.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    stats.tunnels.fetch_add(1, Ordering::SeqCst);
    upstream.write_all(&buf[head..]).await?;
    tokio::io::copy_bidirectional(&mut io, &mut upstream).await?;
    Ok(())
}

/// A SOCKS5 reply with `code` and an all-zero IPv4 bound address.
async fn socks_reply(io: &mut TcpStream, code: u8) -> io::Result<()> {
    io.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

async fn serve_socks5(mut io: TcpStream, config: &Config, stats: &Stats) -> io::Result<()> {
    // RFC 1928 §3: version, methods.
    let mut greeting = [0u8; 2];
    io.read_exact(&mut greeting).await?;
    if greeting[0] != 5 {
        return Ok(());
    }
    let mut methods = vec![0u8; usize::from(greeting[1])];
    io.read_exact(&mut methods).await?;
    let method = if config.credentials.is_some() { 2 } else { 0 };
    if !methods.contains(&method) {
        io.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    io.write_all(&[5, method]).await?;
    // RFC 1929: username/password sub-negotiation.
    if let Some((user, password)) = &config.credentials {
        let mut head = [0u8; 2];
        io.read_exact(&mut head).await?;
        let mut got_user = vec![0u8; usize::from(head[1])];
        io.read_exact(&mut got_user).await?;
        let mut plen = [0u8; 1];
        io.read_exact(&mut plen).await?;
        let mut got_password = vec![0u8; usize::from(plen[0])];
        io.read_exact(&mut got_password).await?;
        if got_user != user.as_bytes() || got_password != password.as_bytes() {
            io.write_all(&[1, 1]).await?;
            return Ok(());
        }
        io.write_all(&[1, 0]).await?;
    }
    // RFC 1928 §4: the request.
    let mut request = [0u8; 4];
    io.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            io.read_exact(&mut ip).await?;
            IpAddr::V4(Ipv4Addr::from(ip)).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            io.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            io.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            io.read_exact(&mut ip).await?;
            format!("[{}]", Ipv6Addr::from(ip))
        }
        _ => return socks_reply(&mut io, 8).await,
    };
    let mut port = [0u8; 2];
    io.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    Stats::push(&stats.targets, format!("{host}:{port}"));
    if config.refuse {
        return socks_reply(&mut io, 2).await;
    }
    if request[1] != 1 {
        return socks_reply(&mut io, 7).await;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut upstream = match connect_loopback(host, port).await {
        Ok(upstream) => upstream,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return socks_reply(&mut io, 2).await;
        }
        Err(_) => return socks_reply(&mut io, 5).await,
    };
    socks_reply(&mut io, 0).await?;
    stats.tunnels.fetch_add(1, Ordering::SeqCst);
    tokio::io::copy_bidirectional(&mut io, &mut upstream).await?;
    Ok(())
}
