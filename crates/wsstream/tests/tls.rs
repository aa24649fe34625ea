//! `wss://` end to end: a client WebSocketStream against the in-crate TLS server, with
//! certificates generated at test time (rcgen). Success with custom roots, every
//! certificate failure surfacing through `opened` with the rustls reason in `source()`,
//! custom rustls configurations and client certificates.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsstream::rustls::pki_types::CertificateDer;
use wsstream::rustls::server::WebPkiClientVerifier;
use wsstream::rustls::{self, CertificateError, ClientConfig, RootCertStore, ServerConfig};
use wsstream::server::{self, AcceptError, ServerOptions, TlsAcceptor};
use wsstream::{
    ConnectError, ConnectionError, Message, Roots, TlsOptions, WebSocketCloseInfo, WebSocketStream,
    WebSocketStreamOptions,
};
use wsstream_test_support::certs::{Ca, Leaf};

const DEADLINE: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What the test server saw of one connection: the URL of its server-role stream, or
/// why the TLS handshake or upgrade failed.
type Seen = Result<String, String>;

/// A TLS echo server on 127.0.0.1; returns its port and what it saw per connection.
async fn tls_echo_server(acceptor: TlsAcceptor) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let wss = match server::accept_tls(tcp, &acceptor, ServerOptions::default()).await {
                    Ok(wss) => wss,
                    Err(e) => {
                        let _ = tx.send(Err(chain(&e)));
                        return;
                    }
                };
                let _ = tx.send(Ok(wss.url().to_owned()));
                let info = wss.opened().await.unwrap();
                let mut reader = info.readable.get_reader().unwrap();
                let mut writer = info.writable.get_writer().unwrap();
                while let Ok(Some(message)) = reader.read().await {
                    if writer.write(message).await.is_err() {
                        break;
                    }
                }
                let _ = wss.closed().await;
            });
        }
    });
    (port, rx)
}

/// `error` and its `source()` chain, one Display per level, joined by " <- ".
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        out.push_str(" <- ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

fn options_trusting(ca: &Ca) -> WebSocketStreamOptions {
    let mut tls = TlsOptions::default();
    tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
    WebSocketStreamOptions::default().tls(tls)
}

/// Connects and expects `opened` to fail with a TLS error; returns the rustls error and
/// the whole `source()` chain as text.
async fn expect_tls_failure(url: &str, options: WebSocketStreamOptions) -> (rustls::Error, String) {
    let wss = WebSocketStream::new(url, options).unwrap();
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .expect("opened settles")
        .expect_err("the TLS handshake must fail");
    let closed = tokio::time::timeout(DEADLINE, wss.closed())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(closed.close_code(), Some(1006));
    let ConnectionError::WebSocket(ws) = &error else {
        panic!("expected a WebSocketError, got {error:?}");
    };
    assert_eq!(ws.close_code(), None);
    let source = ws.source().expect("the WebSocketError has a source");
    let connect = source
        .downcast_ref::<ConnectError>()
        .expect("the source is a ConnectError");
    assert!(
        matches!(connect, ConnectError::Tls(_)),
        "expected ConnectError::Tls, got {connect:?}"
    );
    let reason = connect
        .tls_error()
        .expect("a rustls error behind the TLS failure")
        .clone();
    (reason, chain(ws.as_ref()))
}

/// Echoes a short and a 3 MB message, then closes with 1000 "bye"; fails after
/// [`DEADLINE`] instead of hanging.
async fn echo_and_close(wss: &WebSocketStream) {
    tokio::time::timeout(DEADLINE, echo_and_close_inner(wss))
        .await
        .expect("echo and close within the deadline");
}

async fn echo_and_close_inner(wss: &WebSocketStream) {
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("hello over TLS").await.unwrap();
    assert_eq!(
        reader.read().await.unwrap(),
        Some(Message::from("hello over TLS"))
    );
    // Larger than the socket buffers: TLS records wait in rustls until the socket drains.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    writer.write(big.clone()).await.unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from(big)));
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: "bye".into(),
    })
    .unwrap();
    let closed = wss.closed().await.unwrap();
    assert_eq!(
        closed,
        WebSocketCloseInfo {
            close_code: Some(1000),
            reason: "bye".into()
        }
    );
}

#[tokio::test]
async fn wss_to_an_ip_literal_with_an_extra_root_round_trips_and_closes_cleanly() {
    let ca = Ca::new("wsstream test CA");
    let (port, mut seen) = tls_echo_server(ca.server(&["localhost", "127.0.0.1"]).acceptor()).await;
    let wss = WebSocketStream::new(
        &format!("wss://127.0.0.1:{port}/echo"),
        options_trusting(&ca),
    )
    .unwrap();
    echo_and_close(&wss).await;
    assert_eq!(
        seen.recv().await.unwrap(),
        Ok(format!("wss://127.0.0.1:{port}/echo"))
    );
}

#[tokio::test]
async fn wss_to_localhost_with_custom_roots_round_trips_and_closes_cleanly() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.server(&["localhost"]).acceptor()).await;
    let options = WebSocketStreamOptions::default()
        .tls(TlsOptions::with_roots(Roots::Custom(vec![ca.cert_der()])));
    let wss = WebSocketStream::new(&format!("wss://localhost:{port}/echo"), options).unwrap();
    echo_and_close(&wss).await;
}

#[tokio::test]
async fn https_url_is_mapped_to_wss_and_uses_tls() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.server(&["localhost"]).acceptor()).await;
    let wss = WebSocketStream::new(
        &format!("https://localhost:{port}/echo"),
        options_trusting(&ca),
    )
    .unwrap();
    assert_eq!(wss.url(), format!("wss://localhost:{port}/echo"));
    echo_and_close(&wss).await;
}

#[tokio::test]
async fn many_small_messages_through_sink_and_stream_over_tls() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.server(&["localhost"]).acceptor()).await;
    let wss =
        WebSocketStream::new(&format!("wss://localhost:{port}/"), options_trusting(&ca)).unwrap();
    let info = wss.opened().await.unwrap();
    let reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let n = 5_000usize;
    let send = async move {
        let mut items =
            futures_util::stream::iter((0..n).map(|i| Ok(Message::from(i.to_string()))));
        writer.send_all(&mut items).await.unwrap();
        writer
    };
    let recv = async move { reader.take(n).map(|m| m.unwrap()).collect::<Vec<_>>().await };
    let (_writer, got) = tokio::time::timeout(DEADLINE, async { tokio::join!(send, recv) })
        .await
        .unwrap();
    for (i, message) in got.iter().enumerate() {
        assert_eq!(message.as_text(), Some(i.to_string().as_str()));
    }
    wss.close(WebSocketCloseInfo::default()).unwrap();
    assert_eq!(wss.closed().await.unwrap().close_code, Some(1005));
}

#[tokio::test]
async fn wrong_host_name_fails_opened_with_not_valid_for_name() {
    let ca = Ca::new("wsstream test CA");
    let (port, mut seen) = tls_echo_server(ca.server(&["other.example"]).acceptor()).await;
    for host in ["127.0.0.1", "localhost"] {
        let (reason, text) =
            expect_tls_failure(&format!("wss://{host}:{port}/"), options_trusting(&ca)).await;
        assert!(
            matches!(
                reason,
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{reason:?}"
        );
        assert!(text.contains("TLS handshake failed"), "{text}");
        assert!(text.contains("invalid peer certificate"), "{text}");
        assert!(text.contains("not valid for name"), "{text}");
        // The server sees the client's alert.
        let server_side = seen.recv().await.unwrap().unwrap_err();
        assert!(
            server_side.contains("TLS handshake failed"),
            "{server_side}"
        );
    }
}

#[tokio::test]
async fn unknown_ca_fails_opened_with_unknown_issuer() {
    let ca = Ca::new("wsstream test CA");
    let other = Ca::new("someone else's CA");
    let (port, _seen) = tls_echo_server(other.server(&["localhost"]).acceptor()).await;
    let (reason, text) =
        expect_tls_failure(&format!("wss://localhost:{port}/"), options_trusting(&ca)).await;
    assert_eq!(
        reason,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert!(text.contains("UnknownIssuer"), "{text}");
}

#[tokio::test]
async fn self_signed_certificate_fails_opened_with_unknown_issuer() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(Leaf::self_signed(&["localhost"]).acceptor()).await;
    let (reason, _) =
        expect_tls_failure(&format!("wss://localhost:{port}/"), options_trusting(&ca)).await;
    assert_eq!(
        reason,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn expired_certificate_fails_opened_with_expired() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.expired_server(&["localhost"]).acceptor()).await;
    let (reason, text) =
        expect_tls_failure(&format!("wss://localhost:{port}/"), options_trusting(&ca)).await;
    assert!(
        matches!(
            reason,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{reason:?}"
    );
    assert!(text.contains("certificate expired"), "{text}");
}

#[tokio::test]
async fn default_platform_verifier_rejects_the_test_ca_without_panicking() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.server(&["localhost", "127.0.0.1"]).acceptor()).await;
    let (reason, text) = expect_tls_failure(
        &format!("wss://127.0.0.1:{port}/"),
        WebSocketStreamOptions::default(),
    )
    .await;
    // UnknownIssuer, or — on a machine without any system CA — the platform verifier's
    // refusal to start without roots; both come back as a ConnectError::Tls.
    assert!(
        reason == rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            || matches!(&reason, rustls::Error::General(m) if m.contains("No CA certificates")),
        "{reason:?}: {text}"
    );
}

#[tokio::test]
async fn custom_client_config_is_used_as_is() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.server(&["localhost"]).acceptor()).await;
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der()).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let options =
        WebSocketStreamOptions::default().tls(TlsOptions::with_client_config(Arc::new(config)));
    let wss = WebSocketStream::new(&format!("wss://localhost:{port}/"), options).unwrap();
    echo_and_close(&wss).await;

    // The same configuration without the CA: the custom config really is the one used.
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let mut tls = TlsOptions::with_client_config(Arc::new(config));
    tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
    let options = WebSocketStreamOptions::default().tls(tls);
    let (reason, _) = expect_tls_failure(&format!("wss://localhost:{port}/"), options).await;
    assert_eq!(
        reason,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

/// A TLS server that requires a client certificate issued by `client_ca`.
fn acceptor_requiring_client_certs(server: &Leaf, client_ca: &Ca) -> TlsAcceptor {
    let mut roots = RootCertStore::empty();
    roots.add(client_ca.cert_der()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain(), server.key_der())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::new(Arc::new(config))
}

#[tokio::test]
async fn client_certificate_required_by_the_server() {
    let ca = Ca::new("wsstream test CA");
    let client_ca = Ca::new("wsstream client CA");
    let acceptor = acceptor_requiring_client_certs(&ca.server(&["localhost"]), &client_ca);
    let (port, mut seen) = tls_echo_server(acceptor).await;
    let url = format!("wss://localhost:{port}/echo");

    // With a certificate from the client CA (PEM helper).
    let client = client_ca.client("alice");
    let mut options = options_trusting(&ca);
    options
        .tls
        .set_client_auth_pem(client.cert_pem.as_bytes(), client.key_pem.as_bytes())
        .unwrap();
    let wss = WebSocketStream::new(&url, options).unwrap();
    echo_and_close(&wss).await;
    assert_eq!(seen.recv().await.unwrap(), Ok(url.clone()));

    // With a certificate from the client CA (DER).
    let mut options = options_trusting(&ca);
    options
        .tls
        .set_client_auth(client.chain(), client.key_der());
    let wss = WebSocketStream::new(&url, options).unwrap();
    echo_and_close(&wss).await;
    assert_eq!(seen.recv().await.unwrap(), Ok(url.clone()));

    // Without one: the server refuses, and opened fails with the server's alert.
    let (reason, text) = expect_tls_failure(&url, options_trusting(&ca)).await;
    assert!(
        matches!(reason, rustls::Error::AlertReceived(_)),
        "{reason:?}: {text}"
    );
    let server_side = seen.recv().await.unwrap().unwrap_err();
    assert!(
        server_side.contains("peer sent no certificates"),
        "{server_side}"
    );

    // With a certificate from another CA.
    let stranger = Ca::new("stranger CA").client("mallory");
    let mut options = options_trusting(&ca);
    options
        .tls
        .set_client_auth_pem(stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes())
        .unwrap();
    let (reason, _) = expect_tls_failure(&url, options).await;
    assert!(
        matches!(reason, rustls::Error::AlertReceived(_)),
        "{reason:?}"
    );
    let server_side = seen.recv().await.unwrap().unwrap_err();
    assert!(server_side.contains("UnknownIssuer"), "{server_side}");
}

#[tokio::test]
async fn with_stream_runs_tls_over_the_given_stream() {
    let ca = Ca::new("wsstream test CA");
    let acceptor: TlsAcceptor = ca.server(&["in-memory.test"]).acceptor();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        // The manual path: TLS first, then the upgrade over the TLS stream.
        let tls = acceptor.accept(server_io).await.unwrap();
        assert_eq!(tls.get_ref().1.server_name(), Some("in-memory.test"));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let upgrade = server::read_request(tls).await.unwrap();
        let wss = upgrade
            .accept(None, ServerOptions::default())
            .await
            .unwrap();
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        while let Ok(Some(message)) = reader.read().await {
            writer.write(message).await.unwrap();
        }
        wss.closed().await.unwrap()
    });
    let wss = WebSocketStream::with_stream(
        "wss://in-memory.test/echo",
        options_trusting(&ca),
        client_io,
    )
    .unwrap();
    echo_and_close(&wss).await;
    let server_closed = tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server_closed.close_code, Some(1000));
}

#[tokio::test]
async fn plain_ws_client_against_a_tls_server_fails_cleanly() {
    let ca = Ca::new("wsstream test CA");
    let (port, mut seen) = tls_echo_server(ca.server(&["localhost"]).acceptor()).await;
    let wss = WebSocketStream::new(
        &format!("ws://localhost:{port}/"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.as_websocket_error().is_some());
    let server_side = seen.recv().await.unwrap().unwrap_err();
    assert!(
        server_side.contains("TLS handshake failed"),
        "{server_side}"
    );
}

#[test]
fn tls_options_build_once_and_share_the_config_between_clones() {
    let ca = Ca::new("wsstream test CA");
    let mut tls = TlsOptions::with_roots(Roots::Custom(vec![ca.cert_der()]));
    let first = tls.client_config().unwrap();
    assert!(Arc::ptr_eq(&first, &tls.client_config().unwrap()));
    assert!(Arc::ptr_eq(&first, &tls.clone().client_config().unwrap()));
    assert_eq!(first.alpn_protocols, vec![b"http/1.1".to_vec()]);
    // A change builds a new configuration.
    tls.add_root(ca.cert_der());
    assert!(!Arc::ptr_eq(&first, &tls.client_config().unwrap()));
    // A custom configuration is returned as it is (ALPN untouched).
    let custom = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    );
    tls.set_client_config(custom.clone());
    let used = tls.client_config().unwrap();
    assert!(Arc::ptr_eq(&custom, &used));
    assert!(used.alpn_protocols.is_empty());
}

#[test]
fn pem_helpers_reject_inputs_without_certificates_or_keys() {
    let mut tls = TlsOptions::default();
    let e = tls.add_root_pem(b"not a certificate").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let leaf = Leaf::self_signed(&["localhost"]);
    let e = tls
        .set_client_auth_pem(leaf.cert_pem.as_bytes(), b"no key here")
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    // A key that does not belong to the certificate.
    let other = Leaf::self_signed(&["localhost"]);
    assert!(TlsAcceptor::from_pem(leaf.cert_pem.as_bytes(), other.key_pem.as_bytes()).is_err());
    assert!(TlsAcceptor::from_pem(b"", leaf.key_pem.as_bytes()).is_err());
    assert!(TlsAcceptor::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).is_ok());
    // A CA certificate from PEM works as a root (and a bad DER root fails the build).
    let ca = Ca::new("wsstream test CA");
    assert!(tls.add_root_pem(ca.cert_pem().as_bytes()).is_ok());
    assert!(tls.client_config().is_ok());
    let bad = TlsOptions::with_roots(Roots::Custom(vec![CertificateDer::from(vec![1, 2, 3])]));
    assert!(bad.client_config().is_err());
}

#[tokio::test]
async fn accept_tls_reports_a_client_that_is_not_speaking_tls() {
    let acceptor = Leaf::self_signed(&["localhost"]).acceptor();
    let (mut client_io, server_io) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        server::accept_tls(server_io, &acceptor, ServerOptions::default()).await
    });
    tokio::io::AsyncWriteExt::write_all(
        &mut client_io,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let error = tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, AcceptError::Tls(_)), "{error:?}");
}

#[cfg(feature = "webpki-roots")]
#[tokio::test]
async fn webpki_roots_reject_the_test_ca() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = tls_echo_server(ca.server(&["localhost"]).acceptor()).await;
    let options = WebSocketStreamOptions::default().tls(TlsOptions::with_roots(Roots::WebPki));
    let (reason, _) = expect_tls_failure(&format!("wss://localhost:{port}/"), options).await;
    assert_eq!(
        reason,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // …and accept it once it is added.
    let mut tls = TlsOptions::with_roots(Roots::WebPki);
    tls.add_root(ca.cert_der());
    let options = WebSocketStreamOptions::default().tls(tls);
    let wss = WebSocketStream::new(&format!("wss://localhost:{port}/"), options).unwrap();
    echo_and_close(&wss).await;
}

/// Records the key-exchange groups each ClientHello lists, then presents one certificate.
#[derive(Debug)]
struct GroupRecorder {
    key: Arc<rustls::sign::CertifiedKey>,
    seen: std::sync::Mutex<Vec<Vec<rustls::NamedGroup>>>,
}

impl rustls::server::ResolvesServerCert for GroupRecorder {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let groups = hello.named_groups().unwrap_or_default().to_vec();
        self.seen.lock().unwrap().push(groups);
        Some(self.key.clone())
    }
}

/// The default provider (aws-lc-rs) offers the post-quantum hybrid X25519MLKEM768 first,
/// as Chrome and Firefox do, and a rustls server that supports it negotiates it.
#[tokio::test]
async fn the_default_provider_negotiates_x25519mlkem768_first() {
    let ca = Ca::new("wsstream test CA");
    let leaf = ca.server(&["localhost"]);
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(leaf.key_der())
        .unwrap();
    let recorder = Arc::new(GroupRecorder {
        key: Arc::new(rustls::sign::CertifiedKey::new(leaf.chain(), signing)),
        seen: std::sync::Mutex::default(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(recorder.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::new(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let group = tls
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|group| group.name());
        let wss = server::read_request(tls)
            .await
            .unwrap()
            .accept(None, ServerOptions::default())
            .await
            .unwrap();
        let _ = wss.closed().await;
        group
    });
    let wss =
        WebSocketStream::new(&format!("wss://localhost:{port}/"), options_trusting(&ca)).unwrap();
    tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap();
    wss.close(WebSocketCloseInfo::default()).unwrap();
    let negotiated = tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(negotiated, Some(rustls::NamedGroup::X25519MLKEM768));
    let seen = recorder.seen.lock().unwrap();
    assert_eq!(
        seen[0].first(),
        Some(&rustls::NamedGroup::X25519MLKEM768),
        "groups offered: {:?}",
        seen[0]
    );
}
