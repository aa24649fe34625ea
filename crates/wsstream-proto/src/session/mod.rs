//! The session: one [`Connection`] composes the stages and runs the closing handshake.

mod connection;
mod event;

pub use connection::{Connection, State};
pub use event::Event;
