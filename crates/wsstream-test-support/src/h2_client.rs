//! An HTTP/2 WebSocket client written without wsstream (RFC 8441): the `h2` crate opens
//! extended CONNECT streams, and frames are built and parsed by [`crate::frames`], masked
//! as a client must. For testing servers: what their SETTINGS announce, what their `200`
//! carries, and how their streams echo, close and fail.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::frames::{Frame, ParsedFrame, parse_frame};

/// How long any step may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

/// How long a new connection waits for the server's SETTINGS to enable extended CONNECT.
const SETTINGS_WAIT: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress within {STEP:?}"))
}

/// A TLS connection to `addr` trusting `root` (for the name `server_name`) on which the
/// server accepted ALPN `h2`, before any HTTP/2 byte is sent.
///
/// # Panics
///
/// When the connection or the TLS handshake fails, or the server picks no `h2`.
pub async fn tls_h2_stream(
    addr: &str,
    root: CertificateDer<'static>,
    server_name: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("a valid root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server_name.to_owned()).expect("a server name");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = within("TLS handshake", connector.connect(name, tcp))
        .await
        .expect("the TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
    tls
}

/// One HTTP/2 connection, once the server's SETTINGS have arrived.
pub struct H2Connection {
    /// The request handle (clone it to open streams concurrently).
    pub client: SendRequest<Bytes>,
    /// The task driving the connection; abort it to drop the connection.
    pub driver: JoinHandle<()>,
    /// `host:port` for the `:authority` of requests.
    pub authority: String,
    /// `https` over TLS, else `http`.
    pub scheme: &'static str,
}

impl std::fmt::Debug for H2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Connection")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl H2Connection {
    /// Connects to `addr` in cleartext HTTP/2 (prior knowledge) and waits for the
    /// server's SETTINGS to enable extended CONNECT (for at most 5 s: check
    /// [`extended_connect_enabled`](Self::extended_connect_enabled) afterwards).
    ///
    /// # Panics
    ///
    /// When the connection or the HTTP/2 handshake fails.
    pub async fn cleartext(addr: &str) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::handshake(tcp, addr, "http").await
    }

    /// Connects to `addr` over TLS trusting `root` (for the name `server_name`), offering
    /// ALPN `h2` only, and waits for the server's SETTINGS as
    /// [`cleartext`](Self::cleartext) does.
    ///
    /// # Panics
    ///
    /// When the connection, the TLS handshake (or ALPN `h2`) or the HTTP/2 handshake
    /// fails.
    pub async fn tls(addr: &str, root: CertificateDer<'static>, server_name: &str) -> Self {
        let tls = tls_h2_stream(addr, root, server_name).await;
        Self::handshake(tls, addr, "https").await
    }

    async fn handshake<T>(io: T, authority: &str, scheme: &'static str) -> Self
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (client, connection) = within("HTTP/2 handshake", h2::client::handshake(io))
            .await
            .expect("the HTTP/2 handshake");
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let client = within("the HTTP/2 connection", client.ready())
            .await
            .expect("the connection");
        // h2 tells no more than the flag: give the server's first SETTINGS (its first
        // frame) a moment to arrive and set it.
        let deadline = tokio::time::Instant::now() + SETTINGS_WAIT;
        while !client.is_extended_connect_protocol_enabled()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Self {
            client,
            driver,
            authority: authority.to_owned(),
            scheme,
        }
    }

    /// Whether the server's SETTINGS carry `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`
    /// (RFC 8441 §3).
    pub fn extended_connect_enabled(&self) -> bool {
        self.client.is_extended_connect_protocol_enabled()
    }

    /// Opens an extended CONNECT stream (`:protocol: websocket`, `sec-websocket-version:
    /// 13`, then `extra` headers) to `path` and waits for the response head.
    ///
    /// # Panics
    ///
    /// When the request cannot be sent or no response comes.
    pub async fn websocket(&mut self, path: &str, extra: &[(&str, &str)]) -> H2WebSocket {
        let mut request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("{}://{}{path}", self.scheme, self.authority))
            .header("sec-websocket-version", "13");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let mut request = request.body(()).expect("a valid request");
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        self.client = within("a stream slot", self.client.clone().ready())
            .await
            .expect("the connection");
        let (response, send) = self
            .client
            .send_request(request, false)
            .expect("send the CONNECT");
        let response = within("the CONNECT response", response)
            .await
            .expect("the response");
        let (parts, recv) = response.into_parts();
        H2WebSocket {
            send,
            recv,
            buf: BytesMut::new(),
            response: http::Response::from_parts(parts, ()),
        }
    }

    /// Sends any request without a body and returns the response head and body.
    ///
    /// # Panics
    ///
    /// When the request cannot be sent or no complete response comes.
    pub async fn request(&mut self, request: http::Request<()>) -> (http::Response<()>, Vec<u8>) {
        self.client = within("a stream slot", self.client.clone().ready())
            .await
            .expect("the connection");
        let (response, _send) = self
            .client
            .send_request(request, true)
            .expect("send the request");
        let response = within("the response", response)
            .await
            .expect("the response");
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = within("the body", body.data()).await {
            let chunk = chunk.expect("the body");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (http::Response::from_parts(parts, ()), bytes)
    }
}

/// A WebSocket on one extended CONNECT stream, seen from the client.
pub struct H2WebSocket {
    /// The request side of the stream (send frames, or reset it).
    pub send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    buf: BytesMut,
    /// The server's response head.
    pub response: http::Response<()>,
}

impl std::fmt::Debug for H2WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2WebSocket")
            .field("response", &self.response)
            .finish_non_exhaustive()
    }
}

impl H2WebSocket {
    /// Sends `frame`, masked.
    ///
    /// # Panics
    ///
    /// When the stream no longer takes data.
    pub fn write(&mut self, frame: Frame) {
        let bytes = frame.masked([0x37, 0xfa, 0x21, 0x3d]).encode();
        self.send
            .send_data(Bytes::from(bytes), false)
            .expect("send DATA");
    }

    /// The next frame, or `None` once the server ended the stream (END_STREAM).
    ///
    /// # Panics
    ///
    /// When the stream fails (reset), ends within a frame, or nothing comes in time.
    pub async fn read(&mut self) -> Option<ParsedFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                let _ = self.buf.split_to(used);
                return Some(frame);
            }
            match within("a frame", self.recv.data()).await {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.buf.extend_from_slice(&data);
                }
                Some(Err(e)) => panic!("the stream failed: {e}"),
                None => {
                    assert!(self.buf.is_empty(), "a partial frame before END_STREAM");
                    return None;
                }
            }
        }
    }

    /// Sends `text` and checks that the next frame echoes it.
    ///
    /// # Panics
    ///
    /// When the echo differs or does not come.
    pub async fn echoes(&mut self, text: &str) {
        self.write(Frame::text(text));
        let frame = self.read().await.expect("an echo");
        assert_eq!(frame.text(), Some(text));
    }

    /// Sends a Close with `code` and `reason`, checks that the server answers Close with
    /// the same code and then ends the stream (END_STREAM).
    ///
    /// # Panics
    ///
    /// When the server answers otherwise.
    pub async fn close(&mut self, code: u16, reason: &str) {
        self.write(Frame::close(Some(code), reason));
        let close = self.read().await.expect("the server's Close");
        assert!(close.is_close(), "expected Close, got {close:?}");
        assert_eq!(close.close_code(), Some(code));
        assert!(self.read().await.is_none(), "END_STREAM after the Close");
    }
}
