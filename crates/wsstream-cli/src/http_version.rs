//! `--http auto|1.1|2`: which HTTP version carries the WebSocket (`connect`, `bench`).

use clap::ValueEnum;
use wsstream::HttpVersionPreference;

/// The HTTP version of the opening handshake (RFC 6455 over HTTP/1.1, RFC 8441 over
/// HTTP/2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum HttpVersion {
    /// `wss://`: HTTP/2 when the server allows WebSockets over it (one connection per
    /// origin), else HTTP/1.1; `ws://`: HTTP/1.1. What browsers do.
    #[default]
    Auto,
    /// HTTP/1.1 only (the `Upgrade` handshake).
    #[value(name = "1.1")]
    Http1,
    /// HTTP/2 only: fails unless the server allows WebSockets over HTTP/2; on `ws://`,
    /// HTTP/2 without TLS from the first byte (prior knowledge).
    #[value(name = "2")]
    Http2,
}

impl HttpVersion {
    /// The library's option for this choice.
    pub(crate) fn preference(self) -> HttpVersionPreference {
        match self {
            Self::Auto => HttpVersionPreference::Auto,
            Self::Http1 => HttpVersionPreference::Http1Only,
            Self::Http2 => HttpVersionPreference::Http2Only,
        }
    }
}

/// How a negotiated version is written in the CLI's output.
pub(crate) fn describe(version: wsstream::http::Version) -> &'static str {
    if version == wsstream::http::Version::HTTP_2 {
        "HTTP/2"
    } else {
        "HTTP/1.1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_choice_maps_to_the_library_option() {
        assert_eq!(HttpVersion::Auto.preference(), HttpVersionPreference::Auto);
        assert_eq!(
            HttpVersion::Http1.preference(),
            HttpVersionPreference::Http1Only
        );
        assert_eq!(
            HttpVersion::Http2.preference(),
            HttpVersionPreference::Http2Only
        );
        assert_eq!(HttpVersion::from_str("1.1", false), Ok(HttpVersion::Http1));
        assert_eq!(HttpVersion::from_str("2", false), Ok(HttpVersion::Http2));
        assert_eq!(describe(wsstream::http::Version::HTTP_2), "HTTP/2");
        assert_eq!(describe(wsstream::http::Version::HTTP_11), "HTTP/1.1");
    }
}
