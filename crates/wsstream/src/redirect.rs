//! Redirects of the opening handshake. Browsers fail a WebSocket connection on a
//! redirect; with [`max_redirects`](crate::WebSocketStreamOptions::max_redirects) above
//! zero a `301`/`302`/`303`/`307`/`308` answer with a `Location` is followed instead:
//! the location is resolved against the URL that answered, `http`/`https` map to
//! `ws`/`wss`, a fragment is dropped, and `wss` never goes to `ws`.

use url::Url;

/// Why a redirect was not followed: the `source()` of
/// [`ConnectError::Redirect`](crate::ConnectError::Redirect).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectError {
    /// The server redirected once more after
    /// [`max_redirects`](crate::WebSocketStreamOptions::max_redirects) redirects.
    TooMany {
        /// The limit.
        max: usize,
        /// Where the last redirect pointed.
        location: String,
    },
    /// A redirect from `wss://` to `ws://`, which would drop TLS: never followed.
    Downgrade {
        /// The resolved location.
        location: String,
    },
    /// The `Location` does not resolve to a `ws`, `wss`, `http` or `https` URL with a
    /// host.
    InvalidLocation {
        /// The `Location` header as received.
        location: String,
        /// Why it was refused.
        reason: String,
    },
}

impl std::fmt::Display for RedirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooMany { max, location } => write!(
                f,
                "too many redirects: more than {max} (the last one to {location})"
            ),
            Self::Downgrade { location } => write!(
                f,
                "refused to follow a redirect from wss to ws ({location})"
            ),
            Self::InvalidLocation { location, reason } => {
                write!(f, "cannot follow the redirect to {location:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for RedirectError {}

/// Whether `status` is a redirect we may follow.
pub(crate) const fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The `Location` of a complete redirect response head, if it has one.
pub(crate) fn location(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; wsstream_proto::handshake::MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let window = &head[..head.len().min(wsstream_proto::handshake::MAX_HEAD_SIZE)];
    match response.parse(window) {
        Ok(httparse::Status::Complete(_)) if is_redirect(response.code.unwrap_or(0)) => {}
        _ => return None,
    }
    let value = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Location"))?
        .value;
    let value = std::str::from_utf8(value).ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Resolves `location` against `current` into the next WebSocket URL.
pub(crate) fn resolve(current: &Url, location: &str) -> Result<Url, RedirectError> {
    let invalid = |reason: String| RedirectError::InvalidLocation {
        location: location.to_owned(),
        reason,
    };
    let mut next = current.join(location).map_err(|e| invalid(e.to_string()))?;
    next.set_fragment(None);
    let next = crate::url::parse_url(next.as_str()).map_err(|e| invalid(e.message().to_owned()))?;
    if current.scheme() == "wss" && next.scheme() == "ws" {
        return Err(RedirectError::Downgrade {
            location: next.to_string(),
        });
    }
    Ok(next)
}

/// Whether both URLs have the same origin (scheme, host and port).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Request headers that carry credentials: not sent to another origin after a redirect.
pub(crate) fn is_credential_header(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn locations_of_redirect_heads() {
        assert_eq!(
            location(b"HTTP/1.1 302 Found\r\nlocation:  /next \r\n\r\n").as_deref(),
            Some("/next")
        );
        for status in [301, 303, 307, 308] {
            let head = format!("HTTP/1.1 {status} X\r\nLocation: ws://a/\r\n\r\n");
            assert_eq!(location(head.as_bytes()).as_deref(), Some("ws://a/"));
        }
        assert_eq!(
            location(b"HTTP/1.1 300 Multiple\r\nLocation: /a\r\n\r\n"),
            None
        );
        assert_eq!(location(b"HTTP/1.1 404 Nope\r\nLocation: /a\r\n\r\n"), None);
        assert_eq!(location(b"HTTP/1.1 302 Found\r\n\r\n"), None);
        assert_eq!(location(b"HTTP/1.1 302 Found\r\nLocation: \r\n\r\n"), None);
        assert_eq!(location(b"HTTP/1.1 302 Found\r\nLocation: /a\r\n"), None);
    }

    #[test]
    fn resolution() {
        let base = url("ws://a.test:81/x/y?q=1");
        assert_eq!(resolve(&base, "z").unwrap().as_str(), "ws://a.test:81/x/z");
        assert_eq!(
            resolve(&base, "/p?r").unwrap().as_str(),
            "ws://a.test:81/p?r"
        );
        assert_eq!(
            resolve(&base, "//b.test/").unwrap().as_str(),
            "ws://b.test/"
        );
        assert_eq!(
            resolve(&base, "https://c.test/s#frag").unwrap().as_str(),
            "wss://c.test/s"
        );
        assert_eq!(
            resolve(&base, "http://c.test/").unwrap().as_str(),
            "ws://c.test/"
        );
        assert_eq!(
            resolve(&url("wss://a.test/"), "wss://b.test/")
                .unwrap()
                .as_str(),
            "wss://b.test/"
        );
        assert!(matches!(
            resolve(&url("wss://a.test/"), "ws://a.test/"),
            Err(RedirectError::Downgrade { .. })
        ));
        assert!(matches!(
            resolve(&url("wss://a.test/"), "http://a.test/"),
            Err(RedirectError::Downgrade { .. })
        ));
        assert!(matches!(
            resolve(&base, "ftp://a.test/"),
            Err(RedirectError::InvalidLocation { .. })
        ));
        assert!(matches!(
            resolve(&base, "http://[bad/"),
            Err(RedirectError::InvalidLocation { .. })
        ));
    }

    #[test]
    fn origins_and_credential_headers() {
        assert!(same_origin(&url("ws://a.test/x"), &url("ws://a.test:80/y")));
        assert!(!same_origin(&url("ws://a.test/"), &url("ws://a.test:81/")));
        assert!(!same_origin(&url("ws://a.test/"), &url("wss://a.test/")));
        assert!(!same_origin(&url("ws://a.test/"), &url("ws://b.test/")));
        assert!(is_credential_header("Authorization"));
        assert!(is_credential_header("COOKIE"));
        assert!(!is_credential_header("Origin"));
    }
}
