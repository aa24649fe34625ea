//! The manual: how wsstream behaves, chapter by chapter.
//!
//! This module contains no code, only documentation, in the style of rustls'
//! `manual`. The [crate root](crate) is the short tour; these chapters are the details
//! behind it, each one readable on its own.
//!
//! | chapter | what it answers |
//! |---|---|
//! | [`backpressure`] | When does `read()` read the socket, when does `write()` complete, how much memory can a slow peer or a slow application make us hold? |
//! | [`closing`] | What `close()` guarantees, what "clean" means, how `closed` settles, what happens to pending writes, keepalive. |
//! | [`errors`] | Which error comes from where, and how to tell a refused handshake from a TLS failure from a dead peer. |
//! | [`server`] | Accepting connections: on a plain `TcpListener`, over TLS, or inside hyper and axum. |
//! | [`tls`] | `wss://` as a client: which roots are trusted, private CAs, client certificates, your own rustls configuration. |
//! | [`http2`] | WebSockets over HTTP/2 (RFC 8441, feature `http2`) as a client: when it is used, the fallback to HTTP/1.1, shared connections, flow control, closing. |
//! | [`proxies`] | HTTP `CONNECT`, HTTPS and SOCKS5 proxies, the environment variables, `no_proxy`. |
//! | [`compression`] | permessage-deflate (RFC 7692): what is negotiated, what it costs in CPU and memory, how to tune or turn it off. |
//! | [`browser`] | The JavaScript `WebSocketStream` API next to its Rust spelling, and where wsstream deliberately differs. |
//!
//! The behaviour follows [RFC 6455] (the WebSocket protocol), [RFC 7692]
//! (permessage-deflate), the [WebSocketStream explainer] and the [WHATWG proposal] that
//! specifies it, and the web-platform tests in `websockets/stream/tentative/` (ported as
//! Rust tests of this crate, named after them).
//!
//! [RFC 6455]: https://www.rfc-editor.org/rfc/rfc6455
//! [RFC 7692]: https://www.rfc-editor.org/rfc/rfc7692
//! [WebSocketStream explainer]: https://github.com/ricea/websocketstream-explainer
//! [WHATWG proposal]: https://github.com/whatwg/websockets/pull/48

#[doc = include_str!("backpressure.md")]
pub mod backpressure {}

#[doc = include_str!("closing.md")]
pub mod closing {}

#[doc = include_str!("errors.md")]
pub mod errors {}

#[doc = include_str!("server.md")]
pub mod server {}

#[doc = include_str!("http2.md")]
pub mod http2 {}

#[doc = include_str!("tls.md")]
pub mod tls {}

#[doc = include_str!("proxies.md")]
pub mod proxies {}

#[doc = include_str!("compression.md")]
pub mod compression {}

#[doc = include_str!("browser.md")]
pub mod browser {}
