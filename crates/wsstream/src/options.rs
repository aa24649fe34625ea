//! [`WebSocketStreamOptions`]: the browser's `protocols` and `signal`, plus Rust-only knobs
//! with browser-like defaults.

use std::time::Duration;

use crate::abort::AbortSignal;

/// Default close timeout: how long to wait for the peer's half of the closing handshake.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of [`WebSocketStream::new`](crate::WebSocketStream::new).
///
/// ```
/// # use std::time::Duration;
/// # use wsstream::{AbortSignal, WebSocketStreamOptions};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let options = WebSocketStreamOptions {
///     protocols: vec!["chat".into()],
///     signal: Some(AbortSignal::timeout(Duration::from_secs(5))),
///     ..Default::default()
/// };
/// # let _ = options; }
/// ```
#[derive(Clone, Debug)]
pub struct WebSocketStreamOptions {
    /// Subprotocols to offer (`Sec-WebSocket-Protocol`), in order of preference. Each must
    /// be an RFC 7230 token and appear once (B5, B6).
    pub protocols: Vec<String>,
    /// Aborts the opening handshake (B10, B15–B18); no effect once open.
    pub signal: Option<AbortSignal>,
    /// Extra request headers (e.g. `Authorization`, `Origin`, `Cookie`). The protocol's
    /// own headers (`Upgrade`, `Sec-WebSocket-*`, …) cannot be overridden: such a header
    /// fails the connection.
    pub headers: Vec<(String, String)>,
    /// Largest message accepted (the frame limit is the same); larger ones close the
    /// connection with 1009 before being buffered. Default 64 MiB.
    pub max_message_size: usize,
    /// How long to wait for the peer's Close frame (and, as the client, for the server to
    /// close TCP after the closing handshake) before closing uncleanly (1006). Default 30 s.
    pub close_timeout: Duration,
    /// Cap of encoded outgoing bytes waiting for the socket: a write completes once its
    /// message is in this buffer (B37). Default 64 KiB.
    pub send_buffer_size: usize,
}

impl Default for WebSocketStreamOptions {
    fn default() -> Self {
        Self {
            protocols: Vec::new(),
            signal: None,
            headers: Vec::new(),
            max_message_size: wsstream_proto::config::DEFAULT_MAX_MESSAGE_SIZE,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            send_buffer_size: wsstream_proto::config::DEFAULT_SEND_BUFFER,
        }
    }
}

impl WebSocketStreamOptions {
    pub(crate) fn proto_config(&self) -> wsstream_proto::Config {
        wsstream_proto::Config {
            max_message_size: self.max_message_size,
            max_frame_size: self.max_message_size,
            send_buffer: self.send_buffer_size.max(1),
            ..Default::default()
        }
    }
}
