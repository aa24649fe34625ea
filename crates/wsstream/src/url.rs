//! URL and subprotocol validation, as `new WebSocketStream()` does it (the constructor
//! steps of the WHATWG WebSocketStream proposal; WPT `constructor.any.js`).

use url::Url;

use crate::error::DomException;

/// Parses and validates a WebSocket URL (WHATWG URL parsing): `http`/`https` become
/// `ws`/`wss` before the scheme is checked; any other scheme and any fragment, even an
/// empty one (a trailing `#`), are a `SyntaxError`. There is no base URL, so relative URLs fail too.
pub(crate) fn parse_url(input: &str) -> Result<Url, DomException> {
    let mut url = Url::parse(input)
        .map_err(|e| DomException::syntax(format!("invalid URL {input:?}: {e}")))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(DomException::syntax(format!(
                "URL scheme {other:?} is not ws, wss, http or https"
            )));
        }
    };
    if url.scheme() != scheme && url.set_scheme(scheme).is_err() {
        return Err(DomException::syntax("cannot map the URL scheme to ws/wss"));
    }
    if url.fragment().is_some() {
        return Err(DomException::syntax(
            "a WebSocket URL must not have a fragment",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DomException::syntax("a WebSocket URL needs a host"));
    }
    Ok(url)
}

/// Checks the subprotocol list: every entry a non-empty RFC 7230 token (the syntax of a
/// `Sec-WebSocket-Protocol` element, RFC 6455 §4.1), no duplicates, compared
/// case-insensitively like the classic WebSocket tests
/// (WPT `Create-protocols-repeated-case-insensitive`).
pub(crate) fn validate_protocols(protocols: &[String]) -> Result<(), DomException> {
    for (i, protocol) in protocols.iter().enumerate() {
        if !wsstream_proto::handshake::is_token(protocol.as_bytes()) {
            return Err(DomException::syntax(format!(
                "invalid subprotocol {protocol:?}"
            )));
        }
        if protocols[..i]
            .iter()
            .any(|p| p.eq_ignore_ascii_case(protocol))
        {
            return Err(DomException::syntax(format!(
                "duplicate subprotocol {protocol:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_mapped_and_checked() {
        assert_eq!(parse_url("http://h/p").unwrap().as_str(), "ws://h/p");
        assert_eq!(parse_url("https://h/").unwrap().as_str(), "wss://h/");
        assert_eq!(parse_url("HTTP://h:80/").unwrap().as_str(), "ws://h/");
        assert!(parse_url("invalid:").is_err());
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("/relative").is_err());
    }

    #[test]
    fn fragments_are_rejected_even_empty() {
        assert!(parse_url("ws://h/#").is_err());
        assert!(parse_url("ws://h/#x").is_err());
        assert!(parse_url("ws://h/?q=#").is_err());
    }

    #[test]
    fn protocols_must_be_unique_tokens() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_protocols(&list(&["chat", "superchat"])).is_ok());
        for bad in [
            &["a b"][..],
            &[""],
            &["é"],
            &["x", "x"],
            &["x", "X"],
            &["a,b"],
            &["a\"b"],
        ] {
            assert!(validate_protocols(&list(bad)).is_err(), "{bad:?}");
        }
    }
}
