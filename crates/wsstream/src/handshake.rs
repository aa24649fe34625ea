//! The HTTP side of the opening handshake as `http` types: the response head (the `101`
//! a client received or a server sent) and a refused handshake with its status, headers
//! and the first bytes of its body.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// How much of a refusal's body is kept.
pub(crate) const REJECTION_BODY_LIMIT: usize = 4096;

/// Parses a complete HTTP/1.1 response head (status line and headers) into an
/// `http::Response<()>`. Header lines that `http` cannot represent are left out.
///
/// A head written by [`h2_head`] (an HTTP/2 response kept in the same form) comes back
/// with version `HTTP/2.0`.
pub(crate) fn response_head(head: &[u8]) -> Response<()> {
    let mut slots = [httparse::EMPTY_HEADER; wsstream_proto::handshake::MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let mut response = Response::new(());
    let h1;
    let head = match head.strip_prefix(H2_STATUS_PREFIX) {
        Some(rest) => {
            *response.version_mut() = http::Version::HTTP_2;
            h1 = [&b"HTTP/1.1 "[..], rest].concat();
            &h1[..]
        }
        None => head,
    };
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) {
        return response;
    }
    if let Some(status) = parsed.code.and_then(|c| StatusCode::from_u16(c).ok()) {
        *response.status_mut() = status;
    }
    *response.headers_mut() = header_map(parsed.headers);
    response
}

/// How [`h2_head`] starts a head: HTTP/2 has no status line, so the kept form borrows
/// HTTP/1.1's layout with this version marker.
const H2_STATUS_PREFIX: &[u8] = b"HTTP/2 ";

/// Keeps an HTTP/2 response (the `200` of an extended CONNECT, RFC 8441 §5) in the same
/// compact form as an HTTP/1.1 head: `HTTP/2 200\r\n`, the headers, `\r\n`.
/// [`response_head`] turns it back into an `http::Response` with version `HTTP/2.0`.
#[allow(dead_code)] // used by the `http2` feature's client and server
pub(crate) fn h2_head(status: StatusCode, headers: &HeaderMap) -> Bytes {
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(H2_STATUS_PREFIX);
    head.extend_from_slice(status.as_str().as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Bytes::from(head)
}

/// Whether a kept head is an HTTP/2 response written by [`h2_head`].
pub(crate) fn is_h2_head(head: &[u8]) -> bool {
    head.starts_with(H2_STATUS_PREFIX)
}

/// The headers `http` can represent, in order.
fn header_map(headers: &[httparse::Header<'_>]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// A server's refusal of the opening handshake: a status other than `101` (and, unless
/// redirects are followed, other than a redirect), as the `source()` of the errors of
/// `opened` and `closed` through [`ConnectError::Rejected`](crate::ConnectError::Rejected).
///
/// ```no_run
/// # async fn demo() {
/// use wsstream::{ConnectError, WebSocketStream, WebSocketStreamOptions};
/// let wss = WebSocketStream::new("ws://127.0.0.1:8080/", WebSocketStreamOptions::default())
///     .unwrap();
/// if let Err(e) = wss.opened().await {
///     let source = e.as_websocket_error().and_then(|e| std::error::Error::source(&**e));
///     if let Some(ConnectError::Rejected(rejection)) =
///         source.and_then(|s| s.downcast_ref::<ConnectError>())
///     {
///         println!("refused: {} (retry after {:?})", rejection.status(), rejection.retry_after());
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HandshakeRejection {
    head: Response<()>,
    reason: String,
    body: Bytes,
}

impl HandshakeRejection {
    pub(crate) fn new(head: Response<()>, reason: String, body: Bytes) -> Self {
        Self { head, reason, body }
    }

    /// The status code (401, 403, 404, 429, 503, …).
    pub fn status(&self) -> StatusCode {
        self.head.status()
    }

    /// The reason phrase of the status line, as sent (may be empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The response headers (`WWW-Authenticate`, `Retry-After`, `Location`, …).
    pub fn headers(&self) -> &HeaderMap {
        self.head.headers()
    }

    /// The first bytes of the body (at most 4 KiB, and what arrived within a moment of
    /// the head).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The `Retry-After` header in its delta-seconds form (RFC 9110 §10.2.3), as sent with
    /// 429 and 503; `None` when absent or an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self
            .headers()
            .get(http::header::RETRY_AFTER)?
            .to_str()
            .ok()?;
        value.trim().parse().ok().map(Duration::from_secs)
    }
}

impl std::fmt::Display for HandshakeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server refused the WebSocket upgrade with status {}",
            self.status().as_u16()
        )?;
        if !self.reason.is_empty() {
            write!(f, " {}", self.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for HandshakeRejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http2_head_comes_back_as_an_http2_response() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
        let head = h2_head(StatusCode::OK, &headers);
        assert!(is_h2_head(&head));
        let response = response_head(&head);
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
        assert!(!is_h2_head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"));
    }

    #[test]
    fn a_response_head_becomes_http_types() {
        let head = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
        let response = response_head(head);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        let rejection = HandshakeRejection::new(response, "Too Many Requests".into(), Bytes::new());
        assert_eq!(rejection.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            rejection.to_string(),
            "the server refused the WebSocket upgrade with status 429 Too Many Requests"
        );
    }
}
