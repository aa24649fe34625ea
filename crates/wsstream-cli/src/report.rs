//! Human-readable error reports: a headline and the `source()` chain.

use std::error::Error;
use std::process::ExitCode;

use wsstream::{ConnectionError, DomException, DomExceptionName, WebSocketError};

/// Exit status of a usage error (bad arguments), as clap uses.
pub(crate) const USAGE: u8 = 2;

/// Prints `wsstream: error: {message}` to stderr and returns a failing exit status.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("wsstream: error: {message}");
    ExitCode::FAILURE
}

/// Like [`fail`], with the usage-error exit status.
pub(crate) fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("wsstream: error: {message}");
    ExitCode::from(USAGE)
}

/// `WebSocketError: message (code N, reason "…")`, without the source (which
/// [`causes`] lists separately).
pub(crate) fn websocket_error_headline(e: &WebSocketError) -> String {
    let mut line = format!("{}: {}", e.name(), e.message());
    if let Some(code) = e.close_code() {
        line.push_str(&format!(" (code {code}"));
        if !e.reason().is_empty() {
            line.push_str(&format!(", reason {:?}", e.reason()));
        }
        line.push(')');
    }
    line
}

/// The `source()` chain below `error`, one `  caused by: …` line each. A cause whose text
/// the previous line already ends with (a wrapper that prints its source inline) is
/// skipped so nothing is printed twice.
pub(crate) fn causes(error: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !previous.ends_with(&text) {
            out.push_str("\n  caused by: ");
            out.push_str(&text);
        }
        previous = text;
        next = cause.source();
    }
    out
}

/// A failed `opened`/`closed`: the WebSocketError with its cause chain, or the abort
/// reason (a timeout is named as such).
pub(crate) fn connection_error(e: &ConnectionError) -> String {
    match e {
        ConnectionError::WebSocket(ws) => {
            format!(
                "{}{}",
                websocket_error_headline(ws),
                causes(ws.as_ref() as &(dyn Error + 'static))
            )
        }
        ConnectionError::Aborted(reason) => {
            let timed_out = reason
                .downcast_ref::<DomException>()
                .is_some_and(|d| d.name() == DomExceptionName::TimeoutError);
            let what = if timed_out {
                "timed out"
            } else {
                "was aborted"
            };
            format!(
                "the opening handshake {what}: {reason}{}",
                causes(reason.as_ref() as &(dyn Error + 'static))
            )
        }
        other => format!("{other}{}", causes(other as &(dyn Error + 'static))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "outer: {}", self.0)
        }
    }
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("inner")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
    impl Error for Inner {}

    #[derive(Debug)]
    struct Top(Outer);
    impl std::fmt::Display for Top {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("top")
        }
    }
    impl Error for Top {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_skip_inline_repeats() {
        assert_eq!(causes(&Top(Outer(Inner))), "\n  caused by: outer: inner");
        assert_eq!(causes(&Inner), "");
    }
}
