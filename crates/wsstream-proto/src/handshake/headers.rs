//! Small HTTP/1.1 helpers shared by both roles (RFC 7230 §3.2).

/// Headers the handshake writes itself; callers may not add them as extra headers.
pub(crate) const FORBIDDEN_EXTRA_HEADERS: [&str; 8] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

/// `tchar` of RFC 7230 §3.2.6.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `token = 1*tchar` (RFC 7230 §3.2.6): what a subprotocol name or an extension name must
/// be (RFC 6455 §4.1, §9.1).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `value` may be written as a field-value: no control characters other than HTAB
/// (so in particular no CR or LF, which would inject header lines), no DEL.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether an extra header `name` collides with one the handshake writes itself.
pub(crate) fn is_forbidden_extra(name: &str) -> bool {
    FORBIDDEN_EXTRA_HEADERS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The values of every header line called `name` (ASCII case-insensitive).
pub(crate) fn values<'h, 'b>(
    headers: &'h [httparse::Header<'b>],
    name: &'h str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether any header line called `name` holds `token` in its comma-separated list, compared
/// ASCII case-insensitively (RFC 7230 §7 list syntax; `Upgrade` and `Connection` tokens are
/// case-insensitive per RFC 7230 §6.1, §6.7).
pub(crate) fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    values(headers, name).any(|v| {
        v.split(|&b| b == b',')
            .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Appends `name: value\r\n`.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether an extra header is safe to write: a token name, a clean value, not one of ours.
pub(crate) enum ExtraHeaderCheck {
    /// Safe.
    Ok,
    /// Bad characters in the name or value.
    Invalid,
    /// A header the handshake sets itself.
    Forbidden,
}

/// Classifies an extra header given by the caller.
pub(crate) fn check_extra(name: &str, value: &str) -> ExtraHeaderCheck {
    if !is_token(name.as_bytes()) || !is_field_value(value.as_bytes()) {
        ExtraHeaderCheck::Invalid
    } else if is_forbidden_extra(name) {
        ExtraHeaderCheck::Forbidden
    } else {
        ExtraHeaderCheck::Ok
    }
}

/// Copies the parsed headers into owned pairs, as received.
pub(crate) fn to_owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"permessage-deflate"));
        assert!(is_token(b"chat.v2+json"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a,b"));
        assert!(!is_token(b"a\"b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn field_values() {
        assert!(is_field_value(b"Bearer abc\tdef"));
        assert!(is_field_value("caf\u{e9}".as_bytes()));
        assert!(!is_field_value(b"a\r\nX-Injected: 1"));
        assert!(!is_field_value(b"a\nb"));
        assert!(!is_field_value(b"a\0b"));
        assert!(!is_field_value(b"a\x7fb"));
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn token_lists() {
        let h = [
            httparse::Header {
                name: "connection",
                value: b"keep-alive, Upgrade",
            },
            httparse::Header {
                name: "Upgrade",
                value: b"h2c",
            },
            httparse::Header {
                name: "UPGRADE",
                value: b" WebSocket ",
            },
        ];
        assert!(has_token(&h, "Connection", "upgrade"));
        assert!(has_token(&h, "upgrade", "websocket"));
        assert!(!has_token(&h, "connection", "close"));
        assert!(!has_token(&h, "sec-websocket-key", "x"));
    }

    #[test]
    fn forbidden_names_are_case_insensitive() {
        assert!(is_forbidden_extra("SEC-WEBSOCKET-KEY"));
        assert!(is_forbidden_extra("host"));
        assert!(!is_forbidden_extra("Origin"));
        assert!(matches!(
            check_extra("Host", "x"),
            ExtraHeaderCheck::Forbidden
        ));
        assert!(matches!(check_extra("X:Y", "x"), ExtraHeaderCheck::Invalid));
        assert!(matches!(
            check_extra("X", "a\r\nb"),
            ExtraHeaderCheck::Invalid
        ));
        assert!(matches!(
            check_extra("Origin", "https://a"),
            ExtraHeaderCheck::Ok
        ));
    }
}
