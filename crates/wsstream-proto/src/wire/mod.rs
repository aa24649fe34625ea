//! Wire types: opcodes, frame headers (parse/emit pairs) and masking.
//!
//! Nothing here touches a payload except [`mask`], which XORs it in place. Header parsing
//! reads at most 14 bytes and reports how many more it needs instead of guessing.

pub mod header;
pub mod mask;
pub mod opcode;

pub use header::{FrameHeader, HeaderParse, MAX_HEADER_LEN};
pub use opcode::OpCode;
