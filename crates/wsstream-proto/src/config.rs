//! Limits and tunables of a [`Connection`](crate::Connection).

use crate::ext::deflate::{DeflateConfig, DeflateParams};

/// Default message size limit: 64 MiB (the frame limit equals it by default).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Default size of outgoing data frames: messages larger than this are fragmented.
pub const DEFAULT_FRAME_SIZE: usize = 64 << 10;
/// Default soft cap of the transmit buffer: data frames are accepted while it holds less.
pub const DEFAULT_SEND_BUFFER: usize = 64 << 10;

/// Engine configuration. Every field has a safe default; invalid values are rejected by
/// [`Config::validate`] instead of panicking later.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest message (after reassembly) accepted from the peer; larger ones fail the
    /// connection with 1009 before anything is allocated for them.
    pub max_message_size: usize,
    /// Largest single frame accepted from the peer (1009 beyond). Defaults to the message
    /// limit, so the two limits never disagree in a surprising way.
    pub max_frame_size: usize,
    /// Largest data frame this side sends; longer messages are split into continuation frames.
    pub frame_size: usize,
    /// Soft cap of encoded bytes waiting in the transmit buffer: [`Connection::wants_data`]
    /// is false above it.
    ///
    /// [`Connection::wants_data`]: crate::Connection::wants_data
    pub send_buffer: usize,
    /// permessage-deflate (RFC 7692), when the opening handshake negotiated it: the agreed
    /// [`DeflateParams`] and our [`DeflateConfig`] (for its compression level and threshold;
    /// its negotiation fields are not used here). `None` (the default): no extension, and
    /// RSV1 on any frame fails the connection.
    ///
    /// The [`Connection`](crate::Connection) works out which half is ours from its role:
    /// a client compresses with the `client_*` parameters and inflates with the `server_*`
    /// ones, a server the other way round.
    pub deflate: Option<(DeflateParams, DeflateConfig)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
            frame_size: DEFAULT_FRAME_SIZE,
            send_buffer: DEFAULT_SEND_BUFFER,
            deflate: None,
        }
    }
}

/// Builder-style setters, one per field (the struct is `#[non_exhaustive]`, so new
/// options can be added without breaking code that sets the ones it knows):
/// `Config::default().max_message_size(…)`. Assigning a field of a value works as well.
impl Config {
    /// Sets [`max_message_size`](Self::max_message_size).
    #[must_use]
    pub fn max_message_size(mut self, max_message_size: usize) -> Self {
        self.max_message_size = max_message_size;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    #[must_use]
    pub fn max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Sets [`frame_size`](Self::frame_size).
    #[must_use]
    pub fn frame_size(mut self, frame_size: usize) -> Self {
        self.frame_size = frame_size;
        self
    }

    /// Sets [`send_buffer`](Self::send_buffer).
    #[must_use]
    pub fn send_buffer(mut self, send_buffer: usize) -> Self {
        self.send_buffer = send_buffer;
        self
    }

    /// Sets [`deflate`](Self::deflate).
    #[must_use]
    pub fn deflate(mut self, deflate: Option<(DeflateParams, DeflateConfig)>) -> Self {
        self.deflate = deflate;
        self
    }
}

/// Why a [`Config`] was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(&'static str);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error with a static description.
    pub(crate) const fn new(what: &'static str) -> Self {
        Self(what)
    }
}

impl Config {
    /// Checks that every limit is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.frame_size == 0 {
            return Err(ConfigError("frame_size must be at least 1"));
        }
        if self.send_buffer == 0 {
            return Err(ConfigError("send_buffer must be at least 1"));
        }
        if self.max_frame_size == 0 || self.max_message_size == 0 {
            return Err(ConfigError("size limits must be at least 1"));
        }
        if let Some((params, deflate)) = &self.deflate {
            if cfg!(not(feature = "deflate")) {
                return Err(ConfigError(
                    "permessage-deflate needs the `deflate` feature of wsstream-proto",
                ));
            }
            params.validate()?;
            deflate.validate()?;
        }
        Ok(())
    }
}
