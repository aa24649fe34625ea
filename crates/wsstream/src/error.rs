//! The browser API's error values: [`DomException`], [`WebSocketError`], and the shared
//! error values the streams and futures fail with.

use std::sync::Arc;

use crate::WebSocketCloseInfo;

/// A reason given to [`AbortController::abort_with`](crate::AbortController::abort_with) or
/// stored in an errored stream: any error, shared so its identity is preserved
/// (`Arc::ptr_eq`) everywhere it surfaces.
pub type AbortReason = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The `name` of a [`DomException`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DomExceptionName {
    /// The operation was aborted (legacy code 20).
    AbortError,
    /// An invalid close code (legacy code 15).
    InvalidAccessError,
    /// The object is in the wrong state, e.g. writing to a closed stream (legacy code 11).
    InvalidStateError,
    /// A malformed URL, protocol list or close reason (legacy code 12).
    SyntaxError,
    /// An [`AbortSignal::timeout`](crate::AbortSignal::timeout) expired (legacy code 23).
    TimeoutError,
}

impl DomExceptionName {
    /// The name as a string, e.g. `"SyntaxError"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AbortError => "AbortError",
            Self::InvalidAccessError => "InvalidAccessError",
            Self::InvalidStateError => "InvalidStateError",
            Self::SyntaxError => "SyntaxError",
            Self::TimeoutError => "TimeoutError",
        }
    }

    /// The legacy numeric `code` of the DOMException.
    pub const fn legacy_code(self) -> u16 {
        match self {
            Self::AbortError => 20,
            Self::InvalidAccessError => 15,
            Self::InvalidStateError => 11,
            Self::SyntaxError => 12,
            Self::TimeoutError => 23,
        }
    }
}

/// A DOMException: a named error with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomException {
    name: DomExceptionName,
    message: String,
}

impl DomException {
    /// A DOMException with the given name and message.
    pub fn new(name: DomExceptionName, message: impl Into<String>) -> Self {
        Self {
            name,
            message: message.into(),
        }
    }

    /// The default reason of an aborted signal.
    pub fn abort_error() -> Self {
        Self::new(
            DomExceptionName::AbortError,
            "signal is aborted without reason",
        )
    }

    pub(crate) fn syntax(message: impl Into<String>) -> Self {
        Self::new(DomExceptionName::SyntaxError, message)
    }

    pub(crate) fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(DomExceptionName::InvalidStateError, message)
    }

    /// The name (`SyntaxError`, …).
    pub fn name(&self) -> DomExceptionName {
        self.name
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The legacy numeric code.
    pub fn code(&self) -> u16 {
        self.name.legacy_code()
    }
}

impl std::fmt::Display for DomException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            f.write_str(self.name.as_str())
        } else {
            write!(f, "{}: {}", self.name.as_str(), self.message)
        }
    }
}

impl std::error::Error for DomException {}

/// The browser's `WebSocketError`: a DOMException named `"WebSocketError"` carrying a
/// close code and reason.
///
/// Errors made by the connection (handshake failure, unclean close) may carry codes an
/// application cannot send (1006, 1001, …) and expose the real cause through
/// [`std::error::Error::source`] — a deliberate addition to the browser, where every
/// failure looks alike to script (a DNS failure, a refused port, a TLS error and a
/// non-WebSocket server all give code 1006 and no detail).
#[derive(Clone, Debug)]
pub struct WebSocketError {
    message: String,
    close_code: Option<u16>,
    reason: String,
    source: Option<AbortReason>,
}

impl WebSocketError {
    /// `new WebSocketError(message, init)`: validates `init` like
    /// [`WebSocketStream::close`](crate::WebSocketStream::close) (WPT
    /// `websocket-error.any.js`): a code other than 1000 or 3000–4999 is an
    /// `InvalidAccessError`, a reason over 123 UTF-8 bytes a `SyntaxError`, and a reason
    /// without a code gets code 1000.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wsstream::{DomExceptionName, WebSocketCloseInfo, WebSocketError};
    ///
    /// let error = WebSocketError::new("", WebSocketCloseInfo { close_code: None, reason: "gone".into() })?;
    /// assert_eq!(error.close_code(), Some(1000)); // a reason alone gets 1000
    ///
    /// let invalid = WebSocketCloseInfo { close_code: Some(1006), reason: String::new() };
    /// let refused = WebSocketError::new("", invalid).unwrap_err();
    /// assert_eq!(refused.name(), DomExceptionName::InvalidAccessError);
    /// # Ok(()) }
    /// ```
    pub fn new(message: impl Into<String>, init: WebSocketCloseInfo) -> Result<Self, DomException> {
        let close_code = validate_close_info(&init, CloseCodes::Browser)?;
        Ok(Self {
            message: message.into(),
            close_code,
            reason: init.reason,
            source: None,
        })
    }

    /// An error made by the connection: not validated (it may carry codes an application
    /// cannot send, such as 1006).
    pub(crate) fn from_connection(
        message: impl Into<String>,
        close_code: Option<u16>,
        reason: String,
        source: Option<AbortReason>,
    ) -> Self {
        Self {
            message: message.into(),
            close_code,
            reason,
            source,
        }
    }

    /// Always `"WebSocketError"`.
    pub fn name(&self) -> &'static str {
        "WebSocketError"
    }

    /// The legacy DOMException code: always 0.
    pub fn code(&self) -> u16 {
        0
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The close code, `None` when unset (e.g. a handshake failure reported by `opened`).
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// The close reason, empty when unset.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl std::fmt::Display for WebSocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebSocketError")?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(code) = self.close_code {
            write!(f, " (code {code}")?;
            if !self.reason.is_empty() {
                write!(f, ", reason {:?}", self.reason)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for WebSocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why [`WebSocketStream::ping`](crate::WebSocketStream::ping) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingError {
    /// The connection is not open (still connecting, closing or closed): no Ping was sent.
    NotOpen,
    /// The connection closed before the Pong arrived.
    Closed,
    /// Too many pings are waiting for their Pong (at most 1,024 per connection).
    TooMany,
}

impl std::fmt::Display for PingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotOpen => "the WebSocketStream is not open",
            Self::Closed => "the connection closed before the pong arrived",
            Self::TooMany => "too many pings are waiting for their pong",
        })
    }
}

impl std::error::Error for PingError {}

/// Which close codes `close()` accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCodes {
    /// The browser's rule (WHATWG WebSockets, "validate close code and reason"): 1000 or
    /// 3000–4999. The default of client streams, as the web-platform tests require.
    #[default]
    Browser,
    /// Every code RFC 6455 §7.4 allows on the wire: 1000–1003, 1007–1014 (1001 going
    /// away, 1008 policy violation, 1011 internal error, 1012 service restart, 1013 try
    /// again later, …) and 3000–4999. Server streams always use it; a client opts in with
    /// [`WebSocketStreamOptions::close_codes`](crate::WebSocketStreamOptions::close_codes).
    Protocol,
}

impl CloseCodes {
    /// Whether `code` may be sent under this rule.
    pub fn allows(self, code: u16) -> bool {
        let code = wsstream_proto::CloseCode(code);
        match self {
            Self::Browser => code.is_allowed_for_application(),
            Self::Protocol => code.is_valid_on_wire(),
        }
    }
}

/// "Validate close code and reason" (WHATWG WebSockets): the code first, then the
/// reason's UTF-8 length. Returns the code to send (1000 when only a reason is given).
pub(crate) fn validate_close_info(
    info: &WebSocketCloseInfo,
    rule: CloseCodes,
) -> Result<Option<u16>, DomException> {
    if let Some(code) = info.close_code {
        let code = wsstream_proto::CloseCode(code);
        match rule {
            CloseCodes::Browser if !code.is_allowed_for_application() => {
                return Err(DomException::new(
                    DomExceptionName::InvalidAccessError,
                    format!("close code {} is neither 1000 nor in 3000-4999", code.0),
                ));
            }
            CloseCodes::Protocol if !code.is_valid_on_wire() => {
                return Err(DomException::new(
                    DomExceptionName::InvalidAccessError,
                    format!(
                        "close code {} may not be sent (RFC 6455 §7.4: 1000-1003, \
                         1007-1014 or 3000-4999)",
                        code.0
                    ),
                ));
            }
            CloseCodes::Browser | CloseCodes::Protocol => {}
        }
    }
    if info.reason.len() > wsstream_proto::close::MAX_REASON_LEN {
        return Err(DomException::syntax(format!(
            "close reason is {} bytes of UTF-8, the limit is {}",
            info.reason.len(),
            wsstream_proto::close::MAX_REASON_LEN
        )));
    }
    Ok(match info.close_code {
        Some(code) => Some(code),
        None if !info.reason.is_empty() => Some(1000),
        None => None,
    })
}

/// `getReader()` / `getWriter()` on a stream that is already locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeError {
    message: &'static str,
}

impl TypeError {
    pub(crate) const fn new(message: &'static str) -> Self {
        Self { message }
    }
}

impl std::fmt::Display for TypeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TypeError: {}", self.message)
    }
}

impl std::error::Error for TypeError {}

/// Why a read, a write or `ready()` failed: the stream's stored error. Every clone shares
/// the same allocation, so identity can be checked with [`StreamError::same_as`] (the
/// browser's `===`: an unclean close errors the readable, the writable and `closed`
/// with one and the same WebSocketError, as WPT `remote-close.any.js` checks).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StreamError {
    /// Aborted with a reason that is not a WebSocketError (`writable.abort(reason)`).
    Aborted(AbortReason),
    /// A closed stream (`InvalidStateError`): the writable after a clean close or after
    /// the peer's Close frame (a write still pending then is rejected with it, WPT
    /// `write.any.js`).
    InvalidState(Arc<DomException>),
    /// The connection closed uncleanly (the same error as `closed`), or the stream was
    /// aborted with a
    /// WebSocketError.
    WebSocket(Arc<WebSocketError>),
}

impl StreamError {
    /// Whether both values are the same error object.
    pub fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Aborted(a), Self::Aborted(b)) => Arc::ptr_eq(a, b),
            (Self::InvalidState(a), Self::InvalidState(b)) => Arc::ptr_eq(a, b),
            (Self::WebSocket(a), Self::WebSocket(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The WebSocketError, if this is one.
    pub fn as_websocket_error(&self) -> Option<&Arc<WebSocketError>> {
        match self {
            Self::WebSocket(e) => Some(e),
            _ => None,
        }
    }

    /// The DOMException, if this is one.
    pub fn as_dom_exception(&self) -> Option<&Arc<DomException>> {
        match self {
            Self::InvalidState(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn invalid_state(message: &str) -> Self {
        Self::InvalidState(Arc::new(DomException::invalid_state(message)))
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Aborted(e) => e.fmt(f),
            Self::InvalidState(e) => e.fmt(f),
            Self::WebSocket(e) => e.fmt(f),
        }
    }
}

/// Display shows the inner error; `source()` continues with the inner error's cause.
impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Aborted(e) => e.source(),
            Self::InvalidState(e) => e.source(),
            Self::WebSocket(e) => e.source(),
        }
    }
}

/// Why `opened` or `closed` failed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The abort signal fired before the connection was established; the value
    /// is the signal's reason itself.
    Aborted(AbortReason),
    /// The connection failed before it opened, or closed uncleanly.
    WebSocket(Arc<WebSocketError>),
}

/// The error of [`WebSocketStream::opened`](crate::WebSocketStream::opened).
pub type OpenError = ConnectionError;
/// The error of [`WebSocketStream::closed`](crate::WebSocketStream::closed).
pub type ClosedError = ConnectionError;

impl ConnectionError {
    /// The WebSocketError, if this is one.
    pub fn as_websocket_error(&self) -> Option<&Arc<WebSocketError>> {
        match self {
            Self::WebSocket(e) => Some(e),
            Self::Aborted(_) => None,
        }
    }

    /// The abort reason, if the signal aborted the connection.
    pub fn as_abort_reason(&self) -> Option<&AbortReason> {
        match self {
            Self::Aborted(r) => Some(r),
            Self::WebSocket(_) => None,
        }
    }

    /// The close code of the WebSocketError, if any.
    pub fn close_code(&self) -> Option<u16> {
        self.as_websocket_error().and_then(|e| e.close_code())
    }
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Aborted(reason) => reason.fmt(f),
            Self::WebSocket(e) => e.fmt(f),
        }
    }
}

/// Display shows the inner error; `source()` continues with the inner error's cause.
impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Aborted(e) => e.source(),
            Self::WebSocket(e) => e.source(),
        }
    }
}

/// The reason given to `readable.cancel()` / `writable.abort()`: only a WebSocketError's
/// code and reason are used for the Close frame (the proposal's "close using reason"; WPT
/// `close.any.js` checks that other values are ignored).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let url = format!("ws://{}/echo", listener.local_addr()?);
/// # tokio::spawn(async move {
/// #     let (tcp, _) = listener.accept().await.unwrap();
/// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
/// #     let info = wss.opened().await.unwrap();
/// #     let mut reader = info.readable.get_reader().unwrap();
/// #     let mut writer = info.writable.get_writer().unwrap();
/// #     while let Ok(Some(message)) = reader.read().await {
/// #         if writer.write(message).await.is_err() { break; }
/// #     }
/// # });
/// use wsstream::{CancelReason, WebSocketCloseInfo, WebSocketError, WebSocketStream, WebSocketStreamOptions};
///
/// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
/// let info = wss.opened().await?;
/// let reason = WebSocketError::new(
///     "shutting down",
///     WebSocketCloseInfo { close_code: Some(4001), reason: "maintenance".into() },
/// )?;
/// info.writable.abort(CancelReason::from(reason)).await?;
/// // The echo server answered our Close with the same code.
/// assert_eq!(wss.closed().await?.close_code, Some(4001));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub enum CancelReason {
    /// No reason: an empty Close frame.
    #[default]
    None,
    /// Close with this error's code and reason (a reason without a code sends 1000).
    WebSocketError(WebSocketError),
    /// Any other reason: an empty Close frame; the value becomes the stream's error.
    Other(AbortReason),
}

impl From<WebSocketError> for CancelReason {
    fn from(e: WebSocketError) -> Self {
        Self::WebSocketError(e)
    }
}
