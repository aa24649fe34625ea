//! End-to-end tests of `wsstream connect`'s session flags (-n, signals, --max-messages,
//! --reconnect, --ping-interval, --cert/--key, --unix, -0, --exec): the binary is spawned
//! against servers running in the test itself (wsstream::server on a tokio runtime, or a
//! raw TCP peer where a misbehaving one is needed).

use std::fs;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use wsstream::rustls::{self, RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{WebSocketCloseInfo, WebSocketStream};
use wsstream_test_support::certs::Ca;

mod common;

use common::{BIN, DEADLINE};

// --- the client process ----------------------------------------------------------------

/// A running `wsstream` with piped stdio.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

/// What a finished client printed.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

impl Finished {
    fn assert_success(&self) {
        assert!(self.status.success(), "exit {:?}: {self:#?}", self.status);
    }
}

impl Client {
    fn spawn(args: &[&str]) -> Self {
        let common::Piped {
            child,
            stdin,
            stdout,
            stderr,
        } = common::spawn_piped(Command::new(BIN).args(args));
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    fn send(&mut self, input: &str) {
        common::write_stdin(&mut self.stdin, input);
    }

    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    fn expect_stdout(&self) -> String {
        common::next_line(&self.stdout)
    }

    /// Waits for a stderr line containing `needle` (the lines before it are dropped).
    fn expect_stderr(&self, needle: &str) -> String {
        common::line_containing(&self.stderr, needle)
            .unwrap_or_else(|| panic!("stderr never said {needle:?}"))
    }

    /// Sends `signal` (`TERM`, `INT`) to this client, and only to it.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Whether the process is still running after `wait`.
    fn still_running_after(&mut self, wait: Duration) -> bool {
        thread::sleep(wait);
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Closes stdin (if still open) and waits for the exit, killing the process after
    /// [`DEADLINE`].
    fn finish(mut self) -> Finished {
        self.close_stdin();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("wsstream did not exit within {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.iter().collect();
        let stderr: Vec<String> = self.stderr.iter().collect();
        Finished {
            status,
            stdout,
            stderr: stderr.join("\n"),
        }
    }
}

// --- servers in the test ---------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A TCP server on 127.0.0.1 port 0 running `handler(n, tcp)` for its n-th connection
/// (from 0), until the runtime is dropped.
fn tcp_server<F, Fut>(rt: &Runtime, handler: F) -> SocketAddr
where
    F: Fn(usize, TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    rt.spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(handler(n, tcp));
            n += 1;
        }
    });
    addr
}

/// Echoes every message until the client closes; then reports the Close it received
/// (`None` for an unclean close).
async fn echo(wss: WebSocketStream, closes: Option<Sender<Option<WebSocketCloseInfo>>>) {
    let Ok(info) = wss.opened().await else { return };
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
    drop((reader, writer));
    let closed = wss.closed().await.ok();
    if let Some(closes) = closes {
        let _ = closes.send(closed);
    }
}

/// An echo server; each connection's received Close goes to the returned channel.
fn echo_server(rt: &Runtime) -> (SocketAddr, Receiver<Option<WebSocketCloseInfo>>) {
    let (tx, rx) = mpsc::channel();
    let addr = tcp_server(rt, move |_, tcp| {
        let tx = tx.clone();
        async move {
            if let Ok(wss) = server::accept(tcp, ServerOptions::default()).await {
                echo(wss, Some(tx)).await;
            }
        }
    });
    (addr, rx)
}

/// Sends `messages` right after the handshake, then reads (and reports as text) what
/// the client sends until it closes, then reports the Close as `close CODE REASON`.
async fn send_then_collect(tcp: TcpStream, messages: Vec<String>, seen: Sender<String>) {
    let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
        return;
    };
    let Ok(info) = wss.opened().await else { return };
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    for message in messages {
        if writer.write(message).await.is_err() {
            return;
        }
    }
    while let Ok(Some(message)) = reader.read().await {
        let text = message.as_text().unwrap_or("<binary>").to_owned();
        let _ = seen.send(text);
    }
    drop((reader, writer));
    let report = match wss.closed().await {
        Ok(info) => format!("close {} {}", info.close_code.unwrap_or(1005), info.reason),
        Err(e) => format!("unclean {e}"),
    };
    let _ = seen.send(report);
}

fn close_info(code: u16, reason: &str) -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(code),
        reason: reason.to_owned(),
    }
}

/// Reads a WebSocket request head from `tcp` and answers 101, by hand: the peer is then
/// free to misbehave.
async fn raw_handshake(tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let key = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    tcp.write_all(response.as_bytes()).await
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2).
fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let digest = sha1::Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A fresh directory under the target's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("connect-flags-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the temporary directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    fn write(&self, name: &str, contents: &str) -> String {
        fs::write(self.0.join(name), contents).expect("write a temporary file");
        self.path(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// --- -n / --no-close ------------------------------------------------------------------------

#[test]
fn no_close_stays_connected_after_stdin_ends_until_the_server_closes() {
    let rt = runtime();
    let addr = tcp_server(&rt, |_, tcp| async move {
        let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
            return;
        };
        let Ok(info) = wss.opened().await else { return };
        let (Ok(mut reader), Ok(mut writer)) =
            (info.readable.get_reader(), info.writable.get_writer())
        else {
            return;
        };
        // Echo the first message, then talk again well after the default 200 ms linger.
        if let Ok(Some(message)) = reader.read().await {
            let _ = writer.write(message).await;
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let _ = writer.write("later").await;
        let _ = wss.close(close_info(1000, "bye"));
        while let Ok(Some(_)) = reader.read().await {}
    });
    for flag in ["-n", "--no-close", "--keep-open"] {
        let mut client = Client::spawn(&["connect", flag, &format!("ws://{addr}/")]);
        client.send("hi\n");
        client.close_stdin();
        let out = client.finish();
        out.assert_success();
        assert_eq!(out.stdout, ["hi", "later"], "{flag}: {out:#?}");
        assert!(
            out.stderr.contains(r#"closed: code 1000, reason "bye""#),
            "{flag}: {out:#?}"
        );
    }
}

// --- signals ----------------------------------------------------------------------------

#[test]
fn sigterm_closes_cleanly_with_1000_and_exits_0() {
    let rt = runtime();
    let (addr, closes) = echo_server(&rt);
    let mut client = Client::spawn(&["connect", &format!("ws://{addr}/")]);
    client.send("hi\n");
    assert_eq!(client.expect_stdout(), "hi");
    // stdin stays open: only the signal ends the session.
    client.signal("TERM");
    let close = closes
        .recv_timeout(DEADLINE)
        .expect("the server saw the end");
    let close = close.expect("a clean close");
    assert_eq!(close.close_code, Some(1000));
    let out = client.finish();
    out.assert_success();
    assert!(out.stderr.contains("SIGTERM: closing"), "{out:#?}");
    assert!(out.stderr.contains("closed: code 1000"), "{out:#?}");
}

#[test]
fn sigint_with_no_close_sends_the_close_code_and_reason_flags() {
    let rt = runtime();
    let (addr, closes) = echo_server(&rt);
    let mut client = Client::spawn(&[
        "connect",
        "-n",
        "--close-code",
        "4001",
        "--close-reason",
        "interrupted",
        &format!("ws://{addr}/"),
    ]);
    client.send("hi\n");
    client.close_stdin();
    assert_eq!(client.expect_stdout(), "hi");
    assert!(client.still_running_after(Duration::from_millis(500)));
    client.signal("INT");
    let close = closes
        .recv_timeout(DEADLINE)
        .expect("the server saw the end");
    let close = close.expect("a clean close");
    assert_eq!(close.close_code, Some(4001));
    assert_eq!(close.reason, "interrupted");
    let out = client.finish();
    out.assert_success();
}

#[test]
fn a_second_signal_exits_at_once() {
    // A peer that completes the handshake and then never answers anything: the clean
    // close the first signal starts would wait 30 s for its Close.
    let rt = runtime();
    let addr = tcp_server(&rt, |_, mut tcp| async move {
        if raw_handshake(&mut tcp).await.is_ok() {
            tokio::time::sleep(DEADLINE).await;
        }
    });
    let client = Client::spawn(&["connect", &format!("ws://{addr}/")]);
    client.expect_stderr("connected to");
    client.signal("TERM");
    client.expect_stderr("SIGTERM: closing");
    client.signal("TERM");
    let start = Instant::now();
    let out = client.finish();
    assert!(start.elapsed() < Duration::from_secs(5), "{out:#?}");
    assert_eq!(out.status.code(), Some(143), "{out:#?}");
    assert!(out.stderr.contains("exiting at once"), "{out:#?}");
}

// --- --max-messages ----------------------------------------------------------------------

#[test]
fn max_messages_closes_cleanly_after_n_messages() {
    let rt = runtime();
    let (seen_tx, seen) = mpsc::channel();
    let addr = tcp_server(&rt, move |_, tcp| {
        let messages = (1..=5).map(|i| format!("m{i}")).collect();
        send_then_collect(tcp, messages, seen_tx.clone())
    });
    // -n: only the limit ends the session (stdin is closed at once).
    let out = Client::spawn(&[
        "connect",
        "-n",
        "--max-messages",
        "2",
        "--close-code",
        "4002",
        &format!("ws://{addr}/"),
    ])
    .finish();
    out.assert_success();
    assert_eq!(out.stdout, ["m1", "m2"], "{out:#?}");
    let close = seen.recv_timeout(DEADLINE).expect("the server saw the end");
    assert_eq!(close, "close 4002 ");
    // 0 is no limit at all: refused.
    let out = Client::spawn(&["connect", "--max-messages", "0", "ws://127.0.0.1:9/"]).finish();
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
}

// --- --reconnect -------------------------------------------------------------------------

#[test]
fn reconnect_after_a_failed_handshake_and_an_unclean_close() {
    let rt = runtime();
    let addr = tcp_server(&rt, |n, mut tcp| async move {
        match n {
            // The handshake fails: the connection is dropped at once.
            0 => drop(tcp),
            // Open, one message, then TCP goes away without a Close frame (1006).
            1 => {
                if raw_handshake(&mut tcp).await.is_ok() {
                    let _ = tcp
                        .write_all(&[0x81, 0x05, b'f', b'i', b'r', b's', b't'])
                        .await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // A good one: a message, then a clean close.
            _ => {
                let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
                    return;
                };
                let Ok(info) = wss.opened().await else { return };
                let (Ok(mut reader), Ok(mut writer)) =
                    (info.readable.get_reader(), info.writable.get_writer())
                else {
                    return;
                };
                let _ = writer.write("second").await;
                let _ = wss.close(close_info(1000, "done"));
                while let Ok(Some(_)) = reader.read().await {}
            }
        }
    });
    let start = Instant::now();
    let out = Client::spawn(&[
        "connect",
        "-n",
        "--reconnect",
        "--max-delay",
        "1",
        &format!("ws://{addr}/"),
    ])
    .finish();
    out.assert_success();
    assert_eq!(out.stdout, ["first", "second"], "{out:#?}");
    assert_eq!(
        out.stderr.matches("wsstream: reconnecting in").count(),
        2,
        "{out:#?}"
    );
    assert!(out.stderr.contains("(attempt 1)"), "{out:#?}");
    assert!(out.stderr.contains("uncleanly"), "{out:#?}");
    assert!(
        out.stderr.contains(r#"closed: code 1000, reason "done""#),
        "{out:#?}"
    );
    // Two waits of 0.25–0.5 s each (the first delay, with jitter).
    assert!(start.elapsed() >= Duration::from_millis(500), "{out:#?}");
}

#[test]
fn reconnect_when_the_server_closes_with_service_restart_but_not_with_1000() {
    let rt = runtime();
    let addr = tcp_server(&rt, |n, tcp| async move {
        let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
            return;
        };
        let Ok(info) = wss.opened().await else { return };
        let (Ok(mut reader), Ok(mut writer)) =
            (info.readable.get_reader(), info.writable.get_writer())
        else {
            return;
        };
        let (message, close) = match n {
            0 => ("before the restart", close_info(1012, "restarting")),
            _ => ("back", close_info(1000, "done")),
        };
        let _ = writer.write(message).await;
        let _ = wss.close(close);
        while let Ok(Some(_)) = reader.read().await {}
    });
    let out = Client::spawn(&[
        "connect",
        "-n",
        "--reconnect",
        "--max-delay",
        "1",
        &format!("ws://{addr}/"),
    ])
    .finish();
    out.assert_success();
    assert_eq!(out.stdout, ["before the restart", "back"], "{out:#?}");
    assert!(
        out.stderr
            .contains(r#"closed: code 1012, reason "restarting""#),
        "{out:#?}"
    );
    assert_eq!(
        out.stderr.matches("wsstream: reconnecting in").count(),
        1,
        "{out:#?}"
    );
}

#[test]
fn a_signal_during_the_reconnect_wait_stops_at_once() {
    let rt = runtime();
    let addr = tcp_server(&rt, |_, tcp| async move { drop(tcp) });
    let client = Client::spawn(&["connect", "--reconnect", &format!("ws://{addr}/")]);
    client.expect_stderr("(attempt 1)");
    client.expect_stderr("(attempt 2)");
    client.signal("INT");
    let start = Instant::now();
    let out = client.finish();
    assert_eq!(out.status.code(), Some(130), "{out:#?}");
    assert!(start.elapsed() < Duration::from_secs(2), "{out:#?}");
}

#[test]
fn without_reconnect_an_unclean_close_ends_with_failure() {
    let rt = runtime();
    let addr = tcp_server(&rt, |_, tcp| async move { drop(tcp) });
    let out = Client::spawn(&["connect", &format!("ws://{addr}/")]).finish();
    assert!(!out.status.success(), "{out:#?}");
    assert!(!out.stderr.contains("reconnecting"), "{out:#?}");
    // --max-delay belongs to --reconnect.
    let out = Client::spawn(&["connect", "--max-delay", "1", "ws://127.0.0.1:9/"]).finish();
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
}

// --- --ping-interval ----------------------------------------------------------------------

#[test]
fn ping_interval_with_verbose_prints_each_round_trip_time() {
    let rt = runtime();
    let (addr, _closes) = echo_server(&rt);
    let client = Client::spawn(&[
        "connect",
        "-v",
        "--ping-interval",
        "0.1",
        &format!("ws://{addr}/"),
    ]);
    let first = client.expect_stderr("wsstream: pong after");
    assert!(first.ends_with(" ms"), "{first}");
    client.expect_stderr("wsstream: pong after");
    let out = client.finish();
    out.assert_success();
}

#[test]
fn ping_timeout_gives_up_a_peer_that_does_not_answer() {
    let rt = runtime();
    let addr = tcp_server(&rt, |_, mut tcp| async move {
        if raw_handshake(&mut tcp).await.is_ok() {
            tokio::time::sleep(DEADLINE).await;
        }
    });
    let start = Instant::now();
    let client = Client::spawn(&[
        "connect",
        "--ping-interval",
        "0.2",
        "--ping-timeout",
        "0.3",
        &format!("ws://{addr}/"),
    ]);
    // stdin stays open.
    let line = client.expect_stderr("no pong within");
    let mut client = client;
    let out = loop {
        if client.child.try_wait().expect("try_wait").is_some() {
            break client.finish();
        }
        assert!(start.elapsed() < DEADLINE, "still running after {line}");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(start.elapsed() < Duration::from_secs(5), "{out:#?}");
}

// --- --cert / --key -----------------------------------------------------------------------

/// A TLS acceptor for `server` that requires a client certificate issued by `client_ca`.
fn acceptor_requiring_client_certs(
    server: &wsstream_test_support::certs::Leaf,
    client_ca: &Ca,
) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(client_ca.cert_der()).expect("client CA");
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("client verifier");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain(), server.key_der())
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::new(Arc::new(config))
}

#[test]
fn cert_and_key_present_a_client_certificate() {
    let dir = TempDir::new("cert");
    let ca = Ca::new("wsstream CLI test CA");
    let client_ca = Ca::new("wsstream CLI client CA");
    let acceptor = Arc::new(acceptor_requiring_client_certs(
        &ca.server(&["localhost"]),
        &client_ca,
    ));
    let alice = client_ca.client("alice");
    let ca_pem = dir.write("ca.pem", &ca.cert_pem());
    let cert = dir.write("alice.pem", &alice.cert_pem);
    let key = dir.write("alice-key.pem", &alice.key_pem);
    let rt = runtime();
    let addr = tcp_server(&rt, move |_, tcp| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(wss) = server::accept_tls(tcp, &acceptor, ServerOptions::default()).await {
                echo(wss, None).await;
            }
        }
    });
    let url = format!("wss://localhost:{}/echo", addr.port());
    let mut client = Client::spawn(&[
        "connect", "--ca", &ca_pem, "--cert", &cert, "--key", &key, &url,
    ]);
    client.send("hi\n");
    let out = client.finish();
    out.assert_success();
    assert_eq!(out.stdout, ["hi"], "{out:#?}");
    // Without a certificate the server refuses the TLS handshake.
    let out = Client::spawn(&["connect", "--ca", &ca_pem, &url]).finish();
    assert!(!out.status.success(), "{out:#?}");
    assert!(out.stderr.contains("TLS handshake failed"), "{out:#?}");
    // --cert needs --key; a key file that holds no key is a usage error.
    let out = Client::spawn(&["connect", "--cert", &cert, &url]).finish();
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    let out = Client::spawn(&["connect", "--cert", &cert, "--key", &ca_pem, &url]).finish();
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("--cert"), "{out:#?}");
}

// --- --unix -------------------------------------------------------------------------------

#[test]
fn unix_connects_to_a_unix_socket_with_the_urls_host_and_path() {
    let dir = TempDir::new("unix");
    let path = dir.path("ws.sock");
    let rt = runtime();
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(&path).expect("bind the Unix socket")
    };
    let (seen_tx, seen) = mpsc::channel();
    rt.spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let Ok(upgrade) = server::read_request(io).await else {
                continue;
            };
            let request = upgrade.request();
            let _ = seen_tx.send(format!("{} {}", request.resource, request.host));
            if let Ok(wss) = upgrade.accept(None, ServerOptions::default()).await {
                tokio::spawn(echo(wss, None));
            }
        }
    });
    let mut client = Client::spawn(&["connect", "--unix", &path, "ws://example.test/chat?x=1"]);
    client.send("over a Unix socket\n");
    let out = client.finish();
    out.assert_success();
    assert_eq!(out.stdout, ["over a Unix socket"], "{out:#?}");
    assert_eq!(
        seen.recv_timeout(DEADLINE).expect("a request"),
        "/chat?x=1 example.test"
    );
    // wss:// runs TLS over the socket, verified for the URL's host.
    let ca = Ca::new("wsstream CLI test CA");
    let acceptor: TlsAcceptor = ca.server(&["localhost"]).acceptor();
    let ca_pem = dir.write("ca.pem", &ca.cert_pem());
    let tls_path = dir.path("wss.sock");
    let tls_listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(&tls_path).expect("bind the Unix socket")
    };
    rt.spawn(async move {
        while let Ok((io, _)) = tls_listener.accept().await {
            if let Ok(wss) = server::accept_tls(io, &acceptor, ServerOptions::default()).await {
                tokio::spawn(echo(wss, None));
            }
        }
    });
    let mut client = Client::spawn(&[
        "connect",
        "--unix",
        &tls_path,
        "--ca",
        &ca_pem,
        "wss://localhost/secure",
    ]);
    client.send("over TLS over a Unix socket\n");
    let out = client.finish();
    out.assert_success();
    assert_eq!(out.stdout, ["over TLS over a Unix socket"], "{out:#?}");
    // A socket that is not there: a connection failure, not a usage error.
    let out = Client::spawn(&["connect", "--unix", &dir.path("none.sock"), "ws://h/"]).finish();
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("none.sock"), "{out:#?}");
}

#[test]
fn unix_with_http_2_speaks_http2_over_the_socket() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use wsstream::server::hyper::{HyperUpgrade, error_response};
    let dir = TempDir::new("unix-h2");
    let path = dir.path("h2.sock");
    let rt = runtime();
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(&path).expect("bind the Unix socket")
    };
    // HTTP/2 with prior knowledge on the socket, extended CONNECT allowed (RFC 8441).
    rt.spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|mut request| async move {
                let upgrade = match HyperUpgrade::from_request(&mut request) {
                    Ok(upgrade) => upgrade,
                    Err(e) => return Ok::<_, std::convert::Infallible>(error_response(&e)),
                };
                let (response, upgrading) = upgrade
                    .accept(None, &Default::default(), ServerOptions::default())
                    .expect("accept");
                tokio::spawn(async move {
                    if let Ok(wss) = upgrading.await {
                        echo(wss, None).await;
                    }
                });
                Ok(response)
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .enable_connect_protocol()
                    .serve_connection(TokioIo::new(io), service),
            );
        }
    });
    let mut client = Client::spawn(&[
        "connect",
        "--unix",
        &path,
        "--http",
        "2",
        "ws://example.test/h2",
    ]);
    client.send("HTTP/2 over a Unix socket\n");
    let out = client.finish();
    out.assert_success();
    assert_eq!(out.stdout, ["HTTP/2 over a Unix socket"], "{out:#?}");
    assert!(
        out.stderr
            .contains("connected to ws://example.test/h2 over HTTP/2"),
        "{out:#?}"
    );
}

// --- -0 / --null ----------------------------------------------------------------------------

#[test]
fn null_separates_messages_by_nul_so_they_may_hold_newlines() {
    let rt = runtime();
    let (addr, _closes) = echo_server(&rt);
    for flag in ["-0", "--null"] {
        let mut child = Command::new(BIN)
            .args(["connect", flag, &format!("ws://{addr}/")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsstream");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"line one\nline two\0second\r\n\0last")
            .expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{flag}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "line one\nline two\0second\r\n\0last\0",
            "{flag}"
        );
    }
}

// --- --exec -------------------------------------------------------------------------------

#[test]
fn exec_turns_a_commands_lines_into_messages_and_back() {
    let rt = runtime();
    let (seen_tx, seen) = mpsc::channel();
    let addr = tcp_server(&rt, move |_, tcp| {
        send_then_collect(tcp, vec!["hello".into(), "world".into()], seen_tx.clone())
    });
    // Received messages go to the command's stdin; its stdout lines go back. It ends
    // after two lines, which closes the connection cleanly.
    let script = "n=0; while [ $n -lt 2 ] && read -r line; do \
                  echo \"$line\" | tr a-z A-Z; n=$((n+1)); done";
    let out = Client::spawn(&[
        "connect",
        "--exec",
        script,
        "--close-reason",
        "command done",
        &format!("ws://{addr}/"),
    ])
    .finish();
    out.assert_success();
    assert!(out.stdout.is_empty(), "{out:#?}");
    let seen: Vec<String> = (0..3)
        .map(|_| seen.recv_timeout(DEADLINE).expect("what the server saw"))
        .collect();
    assert_eq!(seen, ["HELLO", "WORLD", "close 1000 command done"]);
}

#[test]
fn exec_output_ends_the_connection_when_the_command_exits() {
    let rt = runtime();
    let (seen_tx, seen) = mpsc::channel();
    let addr = tcp_server(&rt, move |_, tcp| {
        send_then_collect(tcp, Vec::new(), seen_tx.clone())
    });
    let out = Client::spawn(&[
        "connect",
        "-0",
        "--exec",
        "printf 'a\\nb\\0c\\0'",
        &format!("ws://{addr}/"),
    ])
    .finish();
    out.assert_success();
    let seen: Vec<String> = (0..3)
        .map(|_| seen.recv_timeout(DEADLINE).expect("what the server saw"))
        .collect();
    assert_eq!(seen, ["a\nb", "c", "close 1005 "]);
    // A command that fails is reported (the connection itself closed cleanly).
    let out = Client::spawn(&["connect", "--exec", "exit 3", &format!("ws://{addr}/")]).finish();
    out.assert_success();
    assert!(
        out.stderr.contains("exited with exit status: 3"),
        "{out:#?}"
    );
}

#[test]
fn exec_command_that_stops_reading_still_closes_cleanly() {
    // The command exits without reading while messages keep arriving: they are
    // discarded (no broken-pipe failure), and its end closes the connection cleanly.
    let rt = runtime();
    let (seen_tx, seen) = mpsc::channel();
    let addr = tcp_server(&rt, move |_, tcp| {
        let messages = (0..200).map(|i| format!("message {i}")).collect();
        send_then_collect(tcp, messages, seen_tx.clone())
    });
    let out = Client::spawn(&[
        "connect",
        "--exec",
        "exec 0<&-; echo one",
        &format!("ws://{addr}/"),
    ])
    .finish();
    out.assert_success();
    let seen: Vec<String> = (0..2)
        .map(|_| seen.recv_timeout(DEADLINE).expect("what the server saw"))
        .collect();
    assert_eq!(seen, ["one", "close 1005 "]);
}
