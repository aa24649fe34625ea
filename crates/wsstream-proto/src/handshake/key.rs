//! `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` (RFC 6455 §4.1, §4.2.2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use super::HandshakeError;

/// The GUID that RFC 6455 §1.3 appends to the key before hashing it.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A fresh `Sec-WebSocket-Key`: 16 bytes from the operating system's CSPRNG, base64-encoded.
///
/// RFC 6455 §4.1: the nonce MUST be a randomly selected 16-byte value, base64-encoded, and
/// chosen freshly for each connection. There is no fallback to a weaker source: if the CSPRNG
/// fails, so does this function.
///
/// # Errors
///
/// [`HandshakeError::Random`] if the operating system's random source failed.
pub fn generate_key() -> Result<String, HandshakeError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(HandshakeError::Random)?;
    Ok(STANDARD.encode(nonce))
}

/// The `Sec-WebSocket-Accept` value for a key: `base64(SHA-1(key ++ GUID))` (RFC 6455 §4.2.2
/// step 5.4). `key` is the header value as sent, without surrounding whitespace; it is not
/// base64-decoded.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 that decodes to exactly 16 bytes
/// (RFC 6455 §4.1 requirement 7, checked by the server per §4.2.1 item 5).
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    // 16 bytes are 24 base64 characters with two padding characters; checking the length
    // first bounds the work on hostile input.
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|raw| raw.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_section_1_3_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_key_is_base64_of_16_bytes() {
        let key = generate_key().unwrap();
        assert_eq!(key.len(), 24);
        assert_eq!(STANDARD.decode(&key).unwrap().len(), 16);
        assert!(is_valid_key(key.as_bytes()));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate_key().unwrap(), generate_key().unwrap());
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        // 15 bytes
        assert!(!is_valid_key(STANDARD.encode([0u8; 15]).as_bytes()));
        // 17 bytes
        assert!(!is_valid_key(STANDARD.encode([0u8; 17]).as_bytes()));
        // not base64
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ!="));
        assert!(!is_valid_key(b""));
    }
}
