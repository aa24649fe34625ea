//! The opening handshake of RFC 6455 §4, for both roles, as bytes in and bytes out.
//!
//! * Client: [`ClientHandshake::new`] builds the request from a [`ClientRequest`]
//!   ([`ClientHandshake::request`] are the bytes to write), then
//!   [`ClientHandshake::parse_response`] is fed everything received so far until it returns
//!   the validated [`HandshakeResponse`] and the length of the response head.
//! * Server: [`parse_request`] is fed everything received so far until it returns a validated
//!   [`HandshakeRequest`] (whose [`HandshakeRequest::accept`] builds the `101` response) or a
//!   [`RequestError`] that carries the HTTP refusal to send.
//!
//! Both parsers are incremental and stateless: they re-parse the buffer they are given, return
//! `Ok(None)` while the head is incomplete, and never look past the blank line that ends the
//! head (bytes after it already belong to the WebSocket connection). A head is limited to
//! [`MAX_HEAD_SIZE`] bytes and [`MAX_HEADERS`] header lines.
//!
//! Header names compare ASCII case-insensitively (RFC 7230 §3.2). Subprotocol and extension
//! names compare exactly (they are case-sensitive tokens).

mod client;
mod error;
mod extensions;
mod headers;
mod key;
mod server;

pub use client::{ClientHandshake, ClientRequest, HandshakeResponse};
pub use error::HandshakeError;
pub use extensions::{ExtensionOffer, parse_extensions};
pub use headers::is_token;
pub use key::{WEBSOCKET_GUID, accept_key, generate_key};
pub use server::{
    HandshakeRequest, RequestError, RequestErrorKind, parse_request, reject_response,
};

/// Largest accepted handshake head, in bytes, up to and including the blank line that ends it.
pub const MAX_HEAD_SIZE: usize = 16 * 1024;

/// Largest accepted number of header lines in a handshake head.
pub const MAX_HEADERS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_client_request_to_server_and_back() {
        let protocols = vec!["chat".to_owned(), "superchat".to_owned()];
        let extra = vec![("Origin".to_owned(), "http://example.com".to_owned())];
        let client = ClientHandshake::new(&ClientRequest {
            host: "[::1]",
            port: Some(9001),
            resource: "/chat?room=1",
            protocols: &protocols,
            extensions: Some("permessage-deflate; client_max_window_bits"),
            headers: &extra,
        })
        .unwrap();

        let (request, n) = parse_request(client.request()).unwrap().unwrap();
        assert_eq!(n, client.request().len());
        assert_eq!(request.resource, "/chat?room=1");
        assert_eq!(request.host, "[::1]:9001");
        assert_eq!(request.key, client.key());
        assert_eq!(request.origin.as_deref(), Some("http://example.com"));
        assert_eq!(request.protocols, protocols);
        assert_eq!(
            request.extensions,
            parse_extensions("permessage-deflate; client_max_window_bits").unwrap()
        );

        let answer = ExtensionOffer {
            name: "permessage-deflate".to_owned(),
            params: vec![("client_max_window_bits".to_owned(), Some("15".to_owned()))],
        };
        let mut response = request.accept(
            Some(&request.protocols[1]),
            Some(&ExtensionOffer::to_header_value(std::slice::from_ref(
                &answer,
            ))),
            &[],
        );
        let head_len = response.len();
        response.extend_from_slice(&[0x88, 0x00]);
        let (res, n) = client.parse_response(&response).unwrap().unwrap();
        assert_eq!(n, head_len);
        assert_eq!(res.protocol.as_deref(), Some("superchat"));
        assert_eq!(res.extensions, vec![answer]);
    }

    #[test]
    fn round_trip_without_protocols_or_extensions() {
        let client = ClientHandshake::new(&ClientRequest {
            host: "localhost",
            port: None,
            resource: "/",
            protocols: &[],
            extensions: None,
            headers: &[],
        })
        .unwrap();
        let (request, _) = parse_request(client.request()).unwrap().unwrap();
        assert!(request.protocols.is_empty() && request.extensions.is_empty());
        assert_eq!(request.origin, None);
        let (res, _) = client
            .parse_response(&request.accept(None, None, &[]))
            .unwrap()
            .unwrap();
        assert_eq!(res.protocol, None);
        assert!(res.extensions.is_empty());
    }

    #[test]
    fn server_refusal_is_a_status_error_for_the_client() {
        let client = ClientHandshake::new(&ClientRequest {
            host: "localhost",
            port: None,
            resource: "/",
            protocols: &[],
            extensions: None,
            headers: &[],
        })
        .unwrap();
        let mut request = client.request().to_vec();
        // Turn the version into 8: the server answers 426.
        let at = request.windows(4).position(|w| w == b": 13").unwrap();
        request.splice(at + 2..at + 4, *b"8");
        let refusal = parse_request(&request).unwrap_err();
        assert_eq!(
            client.parse_response(refusal.response()).unwrap_err(),
            HandshakeError::Status {
                status: 426,
                reason: "Upgrade Required".to_owned()
            }
        );
    }

    fn valid_response_and_client() -> (ClientHandshake, Vec<u8>) {
        let protocols = vec!["chat".to_owned()];
        let client = ClientHandshake::with_key(
            &ClientRequest {
                host: "h",
                port: None,
                resource: "/",
                protocols: &protocols,
                extensions: Some("permessage-deflate"),
                headers: &[],
            },
            "dGhlIHNhbXBsZSBub25jZQ==",
        )
        .unwrap();
        let (request, _) = parse_request(client.request()).unwrap().unwrap();
        let response = request.accept(Some("chat"), Some("permessage-deflate"), &[]);
        (client, response)
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(
            buf in proptest::collection::vec(any::<u8>(), 0..2048)
        ) {
            let (client, _) = valid_response_and_client();
            let _ = client.parse_response(&buf);
            let _ = parse_request(&buf);
        }

        #[test]
        fn parsers_never_panic_on_mutated_heads(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let (client, mut response) = valid_response_and_client();
            let mut request = client.request().to_vec();
            for (at, byte) in &edits {
                let i = at.index(response.len());
                response[i] = *byte;
                let j = at.index(request.len());
                request[j] = *byte;
            }
            let _ = client.parse_response(&response[..cut.index(response.len() + 1)]);
            let _ = client.parse_response(&response);
            let _ = parse_request(&request[..cut.index(request.len() + 1)]);
            let _ = parse_request(&request);
        }
    }
}
