//! Incremental, fail-fast UTF-8 validation across chunk and fragment boundaries.
//!
//! RFC 6455 §8.1 requires failing the connection on invalid UTF-8 in a text message. We fail
//! at the first byte that cannot start or continue a valid sequence, even when the message,
//! the frame, or the code point is not complete yet (the behaviour Autobahn 6.4.x checks).

/// Invalid UTF-8 was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

impl std::fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Validates a byte stream chunk by chunk, carrying an incomplete trailing code point
/// (at most 3 bytes) from one chunk to the next.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// Length of the sequence a leading byte announces (0 for a byte that cannot lead).
const fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            carry: [0; 4],
            carry_len: 0,
        }
    }

    /// Whether an incomplete code point is pending.
    pub const fn is_incomplete(&self) -> bool {
        self.carry_len != 0
    }

    /// Feeds the next chunk. Fails as soon as a byte makes the stream invalid, even when
    /// the chunk ends in the middle of a code point.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Utf8Error> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let need = sequence_len(self.carry[0]);
            let take = (need - have).min(chunk.len());
            self.carry[have..have + take].copy_from_slice(&chunk[..take]);
            let filled = have + take;
            match std::str::from_utf8(&self.carry[..filled]) {
                Ok(_) => self.carry_len = 0,
                // error_len() == None: still incomplete but valid so far.
                Err(e) if e.error_len().is_none() => {
                    self.carry_len = filled as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
            chunk = &chunk[take..];
        }
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Utf8Error),
                None => {
                    // A valid but truncated sequence at the end: keep it for the next chunk.
                    let tail = &chunk[e.valid_up_to()..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the message: a pending incomplete code point is invalid.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let incomplete = self.is_incomplete();
        *self = Self::new();
        if incomplete { Err(Utf8Error) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_chunks(bytes: &[u8], cuts: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, bytes.len());
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn fails_fast_inside_an_incomplete_code_point() {
        // Autobahn 6.4.3: F4 90 is invalid before the code point is complete.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(b"\xf4").unwrap();
        assert_eq!(v.feed(b"\x90"), Err(Utf8Error));
    }

    #[test]
    fn fails_fast_on_a_bad_lead_byte_at_the_end_of_a_chunk() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok\xff"), Err(Utf8Error));
    }

    #[test]
    fn carries_a_split_code_point() {
        let mut v = Utf8Validator::new();
        let s = "𝄞".as_bytes();
        v.feed(&s[..1]).unwrap();
        v.feed(&s[1..2]).unwrap();
        v.feed(&s[2..]).unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn truncated_message_is_invalid_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&"é".as_bytes()[..1]).unwrap();
        assert_eq!(v.finish(), Err(Utf8Error));
    }

    proptest! {
        #[test]
        fn chunked_validation_agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(validate_in_chunks(&bytes, &cuts).is_ok(), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn chunked_validation_accepts_any_string(s in ".{0,40}", cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(validate_in_chunks(s.as_bytes(), &cuts).is_ok());
        }
    }
}
