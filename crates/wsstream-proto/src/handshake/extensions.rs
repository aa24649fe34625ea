//! `Sec-WebSocket-Extensions` values (RFC 6455 §9.1).
//!
//! ```text
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! The parser follows the list rules of RFC 7230 §7: optional whitespace around `,` `;` and
//! `=`, and empty list elements (`a, , b`) are ignored. Quoted-string values are unescaped
//! (RFC 7230 §3.2.6) and otherwise kept as they are; whether a value is acceptable is up to
//! the extension that defines the parameter.

use std::fmt::Write as _;

use super::HandshakeError;
use super::headers::{is_tchar, is_token};

/// One element of a `Sec-WebSocket-Extensions` list: `name; p1; p2=v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order: `(name, None)` for `p1`, `(name, Some(value))` for `p2=v` or
    /// `p2="v"` (quoted values are unquoted).
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An extension without parameters.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// The first parameter called `name` (exact match): `None` if absent, `Some(None)` if it
    /// has no value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// Writes a list of extensions as a header value, the inverse of [`parse_extensions`]:
    /// elements are joined with `, `, parameters with `; `, and a value that is not a token is
    /// written as a quoted-string (with `"` and `\` escaped).
    ///
    /// Names are written as given: they should be tokens, or the result will not parse.
    pub fn to_header_value(offers: &[Self]) -> String {
        let mut out = String::new();
        for (i, offer) in offers.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&offer.name);
            for (name, value) in &offer.params {
                out.push_str("; ");
                out.push_str(name);
                if let Some(value) = value {
                    out.push('=');
                    if is_token(value.as_bytes()) {
                        out.push_str(value);
                    } else {
                        out.push('"');
                        for c in value.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
        }
        out
    }
}

/// Parses a `Sec-WebSocket-Extensions` value into its elements, in order. An empty value (or
/// one made only of empty list elements) gives an empty list.
///
/// # Errors
///
/// [`HandshakeError::InvalidExtensions`] for an empty or non-token name, a `;` without a
/// parameter, an empty value after `=`, an unterminated quoted-string, a control character
/// in a quoted-string, or any other character out of place.
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    Parser {
        s: value.as_bytes(),
        pos: 0,
    }
    .list()
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> HandshakeError {
        let mut msg = String::from(what);
        match self.peek() {
            Some(b) => {
                let _ = write!(msg, " at byte {} ({:?})", self.pos, char::from(b));
            }
            None => msg.push_str(" at end of value"),
        }
        HandshakeError::InvalidExtensions(msg)
    }

    fn token(&mut self, what: &str) -> Result<String, HandshakeError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error(what));
        }
        // tchar is ASCII, so the slice is valid UTF-8.
        Ok(self.s[start..self.pos]
            .iter()
            .map(|&b| char::from(b))
            .collect())
    }

    /// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE` (RFC 7230 §3.2.6), after
    /// the opening quote has been consumed.
    fn quoted(&mut self) -> Result<String, HandshakeError> {
        let mut raw = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated quoted-string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                            raw.push(b);
                            self.pos += 1;
                        }
                        _ => return Err(self.error("invalid quoted-pair")),
                    }
                }
                Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                    raw.push(b);
                    self.pos += 1;
                }
                Some(_) => return Err(self.error("control character in quoted-string")),
            }
        }
        // Only ASCII bytes were skipped or dropped (the quotes and backslashes), so multi-byte
        // characters are intact; the conversion cannot fail, but stays checked.
        String::from_utf8(raw)
            .map_err(|_| HandshakeError::InvalidExtensions("invalid UTF-8".to_owned()))
    }

    fn list(&mut self) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        let mut out = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(out),
                Some(b',') => {
                    // RFC 7230 §7: empty list elements are ignored.
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let mut offer = ExtensionOffer::new(self.token("expected an extension name")?);
            loop {
                self.skip_ows();
                match self.peek() {
                    None => break,
                    Some(b',') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b';') => {
                        self.pos += 1;
                        self.skip_ows();
                        let name = self.token("expected a parameter name")?;
                        self.skip_ows();
                        let value = if self.peek() == Some(b'=') {
                            self.pos += 1;
                            self.skip_ows();
                            if self.peek() == Some(b'"') {
                                self.pos += 1;
                                Some(self.quoted()?)
                            } else {
                                Some(self.token("expected a parameter value")?)
                            }
                        } else {
                            None
                        };
                        offer.params.push((name, value));
                    }
                    Some(_) => return Err(self.error("unexpected character")),
                }
            }
            out.push(offer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn parses_names_and_params() {
        let got = parse_extensions(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, foo",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                offer(
                    "permessage-deflate",
                    &[
                        ("client_max_window_bits", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                offer("foo", &[]),
            ]
        );
        assert_eq!(got[0].param("server_max_window_bits"), Some(Some("10")));
        assert_eq!(got[0].param("client_max_window_bits"), Some(None));
        assert_eq!(got[0].param("nope"), None);
    }

    #[test]
    fn unquotes_quoted_values() {
        let got = parse_extensions(r#"x; a="10"; b="q\"uo\\te d""#).unwrap();
        assert_eq!(
            got,
            vec![offer(
                "x",
                &[("a", Some("10")), ("b", Some(r#"q"uo\te d"#))]
            )]
        );
    }

    #[test]
    fn accepts_whitespace_and_empty_elements() {
        let got = parse_extensions(" ,a ;\tp = 1 , ,b;q ,").unwrap();
        assert_eq!(
            got,
            vec![offer("a", &[("p", Some("1"))]), offer("b", &[("q", None)])]
        );
        assert_eq!(parse_extensions("").unwrap(), vec![]);
        assert_eq!(parse_extensions(" , ").unwrap(), vec![]);
    }

    #[test]
    fn rejects_empty_name() {
        assert!(matches!(
            parse_extensions("; p=1"),
            Err(HandshakeError::InvalidExtensions(_))
        ));
        assert!(parse_extensions("a, ;p").is_err());
    }

    #[test]
    fn rejects_bad_characters() {
        for bad in [
            "a b",
            "a/b",
            "a\r\nX: y",
            "caf\u{e9}",
            "a; p=\u{e9}",
            "a; p=[1]",
            "a; p q",
            "a;",
            "a;;b",
            "a; =1",
            "a; p=",
            "a; p= ,b",
            "a; p=\"x\"y",
        ] {
            assert!(parse_extensions(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_unterminated_quotes() {
        assert!(parse_extensions("a; p=\"10").is_err());
        assert!(parse_extensions("a; p=\"10\\\"").is_err());
        assert!(parse_extensions("a; p=\"1\r\n0\"").is_err());
    }

    #[test]
    fn to_header_value_writes_and_quotes() {
        let offers = vec![
            offer(
                "permessage-deflate",
                &[
                    ("client_max_window_bits", None),
                    ("server_max_window_bits", Some("10")),
                ],
            ),
            offer("x", &[("v", Some("a b\"c\\"))]),
        ];
        let value = ExtensionOffer::to_header_value(&offers);
        assert_eq!(
            value,
            r#"permessage-deflate; client_max_window_bits; server_max_window_bits=10, x; v="a b\"c\\""#
        );
        assert_eq!(parse_extensions(&value).unwrap(), offers);
        assert_eq!(ExtensionOffer::to_header_value(&[]), "");
    }

    fn token_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
    }

    proptest! {
        #[test]
        fn parse_is_inverse_of_to_header_value(
            offers in proptest::collection::vec(
                (
                    token_strategy(),
                    proptest::collection::vec(
                        (token_strategy(), proptest::option::of("[ -~\t\u{e9}]{0,12}")),
                        0..4,
                    ),
                ),
                0..4,
            )
        ) {
            // An empty value is not a token; written quoted it parses back as "".
            let offers: Vec<ExtensionOffer> = offers
                .into_iter()
                .map(|(name, params)| ExtensionOffer { name, params })
                .collect();
            let value = ExtensionOffer::to_header_value(&offers);
            prop_assert_eq!(parse_extensions(&value).unwrap(), offers);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,64}") {
            let _ = parse_extensions(&s);
        }
    }
}
