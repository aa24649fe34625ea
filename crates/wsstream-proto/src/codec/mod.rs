//! The frame codec: header validation on the way in, frame encoding on the way out.

pub mod decoder;
pub mod encoder;

pub use decoder::{HeaderRules, validate_header};
pub use encoder::{MaskSource, encode_frame};
