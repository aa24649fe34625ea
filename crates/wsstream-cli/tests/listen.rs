//! End-to-end tests of `wsstream listen`: the binary runs as a separate process on
//! 127.0.0.1 port 0 (its first stderr line gives the address), and the clients are
//! wsstream `WebSocketStream`s on a tokio runtime of the test.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use wsstream::{
    ConnectionError, Message, Proxy, TlsOptions, WebSocketCloseInfo, WebSocketReader,
    WebSocketStream, WebSocketStreamOptions, WebSocketWriter,
};
use wsstream_test_support::certs::Ca;

mod common;

use common::{BIN, DEADLINE};

/// A multi-threaded runtime, so the clients' connections make progress while the test
/// thread waits on the process.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A running `wsstream listen 127.0.0.1:0 …`, killed when dropped.
struct Listen {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// `ws://127.0.0.1:PORT` (or `wss://`).
    url: String,
}

impl Listen {
    fn start(args: &[&str]) -> Self {
        let common::Piped {
            child,
            stdin,
            stdout,
            stderr,
        } = common::spawn_piped(Command::new(BIN).args(["listen", "127.0.0.1:0"]).args(args));
        let first = stderr
            .recv_timeout(DEADLINE)
            .expect("the first line on stderr");
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_owned();
        Self {
            child,
            stdin,
            stdout,
            stderr,
            url,
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

    /// Waits for a stderr line containing `needle`.
    fn expect_log(&self, needle: &str) -> String {
        common::line_containing(&self.stderr, needle)
            .unwrap_or_else(|| panic!("wsstream listen never logged {needle:?}"))
    }

    /// Sends SIGTERM to this process (by its PID).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status:?}");
    }

    /// Waits for the exit, killing the process after [`DEADLINE`].
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("wsstream listen did not exit within {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test client.
struct Client {
    wss: WebSocketStream,
    reader: WebSocketReader,
    writer: WebSocketWriter,
}

impl Client {
    fn connect(rt: &Runtime, url: &str) -> Self {
        Self::connect_with(rt, url, WebSocketStreamOptions::default())
    }

    fn connect_with(rt: &Runtime, url: &str, options: WebSocketStreamOptions) -> Self {
        rt.block_on(async {
            let wss = WebSocketStream::new(url, options.proxy(Proxy::None)).expect("a valid URL");
            let info = tokio::time::timeout(DEADLINE, wss.opened())
                .await
                .expect("opened in time")
                .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
            let reader = info.readable.get_reader().expect("a reader");
            let writer = info.writable.get_writer().expect("a writer");
            Self {
                wss,
                reader,
                writer,
            }
        })
    }

    fn send(&mut self, rt: &Runtime, text: &str) {
        rt.block_on(self.writer.write(text)).expect("write");
    }

    /// The next message as text, `None` at the end of the stream (close).
    fn recv(&mut self, rt: &Runtime) -> Option<String> {
        rt.block_on(async {
            let read = tokio::time::timeout(DEADLINE, self.reader.read())
                .await
                .expect("a message in time");
            read.ok()?.map(|message| match message {
                Message::Text(text) => text.to_string(),
                Message::Binary(bytes) => panic!("unexpected binary message {bytes:?}"),
            })
        })
    }

    fn close(&self, code: u16) {
        self.wss
            .close(WebSocketCloseInfo {
                close_code: Some(code),
                reason: String::new(),
            })
            .expect("close");
    }

    fn closed(&self, rt: &Runtime) -> Result<WebSocketCloseInfo, ConnectionError> {
        rt.block_on(async {
            tokio::time::timeout(DEADLINE, self.wss.closed())
                .await
                .expect("closed in time")
        })
    }
}

#[test]
fn once_bridges_stdin_and_the_client_both_ways() {
    let rt = runtime();
    let mut listen = Listen::start(&["--once"]);
    assert!(listen.url.starts_with("ws://127.0.0.1:"), "{}", listen.url);
    let mut client = Client::connect(&rt, &format!("{}/any/path?x=1", listen.url));
    listen.expect_log("[1] connected from 127.0.0.1:");

    client.send(&rt, "from the client");
    assert_eq!(listen.expect_stdout(), "from the client");
    listen.send("from stdin\nsecond line\n");
    assert_eq!(client.recv(&rt).as_deref(), Some("from stdin"));
    assert_eq!(client.recv(&rt).as_deref(), Some("second line"));

    // The end of stdin closes the client cleanly (1000) and ends the process with 0.
    listen.close_stdin();
    assert_eq!(client.recv(&rt), None);
    let info = client.closed(&rt).expect("a clean close");
    assert_eq!(info.close_code, Some(1000));
    assert!(listen.wait().success());
}

#[test]
fn once_exits_0_when_the_client_closes_and_takes_no_other_client() {
    let rt = runtime();
    let mut listen = Listen::start(&["--once"]);
    let mut client = Client::connect(&rt, &listen.url);
    listen.expect_log("[1] connected");
    client.send(&rt, "bye");
    assert_eq!(listen.expect_stdout(), "bye");
    client.close(4000);
    assert_eq!(client.closed(&rt).expect("clean").close_code, Some(4000));
    assert!(listen.wait().success());
    listen.expect_log("[1] closed: code 4000");
    // Nobody listens any more.
    let addr = listen.url.trim_start_matches("ws://");
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn once_exits_1_when_the_client_goes_away_without_a_close() {
    let mut listen = Listen::start(&["--once"]);
    let addr = listen.url.trim_start_matches("ws://").to_owned();
    let mut tcp = TcpStream::connect(&addr).expect("connect");
    write!(
        tcp,
        "GET /raw HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("send the upgrade request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).expect("read the response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    listen.expect_log("[1] connected");
    drop(tcp);
    listen.expect_log("[1] closed uncleanly");
    assert_eq!(listen.wait().code(), Some(1));
}

#[test]
fn stdin_waits_for_the_first_client() {
    let rt = runtime();
    let mut listen = Listen::start(&[]);
    listen.send("typed before anyone connected\n");
    // Read only once a client is there: the first client gets it.
    thread::sleep(Duration::from_millis(100));
    let mut client = Client::connect(&rt, &listen.url);
    assert_eq!(
        client.recv(&rt).as_deref(),
        Some("typed before anyone connected")
    );
    // The end of stdin does not stop the server in this mode.
    listen.close_stdin();
    client.send(&rt, "still served");
    assert_eq!(listen.expect_stdout(), "still served");
    let mut later = Client::connect(&rt, &listen.url);
    later.send(&rt, "me too");
    assert_eq!(listen.expect_stdout(), "me too");
    listen.terminate();
    assert!(listen.wait().success());
}

#[test]
fn sigterm_without_clients_exits_0() {
    let mut listen = Listen::start(&["--broadcast"]);
    listen.terminate();
    assert!(listen.wait().success());
}

#[test]
fn broadcast_reaches_every_client() {
    let rt = runtime();
    let mut listen = Listen::start(&["--broadcast"]);
    let mut one = Client::connect(&rt, &format!("{}/one", listen.url));
    listen.expect_log("[1] connected");
    let mut two = Client::connect(&rt, &format!("{}/two", listen.url));
    listen.expect_log("[2] connected");
    listen.send("to everyone\n");
    assert_eq!(one.recv(&rt).as_deref(), Some("to everyone"));
    assert_eq!(two.recv(&rt).as_deref(), Some("to everyone"));
    // Without --prefix, the messages are printed as they are.
    two.send(&rt, "from two");
    assert_eq!(listen.expect_stdout(), "from two");
    listen.terminate();
    assert!(listen.wait().success());
}

#[test]
fn default_mode_sends_stdin_to_the_most_recent_client_and_prints_every_client() {
    let rt = runtime();
    let mut listen = Listen::start(&["--prefix"]);
    let mut one = Client::connect(&rt, &listen.url);
    listen.expect_log("[1] connected");
    let mut two = Client::connect(&rt, &listen.url);
    listen.expect_log("[2] connected");

    listen.send("for the newest\n");
    assert_eq!(two.recv(&rt).as_deref(), Some("for the newest"));
    one.send(&rt, "hello from one");
    assert_eq!(listen.expect_stdout(), "[1] hello from one");
    two.send(&rt, "hello from two");
    assert_eq!(listen.expect_stdout(), "[2] hello from two");

    // When the newest leaves, the next most recent one gets stdin.
    two.close(1000);
    assert_eq!(two.closed(&rt).expect("clean").close_code, Some(1000));
    listen.expect_log("[2] closed: code 1000");
    listen.send("for the one left\n");
    assert_eq!(one.recv(&rt).as_deref(), Some("for the one left"));
    // One never got the line meant for two: that was the next message.
    listen.terminate();
    assert!(listen.wait().success());
}

#[test]
fn exec_runs_a_command_per_connection() {
    let rt = runtime();
    let mut listen = Listen::start(&[
        "--exec",
        r#"echo "client $WSSTREAM_CLIENT_ID"; while read l; do echo "$l" | tr a-z A-Z; done"#,
    ]);
    let mut one = Client::connect(&rt, &listen.url);
    assert_eq!(one.recv(&rt).as_deref(), Some("client 1"));
    let mut two = Client::connect(&rt, &listen.url);
    assert_eq!(two.recv(&rt).as_deref(), Some("client 2"));
    one.send(&rt, "shout");
    two.send(&rt, "louder");
    assert_eq!(one.recv(&rt).as_deref(), Some("SHOUT"));
    assert_eq!(two.recv(&rt).as_deref(), Some("LOUDER"));
    one.send(&rt, "again");
    assert_eq!(one.recv(&rt).as_deref(), Some("AGAIN"));

    // The client leaving ends its command (EOF on its stdin); the other one goes on.
    one.close(1000);
    assert_eq!(one.closed(&rt).expect("clean").close_code, Some(1000));
    listen.expect_log("[1] closed: code 1000");
    two.send(&rt, "still here");
    assert_eq!(two.recv(&rt).as_deref(), Some("STILL HERE"));
    listen.terminate();
    assert_eq!(two.recv(&rt), None);
    assert_eq!(two.closed(&rt).expect("clean").close_code, Some(1001));
    assert!(listen.wait().success());
}

#[test]
fn exec_closes_cleanly_when_the_command_exits() {
    let rt = runtime();
    let mut listen = Listen::start(&["--exec", "read l; echo \"got $l\"; echo done"]);
    let mut client = Client::connect(&rt, &format!("{}/path", listen.url));
    client.send(&rt, "it");
    assert_eq!(client.recv(&rt).as_deref(), Some("got it"));
    assert_eq!(client.recv(&rt).as_deref(), Some("done"));
    assert_eq!(client.recv(&rt), None);
    assert_eq!(client.closed(&rt).expect("clean").close_code, Some(1000));
    listen.expect_log("[1] closed: code 1000");
    listen.terminate();
    assert!(listen.wait().success());
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let rt = runtime();
    let mut listen = Listen::start(&[]);
    let mut one = Client::connect(&rt, &listen.url);
    listen.expect_log("[1] connected");
    let mut two = Client::connect(&rt, &listen.url);
    listen.expect_log("[2] connected");
    listen.terminate();
    for client in [&mut one, &mut two] {
        assert_eq!(client.recv(&rt), None);
        let info = client.closed(&rt).expect("a clean close");
        assert_eq!(info.close_code, Some(1001));
        assert_eq!(info.reason, "server shutting down");
    }
    assert!(listen.wait().success());
}

#[test]
fn broadcast_disconnects_a_client_whose_queue_is_full() {
    let rt = runtime();
    let mut listen = Listen::start(&["--broadcast", "--queue", "2", "--queue-timeout", "0.5"]);
    // No compression, so the large lines fill the socket buffers as they are.
    let uncompressed = || WebSocketStreamOptions::default().compression(None);
    let slow = Client::connect_with(&rt, &listen.url, uncompressed());
    listen.expect_log("[1] connected");
    let mut fast = Client::connect_with(&rt, &listen.url, uncompressed());
    listen.expect_log("[2] connected");

    // 64 lines of 512 KiB: far more than the slow client's socket buffers hold.
    const LINES: usize = 64;
    let line = "x".repeat(512 * 1024);
    let mut stdin = listen.stdin.take().expect("stdin");
    let writer = thread::spawn(move || {
        for _ in 0..LINES {
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
        stdin
    });
    for n in 0..LINES {
        let got = fast
            .recv(&rt)
            .unwrap_or_else(|| panic!("message {n} missing"));
        assert_eq!(got.len(), 512 * 1024);
    }
    listen.expect_log("[1] too slow (queue of 2 still full after 500ms): disconnecting (1008)");
    listen.stdin = Some(writer.join().expect("the writer thread"));
    // The client that kept up is still connected.
    listen.send("still there?\n");
    assert_eq!(fast.recv(&rt).as_deref(), Some("still there?"));
    drop(slow);
    listen.terminate();
    assert!(listen.wait().success());
}

/// Certificates for this test run, as PEM files in a fresh directory.
struct TlsFiles {
    dir: PathBuf,
}

impl TlsFiles {
    fn new(test: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("listen-tls-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the certificate directory");
        let ca = Ca::new("wsstream listen test CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("write ca.pem");
        fs::write(dir.join("cert.pem"), &leaf.cert_pem).expect("write cert.pem");
        fs::write(dir.join("key.pem"), &leaf.key_pem).expect("write key.pem");
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn wss_with_tls_cert_and_key() {
    let rt = runtime();
    let files = TlsFiles::new("once");
    let mut listen = Listen::start(&[
        "--once",
        "--tls-cert",
        &files.path("cert.pem"),
        "--tls-key",
        &files.path("key.pem"),
    ]);
    assert!(listen.url.starts_with("wss://127.0.0.1:"), "{}", listen.url);
    let mut tls = TlsOptions::default();
    tls.add_root_pem(&fs::read(files.path("ca.pem")).expect("read ca.pem"))
        .expect("the CA");
    let mut client = Client::connect_with(
        &rt,
        &format!("{}/secure", listen.url),
        WebSocketStreamOptions::default().tls(tls),
    );
    listen.expect_log("wss://");
    client.send(&rt, "over tls");
    assert_eq!(listen.expect_stdout(), "over tls");
    listen.send("back over tls\n");
    assert_eq!(client.recv(&rt).as_deref(), Some("back over tls"));
    listen.close_stdin();
    assert_eq!(client.closed(&rt).expect("clean").close_code, Some(1000));
    assert!(listen.wait().success());
}

#[test]
fn binary_hex_and_base64_carry_binary_messages_both_ways() {
    let rt = runtime();
    // (flags, stdin line, the bytes the client receives (empty: the line as text), the
    // bytes the client sends, how stdout prints them)
    type Case = (
        &'static [&'static str],
        &'static str,
        &'static [u8],
        &'static [u8],
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            &["--binary"],
            "raw line",
            b"raw line",
            &[0xff, 0x00],
            "ff00",
        ),
        (
            &["--binary", "--hex"],
            "01 02 ff",
            &[1, 2, 255],
            &[0xca, 0xfe],
            "cafe",
        ),
        (
            &["--binary", "--base64"],
            "aGVsbG8=",
            b"hello",
            b"hi!",
            "aGkh",
        ),
        // Without --binary, input lines are text; received binary still prints as base64.
        (&["--base64"], "plain text", b"", b"\x01\x02", "AQI="),
    ];
    for (flags, line, to_client, from_client, printed) in cases {
        let mut args = vec!["--once"];
        args.extend_from_slice(flags);
        let mut listen = Listen::start(&args);
        let mut client = Client::connect(&rt, &listen.url);
        listen.expect_log("[1] connected");
        listen.send(&format!("{line}\n"));
        let received = rt.block_on(async {
            tokio::time::timeout(DEADLINE, client.reader.read())
                .await
                .expect("a message in time")
                .expect("a message")
                .expect("not the end")
        });
        match received {
            Message::Binary(bytes) => {
                assert!(!to_client.is_empty(), "{flags:?}: binary {bytes:?}");
                assert_eq!(&bytes[..], to_client, "{flags:?}");
            }
            Message::Text(text) => {
                assert!(to_client.is_empty(), "{flags:?}: text {text}");
                assert_eq!(text.as_str(), line, "{flags:?}");
            }
        }
        rt.block_on(client.writer.write(from_client.to_vec()))
            .expect("write");
        assert_eq!(listen.expect_stdout(), printed, "{flags:?}");
        listen.close_stdin();
        assert!(listen.wait().success(), "{flags:?}");
    }
}

#[test]
fn tls_flags_need_each_other() {
    let out = Command::new(BIN)
        .args(["listen", "127.0.0.1:0", "--tls-cert", "cert.pem"])
        .output()
        .expect("run wsstream listen");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn help_describes_the_modes() {
    let out = Command::new(BIN)
        .args(["listen", "--help"])
        .output()
        .expect("run wsstream listen --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--once",
        "--broadcast",
        "--prefix",
        "--queue",
        "--exec",
        "--tls-cert",
    ] {
        assert!(help.contains(flag), "{flag} missing from {help}");
    }
}
