//! The client role: build the opening handshake request and validate the server's response
//! (RFC 6455 §4.1).

use super::headers::{
    ExtraHeaderCheck, check_extra, has_token, is_token, to_owned_headers, trim_ows, values,
    write_header,
};
use super::key::{accept_key, generate_key, is_valid_key};
use super::{ExtensionOffer, HandshakeError, MAX_HEAD_SIZE, MAX_HEADERS, parse_extensions};

/// What the client asks for.
#[derive(Clone, Copy, Debug)]
pub struct ClientRequest<'a> {
    /// The URL host as serialized by the `url` crate (an IPv6 address keeps its brackets).
    pub host: &'a str,
    /// `Some(port)` only if it is not the scheme's default (the caller decides); the `Host`
    /// header then gets `:port` (RFC 6455 §4.1 requirement 4).
    pub port: Option<u16>,
    /// The resource name: path and optional `?query`, e.g. `/chat?x=1`.
    pub resource: &'a str,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, joined with `, `; the header is
    /// omitted when empty.
    pub protocols: &'a [String],
    /// The raw `Sec-WebSocket-Extensions` offer; the header is omitted if `None` or if the
    /// value holds no extension.
    pub extensions: Option<&'a str>,
    /// Extra headers (e.g. `Origin`, `Authorization`), written in order after the handshake's
    /// own headers.
    pub headers: &'a [(String, String)],
}

/// Client side of the opening handshake: built from a [`ClientRequest`], it holds the request
/// bytes and validates the response against what was offered.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    key: String,
    request: Vec<u8>,
    protocols: Vec<String>,
    extensions: Vec<String>,
}

/// A validated `101 Switching Protocols` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The selected subprotocol, `None` if the response has no `Sec-WebSocket-Protocol`.
    pub protocol: Option<String>,
    /// The parsed `Sec-WebSocket-Extensions` of the response (all header lines, in order).
    pub extensions: Vec<ExtensionOffer>,
    /// All response headers, as received.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ClientHandshake {
    /// Validates `req`, draws a fresh `Sec-WebSocket-Key` and builds the request.
    ///
    /// # Errors
    ///
    /// * [`HandshakeError::InvalidRequest`]: an empty host or one with whitespace, control
    ///   characters or `/`; a resource that does not start with `/` or holds anything but
    ///   visible ASCII (or a `#`).
    /// * [`HandshakeError::InvalidProtocol`]: a subprotocol that is not a token, or a repeat.
    /// * [`HandshakeError::InvalidExtensions`]: an offer that does not parse.
    /// * [`HandshakeError::InvalidHeader`] / [`HandshakeError::ForbiddenHeader`]: an extra
    ///   header with a bad name or value, or one the handshake sets itself.
    /// * [`HandshakeError::Random`]: the random source failed.
    pub fn new(req: &ClientRequest<'_>) -> Result<Self, HandshakeError> {
        validate(req)?;
        Self::build(req, generate_key()?)
    }

    /// Like [`ClientHandshake::new`] but with a caller-chosen key, for reproducible
    /// transcripts in tests. RFC 6455 §4.1 requires a fresh random key per connection:
    /// use [`ClientHandshake::new`] for real connections.
    ///
    /// # Errors
    ///
    /// As [`ClientHandshake::new`], and [`HandshakeError::InvalidKey`] if `key` is not
    /// base64 of 16 bytes.
    pub fn with_key(req: &ClientRequest<'_>, key: &str) -> Result<Self, HandshakeError> {
        if !is_valid_key(key.as_bytes()) {
            return Err(HandshakeError::InvalidKey);
        }
        validate(req)?;
        Self::build(req, key.to_owned())
    }

    fn build(req: &ClientRequest<'_>, key: String) -> Result<Self, HandshakeError> {
        let offer = match req.extensions {
            Some(raw) => parse_extensions(raw)?,
            None => Vec::new(),
        };

        // RFC 6455 §4.1 requirements 1–12, in the order of the RFC's example.
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(req.resource.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut host = req.host.to_owned();
        if let Some(port) = req.port {
            host.push(':');
            host.push_str(&port.to_string());
        }
        write_header(&mut out, "Host", host.as_bytes());
        write_header(&mut out, "Upgrade", b"websocket");
        write_header(&mut out, "Connection", b"Upgrade");
        write_header(&mut out, "Sec-WebSocket-Key", key.as_bytes());
        write_header(&mut out, "Sec-WebSocket-Version", b"13");
        if !req.protocols.is_empty() {
            write_header(
                &mut out,
                "Sec-WebSocket-Protocol",
                req.protocols.join(", ").as_bytes(),
            );
        }
        if let (Some(raw), false) = (req.extensions, offer.is_empty()) {
            write_header(&mut out, "Sec-WebSocket-Extensions", raw.as_bytes());
        }
        for (name, value) in req.headers {
            write_header(&mut out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");

        Ok(Self {
            key,
            request: out,
            protocols: req.protocols.to_vec(),
            extensions: offer.into_iter().map(|o| o.name).collect(),
        })
    }

    /// The request bytes to send.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses and validates the server's response. Call it with everything received so far.
    ///
    /// Returns `Ok(None)` while the head is incomplete, and `Ok(Some((response, n)))` once it
    /// is complete and valid: the first `n` bytes of `buf` were the head, and the bytes after
    /// them already belong to the WebSocket connection.
    ///
    /// # Errors
    ///
    /// Any failed check of RFC 6455 §4.1 (after which the client MUST _Fail the WebSocket
    /// Connection_): see [`HandshakeError`]. A head that has not ended within
    /// [`MAX_HEAD_SIZE`] bytes is [`HandshakeError::HeadTooLarge`] even while incomplete.
    pub fn parse_response(
        &self,
        buf: &[u8],
    ) -> Result<Option<(HandshakeResponse, usize)>, HandshakeError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut slots);
        // Never parse past the limit: the head must end within MAX_HEAD_SIZE bytes.
        let window = &buf[..buf.len().min(MAX_HEAD_SIZE)];
        let len = match res.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_SIZE => {
                return Err(HandshakeError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(err) => return Err(HandshakeError::Malformed(err.to_string())),
        };
        let headers: &[httparse::Header<'_>] = res.headers;

        // RFC 6455 §4.1: "If the status code received from the server is not 101, the client
        // handles the response per HTTP procedures" — for us a failed handshake (the
        // browser follows no redirects here; a runtime that does handles them above us).
        let status = res.code.unwrap_or(0);
        if status != 101 {
            return Err(HandshakeError::Status {
                status,
                reason: res.reason.unwrap_or("").to_owned(),
            });
        }
        if res.version != Some(1) {
            return Err(HandshakeError::Malformed(
                "a 101 response must be HTTP/1.1".to_owned(),
            ));
        }
        // RFC 6455 §4.1 check 2: Upgrade MUST contain "websocket" (case-insensitive).
        if !has_token(headers, "Upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        // RFC 6455 §4.1 check 3: Connection MUST contain "Upgrade" (case-insensitive).
        if !has_token(headers, "Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // RFC 6455 §4.1 check 4: Sec-WebSocket-Accept MUST be base64(SHA-1(key ++ GUID)).
        let mut accepts = values(headers, "Sec-WebSocket-Accept");
        let accept = accepts.next().ok_or(HandshakeError::MissingAccept)?;
        if accepts.next().is_some()
            || trim_ows(accept) != accept_key(self.key.as_bytes()).as_bytes()
        {
            return Err(HandshakeError::AcceptMismatch);
        }
        let protocol = self.check_protocol(headers)?;
        let extensions = self.check_extensions(headers)?;

        Ok(Some((
            HandshakeResponse {
                protocol,
                extensions,
                headers: to_owned_headers(headers),
            },
            len,
        )))
    }

    /// Validates the headers of a successful (2xx) HTTP/2 response to an extended CONNECT
    /// request (RFC 8441 §5): the same subprotocol and extension checks as
    /// [`parse_response`](Self::parse_response). HTTP/2 has no `Upgrade`, `Connection` or
    /// `Sec-WebSocket-Accept` (RFC 8441 §5: the key and accept headers are not used), so
    /// none is checked; the caller checks the status. `headers` are the response's
    /// header fields, name and value.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::ProtocolMissing`], [`HandshakeError::ProtocolNotOffered`],
    /// [`HandshakeError::InvalidExtensions`], [`HandshakeError::ExtensionNotOffered`] and
    /// [`HandshakeError::DuplicateExtension`], as for an HTTP/1.1 response.
    pub fn check_h2_response(
        &self,
        headers: &[(&str, &[u8])],
    ) -> Result<HandshakeResponse, HandshakeError> {
        let headers: Vec<httparse::Header<'_>> = headers
            .iter()
            .map(|&(name, value)| httparse::Header { name, value })
            .collect();
        let protocol = self.check_protocol(&headers)?;
        let extensions = self.check_extensions(&headers)?;
        Ok(HandshakeResponse {
            protocol,
            extensions,
            headers: to_owned_headers(&headers),
        })
    }

    /// RFC 6455 §4.1 check 6: a selected subprotocol MUST be one that was offered; and, as
    /// browsers require (WHATWG WebSockets, "establish a WebSocket connection"), when
    /// protocols were offered the response MUST select one.
    fn check_protocol(
        &self,
        headers: &[httparse::Header<'_>],
    ) -> Result<Option<String>, HandshakeError> {
        let lines: Vec<&[u8]> = values(headers, "Sec-WebSocket-Protocol").collect();
        let lossy = |v: &[u8]| String::from_utf8_lossy(trim_ows(v)).into_owned();
        if self.protocols.is_empty() {
            return match lines.first() {
                None => Ok(None),
                Some(v) => Err(HandshakeError::ProtocolNotOffered(lossy(v))),
            };
        }
        match lines.as_slice() {
            [] => Err(HandshakeError::ProtocolMissing),
            [v] if trim_ows(v).is_empty() => Err(HandshakeError::ProtocolMissing),
            [v] => {
                let v = trim_ows(v);
                match self.protocols.iter().find(|p| p.as_bytes() == v) {
                    Some(p) => Ok(Some(p.clone())),
                    // Also covers a comma list: no offered token contains a comma.
                    None => Err(HandshakeError::ProtocolNotOffered(lossy(v))),
                }
            }
            several => Err(HandshakeError::ProtocolNotOffered(
                several
                    .iter()
                    .map(|v| lossy(v))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// RFC 6455 §4.1 check 5: every extension in use MUST have been offered; RFC 6455 §9.1
    /// and RFC 7692 §5: the server accepts at most one element per extension.
    fn check_extensions(
        &self,
        headers: &[httparse::Header<'_>],
    ) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        let mut all = Vec::new();
        for line in values(headers, "Sec-WebSocket-Extensions") {
            let text = std::str::from_utf8(line)
                .map_err(|_| HandshakeError::InvalidExtensions("value is not UTF-8".to_owned()))?;
            all.extend(parse_extensions(text)?);
        }
        for (i, ext) in all.iter().enumerate() {
            if !self.extensions.contains(&ext.name) {
                return Err(HandshakeError::ExtensionNotOffered(ext.name.clone()));
            }
            if all[..i].iter().any(|e| e.name == ext.name) {
                return Err(HandshakeError::DuplicateExtension(ext.name.clone()));
            }
        }
        Ok(all)
    }
}

/// Checks what the caller put into a [`ClientRequest`] before any of it is written.
fn validate(req: &ClientRequest<'_>) -> Result<(), HandshakeError> {
    if req.host.is_empty()
        || !req
            .host
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@'))
    {
        return Err(HandshakeError::InvalidRequest(format!(
            "invalid host {:?}",
            req.host
        )));
    }
    // RFC 7230 §5.3: the request-target is visible ASCII; the fragment is never sent.
    if !req.resource.starts_with('/')
        || !req
            .resource
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#')
    {
        return Err(HandshakeError::InvalidRequest(format!(
            "invalid resource {:?}",
            req.resource
        )));
    }
    // RFC 6455 §4.1 requirement 10: each subprotocol MUST be a token, all unique.
    for (i, p) in req.protocols.iter().enumerate() {
        if !is_token(p.as_bytes()) || req.protocols[..i].contains(p) {
            return Err(HandshakeError::InvalidProtocol(p.clone()));
        }
    }
    for (name, value) in req.headers {
        match check_extra(name, value) {
            ExtraHeaderCheck::Ok => {}
            ExtraHeaderCheck::Invalid => return Err(HandshakeError::InvalidHeader(name.clone())),
            ExtraHeaderCheck::Forbidden => {
                return Err(HandshakeError::ForbiddenHeader(name.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn request<'a>(protocols: &'a [String], extensions: Option<&'a str>) -> ClientRequest<'a> {
        ClientRequest {
            host: "example.com",
            port: None,
            resource: "/chat?x=1",
            protocols,
            extensions,
            headers: &[],
        }
    }

    fn client(protocols: &[&str], extensions: Option<&str>) -> ClientHandshake {
        let protocols = strings(protocols);
        ClientHandshake::with_key(&request(&protocols, extensions), KEY).unwrap()
    }

    /// A 101 response with the given header lines after the status line.
    fn response(lines: &[&str]) -> Vec<u8> {
        let mut out = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        for line in lines {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    const UPGRADE: &str = "Upgrade: websocket";
    const CONNECTION: &str = "Connection: Upgrade";
    const ACCEPT_LINE: &str = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn valid(extra: &[&str]) -> Vec<u8> {
        let mut lines = vec![UPGRADE, CONNECTION, ACCEPT_LINE];
        lines.extend_from_slice(extra);
        response(&lines)
    }

    fn parse(c: &ClientHandshake, buf: &[u8]) -> Result<HandshakeResponse, HandshakeError> {
        match c.parse_response(buf)? {
            Some((res, n)) => {
                assert_eq!(n, buf.len());
                Ok(res)
            }
            None => panic!("incomplete"),
        }
    }

    // ---- request building ----

    #[test]
    fn request_bytes_match_rfc_layout() {
        let protocols = strings(&["chat", "superchat"]);
        let extra = vec![("Origin".to_owned(), "http://example.com".to_owned())];
        let req = ClientRequest {
            host: "example.com",
            port: Some(8080),
            resource: "/chat?x=1",
            protocols: &protocols,
            extensions: Some("permessage-deflate; client_max_window_bits"),
            headers: &extra,
        };
        let c = ClientHandshake::with_key(&req, KEY).unwrap();
        assert_eq!(c.key(), KEY);
        assert_eq!(
            std::str::from_utf8(c.request()).unwrap(),
            "GET /chat?x=1 HTTP/1.1\r\n\
             Host: example.com:8080\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Origin: http://example.com\r\n\
             \r\n"
        );
    }

    #[test]
    fn request_omits_empty_protocol_and_extensions() {
        for ext in [None, Some(""), Some(" , ")] {
            let c = client(&[], ext);
            let text = String::from_utf8(c.request().to_vec()).unwrap();
            assert!(text.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\n"));
            assert!(!text.contains("Sec-WebSocket-Protocol"));
            assert!(!text.contains("Sec-WebSocket-Extensions"));
            assert!(text.ends_with("Sec-WebSocket-Version: 13\r\n\r\n"));
        }
    }

    #[test]
    fn request_ipv6_host_keeps_brackets() {
        let req = ClientRequest {
            host: "[::1]",
            port: Some(9001),
            ..request(&[], None)
        };
        let c = ClientHandshake::new(&req).unwrap();
        assert!(
            c.request()
                .windows(20)
                .any(|w| w == b"Host: [::1]:9001\r\nUp")
        );
    }

    #[test]
    fn new_generates_a_fresh_valid_key() {
        let a = ClientHandshake::new(&request(&[], None)).unwrap();
        let b = ClientHandshake::new(&request(&[], None)).unwrap();
        assert!(is_valid_key(a.key().as_bytes()));
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn new_rejects_forbidden_headers_case_insensitively() {
        for name in [
            "Host",
            "upgrade",
            "CONNECTION",
            "Sec-WebSocket-Key",
            "sec-websocket-version",
            "Sec-Websocket-Protocol",
            "SEC-WEBSOCKET-EXTENSIONS",
            "Sec-WebSocket-Accept",
        ] {
            let headers = vec![(name.to_owned(), "x".to_owned())];
            let req = ClientRequest {
                headers: &headers,
                ..request(&[], None)
            };
            assert_eq!(
                ClientHandshake::new(&req).unwrap_err(),
                HandshakeError::ForbiddenHeader(name.to_owned())
            );
        }
    }

    #[test]
    fn new_rejects_header_injection() {
        for (name, value) in [
            ("X-A", "1\r\nX-Injected: 2"),
            ("X-A", "1\n"),
            ("X-A", "1\r"),
            ("X-A", "nul\0"),
            ("X A", "1"),
            ("X-A:", "1"),
            ("X-A\r\n", "1"),
            ("", "1"),
        ] {
            let headers = vec![(name.to_owned(), value.to_owned())];
            let req = ClientRequest {
                headers: &headers,
                ..request(&[], None)
            };
            assert_eq!(
                ClientHandshake::new(&req).unwrap_err(),
                HandshakeError::InvalidHeader(name.to_owned()),
                "{name:?}: {value:?}"
            );
        }
    }

    #[test]
    fn new_accepts_ordinary_extra_headers() {
        let headers = vec![
            ("Authorization".to_owned(), "Bearer a.b-c".to_owned()),
            ("User-Agent".to_owned(), "wsstream\t/0.1".to_owned()),
            ("X-Empty".to_owned(), String::new()),
        ];
        let req = ClientRequest {
            headers: &headers,
            ..request(&[], None)
        };
        let c = ClientHandshake::new(&req).unwrap();
        let text = String::from_utf8(c.request().to_vec()).unwrap();
        assert!(text.ends_with(
            "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer a.b-c\r\n\
             User-Agent: wsstream\t/0.1\r\nX-Empty: \r\n\r\n"
        ));
    }

    #[test]
    fn new_rejects_invalid_protocols() {
        for bad in [
            &["a b"][..],
            &["a,b"],
            &[""],
            &["chat", "chat"],
            &["caf\u{e9}"],
        ] {
            let protocols = strings(bad);
            assert!(matches!(
                ClientHandshake::new(&request(&protocols, None)),
                Err(HandshakeError::InvalidProtocol(_))
            ));
        }
    }

    #[test]
    fn new_rejects_invalid_extension_offer() {
        for bad in ["a;", "a\r\nX: y", "a; p=\"x"] {
            assert!(matches!(
                ClientHandshake::new(&request(&[], Some(bad))),
                Err(HandshakeError::InvalidExtensions(_))
            ));
        }
    }

    #[test]
    fn new_rejects_invalid_host_and_resource() {
        for (host, resource) in [
            ("", "/"),
            ("a b", "/"),
            ("a\r\nX: y", "/"),
            ("a/b", "/"),
            ("a", ""),
            ("a", "chat"),
            ("a", "/a b"),
            ("a", "/a\r\n"),
            ("a", "/a#frag"),
            ("a", "/caf\u{e9}"),
        ] {
            let req = ClientRequest {
                host,
                resource,
                ..request(&[], None)
            };
            assert!(
                matches!(
                    ClientHandshake::new(&req),
                    Err(HandshakeError::InvalidRequest(_))
                ),
                "{host:?} {resource:?}"
            );
        }
    }

    #[test]
    fn with_key_rejects_invalid_key() {
        assert_eq!(
            ClientHandshake::with_key(&request(&[], None), "short").unwrap_err(),
            HandshakeError::InvalidKey
        );
    }

    // ---- response validation ----

    #[test]
    fn response_accepts_valid_response() {
        let c = client(&[], None);
        assert_eq!(accept_key(c.key().as_bytes()), ACCEPT);
        assert_eq!(ACCEPT_LINE, format!("Sec-WebSocket-Accept: {ACCEPT}"));
        let res = parse(&c, &valid(&["Server: test"])).unwrap();
        assert_eq!(res.protocol, None);
        assert!(res.extensions.is_empty());
        assert_eq!(res.headers.len(), 4);
        assert_eq!(res.headers[3], ("Server".to_owned(), b"test".to_vec()));
    }

    #[test]
    fn response_header_names_are_case_insensitive() {
        let c = client(&["chat"], Some("foo"));
        let buf = response(&[
            "UPGRADE: websocket",
            "connection: upgrade",
            "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "SEC-WEBSOCKET-PROTOCOL: chat",
            "sec-WebSocket-extensions: foo",
        ]);
        let res = parse(&c, &buf).unwrap();
        assert_eq!(res.protocol.as_deref(), Some("chat"));
        assert_eq!(res.extensions, vec![ExtensionOffer::new("foo")]);
    }

    #[test]
    fn response_incremental_byte_by_byte() {
        let c = client(&[], None);
        let head = valid(&[]);
        let mut buf = head.clone();
        buf.extend_from_slice(&[0x81, 0x02, b'h', b'i']); // a text frame right behind
        for end in 0..head.len() {
            assert_eq!(c.parse_response(&buf[..end]).unwrap(), None, "prefix {end}");
        }
        for end in head.len()..=buf.len() {
            let (_, n) = c.parse_response(&buf[..end]).unwrap().unwrap();
            assert_eq!(n, head.len());
        }
        let (_, n) = c.parse_response(&buf).unwrap().unwrap();
        assert_eq!(&buf[n..], &[0x81, 0x02, b'h', b'i']);
    }

    #[test]
    fn response_rejects_too_many_headers() {
        let c = client(&[], None);
        let filler: Vec<String> = (0..MAX_HEADERS - 2).map(|i| format!("X-{i}: y")).collect();
        let mut lines: Vec<&str> = filler.iter().map(String::as_str).collect();
        lines.extend([UPGRADE, CONNECTION, ACCEPT_LINE]);
        assert_eq!(
            c.parse_response(&response(&lines)).unwrap_err(),
            HandshakeError::TooManyHeaders
        );
        // Exactly MAX_HEADERS is fine.
        lines.remove(0);
        assert_eq!(lines.len(), MAX_HEADERS);
        assert!(parse(&c, &response(&lines)).is_ok());
    }

    #[test]
    fn response_rejects_head_too_large_even_when_partial() {
        let c = client(&[], None);
        let mut buf = b"HTTP/1.1 101 Switching Protocols\r\nX-Big: ".to_vec();
        buf.resize(MAX_HEAD_SIZE - 1, b'a');
        assert_eq!(c.parse_response(&buf).unwrap(), None);
        buf.push(b'a');
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::HeadTooLarge
        );
    }

    #[test]
    fn response_accepts_head_of_exactly_max_size() {
        let c = client(&[], None);
        let small = valid(&["X-Pad: "]);
        let pad = MAX_HEAD_SIZE - small.len();
        let padding = "p".repeat(pad);
        let line = format!("X-Pad: {padding}");
        let mut buf = valid(&[&line]);
        assert_eq!(buf.len(), MAX_HEAD_SIZE);
        assert!(parse(&c, &buf).is_ok());
        buf.insert(buf.len() - 4, b'p');
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::HeadTooLarge
        );
    }

    #[test]
    fn response_rejects_malformed_head() {
        let c = client(&[], None);
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 101 Switching\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(
                matches!(c.parse_response(bad), Err(HandshakeError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn response_rejects_non_101_status() {
        let c = client(&[], None);
        let buf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        // Still requires a complete head.
        assert_eq!(c.parse_response(&buf[..buf.len() - 1]).unwrap(), None);
        assert_eq!(
            c.parse_response(buf).unwrap_err(),
            HandshakeError::Status {
                status: 404,
                reason: "Not Found".to_owned()
            }
        );
        let buf = b"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(matches!(
            c.parse_response(buf),
            Err(HandshakeError::Status { status: 200, .. })
        ));
    }

    #[test]
    fn response_rejects_http_1_0() {
        let c = client(&[], None);
        let mut buf = valid(&[]);
        buf[7] = b'0';
        assert!(buf.starts_with(b"HTTP/1.0 101"));
        assert!(matches!(
            c.parse_response(&buf),
            Err(HandshakeError::Malformed(_))
        ));
    }

    #[test]
    fn response_rejects_missing_upgrade() {
        let c = client(&[], None);
        let buf = response(&[CONNECTION, ACCEPT_LINE]);
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::MissingUpgrade
        );
    }

    #[test]
    fn response_rejects_upgrade_without_websocket_token() {
        let c = client(&[], None);
        for upgrade in ["Upgrade: h2c", "Upgrade: websocket2", "Upgrade: web socket"] {
            let buf = response(&[upgrade, CONNECTION, ACCEPT_LINE]);
            assert_eq!(
                c.parse_response(&buf).unwrap_err(),
                HandshakeError::MissingUpgrade
            );
        }
    }

    #[test]
    fn response_accepts_upgrade_token_list_and_case() {
        let c = client(&[], None);
        for lines in [
            &["Upgrade: WebSocket"][..],
            &["Upgrade: h2c, websocket"],
            &["Upgrade: h2c", "Upgrade: WEBSOCKET"],
        ] {
            let mut all = lines.to_vec();
            all.extend([CONNECTION, ACCEPT_LINE]);
            assert!(parse(&c, &response(&all)).is_ok(), "{lines:?}");
        }
    }

    #[test]
    fn response_rejects_missing_connection() {
        let c = client(&[], None);
        let buf = response(&[UPGRADE, ACCEPT_LINE]);
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade
        );
        let buf = response(&[UPGRADE, "Connection: keep-alive", ACCEPT_LINE]);
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade
        );
    }

    #[test]
    fn response_accepts_connection_token_list() {
        let c = client(&[], None);
        for lines in [
            &["Connection: keep-alive, Upgrade"][..],
            &["Connection: upgrade"],
            &["Connection: keep-alive", "Connection: UPGRADE"],
            &["Connection:keep-alive,upgrade"],
        ] {
            let mut all = vec![UPGRADE];
            all.extend_from_slice(lines);
            all.push(ACCEPT_LINE);
            assert!(parse(&c, &response(&all)).is_ok(), "{lines:?}");
        }
    }

    #[test]
    fn response_rejects_missing_accept() {
        let c = client(&[], None);
        let buf = response(&[UPGRADE, CONNECTION]);
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::MissingAccept
        );
    }

    #[test]
    fn response_rejects_wrong_accept() {
        let c = client(&[], None);
        for accept in [
            "Sec-WebSocket-Accept: S3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo",
            "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Accept: ",
        ] {
            let buf = response(&[UPGRADE, CONNECTION, accept]);
            assert_eq!(
                c.parse_response(&buf).unwrap_err(),
                HandshakeError::AcceptMismatch,
                "{accept}"
            );
        }
    }

    #[test]
    fn response_rejects_repeated_accept() {
        let c = client(&[], None);
        let buf = response(&[UPGRADE, CONNECTION, ACCEPT_LINE, ACCEPT_LINE]);
        assert_eq!(
            c.parse_response(&buf).unwrap_err(),
            HandshakeError::AcceptMismatch
        );
    }

    #[test]
    fn an_http2_response_gets_the_subprotocol_and_extension_checks() {
        let protocols = strings(&["chat", "superchat"]);
        let hs = ClientHandshake::with_key(&request(&protocols, Some("permessage-deflate")), KEY)
            .unwrap();
        let ok = hs
            .check_h2_response(&[
                ("sec-websocket-protocol", b"superchat"),
                ("sec-websocket-extensions", b"permessage-deflate"),
            ])
            .unwrap();
        assert_eq!(ok.protocol.as_deref(), Some("superchat"));
        assert_eq!(ok.extensions.len(), 1);
        assert_eq!(
            hs.check_h2_response(&[]),
            Err(HandshakeError::ProtocolMissing)
        );
        assert!(matches!(
            hs.check_h2_response(&[
                ("sec-websocket-protocol", b"chat"),
                ("sec-websocket-extensions", b"x-other"),
            ]),
            Err(HandshakeError::ExtensionNotOffered(_))
        ));
    }

    #[test]
    fn response_accepts_offered_protocol() {
        let c = client(&["chat", "superchat"], None);
        let res = parse(&c, &valid(&["Sec-WebSocket-Protocol: superchat"])).unwrap();
        assert_eq!(res.protocol.as_deref(), Some("superchat"));
    }

    #[test]
    fn response_rejects_missing_protocol() {
        let c = client(&["chat"], None);
        assert_eq!(
            c.parse_response(&valid(&[])).unwrap_err(),
            HandshakeError::ProtocolMissing
        );
    }

    #[test]
    fn response_rejects_empty_protocol() {
        let c = client(&["chat"], None);
        assert_eq!(
            c.parse_response(&valid(&["Sec-WebSocket-Protocol: "]))
                .unwrap_err(),
            HandshakeError::ProtocolMissing
        );
    }

    #[test]
    fn response_rejects_protocol_not_offered() {
        let c = client(&["chat"], None);
        assert_eq!(
            c.parse_response(&valid(&["Sec-WebSocket-Protocol: Chat"]))
                .unwrap_err(),
            HandshakeError::ProtocolNotOffered("Chat".to_owned())
        );
    }

    #[test]
    fn response_rejects_several_protocols() {
        let c = client(&["chat", "superchat"], None);
        assert_eq!(
            c.parse_response(&valid(&["Sec-WebSocket-Protocol: chat, superchat"]))
                .unwrap_err(),
            HandshakeError::ProtocolNotOffered("chat, superchat".to_owned())
        );
        assert_eq!(
            c.parse_response(&valid(&[
                "Sec-WebSocket-Protocol: chat",
                "Sec-WebSocket-Protocol: chat"
            ]))
            .unwrap_err(),
            HandshakeError::ProtocolNotOffered("chat, chat".to_owned())
        );
    }

    #[test]
    fn response_rejects_protocol_when_none_offered() {
        let c = client(&[], None);
        for line in ["Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: "] {
            assert!(matches!(
                c.parse_response(&valid(&[line])),
                Err(HandshakeError::ProtocolNotOffered(_))
            ));
        }
    }

    #[test]
    fn response_accepts_offered_extension() {
        let c = client(
            &[],
            Some("permessage-deflate; client_max_window_bits, permessage-deflate, x-foo"),
        );
        let res = parse(
            &c,
            &valid(&[
                "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10",
                "Sec-WebSocket-Extensions: x-foo; a=\"1\"",
            ]),
        )
        .unwrap();
        assert_eq!(
            res.extensions,
            vec![
                ExtensionOffer {
                    name: "permessage-deflate".to_owned(),
                    params: vec![("server_max_window_bits".to_owned(), Some("10".to_owned()))],
                },
                ExtensionOffer {
                    name: "x-foo".to_owned(),
                    params: vec![("a".to_owned(), Some("1".to_owned()))],
                },
            ]
        );
    }

    #[test]
    fn response_rejects_extension_not_offered() {
        let c = client(&[], Some("permessage-deflate"));
        assert_eq!(
            c.parse_response(&valid(&[
                "Sec-WebSocket-Extensions: x-webkit-deflate-frame"
            ]))
            .unwrap_err(),
            HandshakeError::ExtensionNotOffered("x-webkit-deflate-frame".to_owned())
        );
        let c = client(&[], None);
        assert_eq!(
            c.parse_response(&valid(&["Sec-WebSocket-Extensions: permessage-deflate"]))
                .unwrap_err(),
            HandshakeError::ExtensionNotOffered("permessage-deflate".to_owned())
        );
    }

    #[test]
    fn response_rejects_duplicate_extension() {
        let c = client(&[], Some("permessage-deflate, permessage-deflate; x"));
        for lines in [
            &["Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate"][..],
            &[
                "Sec-WebSocket-Extensions: permessage-deflate",
                "Sec-WebSocket-Extensions: permessage-deflate; x",
            ],
        ] {
            assert_eq!(
                c.parse_response(&valid(lines)).unwrap_err(),
                HandshakeError::DuplicateExtension("permessage-deflate".to_owned())
            );
        }
    }

    #[test]
    fn response_rejects_invalid_extension_header() {
        let c = client(&[], Some("permessage-deflate"));
        for line in [
            "Sec-WebSocket-Extensions: permessage-deflate;",
            "Sec-WebSocket-Extensions: permessage-deflate; a=\"1",
        ] {
            assert!(matches!(
                c.parse_response(&valid(&[line])),
                Err(HandshakeError::InvalidExtensions(_))
            ));
        }
        let mut buf = valid(&[]);
        let at = buf.len() - 2;
        buf.splice(
            at..at,
            b"Sec-WebSocket-Extensions: \xff\r\n".iter().copied(),
        );
        assert!(matches!(
            c.parse_response(&buf),
            Err(HandshakeError::InvalidExtensions(_))
        ));
    }

    #[test]
    fn response_ignores_empty_extension_header() {
        let c = client(&[], None);
        let res = parse(&c, &valid(&["Sec-WebSocket-Extensions: "])).unwrap();
        assert!(res.extensions.is_empty());
    }
}
