//! Small text encodings used by the CLI: hex, base64 and JSON strings.

use base64::Engine as _;

/// Lowercase hex of `bytes`, two digits per byte, no separators.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes hex (either case). ASCII whitespace between digit pairs is ignored, so
/// `"01 02 ff"` and `"0102ff"` both decode to `[1, 2, 255]`.
pub(crate) fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!(
            "odd number of hex digits ({}) in {text:?}",
            digits.len()
        ));
    }
    digits
        .chunks_exact(2)
        .map(|pair| Ok((nibble(pair[0], text)? << 4) | nibble(pair[1], text)?))
        .collect()
}

fn nibble(digit: u8, text: &str) -> Result<u8, String> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(format!(
            "invalid hex digit {:?} in {text:?}",
            char::from(digit)
        )),
    }
}

/// Standard base64 (RFC 4648, with padding).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 (RFC 4648, padding optional); surrounding whitespace is ignored.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(text.trim())
        .map_err(|e| format!("invalid base64 in {text:?}: {e}"))
}

/// `s` as a JSON string literal, quotes included (RFC 8259 §7): `"` and `\` are escaped,
/// control characters use the short escapes or `\u00XX`; everything else is copied as is.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            // U+2028/U+2029 are valid JSON but break JavaScript string literals.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex_encode(&bytes), "00017f80ff");
        assert_eq!(hex_decode("00017F80ff").unwrap(), bytes);
        assert_eq!(hex_decode("00 01 7f 80 ff").unwrap(), bytes);
        assert_eq!(hex_decode("").unwrap(), Vec::<u8>::new());
        assert!(hex_decode("abc").is_err());
        assert!(hex_decode("zz").is_err());
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert!(base64_decode("!!").is_err());
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_string("plain"), r#""plain""#);
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(json_string("\u{1}\u{7f}"), r#""\u0001\u007f""#);
        assert_eq!(json_string("é€😀"), "\"é€😀\"");
    }
}
