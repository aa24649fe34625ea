//! WebSocket extensions (RFC 6455 §9). The only one implemented is permessage-deflate
//! (RFC 7692), in [`deflate`].
//!
//! Negotiation happens during the opening handshake, outside the [`Connection`]: the
//! runtime turns the `Sec-WebSocket-Extensions` exchange into [`deflate::DeflateParams`]
//! with [`deflate::DeflateConfig`], then hands both to the engine through
//! [`Config::deflate`](crate::Config::deflate). From there on the [`Connection`] compresses,
//! decompresses and checks RSV1 by itself.
//!
//! [`Connection`]: crate::Connection

pub mod deflate;
