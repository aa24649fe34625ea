//! The readable and writable streams of an open WebSocketStream.

mod readable;
mod writable;

pub use readable::{ReadFuture, WebSocketReadable, WebSocketReader};
pub use writable::{FlushFuture, WebSocketWritable, WebSocketWriter, WriteFuture};
