//! Proxies of client connections: HTTP `CONNECT` (over plain TCP or TLS, with Basic
//! authentication from the proxy URL) and SOCKS5 (`socks5://` resolves the target
//! locally, `socks5h://` lets the proxy resolve it), chosen explicitly or from the
//! environment (`wss_proxy`, `https_proxy`, `no_proxy`, …).
//!
//! Also the TCP connect itself (every resolved address in turn, `TCP_NODELAY`, optional
//! TCP keepalive), since a proxied connection starts with one to the proxy.

use std::borrow::Cow;
use std::error::Error;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_socks::TargetAddr;
use tokio_socks::tcp::Socks5Stream;
use url::{Host, Url};

use crate::client::ConnectError;
use crate::options::WebSocketStreamOptions;
use crate::transport::Transport;
#[cfg(feature = "tls")]
use crate::transport::tls;

/// Largest `CONNECT` response head accepted from an HTTP proxy.
const MAX_CONNECT_HEAD: usize = 16 * 1024;
/// Largest number of header lines in a `CONNECT` response.
const MAX_CONNECT_HEADERS: usize = 64;

/// Which proxy a client connection goes through: the field
/// [`proxy`](crate::WebSocketStreamOptions::proxy) of
/// [`WebSocketStreamOptions`](crate::WebSocketStreamOptions).
///
/// Proxy URLs have the form `scheme://[user:password@]host[:port]`:
///
/// | scheme | what | default port |
/// |---|---|---|
/// | `http` (also assumed without a scheme) | HTTP `CONNECT` tunnel; `user:password` is sent as `Proxy-Authorization: Basic` | 80 |
/// | `https` | the same, over TLS to the proxy (verified with the connection's [`TlsOptions`](crate::TlsOptions)) | 443 |
/// | `socks5` | SOCKS5, the target resolved locally; `user:password` is RFC 1929 authentication | 1080 |
/// | `socks5h` | SOCKS5, the target's host name resolved by the proxy | 1080 |
///
/// User name and password are percent-decoded. A `wss://` connection through a proxy
/// runs TLS with the target inside the tunnel, so the proxy sees only encrypted bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proxy {
    /// The default: the proxy the environment names for the URL, if any.
    ///
    /// For `wss://` the first non-empty of `wss_proxy`, `https_proxy`, `all_proxy`; for
    /// `ws://` the first of `ws_proxy`, `http_proxy`, `all_proxy`. Each name is looked up
    /// in lower case first, then in upper case (`HTTP_PROXY` is ignored when
    /// `REQUEST_METHOD` is set, i.e. inside a CGI script, where a request header could
    /// have set it).
    ///
    /// No proxy is used for a host that `no_proxy` (or `NO_PROXY`) matches: a
    /// comma- or space-separated list of `*` (every host), host names (`example.com`
    /// also matches its subdomains; a leading `.` or `*.` is ignored), IP addresses and
    /// CIDR ranges (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port` (an IPv6
    /// address with a port in brackets: `[::1]:8080`). Host names are compared as
    /// written, without resolving them. As browsers do, loopback hosts (`localhost`,
    /// `*.localhost`, `127.0.0.0/8`, `::1`) are never proxied from the environment;
    /// use [`Proxy::Url`] to proxy them.
    #[default]
    FromEnv,
    /// Connect directly, whatever the environment says.
    None,
    /// Always use this proxy (see the table above); `no_proxy` does not apply.
    Url(String),
}

/// Why a connection through a proxy failed: the `source()` of
/// [`ConnectError::Proxy`](crate::ConnectError::Proxy).
///
/// [`Display`](std::fmt::Display) names the proxy (without its credentials) and what
/// went wrong; `source()` is the underlying I/O, TLS or SOCKS error when there is one.
#[derive(Debug)]
pub struct ProxyError {
    proxy: String,
    kind: ProxyErrorKind,
    source: Option<Box<dyn Error + Send + Sync>>,
}

/// What kind of [`ProxyError`] this is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyErrorKind {
    /// The proxy URL does not parse (the reason is given).
    InvalidUrl(String),
    /// The proxy URL's scheme is not `http`, `https`, `socks5` or `socks5h`.
    UnsupportedScheme(String),
    /// The proxy could not be reached (DNS or TCP).
    Unreachable,
    /// The TLS handshake with an `https://` proxy failed.
    Tls,
    /// The proxy answered the `CONNECT` request with this non-2xx status (407: proxy
    /// authentication required).
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase (may be empty).
        reason: String,
    },
    /// The proxy's `CONNECT` response is not valid HTTP/1.x, is too large, is followed
    /// by unexpected bytes, or the proxy closed the connection before answering.
    BadResponse(String),
    /// The SOCKS5 negotiation failed: authentication refused, target refused, or a
    /// malformed answer (the source is the SOCKS error).
    Socks,
    /// An I/O error while talking to the proxy.
    Io,
}

impl ProxyError {
    fn new(proxy: &str, kind: ProxyErrorKind) -> Self {
        Self {
            proxy: proxy.to_owned(),
            kind,
            source: None,
        }
    }

    fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The proxy, as `scheme://host:port` (credentials left out).
    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// What went wrong.
    pub fn kind(&self) -> &ProxyErrorKind {
        &self.kind
    }

    /// The status of a refused `CONNECT` request.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ProxyErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proxy = &self.proxy;
        match &self.kind {
            ProxyErrorKind::InvalidUrl(why) => write!(f, "invalid proxy URL {proxy:?}: {why}"),
            ProxyErrorKind::UnsupportedScheme(scheme) => write!(
                f,
                "unsupported proxy scheme {scheme:?} in {proxy:?} (use http, https, socks5 or socks5h)"
            ),
            ProxyErrorKind::Unreachable => write!(f, "cannot connect to the proxy {proxy}"),
            ProxyErrorKind::Tls => write!(f, "TLS handshake with the proxy {proxy} failed"),
            ProxyErrorKind::Status {
                status: 407,
                reason,
            } => write!(
                f,
                "proxy authentication required: the proxy {proxy} answered 407 {reason}"
            ),
            ProxyErrorKind::Status { status, reason } => write!(
                f,
                "the proxy {proxy} refused the tunnel with status {status} {reason}"
            ),
            ProxyErrorKind::BadResponse(why) => {
                write!(f, "bad CONNECT response from the proxy {proxy}: {why}")
            }
            ProxyErrorKind::Socks => {
                write!(f, "SOCKS5 negotiation with the proxy {proxy} failed")
            }
            ProxyErrorKind::Io => write!(f, "I/O error with the proxy {proxy}"),
        }
    }
}

impl Error for ProxyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// How to talk to a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Socks5 { remote_dns: bool },
}

/// A parsed proxy URL.
#[derive(Clone, Debug)]
pub(crate) struct ProxyConfig {
    scheme: Scheme,
    /// The proxy's URL without credentials (for TLS: its host is the server name).
    url: Url,
    port: u16,
    credentials: Option<(String, String)>,
    /// `scheme://host:port`, for errors.
    display: String,
}

impl ProxyConfig {
    /// Parses a proxy URL; without `scheme://`, `http://` is assumed.
    pub(crate) fn parse(raw: &str) -> Result<Self, ProxyError> {
        let raw = raw.trim();
        let with_scheme: Cow<'_, str> = if raw.contains("://") {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(format!("http://{raw}"))
        };
        let invalid = |why: String| ProxyError::new(&redact(raw), ProxyErrorKind::InvalidUrl(why));
        let mut url = Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "socks5" => Scheme::Socks5 { remote_dns: false },
            "socks5h" => Scheme::Socks5 { remote_dns: true },
            other => {
                return Err(ProxyError::new(
                    &redact(raw),
                    ProxyErrorKind::UnsupportedScheme(other.to_owned()),
                ));
            }
        };
        if url.host().is_none() {
            return Err(invalid("no host".to_owned()));
        }
        let port = url.port().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Socks5 { .. } => 1080,
        });
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some((
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or_default()),
            ))
        };
        // Neither fails for a URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let display = format!(
            "{}://{}:{port}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        );
        Ok(Self {
            scheme,
            url,
            port,
            credentials,
            display,
        })
    }

    fn error(&self, kind: ProxyErrorKind) -> ProxyError {
        ProxyError::new(&self.display, kind)
    }

    /// TCP to the proxy.
    async fn connect_proxy(&self, keepalive: Option<Duration>) -> Result<TcpStream, ProxyError> {
        let host = self
            .url
            .host()
            .ok_or_else(|| self.error(ProxyErrorKind::InvalidUrl("no host".to_owned())))?;
        crate::transport::tcp::connect_direct(host, self.port, keepalive)
            .await
            .map_err(|e| self.error(ProxyErrorKind::Unreachable).with_source(e))
    }

    /// A tunnel through the proxy to `host:port`.
    pub(crate) async fn tunnel(
        &self,
        target: &Url,
        host: Host<&str>,
        port: u16,
        options: &WebSocketStreamOptions,
    ) -> Result<Transport, ConnectError> {
        match self.scheme {
            Scheme::Http => {
                let mut tcp = self.connect_proxy(options.tcp_keepalive).await?;
                self.http_connect(&mut tcp, target, port).await?;
                Ok(Transport::Tcp(tcp))
            }
            #[cfg(not(feature = "tls"))]
            Scheme::Https => Err(self
                .error(ProxyErrorKind::Tls)
                .with_source(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "an https:// proxy needs TLS: enable wsstream's `rustls-aws-lc-rs` or \
                     `rustls-ring` feature",
                ))
                .into()),
            #[cfg(feature = "tls")]
            Scheme::Https => {
                let tcp = self.connect_proxy(options.tcp_keepalive).await?;
                let mut tls = tls::connect(tcp, &self.url, &options.tls)
                    .await
                    .map_err(|e| self.error(ProxyErrorKind::Tls).with_source(e))?;
                self.http_connect(&mut tls, target, port).await?;
                Ok(Transport::Tls(Box::new(tls)))
            }
            Scheme::Socks5 { remote_dns } => {
                let targets: Vec<TargetAddr<'_>> = match host {
                    Host::Domain(domain) if remote_dns => {
                        vec![TargetAddr::Domain(Cow::Borrowed(domain), port)]
                    }
                    Host::Domain(domain) => tokio::net::lookup_host((domain, port))
                        .await
                        .map_err(ConnectError::Io)?
                        .map(TargetAddr::Ip)
                        .collect(),
                    Host::Ipv4(ip) => vec![TargetAddr::Ip((ip, port).into())],
                    Host::Ipv6(ip) => vec![TargetAddr::Ip((ip, port).into())],
                };
                let mut last = None;
                for target in targets {
                    let tcp = self.connect_proxy(options.tcp_keepalive).await?;
                    let result = match &self.credentials {
                        Some((user, password)) => {
                            Socks5Stream::connect_with_password_and_socket(
                                tcp, target, user, password,
                            )
                            .await
                        }
                        None => Socks5Stream::connect_with_socket(tcp, target).await,
                    };
                    match result {
                        Ok(stream) => return Ok(Transport::Tcp(stream.into_inner())),
                        Err(e) => last = Some(e),
                    }
                }
                Err(match last {
                    Some(e) => self.error(ProxyErrorKind::Socks).with_source(e),
                    None => self
                        .error(ProxyErrorKind::Socks)
                        .with_source(io::Error::new(
                            io::ErrorKind::NotFound,
                            "the target's host name resolved to no address",
                        )),
                }
                .into())
            }
        }
    }

    /// Sends `CONNECT host:port` and reads the proxy's answer (RFC 9110 §9.3.6): a 2xx
    /// status opens the tunnel, anything else fails.
    async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        target: &Url,
        port: u16,
    ) -> Result<(), ProxyError> {
        let io_error = |e: io::Error| self.error(ProxyErrorKind::Io).with_source(e);
        let authority = format!("{}:{port}", target.host_str().unwrap_or_default());
        io.write_all(connect_request(&authority, self.credentials.as_ref()).as_bytes())
            .await
            .map_err(io_error)?;
        io.flush().await.map_err(io_error)?;
        let mut buf = Vec::with_capacity(512);
        loop {
            let mut chunk = [0u8; 1024];
            let n = io.read(&mut chunk).await.map_err(io_error)?;
            if n == 0 {
                return Err(self.error(ProxyErrorKind::BadResponse(
                    "the proxy closed the connection before answering".to_owned(),
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse_connect_response(&buf) {
                Ok(None) => {}
                Ok(Some(ConnectResponse {
                    status,
                    reason,
                    head,
                })) => {
                    if !(200..300).contains(&status) {
                        return Err(self.error(ProxyErrorKind::Status { status, reason }));
                    }
                    if head != buf.len() {
                        // The target speaks only after we do: anything here is not
                        // from it.
                        return Err(self.error(ProxyErrorKind::BadResponse(
                            "unexpected bytes after the CONNECT response".to_owned(),
                        )));
                    }
                    return Ok(());
                }
                Err(why) => return Err(self.error(ProxyErrorKind::BadResponse(why))),
            }
        }
    }
}

/// The `CONNECT` request for `authority` (`host:port`).
fn connect_request(authority: &str, credentials: Option<&(String, String)>) -> String {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// A complete `CONNECT` response head.
struct ConnectResponse {
    status: u16,
    reason: String,
    head: usize,
}

/// Parses a `CONNECT` response head: `Ok(None)` while incomplete.
fn parse_connect_response(buf: &[u8]) -> Result<Option<ConnectResponse>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_CONNECT_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let window = &buf[..buf.len().min(MAX_CONNECT_HEAD)];
    match response.parse(window) {
        Ok(httparse::Status::Complete(head)) => Ok(Some(ConnectResponse {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or_default().to_owned(),
            head,
        })),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_CONNECT_HEAD => Err(format!(
            "response head larger than {MAX_CONNECT_HEAD} bytes"
        )),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("malformed response: {e}")),
    }
}

/// The proxy [`WebSocketStreamOptions::proxy`] selects for `target`, if any.
pub(crate) fn select(
    target: &Url,
    options: &WebSocketStreamOptions,
) -> Result<Option<ProxyConfig>, ProxyError> {
    Ok(match &options.proxy {
        Proxy::None => None,
        Proxy::Url(raw) => Some(ProxyConfig::parse(raw)?),
        Proxy::FromEnv => match from_env(target, &|name| std::env::var(name).ok()) {
            Some(raw) => Some(ProxyConfig::parse(&raw)?),
            None => None,
        },
    })
}

/// The proxy URL the environment names for `target` ([`Proxy::FromEnv`]), read through
/// `get` (`std::env::var` in real use).
pub(crate) fn from_env(target: &Url, get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let lookup = |name: &str| -> Option<String> {
        let non_empty = |v: String| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        get(name).and_then(non_empty).or_else(|| {
            let upper = name.to_ascii_uppercase();
            // httpoxy: in a CGI script, HTTP_PROXY can come from a request header.
            if upper == "HTTP_PROXY" && get("REQUEST_METHOD").is_some() {
                return None;
            }
            get(&upper).and_then(non_empty)
        })
    };
    let names: [&str; 3] = if target.scheme() == "wss" {
        ["wss_proxy", "https_proxy", "all_proxy"]
    } else {
        ["ws_proxy", "http_proxy", "all_proxy"]
    };
    let proxy = names.into_iter().find_map(lookup)?;
    let host = target.host()?;
    let port = target.port_or_known_default().unwrap_or(80);
    if is_loopback(&host) {
        return None;
    }
    if let Some(no_proxy) = lookup("no_proxy") {
        if NoProxy::parse(&no_proxy).matches(&host, port) {
            return None;
        }
    }
    Some(proxy)
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// One `no_proxy` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    All,
    Domain { name: String, port: Option<u16> },
    Ip { ip: IpAddr, port: Option<u16> },
    Cidr { net: IpAddr, prefix: u8 },
}

/// A parsed `no_proxy` list: hosts that are reached directly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    rules: Vec<Rule>,
}

impl NoProxy {
    /// Parses a comma- or whitespace-separated list; entries that do not parse are
    /// ignored.
    pub(crate) fn parse(list: &str) -> Self {
        let rules = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .filter_map(parse_rule)
            .collect();
        Self { rules }
    }

    /// Whether `host:port` is reached directly.
    pub(crate) fn matches(&self, host: &Host<&str>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.rules.iter().any(|rule| match (rule, host) {
            (Rule::All, _) => true,
            (Rule::Domain { name, port: p }, Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                port_ok(p)
                    && (d == *name
                        || d.strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            (Rule::Ip { ip, port: p }, Host::Ipv4(h)) => port_ok(p) && *ip == IpAddr::V4(*h),
            (Rule::Ip { ip, port: p }, Host::Ipv6(h)) => port_ok(p) && *ip == IpAddr::V6(*h),
            (Rule::Cidr { net, prefix }, Host::Ipv4(h)) => in_cidr(*net, *prefix, IpAddr::V4(*h)),
            (Rule::Cidr { net, prefix }, Host::Ipv6(h)) => in_cidr(*net, *prefix, IpAddr::V6(*h)),
            _ => false,
        })
    }
}

fn parse_rule(entry: &str) -> Option<Rule> {
    let entry = entry.trim().to_ascii_lowercase();
    if entry == "*" {
        return Some(Rule::All);
    }
    if let Some((addr, prefix)) = entry.split_once('/') {
        let net: IpAddr = addr.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        return (prefix <= max).then_some(Rule::Cidr { net, prefix });
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: IpAddr = ip.parse().ok()?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some(Rule::Ip { ip, port });
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(Rule::Ip { ip, port: None });
    }
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse::<u16>().ok()?)),
        None => (entry.as_str(), None),
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some(Rule::Ip { ip, port });
    }
    let name = name
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.');
    (!name.is_empty()).then(|| Rule::Domain {
        name: name.to_owned(),
        port,
    })
}

fn in_cidr(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Decodes `%XX` escapes (user names and passwords of URLs are percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `raw` with any `user:password@` left out, for error messages.
fn redact(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, raw),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_owned(),
    }
}

impl From<ProxyError> for ConnectError {
    fn from(e: ProxyError) -> Self {
        Self::Proxy(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn no_proxy(list: &str, target: &str) -> bool {
        let target = url(target);
        NoProxy::parse(list).matches(
            &target.host().unwrap(),
            target.port_or_known_default().unwrap(),
        )
    }

    #[test]
    fn no_proxy_host_and_domain_suffix() {
        assert!(no_proxy("example.com", "ws://example.com/"));
        assert!(no_proxy("example.com", "ws://a.b.example.com/"));
        assert!(!no_proxy("example.com", "ws://notexample.com/"));
        assert!(!no_proxy("example.com", "ws://example.com.evil/"));
        assert!(no_proxy(".example.com", "ws://a.example.com/"));
        assert!(no_proxy(".example.com", "ws://example.com/"));
        assert!(no_proxy("*.example.com", "ws://a.example.com/"));
        assert!(no_proxy("EXAMPLE.com.", "ws://Example.COM./"));
        assert!(!no_proxy("other.org", "ws://example.com/"));
        assert!(!no_proxy("", "ws://example.com/"));
    }

    #[test]
    fn no_proxy_lists_and_wildcard() {
        assert!(no_proxy("a.org, example.com", "ws://example.com/"));
        assert!(no_proxy("a.org example.com", "ws://x.example.com/"));
        assert!(no_proxy(" , ,a.org,,example.com ", "wss://example.com/"));
        assert!(no_proxy("*", "ws://anything.test/"));
        assert!(no_proxy("a.org,*", "ws://10.1.2.3/"));
        assert!(!no_proxy("a.org,bad/entry,::zz", "ws://b.org/"));
    }

    #[test]
    fn no_proxy_ports() {
        assert!(no_proxy("example.com:8080", "ws://example.com:8080/"));
        assert!(!no_proxy("example.com:8080", "ws://example.com/"));
        assert!(no_proxy("example.com:443", "wss://example.com/"));
        assert!(no_proxy("example.com:80", "ws://api.example.com/"));
        assert!(no_proxy("10.0.0.1:9000", "ws://10.0.0.1:9000/"));
        assert!(!no_proxy("10.0.0.1:9000", "ws://10.0.0.1:9001/"));
        assert!(no_proxy("[2001:db8::1]:443", "wss://[2001:db8::1]/"));
        assert!(!no_proxy("[2001:db8::1]:443", "ws://[2001:db8::1]/"));
        // A bad port makes the entry invalid, not a wildcard.
        assert!(!no_proxy("example.com:http", "ws://example.com/"));
    }

    #[test]
    fn no_proxy_ip_addresses() {
        assert!(no_proxy("192.168.1.10", "ws://192.168.1.10/"));
        assert!(!no_proxy("192.168.1.10", "ws://192.168.1.11/"));
        assert!(no_proxy("2001:db8::1", "ws://[2001:db8::1]/"));
        assert!(no_proxy("[2001:db8::1]", "ws://[2001:db8::1]:9/"));
        assert!(!no_proxy("2001:db8::1", "ws://[2001:db8::2]/"));
        // An IP rule does not match a host name (nothing is resolved).
        assert!(!no_proxy("192.168.1.10", "ws://router.lan/"));
    }

    #[test]
    fn no_proxy_cidr() {
        assert!(no_proxy("10.0.0.0/8", "ws://10.200.3.4/"));
        assert!(!no_proxy("10.0.0.0/8", "ws://11.0.0.1/"));
        assert!(no_proxy("192.168.0.0/16", "ws://192.168.255.1:8080/"));
        assert!(no_proxy("0.0.0.0/0", "ws://8.8.8.8/"));
        assert!(no_proxy("1.2.3.4/32", "ws://1.2.3.4/"));
        assert!(!no_proxy("1.2.3.4/32", "ws://1.2.3.5/"));
        assert!(no_proxy("fd00::/8", "ws://[fd12:3456::1]/"));
        assert!(!no_proxy("fd00::/8", "ws://[fe80::1]/"));
        assert!(!no_proxy("10.0.0.0/8", "ws://[::ffff:a00:1]/"));
        assert!(!no_proxy("10.0.0.0/33", "ws://10.0.0.1/"));
        assert!(!no_proxy("10.0.0.0/8", "ws://ten.example/"));
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        move |name| map.get(name).map(|v| (*v).to_owned())
    }

    fn from(vars: &[(&str, &str)], target: &str) -> Option<String> {
        from_env(&url(target), &env(vars))
    }

    #[test]
    fn env_precedence_for_wss() {
        let all = [
            ("wss_proxy", "http://wss:1"),
            ("https_proxy", "http://https:1"),
            ("http_proxy", "http://http:1"),
            ("all_proxy", "socks5://all:1"),
        ];
        assert_eq!(from(&all, "wss://x.test/").as_deref(), Some("http://wss:1"));
        assert_eq!(
            from(&all[1..], "wss://x.test/").as_deref(),
            Some("http://https:1")
        );
        // http_proxy is not for wss.
        assert_eq!(
            from(&all[2..], "wss://x.test/").as_deref(),
            Some("socks5://all:1")
        );
        assert_eq!(from(&all[2..3], "wss://x.test/"), None);
        assert_eq!(from(&[], "wss://x.test/"), None);
    }

    #[test]
    fn env_precedence_for_ws() {
        let all = [
            ("ws_proxy", "http://ws:1"),
            ("wss_proxy", "http://wss:1"),
            ("https_proxy", "http://https:1"),
            ("http_proxy", "http://http:1"),
            ("all_proxy", "socks5://all:1"),
        ];
        assert_eq!(from(&all, "ws://x.test/").as_deref(), Some("http://ws:1"));
        assert_eq!(
            from(&all[1..], "ws://x.test/").as_deref(),
            Some("http://http:1")
        );
        assert_eq!(
            from(&all[1..3], "ws://x.test/"),
            None,
            "wss_proxy and https_proxy are not for ws"
        );
        assert_eq!(
            from(&all[4..], "ws://x.test/").as_deref(),
            Some("socks5://all:1")
        );
    }

    #[test]
    fn env_lower_case_wins_upper_case_is_a_fallback() {
        let vars = [
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:1"),
        ];
        assert_eq!(
            from(&vars, "wss://x.test/").as_deref(),
            Some("http://lower:1")
        );
        assert_eq!(
            from(&vars[..1], "wss://x.test/").as_deref(),
            Some("http://upper:1")
        );
        assert_eq!(
            from(&[("WSS_PROXY", "http://w:1")], "wss://x.test/").as_deref(),
            Some("http://w:1")
        );
        assert_eq!(
            from(&[("ALL_PROXY", "socks5h://a:1")], "ws://x.test/").as_deref(),
            Some("socks5h://a:1")
        );
        // Empty values count as unset.
        assert_eq!(
            from(
                &[("https_proxy", " "), ("HTTPS_PROXY", "http://u:1")],
                "wss://x.test/"
            )
            .as_deref(),
            Some("http://u:1")
        );
    }

    #[test]
    fn env_upper_case_http_proxy_is_ignored_in_cgi() {
        let vars = [("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")];
        assert_eq!(from(&vars, "ws://x.test/"), None);
        assert_eq!(
            from(&vars[..1], "ws://x.test/").as_deref(),
            Some("http://evil:1")
        );
        let vars = [("http_proxy", "http://ok:1"), ("REQUEST_METHOD", "GET")];
        assert_eq!(from(&vars, "ws://x.test/").as_deref(), Some("http://ok:1"));
    }

    #[test]
    fn env_no_proxy_applies_in_both_cases() {
        let vars = [("https_proxy", "http://p:1"), ("no_proxy", "internal.test")];
        assert_eq!(from(&vars, "wss://api.internal.test/"), None);
        assert!(from(&vars, "wss://public.test/").is_some());
        let vars = [("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "*")];
        assert_eq!(from(&vars, "wss://public.test/"), None);
        let vars = [("http_proxy", "http://p:1"), ("no_proxy", "10.0.0.0/8")];
        assert_eq!(from(&vars, "ws://10.1.1.1:8080/"), None);
        assert!(from(&vars, "ws://11.1.1.1/").is_some());
    }

    #[test]
    fn env_never_proxies_loopback() {
        let vars = [("http_proxy", "http://p:1"), ("https_proxy", "http://p:1")];
        for target in [
            "ws://localhost:9/",
            "ws://LOCALHOST./",
            "wss://app.localhost/",
            "ws://127.0.0.1/",
            "ws://127.8.9.10/",
            "ws://[::1]:80/",
        ] {
            assert_eq!(from(&vars, target), None, "{target}");
        }
        assert!(from(&vars, "ws://localhost.example/").is_some());
    }

    #[test]
    fn proxy_urls_parse() {
        let p = ProxyConfig::parse("http://user:p%40ss@proxy.test:3128").unwrap();
        assert_eq!(p.scheme, Scheme::Http);
        assert_eq!(p.port, 3128);
        assert_eq!(p.credentials, Some(("user".to_owned(), "p@ss".to_owned())));
        assert_eq!(p.display, "http://proxy.test:3128");
        assert!(!p.url.as_str().contains("user"));

        let p = ProxyConfig::parse("proxy.test").unwrap();
        assert_eq!((p.scheme, p.port, p.credentials), (Scheme::Http, 80, None));
        let p = ProxyConfig::parse(" https://proxy.test ").unwrap();
        assert_eq!((p.scheme, p.port), (Scheme::Https, 443));
        let p = ProxyConfig::parse("socks5://u:pw@[::1]").unwrap();
        assert_eq!(p.scheme, Scheme::Socks5 { remote_dns: false });
        assert_eq!(p.port, 1080);
        assert_eq!(p.display, "socks5://[::1]:1080");
        let p = ProxyConfig::parse("socks5h://10.0.0.1:9050").unwrap();
        assert_eq!(p.scheme, Scheme::Socks5 { remote_dns: true });
        let p = ProxyConfig::parse("http://user@p.test:1").unwrap();
        assert_eq!(p.credentials, Some(("user".to_owned(), String::new())));
    }

    #[test]
    fn bad_proxy_urls_are_clear_errors_without_credentials() {
        let e = ProxyConfig::parse("socks4://user:secret@p.test:1").unwrap_err();
        assert_eq!(
            e.kind(),
            &ProxyErrorKind::UnsupportedScheme("socks4".to_owned())
        );
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().contains("socks4"), "{e}");
        let e = ProxyConfig::parse("http://user:secret@[bad:1").unwrap_err();
        assert!(matches!(e.kind(), ProxyErrorKind::InvalidUrl(_)));
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn connect_request_bytes() {
        assert_eq!(
            connect_request("example.com:443", None),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        assert_eq!(
            connect_request(
                "[::1]:80",
                Some(&("Aladdin".to_owned(), "open sesame".to_owned()))
            ),
            "CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn connect_responses_parse() {
        assert!(
            parse_connect_response(b"HTTP/1.1 200 OK\r\n")
                .unwrap()
                .is_none()
        );
        let r = parse_connect_response(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.head), (200, 39));
        let r = parse_connect_response(
            b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.status, 407);
        assert_eq!(r.reason, "Proxy Authentication Required");
        assert!(parse_connect_response(b"SSH-2.0-x\r\n\r\n").is_err());
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(MAX_CONNECT_HEAD, b'a');
        assert!(parse_connect_response(&big).is_err());
    }

    #[test]
    fn percent_decoding_and_redaction() {
        assert_eq!(percent_decode("a%20b%2fc%zz%4"), "a b/c%zz%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(redact("http://u:p@h:1/x@y"), "http://h:1/x@y");
        assert_eq!(redact("u:p@h:1"), "h:1");
        assert_eq!(redact("socks5://h:1"), "socks5://h:1");
    }

    #[tokio::test]
    async fn tcp_keepalive_is_set_on_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let host = Host::Ipv4(std::net::Ipv4Addr::LOCALHOST);
        let tcp = crate::transport::tcp::connect_direct(
            host.clone(),
            port,
            Some(Duration::from_secs(42)),
        )
        .await
        .unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
        assert!(tcp.nodelay().unwrap());
        let plain = crate::transport::tcp::connect_direct(host, port, None)
            .await
            .unwrap();
        assert!(!socket2::SockRef::from(&plain).keepalive().unwrap());
    }
}
