//! Messages as the application sees them, and the UTF-8 machinery behind text messages.

mod utf8;

use bytes::Bytes;

pub use utf8::{Utf8Error, Utf8Validator};

/// Validated UTF-8 over [`Bytes`]: the payload of a text message, without a copy into a
/// `String`. Dereferences to `&str`.
///
/// Every way to make one checks the bytes once (or starts from a `str`), so the guarantee
/// holds by construction: [`as_str`](Self::as_str) and `Deref` cost nothing and cannot fail.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(bytestring::ByteString);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Self(bytestring::ByteString::new())
    }

    /// A string from a `'static` literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(bytestring::ByteString::from_static(s))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The underlying [`Bytes`] (no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// Wraps bytes the engine validated while they arrived. `ByteString` checks them once
    /// more (this workspace has no `unsafe` to skip that); a failure would be an engine
    /// bug, so it panics rather than hand out anything but the received text.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        match Self::try_from(bytes) {
            Ok(text) => text,
            Err(_) => panic!("the engine validated this text message as UTF-8"),
        }
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(bytestring::ByteString::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(bytestring::ByteString::from(s))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Utf8Error> {
        bytestring::ByteString::try_from(bytes)
            .map(Self)
            .map_err(|_| Utf8Error)
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One WebSocket message: one chunk of the readable or writable stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (opcode 0x1), validated UTF-8.
    Text(Utf8Bytes),
    /// A binary message (opcode 0x2).
    Binary(Bytes),
}

impl Message {
    /// The payload bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            Self::Binary(_) => None,
        }
    }

    /// The payload as [`Bytes`] (no copy).
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Self::Text(s.into())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Self::Text(s.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(s: Utf8Bytes) -> Self {
        Self::Text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Self::Binary(v.into())
    }
}

impl From<&[u8]> for Message {
    fn from(v: &[u8]) -> Self {
        Self::Binary(Bytes::copy_from_slice(v))
    }
}

impl<const N: usize> From<&[u8; N]> for Message {
    fn from(v: &[u8; N]) -> Self {
        Self::Binary(Bytes::copy_from_slice(v))
    }
}

impl From<Bytes> for Message {
    fn from(v: Bytes) -> Self {
        Self::Binary(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_pick_the_message_type() {
        assert!(Message::from("hi").is_text());
        assert!(Message::from(String::from("hi")).is_text());
        assert!(Message::from(vec![1u8, 2]).is_binary());
        assert!(Message::from(&b"ab"[..]).is_binary());
        assert!(Message::from(Bytes::from_static(b"x")).is_binary());
        assert_eq!(Message::from("héllo").len(), 6);
        assert_eq!(Message::from("x").as_text(), Some("x"));
    }

    #[test]
    fn utf8_bytes_rejects_invalid_input() {
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(
            &*Utf8Bytes::try_from(Bytes::from_static("ロボット".as_bytes())).unwrap(),
            "ロボット"
        );
    }
}
