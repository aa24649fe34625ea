//! The server role: validate an opening handshake request and build the response
//! (RFC 6455 §4.2).

use std::fmt;

use super::headers::{
    ExtraHeaderCheck, check_extra, has_token, is_token, to_owned_headers, trim_ows, values,
    write_header,
};
use super::key::{accept_key, is_valid_key};
use super::{ExtensionOffer, HandshakeError, MAX_HEAD_SIZE, MAX_HEADERS, parse_extensions};

/// A valid opening handshake request (RFC 6455 §4.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The request target as sent, e.g. `/path?query`.
    pub resource: String,
    /// The `Host` header.
    pub host: String,
    /// The `Sec-WebSocket-Key` header (validated: base64 of 16 bytes). Empty for a
    /// request over HTTP/2, which has no key (RFC 8441 §5).
    pub key: String,
    /// The `Origin` header, if any (the first one if repeated).
    pub origin: Option<String>,
    /// All `Sec-WebSocket-Protocol` values, split on commas, trimmed, in order (each a token).
    pub protocols: Vec<String>,
    /// All `Sec-WebSocket-Extensions` elements, in order.
    pub extensions: Vec<ExtensionOffer>,
    /// All request headers, as received.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl HandshakeRequest {
    /// The `101 Switching Protocols` response accepting this request (RFC 6455 §4.2.2 step 5):
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, then `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions` if given, then `extra_headers` in order.
    ///
    /// This never fails: an invalid item is left out instead (a `protocol` that is not a
    /// token, an `extensions` value that does not parse or is empty, an extra header with a
    /// bad name or value or one the handshake sets itself). Use
    /// [`HandshakeRequest::try_accept`] to be told about them.
    pub fn accept(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Vec<u8> {
        let protocol = protocol.filter(|p| is_token(p.as_bytes()));
        let extensions =
            extensions.filter(|e| parse_extensions(e).is_ok_and(|list| !list.is_empty()));
        let extra = extra_headers
            .iter()
            .filter(|(n, v)| matches!(check_extra(n, v), ExtraHeaderCheck::Ok));
        self.write_accept(protocol, extensions, extra)
    }

    /// Like [`HandshakeRequest::accept`], but refuses invalid input instead of leaving it out.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidProtocol`] for a protocol that is not a token,
    /// [`HandshakeError::InvalidExtensions`] for an extensions value that does not parse,
    /// [`HandshakeError::InvalidHeader`] / [`HandshakeError::ForbiddenHeader`] for a bad
    /// extra header.
    pub fn try_accept(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Result<Vec<u8>, HandshakeError> {
        if let Some(p) = protocol {
            if !is_token(p.as_bytes()) {
                return Err(HandshakeError::InvalidProtocol(p.to_owned()));
            }
        }
        let extensions = match extensions {
            Some(e) if parse_extensions(e)?.is_empty() => None,
            other => other,
        };
        for (name, value) in extra_headers {
            match check_extra(name, value) {
                ExtraHeaderCheck::Ok => {}
                ExtraHeaderCheck::Invalid => {
                    return Err(HandshakeError::InvalidHeader(name.clone()));
                }
                ExtraHeaderCheck::Forbidden => {
                    return Err(HandshakeError::ForbiddenHeader(name.clone()));
                }
            }
        }
        Ok(self.write_accept(protocol, extensions, extra_headers.iter()))
    }

    fn write_accept<'h>(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
        extra: impl Iterator<Item = &'h (String, String)>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        write_header(&mut out, "Upgrade", b"websocket");
        write_header(&mut out, "Connection", b"Upgrade");
        write_header(
            &mut out,
            "Sec-WebSocket-Accept",
            accept_key(self.key.as_bytes()).as_bytes(),
        );
        if let Some(p) = protocol {
            write_header(&mut out, "Sec-WebSocket-Protocol", p.as_bytes());
        }
        if let Some(e) = extensions {
            write_header(&mut out, "Sec-WebSocket-Extensions", e.as_bytes());
        }
        for (name, value) in extra {
            write_header(&mut out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Why a handshake request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// The head grew past [`MAX_HEAD_SIZE`] bytes without ending (status 431).
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`] header lines (status 431).
    TooManyHeaders,
    /// The head is not valid HTTP/1.x (status 400).
    Malformed(String),
    /// The method is not `GET` (RFC 6455 §4.2.1 item 1; status 400).
    Method(String),
    /// The HTTP version is not 1.1 (RFC 6455 §4.2.1 item 1; status 400).
    Version,
    /// No `Host` header, or an empty one (RFC 6455 §4.2.1 item 2; status 400).
    MissingHost,
    /// A header that must appear at most once appears several times (status 400).
    DuplicateHeader(&'static str),
    /// `Upgrade` lacks the `websocket` token (RFC 6455 §4.2.1 item 3; status 400).
    MissingUpgrade,
    /// `Connection` lacks the `upgrade` token (RFC 6455 §4.2.1 item 4; status 400).
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` (RFC 6455 §4.2.1 item 5; status 400).
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes (RFC 6455 §4.2.1 item 5; status 400).
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not `13` (RFC 6455 §4.2.1 item 6, §4.4;
    /// status 426 with `Sec-WebSocket-Version: 13`). Carries the value received.
    UnsupportedVersion(Option<String>),
    /// A `Sec-WebSocket-Protocol` element is not a token (status 400).
    InvalidProtocol(String),
    /// `Sec-WebSocket-Extensions` does not parse (status 400).
    InvalidExtensions(String),
    /// `Host`, `Origin`, `Sec-WebSocket-Key` or `Sec-WebSocket-Version` is not UTF-8
    /// (status 400). Carries the header name.
    NotUtf8(&'static str),
    /// An HTTP/2 request that is not an extended CONNECT with `:protocol` `websocket`
    /// (RFC 8441 §4 and §5: the only way to open a WebSocket over HTTP/2; status 400).
    /// Carries what was found instead.
    NotExtendedConnect(String),
    /// An HTTP/2 extended CONNECT without a `:path` (RFC 8441 §4 requires it; status 400).
    MissingPath,
}

impl RequestErrorKind {
    /// The HTTP status code of the refusal: 431 for an oversized head, 426 for a wrong or
    /// missing version, 400 otherwise.
    pub const fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge | Self::TooManyHeaders => 431,
            Self::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for RequestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLarge => write!(f, "request head larger than {MAX_HEAD_SIZE} bytes"),
            Self::TooManyHeaders => write!(f, "request has more than {MAX_HEADERS} headers"),
            Self::Malformed(why) => write!(f, "malformed request: {why}"),
            Self::Method(m) => write!(f, "method {m:?} is not GET"),
            Self::Version => f.write_str("HTTP version is not 1.1"),
            Self::MissingHost => f.write_str("missing Host header"),
            Self::DuplicateHeader(name) => write!(f, "repeated {name} header"),
            Self::MissingUpgrade => f.write_str("missing `Upgrade: websocket`"),
            Self::MissingConnectionUpgrade => f.write_str("missing `Connection: Upgrade`"),
            Self::MissingKey => f.write_str("missing Sec-WebSocket-Key"),
            Self::InvalidKey => f.write_str("Sec-WebSocket-Key is not base64 of 16 bytes"),
            Self::UnsupportedVersion(None) => f.write_str("missing Sec-WebSocket-Version"),
            Self::UnsupportedVersion(Some(v)) => {
                write!(f, "unsupported Sec-WebSocket-Version {v:?}")
            }
            Self::InvalidProtocol(p) => write!(f, "invalid subprotocol {p:?}"),
            Self::InvalidExtensions(why) => {
                write!(f, "invalid Sec-WebSocket-Extensions: {why}")
            }
            Self::NotUtf8(name) => write!(f, "{name} header is not UTF-8"),
            Self::NotExtendedConnect(found) => write!(
                f,
                "not a WebSocket request over HTTP/2: expected an extended CONNECT with \
                 `:protocol: websocket` (RFC 8441), got {found}"
            ),
            Self::MissingPath => f.write_str("extended CONNECT without :path"),
        }
    }
}

/// A handshake request that must be refused. Carries the HTTP response to send before
/// closing the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    kind: RequestErrorKind,
    response: Vec<u8>,
    /// Refuses a request made over HTTP/2.
    http2: bool,
}

impl RequestError {
    fn new(kind: RequestErrorKind) -> Self {
        Self::refusing(kind, false)
    }

    /// The refusal of a request made over HTTP/2 (see [`refusing`](Self::refusing)).
    fn new_h2(kind: RequestErrorKind) -> Self {
        Self::refusing(kind, true)
    }

    /// The refusal of `kind`, over HTTP/1.1 or HTTP/2.
    ///
    /// RFC 6455 §4.2.2 / §4.4: a server that does not speak the client's version answers
    /// 426 with the versions it does speak. Over HTTP/2, 426 is not used: it must carry
    /// `Upgrade`, a header HTTP/2 forbids (RFC 9113 §8.2.2), so a missing or wrong version
    /// gets 400 with `Sec-WebSocket-Version: 13`. Nor is `Connection: close` sent there
    /// (HTTP/2 has no such header; only the stream ends).
    fn refusing(kind: RequestErrorKind, http2: bool) -> Self {
        let body = format!("{kind}\n");
        let close = !http2;
        let response = match kind.status() {
            426 if http2 => build_response(
                400,
                "Bad Request",
                &[("Sec-WebSocket-Version", "13")],
                &body,
                close,
            ),
            426 => build_response(
                426,
                "Upgrade Required",
                &[("Sec-WebSocket-Version", "13")],
                &body,
                close,
            ),
            431 => build_response(431, "Request Header Fields Too Large", &[], &body, close),
            _ => build_response(400, "Bad Request", &[], &body, close),
        };
        Self {
            kind,
            response,
            http2,
        }
    }

    /// The HTTP status code of [`RequestError::response`]: that of the
    /// [`kind`](Self::kind), except 400 instead of 426 for a request over HTTP/2.
    pub const fn status(&self) -> u16 {
        match self.kind.status() {
            426 if self.http2 => 400,
            status => status,
        }
    }

    /// Whether the refused request came over HTTP/2 (RFC 8441): its
    /// [`response`](Self::response) then has no `Connection` header, and the status is
    /// 400 where HTTP/1.1 gets 426.
    pub const fn is_http2(&self) -> bool {
        self.http2
    }

    /// The complete HTTP response to send (status line, headers, body), in HTTP/1.1
    /// form. For HTTP/1.1 it ends with `Connection: close`, so the server closes the
    /// connection after writing it; an HTTP/2 server sends the status, headers and body
    /// on the request's stream.
    pub fn response(&self) -> &[u8] {
        &self.response
    }

    /// Why the request was refused.
    pub const fn kind(&self) -> &RequestErrorKind {
        &self.kind
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused handshake ({}): {}", self.status(), self.kind)
    }
}

impl std::error::Error for RequestError {}

impl From<RequestErrorKind> for RequestError {
    fn from(kind: RequestErrorKind) -> Self {
        Self::new(kind)
    }
}

/// A plain HTTP/1.1 response with `Content-Type: text/plain`, `Content-Length` and
/// `Connection: close`, for a server refusing a handshake (e.g. 404 for an unknown path).
///
/// Control characters in `reason` are replaced with spaces so it stays on the status line.
pub fn reject_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    build_response(status, reason, &[], body, true)
}

fn build_response(
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
    body: &str,
    close: bool,
) -> Vec<u8> {
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status:03} {reason}\r\n").as_bytes());
    for (name, value) in extra {
        write_header(&mut out, name, value.as_bytes());
    }
    write_header(&mut out, "Content-Type", b"text/plain; charset=utf-8");
    write_header(
        &mut out,
        "Content-Length",
        body.len().to_string().as_bytes(),
    );
    if close {
        write_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// Parses and validates an opening handshake request (RFC 6455 §4.2.1). Call it with
/// everything received so far.
///
/// Returns `Ok(None)` while the head is incomplete, and `Ok(Some((request, n)))` once it is
/// complete and valid: the first `n` bytes of `buf` were the head, and the bytes after them
/// already belong to the WebSocket connection.
///
/// # Errors
///
/// A [`RequestError`] whose [`response`](RequestError::response) is the refusal to send:
/// 431 if the head exceeds [`MAX_HEAD_SIZE`] bytes (checked even while incomplete) or
/// [`MAX_HEADERS`] headers, 426 with `Sec-WebSocket-Version: 13` for a missing or wrong
/// version, 400 for every other failed check.
pub fn parse_request(buf: &[u8]) -> Result<Option<(HandshakeRequest, usize)>, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    // Never parse past the limit: the head must end within MAX_HEAD_SIZE bytes.
    let window = &buf[..buf.len().min(MAX_HEAD_SIZE)];
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_SIZE => {
            return Err(RequestErrorKind::HeadTooLarge.into());
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestErrorKind::TooManyHeaders.into());
        }
        Err(err) => return Err(RequestErrorKind::Malformed(err.to_string()).into()),
    };
    let headers: &[httparse::Header<'_>] = req.headers;
    let method = req.method.unwrap_or("");
    let resource = req.path.unwrap_or("");
    let request = validate(method, req.version == Some(1), resource, headers)?;
    Ok(Some((request, len)))
}

impl HandshakeRequest {
    /// Validates an opening handshake request that an HTTP server has already parsed
    /// (hyper, axum, or any server holding the request as method, version, target and
    /// header lines), with the very checks of [`parse_request`] (RFC 6455 §4.2.1): a `GET`
    /// (item 1) over HTTP/1.1 (item 1; `http_version` is `(major, minor)`, and only
    /// `(1, 1)` passes: WebSocket over HTTP/2 is a different handshake, RFC 8441), exactly
    /// one non-empty `Host` (item 2), `Upgrade` holding the `websocket` token (item 3),
    /// `Connection` holding the `upgrade` token (item 4), exactly one `Sec-WebSocket-Key`
    /// that is base64 of 16 bytes (item 5), `Sec-WebSocket-Version: 13` (item 6 and
    /// §4.4), and well-formed `Sec-WebSocket-Protocol` tokens and
    /// `Sec-WebSocket-Extensions` lists (items 8 and 9).
    ///
    /// `target` is the request target as sent (origin form, `/path?query`); it becomes
    /// [`HandshakeRequest::resource`]. `headers` are the header lines in the order
    /// received, one item per line (a repeated header is several items); names compare
    /// ASCII case-insensitively. The size limits of [`parse_request`] ([`MAX_HEAD_SIZE`],
    /// [`MAX_HEADERS`]) are not applied: the server that parsed the head enforces its own.
    ///
    /// # Errors
    ///
    /// The same [`RequestError`] as [`parse_request`] for the same request: 426 with
    /// `Sec-WebSocket-Version: 13` for a missing or wrong version, 400 for every other
    /// failed check.
    pub fn from_http_parts<'h>(
        method: &str,
        http_version: (u8, u8),
        target: &str,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<Self, RequestError> {
        let headers: Vec<httparse::Header<'h>> = headers
            .into_iter()
            .map(|(name, value)| httparse::Header { name, value })
            .collect();
        validate(method, http_version == (1, 1), target, &headers)
    }
}

/// The checks of RFC 6455 §4.2.1 on a parsed request head, shared by [`parse_request`]
/// (bytes) and [`HandshakeRequest::from_http_parts`] (a head parsed by an HTTP server).
/// `http_11` tells whether the request is HTTP/1.1.
fn validate(
    method: &str,
    http_11: bool,
    resource: &str,
    headers: &[httparse::Header<'_>],
) -> Result<HandshakeRequest, RequestError> {
    // RFC 6455 §4.2.1 item 1: an HTTP/1.1 or higher GET request.
    if method != "GET" {
        return Err(RequestErrorKind::Method(method.to_owned()).into());
    }
    if !http_11 {
        return Err(RequestErrorKind::Version.into());
    }
    // RFC 6455 §4.2.1 item 2: a Host header field (RFC 7230 §5.4: exactly one).
    let host = single_utf8(headers, "Host")?
        .filter(|h| !h.is_empty())
        .ok_or(RequestErrorKind::MissingHost)?;
    // RFC 6455 §4.2.1 item 3: Upgrade containing "websocket" (case-insensitive).
    if !has_token(headers, "Upgrade", "websocket") {
        return Err(RequestErrorKind::MissingUpgrade.into());
    }
    // RFC 6455 §4.2.1 item 4: Connection containing "Upgrade" (case-insensitive).
    if !has_token(headers, "Connection", "upgrade") {
        return Err(RequestErrorKind::MissingConnectionUpgrade.into());
    }
    // RFC 6455 §4.2.1 item 6 and §4.4: Sec-WebSocket-Version MUST be 13, otherwise 426 with
    // the versions we support. Checked before the key so that clients of other versions
    // (whose keys follow other rules) learn which version to use.
    let mut versions = values(headers, "Sec-WebSocket-Version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim_ows(v) == b"13" => {}
        (None, _) => return Err(RequestErrorKind::UnsupportedVersion(None).into()),
        (Some(v), _) => {
            let v = String::from_utf8_lossy(trim_ows(v)).into_owned();
            return Err(RequestErrorKind::UnsupportedVersion(Some(v)).into());
        }
    }
    // RFC 6455 §4.2.1 item 5: exactly one Sec-WebSocket-Key, base64 of 16 bytes.
    let key = single_utf8(headers, "Sec-WebSocket-Key")?.ok_or(RequestErrorKind::MissingKey)?;
    if !is_valid_key(key.as_bytes()) {
        return Err(RequestErrorKind::InvalidKey.into());
    }
    let offers = offers(headers)?;
    Ok(HandshakeRequest {
        resource: resource.to_owned(),
        host: host.to_owned(),
        key: key.to_owned(),
        origin: offers.origin,
        protocols: offers.protocols,
        extensions: offers.extensions,
        headers: to_owned_headers(headers),
    })
}

/// The optional parts of a request, the same over HTTP/1.1 and HTTP/2.
struct Offers {
    origin: Option<String>,
    protocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
}

/// RFC 6455 §4.2.1 items 7 to 9: `Origin`, the offered subprotocols (tokens) and the
/// offered extensions (a well-formed list).
fn offers(headers: &[httparse::Header<'_>]) -> Result<Offers, RequestError> {
    // RFC 6455 §4.2.1 item 7 (optional): Origin.
    let origin = match values(headers, "Origin").next() {
        Some(v) => Some(utf8(v, "Origin")?.to_owned()),
        None => None,
    };
    // RFC 6455 §4.2.1 item 8 (optional): subprotocols, a comma list over any number of lines.
    let mut protocols = Vec::new();
    for line in values(headers, "Sec-WebSocket-Protocol") {
        for item in line.split(|&b| b == b',').map(trim_ows) {
            if item.is_empty() {
                continue; // RFC 7230 §7: ignore empty list elements.
            }
            let text = String::from_utf8_lossy(item);
            if !is_token(item) {
                return Err(RequestErrorKind::InvalidProtocol(text.into_owned()).into());
            }
            protocols.push(text.into_owned());
        }
    }
    // RFC 6455 §4.2.1 item 9 (optional): extensions, a comma list over any number of lines.
    let mut extensions = Vec::new();
    for line in values(headers, "Sec-WebSocket-Extensions") {
        let text = std::str::from_utf8(line)
            .map_err(|_| RequestErrorKind::NotUtf8("Sec-WebSocket-Extensions"))?;
        match parse_extensions(text) {
            Ok(list) => extensions.extend(list),
            Err(HandshakeError::InvalidExtensions(why)) => {
                return Err(RequestErrorKind::InvalidExtensions(why).into());
            }
            Err(other) => {
                return Err(RequestErrorKind::InvalidExtensions(other.to_string()).into());
            }
        }
    }

    Ok(Offers {
        origin,
        protocols,
        extensions,
    })
}

impl HandshakeRequest {
    /// Validates a WebSocket request over HTTP/2 (RFC 8441) that an HTTP/2 server has
    /// already parsed: an extended CONNECT (RFC 8441 §4), that is `method` `CONNECT` with
    /// the `:protocol` pseudo-header `protocol` equal to `websocket` (§5); a non-empty
    /// `:path` (`target`, which becomes [`HandshakeRequest::resource`]); a host, from
    /// `:authority` (`authority`) or else one `Host` header; `Sec-WebSocket-Version: 13`;
    /// and well-formed `Sec-WebSocket-Protocol` tokens and `Sec-WebSocket-Extensions`
    /// lists, as over HTTP/1.1 (RFC 8441 §5 keeps those headers).
    ///
    /// There is no `Sec-WebSocket-Key` (RFC 8441 §5: it is not used; one sent anyway is
    /// ignored), so [`HandshakeRequest::key`] is empty, and no `Upgrade` or
    /// `Connection` (HTTP/2 forbids connection-specific headers, RFC 9113 §8.2.2; the
    /// HTTP/2 layer rejects such a request before it gets here). `headers` are the
    /// regular header fields (no pseudo-headers), one item per field.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] with [`is_http2`](RequestError::is_http2) set: 400 for every
    /// failed check, with `Sec-WebSocket-Version: 13` for a missing or wrong version.
    pub fn from_extended_connect<'h>(
        method: &str,
        protocol: Option<&str>,
        target: &str,
        authority: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<Self, RequestError> {
        let headers: Vec<httparse::Header<'h>> = headers
            .into_iter()
            .map(|(name, value)| httparse::Header { name, value })
            .collect();
        validate_h2(method, protocol, target, authority, &headers)
            .map_err(|e| RequestError::new_h2(e.kind))
    }
}

/// The checks of [`HandshakeRequest::from_extended_connect`]; the errors are turned
/// into HTTP/2 refusals by the caller.
fn validate_h2(
    method: &str,
    protocol: Option<&str>,
    target: &str,
    authority: Option<&str>,
    headers: &[httparse::Header<'_>],
) -> Result<HandshakeRequest, RequestError> {
    // RFC 8441 §4: an extended CONNECT carries `:protocol`; §5: its value is `websocket`.
    match (method, protocol) {
        ("CONNECT", Some(p)) if p.eq_ignore_ascii_case("websocket") => {}
        ("CONNECT", Some(p)) => {
            let found = format!("`:protocol: {p}`");
            return Err(RequestErrorKind::NotExtendedConnect(found).into());
        }
        ("CONNECT", None) => {
            let found = "a CONNECT without :protocol".to_owned();
            return Err(RequestErrorKind::NotExtendedConnect(found).into());
        }
        (method, _) => {
            let found = format!("method {method}");
            return Err(RequestErrorKind::NotExtendedConnect(found).into());
        }
    }
    // RFC 8441 §4: `:scheme` and `:path` are included (the HTTP/2 layer checks `:scheme`).
    if target.is_empty() {
        return Err(RequestErrorKind::MissingPath.into());
    }
    // RFC 9113 §8.3.1: `:authority`, or else a `Host` header.
    let host = match authority.filter(|a| !a.is_empty()) {
        Some(authority) => authority,
        None => single_utf8(headers, "Host")?
            .filter(|h| !h.is_empty())
            .ok_or(RequestErrorKind::MissingHost)?,
    };
    // RFC 6455 §4.2.1 item 6, kept by RFC 8441 §5: Sec-WebSocket-Version MUST be 13.
    let mut versions = values(headers, "Sec-WebSocket-Version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim_ows(v) == b"13" => {}
        (None, _) => return Err(RequestErrorKind::UnsupportedVersion(None).into()),
        (Some(v), _) => {
            let v = String::from_utf8_lossy(trim_ows(v)).into_owned();
            return Err(RequestErrorKind::UnsupportedVersion(Some(v)).into());
        }
    }
    let offers = offers(headers)?;
    Ok(HandshakeRequest {
        resource: target.to_owned(),
        host: host.to_owned(),
        key: String::new(),
        origin: offers.origin,
        protocols: offers.protocols,
        extensions: offers.extensions,
        headers: to_owned_headers(headers),
    })
}

/// The value of a header that may appear at most once, trimmed, as UTF-8.
fn single_utf8<'b>(
    headers: &[httparse::Header<'b>],
    name: &'static str,
) -> Result<Option<&'b str>, RequestError> {
    let mut found = values(headers, name);
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => utf8(trim_ows(v), name).map(Some),
        (Some(_), Some(_)) => Err(RequestErrorKind::DuplicateHeader(name).into()),
    }
}

fn utf8<'b>(value: &'b [u8], name: &'static str) -> Result<&'b str, RequestError> {
    std::str::from_utf8(value).map_err(|_| RequestErrorKind::NotUtf8(name).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_LINE: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

    /// A GET request with the given header lines.
    fn request(lines: &[&str]) -> Vec<u8> {
        request_line("GET /chat?x=1 HTTP/1.1", lines)
    }

    fn request_line(first: &str, lines: &[&str]) -> Vec<u8> {
        let mut out = format!("{first}\r\n");
        for line in lines {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    fn valid(extra: &[&str]) -> Vec<u8> {
        let mut lines = vec![
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            KEY_LINE,
            "Sec-WebSocket-Version: 13",
        ];
        lines.extend_from_slice(extra);
        request(&lines)
    }

    /// `valid()` without the line starting with `prefix`, plus `extra`.
    fn without(prefix: &str, extra: &[&str]) -> Vec<u8> {
        let mut lines: Vec<&str> = vec![
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            KEY_LINE,
            "Sec-WebSocket-Version: 13",
        ];
        lines.retain(|l| !l.starts_with(prefix));
        lines.extend_from_slice(extra);
        request(&lines)
    }

    fn ok(buf: &[u8]) -> HandshakeRequest {
        let (req, n) = parse_request(buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        req
    }

    fn err(buf: &[u8]) -> RequestError {
        parse_request(buf).unwrap_err()
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn request_parses_valid_request() {
        let req = ok(&valid(&[
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ]));
        assert_eq!(req.resource, "/chat?x=1");
        assert_eq!(req.host, "server.example.com");
        assert_eq!(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.origin.as_deref(), Some("http://example.com"));
        assert_eq!(req.protocols, vec!["chat", "superchat"]);
        assert_eq!(req.extensions.len(), 1);
        assert_eq!(req.extensions[0].name, "permessage-deflate");
        assert_eq!(req.headers.len(), 8);
        assert_eq!(
            req.headers[0],
            ("Host".to_owned(), b"server.example.com".to_vec())
        );
    }

    #[test]
    fn request_header_names_are_case_insensitive() {
        let req = ok(&request(&[
            "host: h",
            "UPGRADE: WebSocket",
            "connection: keep-alive, upgrade",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "SEC-WEBSOCKET-VERSION: 13",
        ]));
        assert_eq!(req.host, "h");
    }

    #[test]
    fn request_incremental_byte_by_byte() {
        let head = valid(&[]);
        let mut buf = head.clone();
        buf.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, 5, 6]);
        for end in 0..head.len() {
            assert_eq!(parse_request(&buf[..end]).unwrap(), None, "prefix {end}");
        }
        for end in head.len()..=buf.len() {
            let (_, n) = parse_request(&buf[..end]).unwrap().unwrap();
            assert_eq!(n, head.len());
        }
    }

    #[test]
    fn request_rejects_non_get_method() {
        let e = err(&request_line(
            "POST /chat HTTP/1.1",
            &[
                "Host: h",
                "Upgrade: websocket",
                "Connection: Upgrade",
                KEY_LINE,
            ],
        ));
        assert_eq!(e.kind(), &RequestErrorKind::Method("POST".to_owned()));
        assert_eq!(e.status(), 400);
        assert!(e.response().starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }

    #[test]
    fn request_rejects_http_1_0() {
        let mut buf = valid(&[]);
        let at = buf.iter().position(|&b| b == b'\r').unwrap() - 1;
        buf[at] = b'0';
        assert!(buf.starts_with(b"GET /chat?x=1 HTTP/1.0\r\n"));
        let e = err(&buf);
        assert_eq!(e.kind(), &RequestErrorKind::Version);
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn request_rejects_missing_host() {
        assert_eq!(
            err(&without("Host", &[])).kind(),
            &RequestErrorKind::MissingHost
        );
        assert_eq!(
            err(&without("Host", &["Host: "])).kind(),
            &RequestErrorKind::MissingHost
        );
    }

    #[test]
    fn request_rejects_duplicate_host() {
        assert_eq!(
            err(&valid(&["Host: other"])).kind(),
            &RequestErrorKind::DuplicateHeader("Host")
        );
    }

    #[test]
    fn request_rejects_missing_upgrade() {
        assert_eq!(
            err(&without("Upgrade", &[])).kind(),
            &RequestErrorKind::MissingUpgrade
        );
        assert_eq!(
            err(&without("Upgrade", &["Upgrade: h2c"])).kind(),
            &RequestErrorKind::MissingUpgrade
        );
    }

    #[test]
    fn request_accepts_upgrade_token_list() {
        ok(&without("Upgrade", &["Upgrade: h2c, WebSocket"]));
        ok(&without("Upgrade", &["Upgrade: h2c", "Upgrade: websocket"]));
    }

    #[test]
    fn request_rejects_missing_connection_upgrade() {
        assert_eq!(
            err(&without("Connection", &[])).kind(),
            &RequestErrorKind::MissingConnectionUpgrade
        );
        assert_eq!(
            err(&without("Connection", &["Connection: keep-alive"])).kind(),
            &RequestErrorKind::MissingConnectionUpgrade
        );
    }

    #[test]
    fn request_accepts_connection_token_list() {
        ok(&without("Connection", &["Connection: keep-alive, Upgrade"]));
        ok(&without(
            "Connection",
            &["Connection: keep-alive", "Connection: upgrade"],
        ));
    }

    #[test]
    fn request_rejects_missing_key() {
        assert_eq!(
            err(&without("Sec-WebSocket-Key", &[])).kind(),
            &RequestErrorKind::MissingKey
        );
    }

    #[test]
    fn request_rejects_15_byte_key() {
        let line = format!(
            "Sec-WebSocket-Key: {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 15])
        );
        let e = err(&without("Sec-WebSocket-Key", &[&line]));
        assert_eq!(e.kind(), &RequestErrorKind::InvalidKey);
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn request_rejects_17_byte_key() {
        let line = format!(
            "Sec-WebSocket-Key: {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 17])
        );
        assert_eq!(
            err(&without("Sec-WebSocket-Key", &[&line])).kind(),
            &RequestErrorKind::InvalidKey
        );
    }

    #[test]
    fn request_rejects_non_base64_key() {
        for line in [
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
            "Sec-WebSocket-Key: ",
        ] {
            assert_eq!(
                err(&without("Sec-WebSocket-Key", &[line])).kind(),
                &RequestErrorKind::InvalidKey,
                "{line}"
            );
        }
    }

    #[test]
    fn request_rejects_duplicate_key() {
        assert_eq!(
            err(&valid(&[KEY_LINE])).kind(),
            &RequestErrorKind::DuplicateHeader("Sec-WebSocket-Key")
        );
    }

    #[test]
    fn request_wrong_version_gets_426() {
        let e = err(&without(
            "Sec-WebSocket-Version",
            &["Sec-WebSocket-Version: 8"],
        ));
        assert_eq!(
            e.kind(),
            &RequestErrorKind::UnsupportedVersion(Some("8".to_owned()))
        );
        assert_eq!(e.status(), 426);
        let response = text(e.response());
        assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(response.contains("\r\nConnection: close\r\n"));
    }

    #[test]
    fn request_missing_version_gets_426() {
        let e = err(&without("Sec-WebSocket-Version", &[]));
        assert_eq!(e.kind(), &RequestErrorKind::UnsupportedVersion(None));
        assert_eq!(e.status(), 426);
        assert!(text(e.response()).contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn request_repeated_version_gets_426() {
        let e = err(&valid(&["Sec-WebSocket-Version: 8"]));
        assert_eq!(e.status(), 426);
        let e = err(&without(
            "Sec-WebSocket-Version",
            &["Sec-WebSocket-Version: 13, 8"],
        ));
        assert_eq!(e.status(), 426);
    }

    #[test]
    fn request_too_many_headers_gets_431() {
        let filler: Vec<String> = (0..MAX_HEADERS - 4).map(|i| format!("X-{i}: y")).collect();
        let mut lines: Vec<&str> = filler.iter().map(String::as_str).collect();
        let e = err(&valid(&lines));
        assert_eq!(e.kind(), &RequestErrorKind::TooManyHeaders);
        assert_eq!(e.status(), 431);
        assert!(
            e.response()
                .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        );
        lines.pop();
        assert!(parse_request(&valid(&lines)).unwrap().is_some());
    }

    #[test]
    fn request_head_too_large_gets_431_even_when_partial() {
        let mut buf = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        buf.resize(MAX_HEAD_SIZE - 1, b'a');
        assert_eq!(parse_request(&buf).unwrap(), None);
        buf.push(b'a');
        let e = err(&buf);
        assert_eq!(e.kind(), &RequestErrorKind::HeadTooLarge);
        assert_eq!(e.status(), 431);
    }

    #[test]
    fn request_rejects_malformed_head() {
        for bad in [
            &b"GET /chat HTTP/1.1\r\nHost h\r\n\r\n"[..],
            b"GET /chat HTTP/2.0\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let e = err(bad);
            assert!(matches!(e.kind(), RequestErrorKind::Malformed(_)), "{e}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn request_splits_protocols_over_lines() {
        let req = ok(&valid(&[
            "Sec-WebSocket-Protocol: chat ,superchat,",
            "Sec-WebSocket-Protocol:  v2.json",
        ]));
        assert_eq!(req.protocols, vec!["chat", "superchat", "v2.json"]);
    }

    #[test]
    fn request_rejects_invalid_protocol() {
        let e = err(&valid(&["Sec-WebSocket-Protocol: chat, a b"]));
        assert_eq!(
            e.kind(),
            &RequestErrorKind::InvalidProtocol("a b".to_owned())
        );
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn request_parses_extensions_over_lines() {
        let req = ok(&valid(&[
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Extensions: permessage-deflate, x-foo",
        ]));
        let names: Vec<&str> = req.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["permessage-deflate", "permessage-deflate", "x-foo"]);
    }

    #[test]
    fn request_rejects_invalid_extensions() {
        let e = err(&valid(&[
            "Sec-WebSocket-Extensions: permessage-deflate; =1",
        ]));
        assert!(matches!(e.kind(), RequestErrorKind::InvalidExtensions(_)));
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn request_rejects_non_utf8_host() {
        let mut buf = without("Host", &[]);
        let at = buf.len() - 2;
        buf.splice(at..at, b"Host: \xff\r\n".iter().copied());
        assert_eq!(err(&buf).kind(), &RequestErrorKind::NotUtf8("Host"));
    }

    #[test]
    fn accept_builds_101_response() {
        let req = ok(&valid(&[]));
        let extra = vec![("Server".to_owned(), "wsstream".to_owned())];
        let res = req.accept(
            Some("chat"),
            Some("permessage-deflate; server_max_window_bits=10"),
            &extra,
        );
        assert_eq!(
            text(&res),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n\
             Server: wsstream\r\n\
             \r\n"
        );
        assert_eq!(
            req.try_accept(
                Some("chat"),
                Some("permessage-deflate; server_max_window_bits=10"),
                &extra
            )
            .unwrap(),
            res
        );
    }

    #[test]
    fn accept_leaves_out_invalid_items() {
        let req = ok(&valid(&[]));
        let extra = vec![
            ("X-Bad".to_owned(), "a\r\nInjected: 1".to_owned()),
            ("Sec-WebSocket-Accept".to_owned(), "forged".to_owned()),
            ("X-Good".to_owned(), "1".to_owned()),
        ];
        let res = req.accept(Some("a\r\nb"), Some("x;\r\nInjected: 1"), &extra);
        assert_eq!(
            text(&res),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             X-Good: 1\r\n\
             \r\n"
        );
    }

    #[test]
    fn try_accept_reports_invalid_items() {
        let req = ok(&valid(&[]));
        assert!(matches!(
            req.try_accept(Some("a b"), None, &[]),
            Err(HandshakeError::InvalidProtocol(_))
        ));
        assert!(matches!(
            req.try_accept(None, Some("x;"), &[]),
            Err(HandshakeError::InvalidExtensions(_))
        ));
        assert_eq!(
            req.try_accept(None, None, &[("connection".to_owned(), "close".to_owned())]),
            Err(HandshakeError::ForbiddenHeader("connection".to_owned()))
        );
        assert_eq!(
            req.try_accept(None, None, &[("X".to_owned(), "\n".to_owned())]),
            Err(HandshakeError::InvalidHeader("X".to_owned()))
        );
        let plain = req.try_accept(None, Some(""), &[]).unwrap();
        assert!(!text(&plain).contains("Extensions"));
    }

    #[test]
    fn reject_response_is_plain_http() {
        let res = reject_response(404, "Not Found", "no such path\n");
        assert_eq!(
            text(&res),
            "HTTP/1.1 404 Not Found\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 13\r\n\
             Connection: close\r\n\
             \r\n\
             no such path\n"
        );
        let res = reject_response(403, "No\r\nX: y", "");
        assert!(text(&res).starts_with("HTTP/1.1 403 No  X: y\r\nContent-Type"));
        assert!(text(&res).ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn request_error_is_std_error() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<RequestError>();
        let e = err(&without("Host", &[]));
        assert_eq!(
            e.to_string(),
            "refused handshake (400): missing Host header"
        );
        let body_at = e
            .response()
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4;
        assert_eq!(&e.response()[body_at..], b"missing Host header\n");
    }

    /// Parses `buf` with httparse as an HTTP server would, then validates it through
    /// [`HandshakeRequest::from_http_parts`] (the path of a request hyper or axum parsed).
    fn via_parts(buf: &[u8]) -> Result<HandshakeRequest, RequestError> {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut slots);
        assert!(matches!(req.parse(buf), Ok(httparse::Status::Complete(_))));
        let version = (1, req.version.unwrap());
        let headers = req.headers.iter().map(|h| (h.name, h.value));
        HandshakeRequest::from_http_parts(req.method.unwrap(), version, req.path.unwrap(), headers)
    }

    #[test]
    fn from_http_parts_accepts_what_parse_request_accepts() {
        let buf = valid(&[
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Protocol: v2",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ]);
        let req = via_parts(&buf).unwrap();
        assert_eq!(req, ok(&buf));
        assert_eq!(req.resource, "/chat?x=1");
        assert_eq!(req.protocols, ["chat", "superchat", "v2"]);
        assert_eq!(req.extensions[0].name, "permessage-deflate");
        // The 101 built from it is the same too.
        assert_eq!(
            req.try_accept(Some("chat"), None, &[]).unwrap(),
            ok(&buf).try_accept(Some("chat"), None, &[]).unwrap()
        );
    }

    #[test]
    fn from_http_parts_refuses_what_parse_request_refuses() {
        let key15 = format!(
            "Sec-WebSocket-Key: {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 15])
        );
        let cases = [
            without("Host", &[]),
            valid(&["Host: other"]),
            without("Upgrade", &["Upgrade: h2c"]),
            without("Connection", &["Connection: keep-alive"]),
            without("Sec-WebSocket-Key", &[]),
            without("Sec-WebSocket-Key", &[&key15]),
            valid(&[KEY_LINE]),
            without("Sec-WebSocket-Version", &["Sec-WebSocket-Version: 8"]),
            without("Sec-WebSocket-Version", &[]),
            valid(&["Sec-WebSocket-Version: 8"]),
            valid(&["Sec-WebSocket-Protocol: chat, a b"]),
            valid(&["Sec-WebSocket-Extensions: permessage-deflate; =1"]),
            request_line(
                "POST /chat HTTP/1.1",
                &[
                    "Host: h",
                    "Upgrade: websocket",
                    "Connection: Upgrade",
                    KEY_LINE,
                ],
            ),
        ];
        for buf in cases {
            let expected = err(&buf);
            let got = via_parts(&buf).unwrap_err();
            assert_eq!(got, expected, "{}", text(&buf));
            assert_eq!(got.response(), expected.response());
        }
    }

    #[test]
    fn from_http_parts_wrong_version_gets_426() {
        let buf = without("Sec-WebSocket-Version", &["Sec-WebSocket-Version: 7"]);
        let e = via_parts(&buf).unwrap_err();
        assert_eq!(
            e.kind(),
            &RequestErrorKind::UnsupportedVersion(Some("7".to_owned()))
        );
        assert_eq!(e.status(), 426);
        assert!(text(e.response()).contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn from_http_parts_needs_http_1_1() {
        let lines: [(&str, &[u8]); 5] = [
            ("host", b"h"),
            ("upgrade", b"websocket"),
            ("connection", b"Upgrade"),
            ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", b"13"),
        ];
        assert!(HandshakeRequest::from_http_parts("GET", (1, 1), "/", lines).is_ok());
        for version in [(1, 0), (2, 0), (3, 0), (0, 9)] {
            let e = HandshakeRequest::from_http_parts("GET", version, "/", lines).unwrap_err();
            assert_eq!(e.kind(), &RequestErrorKind::Version, "{version:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn from_http_parts_keeps_the_header_lines_as_given() {
        let lines: [(&str, &[u8]); 6] = [
            ("host", b"example.com:8080"),
            ("upgrade", b"websocket"),
            ("connection", b"keep-alive, Upgrade"),
            ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", b"13"),
            ("x-raw", b"\xffbytes"),
        ];
        let req = HandshakeRequest::from_http_parts("GET", (1, 1), "/a?b", lines).unwrap();
        assert_eq!(req.host, "example.com:8080");
        assert_eq!(req.resource, "/a?b");
        assert_eq!(req.headers.len(), 6);
        assert_eq!(req.headers[5], ("x-raw".to_owned(), b"\xffbytes".to_vec()));
    }

    fn h2(
        method: &str,
        protocol: Option<&str>,
        headers: &[(&'static str, &'static [u8])],
    ) -> Result<HandshakeRequest, RequestError> {
        HandshakeRequest::from_extended_connect(
            method,
            protocol,
            "/chat?x=1",
            Some("server.example.com"),
            headers.iter().copied(),
        )
    }

    #[test]
    fn an_extended_connect_is_a_websocket_request_over_http2() {
        let req = h2(
            "CONNECT",
            Some("websocket"),
            &[
                ("sec-websocket-version", b"13"),
                ("sec-websocket-protocol", b"chat, superchat"),
                ("sec-websocket-extensions", b"permessage-deflate"),
                ("origin", b"https://example.com"),
            ],
        )
        .unwrap();
        assert_eq!(req.resource, "/chat?x=1");
        assert_eq!(req.host, "server.example.com");
        assert_eq!(req.key, "");
        assert_eq!(req.protocols, ["chat", "superchat"]);
        assert_eq!(req.extensions[0].name, "permessage-deflate");
        assert_eq!(req.origin.as_deref(), Some("https://example.com"));
        // Without :authority, the Host header names the host.
        let req = HandshakeRequest::from_extended_connect(
            "CONNECT",
            Some("websocket"),
            "/",
            None,
            [
                ("host", &b"h.example"[..]),
                ("sec-websocket-version", b"13"),
            ],
        )
        .unwrap();
        assert_eq!(req.host, "h.example");
    }

    #[test]
    fn a_wrong_http2_request_gets_400_without_connection_close() {
        let version = [("sec-websocket-version", &b"13"[..])];
        for (method, protocol) in [
            ("GET", None),
            ("CONNECT", None),
            ("CONNECT", Some("connect-udp")),
        ] {
            let e = h2(method, protocol, &version).unwrap_err();
            assert!(matches!(e.kind(), RequestErrorKind::NotExtendedConnect(_)));
            assert_eq!(e.status(), 400);
            assert!(e.is_http2());
            let text = String::from_utf8_lossy(e.response()).into_owned();
            assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
            assert!(!text.to_ascii_lowercase().contains("connection:"), "{text}");
        }
        // A wrong or missing version: 400 (426 needs `Upgrade`, which HTTP/2 forbids)
        // with the version this server speaks.
        for headers in [&[][..], &[("sec-websocket-version", &b"8"[..])][..]] {
            let e = h2("CONNECT", Some("websocket"), headers).unwrap_err();
            assert!(matches!(e.kind(), RequestErrorKind::UnsupportedVersion(_)));
            assert_eq!(e.status(), 400);
            let text = String::from_utf8_lossy(e.response()).into_owned();
            assert!(text.contains("Sec-WebSocket-Version: 13\r\n"), "{text}");
        }
        let e = HandshakeRequest::from_extended_connect(
            "CONNECT",
            Some("websocket"),
            "",
            Some("h"),
            version.iter().copied(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), &RequestErrorKind::MissingPath);
        let e = HandshakeRequest::from_extended_connect(
            "CONNECT",
            Some("websocket"),
            "/",
            None,
            version.iter().copied(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), &RequestErrorKind::MissingHost);
        let e = h2(
            "CONNECT",
            Some("websocket"),
            &[
                ("sec-websocket-version", b"13"),
                ("sec-websocket-protocol", b"a b"),
            ],
        )
        .unwrap_err();
        assert!(matches!(e.kind(), RequestErrorKind::InvalidProtocol(_)));
        // HTTP/1.1 refusals are unchanged.
        let e = parse_request(&without("Sec-WebSocket-Version", &[])).unwrap_err();
        assert_eq!(e.status(), 426);
        assert!(!e.is_http2());
    }
}
