//! Client connections through real local proxies (HTTP CONNECT, HTTPS CONNECT, SOCKS5,
//! socks5h) from `wsstream_test_support::proxies`, to real local WebSocket servers.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{
    ConnectError, Proxy, ProxyErrorKind, WebSocketCloseInfo, WebSocketStream,
    WebSocketStreamOptions,
};
use wsstream_test_support::certs::Ca;
use wsstream_test_support::proxies::ProxyServer;

const DEADLINE: Duration = Duration::from_secs(10);

/// An echo server (over TLS with `tls`); reports each upgrade request's headers.
async fn echo_server(
    tls: Option<TlsAcceptor>,
) -> (u16, mpsc::UnboundedReceiver<Vec<(String, String)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let wss = match &tls {
                    Some(tls) => {
                        let Ok(upgrade) = server::read_request_tls(tcp, tls).await else {
                            return;
                        };
                        let _ = tx.send(headers_of(upgrade.request()));
                        upgrade.accept(None, ServerOptions::default()).await
                    }
                    None => {
                        let Ok(upgrade) = server::read_request(tcp).await else {
                            return;
                        };
                        let _ = tx.send(headers_of(upgrade.request()));
                        upgrade.accept(None, ServerOptions::default()).await
                    }
                };
                let Ok(wss) = wss else { return };
                let Ok(info) = wss.opened().await else { return };
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

fn headers_of(request: &wsstream_proto::handshake::HandshakeRequest) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn with_proxy(url: String) -> WebSocketStreamOptions {
    WebSocketStreamOptions::default().proxy(Proxy::Url(url))
}

/// Opens, echoes one message, closes cleanly.
async fn echo_once(url: &str, options: WebSocketStreamOptions) {
    let wss = WebSocketStream::new(url, options).unwrap();
    let info = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("through the proxy").await.unwrap();
    assert_eq!(
        reader.read().await.unwrap(),
        Some(wsstream::Message::from("through the proxy"))
    );
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: String::new(),
    })
    .unwrap();
    let closed = tokio::time::timeout(DEADLINE, wss.closed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.close_code, Some(1000));
}

/// The whole `source()` chain, one error per line.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str("\n  ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Expects `opened` to fail with a WebSocketError caused by a proxy error; returns the
/// kind and the whole chain.
async fn expect_proxy_failure(
    url: &str,
    options: WebSocketStreamOptions,
) -> (ProxyErrorKind, String) {
    let wss = WebSocketStream::new(url, options).unwrap();
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap_err();
    let ws = error
        .as_websocket_error()
        .expect("a WebSocketError")
        .clone();
    let text = chain(&*ws);
    let Some(ConnectError::Proxy(proxy)) = ws.source().and_then(|s| s.downcast_ref()) else {
        panic!("not a proxy error: {text}");
    };
    let closed = tokio::time::timeout(DEADLINE, wss.closed())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(closed.close_code(), Some(1006));
    (proxy.kind().clone(), text)
}

#[tokio::test]
async fn http_connect_proxy_tunnels_a_ws_connection() {
    let (port, mut seen) = echo_server(None).await;
    let proxy = ProxyServer::http_connect(None).await.unwrap();
    echo_once(&format!("ws://127.0.0.1:{port}/"), with_proxy(proxy.url())).await;
    assert_eq!(proxy.tunnels(), 1);
    assert_eq!(proxy.targets(), vec![format!("127.0.0.1:{port}")]);
    let request = &proxy.requests()[0];
    assert!(
        request.starts_with(&format!(
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        )),
        "{request:?}"
    );
    assert!(!request.contains("Proxy-Authorization"), "{request:?}");
    // The upgrade request reached the server through the tunnel, Host untouched.
    let headers = seen.recv().await.unwrap();
    assert!(headers.contains(&("Host".to_owned(), format!("127.0.0.1:{port}"))));
}

#[tokio::test]
async fn http_connect_proxy_with_basic_auth_from_the_url() {
    let (port, _seen) = echo_server(None).await;
    let proxy = ProxyServer::http_connect(Some(("al ice", "p@ss:word")))
        .await
        .unwrap();
    // Credentials are percent-decoded from the URL.
    let url = proxy.url_with("al%20ice", "p%40ss%3Aword");
    echo_once(&format!("ws://127.0.0.1:{port}/"), with_proxy(url)).await;
    assert_eq!(proxy.tunnels(), 1);
    // base64("al ice:p@ss:word")
    assert!(
        proxy.requests()[0].contains("Proxy-Authorization: Basic YWwgaWNlOnBAc3M6d29yZA==\r\n"),
        "{:?}",
        proxy.requests()
    );
}

#[tokio::test]
async fn wrong_or_missing_proxy_credentials_fail_opened_with_407() {
    let (port, _seen) = echo_server(None).await;
    let proxy = ProxyServer::http_connect(Some(("user", "secret")))
        .await
        .unwrap();
    let target = format!("ws://127.0.0.1:{port}/");
    for url in [
        proxy.url_with("user", "wrong"),
        proxy.url_without_credentials(),
    ] {
        let (kind, text) = expect_proxy_failure(&target, with_proxy(url)).await;
        assert_eq!(
            kind,
            ProxyErrorKind::Status {
                status: 407,
                reason: "Proxy Authentication Required".to_owned()
            }
        );
        assert!(text.contains("proxy authentication required"), "{text}");
        assert!(!text.contains("wrong"), "credentials leaked: {text}");
    }
    assert_eq!(proxy.tunnels(), 0);
}

#[tokio::test]
async fn socks5_proxy_tunnels_a_ws_connection() {
    let (port, _seen) = echo_server(None).await;
    let proxy = ProxyServer::socks5(None).await.unwrap();
    assert!(proxy.url().starts_with("socks5://127.0.0.1:"));
    echo_once(&format!("ws://127.0.0.1:{port}/"), with_proxy(proxy.url())).await;
    assert_eq!(proxy.tunnels(), 1);
    assert_eq!(proxy.targets(), vec![format!("127.0.0.1:{port}")]);
}

#[tokio::test]
async fn socks5_proxy_with_username_and_password() {
    let (port, _seen) = echo_server(None).await;
    let proxy = ProxyServer::socks5(Some(("user", "secret"))).await.unwrap();
    let target = format!("ws://127.0.0.1:{port}/");
    echo_once(&target, with_proxy(proxy.url())).await;
    assert_eq!(proxy.tunnels(), 1);

    let (kind, text) =
        expect_proxy_failure(&target, with_proxy(proxy.url_with("user", "wrong"))).await;
    assert_eq!(kind, ProxyErrorKind::Socks);
    assert!(text.contains("SOCKS5"), "{text}");
    let (kind, text) =
        expect_proxy_failure(&target, with_proxy(proxy.url_without_credentials())).await;
    assert_eq!(kind, ProxyErrorKind::Socks);
    assert!(text.to_lowercase().contains("auth"), "{text}");
    assert_eq!(proxy.tunnels(), 1);
}

#[tokio::test]
async fn socks5h_lets_the_proxy_resolve_the_host_name_and_socks5_resolves_locally() {
    let (port, _seen) = echo_server(None).await;
    let target = format!("ws://localhost:{port}/");

    let remote = ProxyServer::socks5(None).await.unwrap();
    let url = remote.url().replace("socks5://", "socks5h://");
    echo_once(&target, with_proxy(url)).await;
    assert_eq!(remote.targets(), vec![format!("localhost:{port}")]);
    assert_eq!(remote.tunnels(), 1);

    let local = ProxyServer::socks5(None).await.unwrap();
    echo_once(&target, with_proxy(local.url())).await;
    // Every address localhost resolves to may be tried in turn; only IPs reach the proxy.
    let targets = local.targets();
    assert!(!targets.is_empty());
    for t in &targets {
        assert!(
            t == &format!("127.0.0.1:{port}") || t == &format!("[::1]:{port}"),
            "{targets:?}"
        );
    }
    assert_eq!(local.tunnels(), 1);
}

#[tokio::test]
async fn refusing_proxies_fail_opened_with_a_clear_error() {
    let (port, _seen) = echo_server(None).await;
    let target = format!("ws://127.0.0.1:{port}/");

    let http = ProxyServer::refusing_http().await.unwrap();
    let (kind, text) = expect_proxy_failure(&target, with_proxy(http.url())).await;
    assert_eq!(
        kind,
        ProxyErrorKind::Status {
            status: 403,
            reason: "Forbidden".to_owned()
        }
    );
    assert!(
        text.contains("refused the tunnel with status 403"),
        "{text}"
    );
    assert_eq!(http.connections(), 1);

    let socks = ProxyServer::refusing_socks5().await.unwrap();
    let (kind, text) = expect_proxy_failure(&target, with_proxy(socks.url())).await;
    assert_eq!(kind, ProxyErrorKind::Socks);
    assert!(text.contains("not allowed by ruleset"), "{text}");
    assert_eq!(socks.tunnels(), 0);
}

#[tokio::test]
async fn unreachable_and_invalid_proxies_fail_opened_with_a_clear_error() {
    let (port, _seen) = echo_server(None).await;
    let target = format!("ws://127.0.0.1:{port}/");
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let (kind, text) = expect_proxy_failure(
        &target,
        with_proxy(format!("http://127.0.0.1:{closed_port}")),
    )
    .await;
    assert_eq!(kind, ProxyErrorKind::Unreachable);
    assert!(
        text.contains(&format!(
            "cannot connect to the proxy http://127.0.0.1:{closed_port}"
        )),
        "{text}"
    );

    let (kind, text) =
        expect_proxy_failure(&target, with_proxy("socks4://u:secret@127.0.0.1:1".into())).await;
    assert_eq!(kind, ProxyErrorKind::UnsupportedScheme("socks4".into()));
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn wss_runs_tls_with_the_target_inside_the_tunnel() {
    let ca = Ca::new("wsstream test CA");
    let (port, _seen) = echo_server(Some(ca.server(&["localhost"]).acceptor())).await;
    let mut tls = wsstream::TlsOptions::default();
    tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
    let target = format!("wss://localhost:{port}/");
    for proxy in [
        ProxyServer::http_connect(None).await.unwrap(),
        ProxyServer::socks5(None).await.unwrap(),
    ] {
        let options = WebSocketStreamOptions::default()
            .proxy(Proxy::Url(proxy.url().replace("socks5://", "socks5h://")))
            .tls(tls.clone());
        echo_once(&target, options).await;
        assert_eq!(proxy.tunnels(), 1);
        assert_eq!(proxy.targets(), vec![format!("localhost:{port}")]);
    }
}

#[tokio::test]
async fn https_proxy_runs_tls_to_the_proxy() {
    let ca = Ca::new("wsstream test CA");
    let proxy = ProxyServer::https_connect(ca.server(&["localhost"]).acceptor(), Some(("u", "p")))
        .await
        .unwrap();
    assert!(proxy.url().starts_with("https://u:p@localhost:"));
    let mut tls = wsstream::TlsOptions::default();
    tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
    let options = WebSocketStreamOptions::default()
        .proxy(Proxy::Url(proxy.url()))
        .tls(tls.clone());

    // ws:// through an https:// proxy.
    let (port, _seen) = echo_server(None).await;
    echo_once(&format!("ws://127.0.0.1:{port}/"), options.clone()).await;
    // wss:// through an https:// proxy: TLS inside TLS.
    let (tls_port, _seen) = echo_server(Some(ca.server(&["localhost"]).acceptor())).await;
    echo_once(&format!("wss://localhost:{tls_port}/"), options).await;
    assert_eq!(proxy.tunnels(), 2);

    // A proxy whose certificate is not trusted: a TLS error naming the proxy.
    let (kind, text) =
        expect_proxy_failure(&format!("ws://127.0.0.1:{port}/"), with_proxy(proxy.url())).await;
    assert_eq!(kind, ProxyErrorKind::Tls);
    assert!(
        text.contains("TLS handshake with the proxy https://localhost:"),
        "{text}"
    );
}

#[tokio::test]
async fn proxy_none_and_the_default_connect_directly() {
    let (port, _seen) = echo_server(None).await;
    let target = format!("ws://127.0.0.1:{port}/");
    echo_once(
        &target,
        WebSocketStreamOptions::default().proxy(Proxy::None),
    )
    .await;
    // FromEnv never proxies loopback hosts, whatever the environment says.
    assert_eq!(WebSocketStreamOptions::default().proxy, Proxy::FromEnv);
    echo_once(&target, WebSocketStreamOptions::default()).await;
}
