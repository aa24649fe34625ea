//! What the connection tells `tracing` (feature `tracing`, on by default): one span per
//! connection (`wsstream`, with the role, the peer address and the URL without
//! credentials, query or fragment) and events for the handshake, the close, protocol
//! violations and keepalive timeouts. With no subscriber interested, each costs a check
//! of a static level filter; without the feature, nothing.
//!
//! | event (`message`) | level | fields |
//! |---|---|---|
//! | `opened` | DEBUG | `protocol`, `extensions` |
//! | `handshake failed` | INFO | `error` |
//! | `upgrade refused` (server, outside a connection span) | DEBUG | `error` |
//! | `closed` | INFO (clean) / WARN (unclean) | `code`, `reason`, `clean`, `cause` |
//! | `protocol violation` | WARN | `error`, `code` (the one sent) |
//! | `peer unresponsive` | WARN | `timeout_ms` |

use std::net::SocketAddr;
use std::time::Duration;

/// The span of one connection.
#[cfg(feature = "tracing")]
pub(crate) type Span = tracing::Span;

/// The span of one connection (nothing without the `tracing` feature).
#[cfg(not(feature = "tracing"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Span;

/// A span that records nothing (before a connection has one).
pub(crate) fn none() -> Span {
    #[cfg(feature = "tracing")]
    return tracing::Span::none();
    #[cfg(not(feature = "tracing"))]
    Span
}

/// The span of a connection to or from `url` (its role and peer are recorded once open).
pub(crate) fn connection(url: &str) -> Span {
    #[cfg(feature = "tracing")]
    return tracing::info_span!(
        "wsstream",
        url = %without_credentials(url),
        role = tracing::field::Empty,
        peer = tracing::field::Empty
    );
    #[cfg(not(feature = "tracing"))]
    {
        let _ = url;
        Span
    }
}

/// `url` without user information, query or fragment (they may carry secrets).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => String::new(),
    }
}

/// The connection opened in `role` (`"client"`, `"server"`) with `peer`.
pub(crate) fn open(span: &Span, role: &'static str, peer: Option<SocketAddr>) {
    #[cfg(feature = "tracing")]
    {
        span.record("role", role);
        if let Some(peer) = peer {
            span.record("peer", tracing::field::display(peer));
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (span, role, peer);
}

/// The opening handshake succeeded.
pub(crate) fn opened(span: &Span, protocol: &str, extensions: &str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(parent: span, protocol, extensions, "opened");
    #[cfg(not(feature = "tracing"))]
    let _ = (span, protocol, extensions);
}

/// The opening handshake failed.
pub(crate) fn handshake_failed(span: &Span, error: &dyn std::error::Error) {
    #[cfg(feature = "tracing")]
    tracing::info!(parent: span, error = %Chain(error), "handshake failed");
    #[cfg(not(feature = "tracing"))]
    let _ = (span, error);
}

/// A server's upgrade failed (a bad request, a timeout, a client gone); DEBUG, as such
/// requests are the background noise of a public server.
pub(crate) fn accept_failed(error: &dyn std::error::Error) {
    #[cfg(feature = "tracing")]
    tracing::debug!(error = %Chain(error), "upgrade refused");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}

/// The connection is closed.
pub(crate) fn closed(
    span: &Span,
    code: u16,
    reason: &str,
    clean: bool,
    cause: Option<&dyn std::error::Error>,
) {
    #[cfg(feature = "tracing")]
    {
        let cause = cause.map(|c| Chain(c).to_string());
        if clean {
            tracing::info!(parent: span, code, reason, clean, "closed");
        } else {
            tracing::warn!(parent: span, code, reason, clean, cause, "closed");
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (span, code, reason, clean, cause);
}

/// The peer violated the protocol; we failed the connection with `code`.
pub(crate) fn protocol_violation(span: &Span, error: &dyn std::error::Error, code: u16) {
    #[cfg(feature = "tracing")]
    tracing::warn!(parent: span, error = %error, code, "protocol violation");
    #[cfg(not(feature = "tracing"))]
    let _ = (span, error, code);
}

/// Nothing arrived within the keepalive's ping timeout.
pub(crate) fn unresponsive(span: &Span, timeout: Duration) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        parent: span,
        timeout_ms = timeout.as_millis() as u64,
        "peer unresponsive"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (span, timeout);
}

/// An error and its sources, `: `-separated.
#[cfg(feature = "tracing")]
struct Chain<'a>(&'a dyn std::error::Error);

#[cfg(feature = "tracing")]
impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(
            super::without_credentials("wss://user:secret@example.com:8443/chat?token=x#f"),
            "wss://example.com:8443/chat"
        );
    }
}
