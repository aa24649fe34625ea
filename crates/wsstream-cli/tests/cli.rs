//! End-to-end tests of the `wsstream` binary: `serve`, `connect` and `demo` as separate
//! processes, compared on their output and exit status.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use wsstream_test_support::certs::{Ca, Leaf};
use wsstream_test_support::h2_client::{H2Connection, tls_h2_stream};

const BIN: &str = env!("CARGO_BIN_EXE_wsstream");
/// Generous bound for anything that should take well under a second.
const DEADLINE: Duration = Duration::from_secs(20);

/// Forwards the lines of a child's pipe to a channel, from a thread.
fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the next line, failing the test after [`DEADLINE`].
fn next_line(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("no line from {what}: {e}"))
}

/// `wsstream serve --addr 127.0.0.1:0`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    scheme: &'static str,
    log: Receiver<String>,
}

impl Server {
    fn start() -> Self {
        Self::start_with(&[], "ws")
    }

    /// `wsstream serve --addr 127.0.0.1:0 EXTRA…`, announcing `scheme://ADDR`.
    fn start_with(extra: &[&str], scheme: &'static str) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsstream serve");
        let log = lines_of(child.stderr.take().expect("server stderr"));
        let first = next_line(&log, "wsstream serve");
        let addr = first
            .strip_prefix(&format!("listening on {scheme}://"))
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_owned();
        Self {
            child,
            addr,
            scheme,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Waits for a log line containing `needle`.
    fn expect_log(&self, needle: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Ok(line) = self.log.recv_timeout(Duration::from_millis(100)) {
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("the server never logged {needle:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `wsstream` command with piped stdio.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

/// What a finished command printed.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

impl Run {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsstream");
        let stdin = child.stdin.take();
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    fn send(&mut self, input: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    fn expect_stdout(&self) -> String {
        next_line(&self.stdout, "stdout")
    }

    /// Closes stdin and waits for the exit, killing the process after [`DEADLINE`].
    fn finish(mut self) -> Finished {
        drop(self.stdin.take());
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
        // The pipes close with the process; collect what is left.
        let stdout = self.stdout.iter().collect();
        let stderr: Vec<String> = self.stderr.iter().collect();
        Finished {
            status,
            stdout,
            stderr: stderr.join("\n"),
        }
    }
}

/// Runs a command with `input` on stdin (closed right away, like a pipe) to completion.
fn run(args: &[&str], input: &str) -> Finished {
    let mut run = Run::spawn(args);
    run.send(input);
    run.finish()
}

fn assert_success(out: &Finished) {
    assert!(out.status.success(), "exit {:?}: {out:#?}", out.status);
}

fn assert_failure(out: &Finished) {
    assert!(!out.status.success(), "unexpected success: {out:#?}");
}

// --- demo ---------------------------------------------------------------------------

#[test]
fn demo_prints_the_ping_pong_exchange_and_the_close() {
    let start = Instant::now();
    let out = run(&["demo"], "");
    assert_success(&out);
    let mut expected = vec!["CONNECTED"];
    for _ in 0..3 {
        expected.extend(["SENT: ping", "RECEIVED: pong"]);
    }
    expected.push(r#"DISCONNECTED: code 1000, reason "demo finished""#);
    assert_eq!(out.stdout, expected);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn demo_flags_set_rounds_interval_and_close_info() {
    let out = run(
        &[
            "demo",
            "--rounds",
            "5",
            "--interval",
            "10",
            "--close-code",
            "4000",
            "--close-reason",
            "see you",
        ],
        "",
    );
    assert_success(&out);
    assert_eq!(out.stdout.len(), 1 + 5 * 2 + 1, "{out:#?}");
    assert_eq!(
        out.stdout.iter().filter(|l| *l == "RECEIVED: pong").count(),
        5
    );
    assert_eq!(
        out.stdout.last().map(String::as_str),
        Some(r#"DISCONNECTED: code 4000, reason "see you""#)
    );
}

#[test]
fn demo_runs_against_a_separate_server() {
    let server = Server::start();
    let url = server.url("/pingpong");
    let out = run(
        &["demo", "--url", &url, "--rounds", "1", "--interval", "0"],
        "",
    );
    assert_success(&out);
    assert_eq!(
        out.stdout,
        [
            "CONNECTED",
            "SENT: ping",
            "RECEIVED: pong",
            r#"DISCONNECTED: code 1000, reason "demo finished""#
        ]
    );
    server.expect_log(r#"/pingpong: closed: code 1000, reason "demo finished""#);
}

#[test]
fn demo_rejects_a_close_code_the_application_may_not_send() {
    let out = run(&["demo", "--close-code", "1001"], "");
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("InvalidAccessError"), "{out:#?}");
    assert!(out.stdout.is_empty());
}

// --- connect ------------------------------------------------------------------------

#[test]
fn echo_hi_through_a_pipe() {
    let server = Server::start();
    let out = run(&["connect", &server.url("/echo")], "hi\n");
    assert_success(&out);
    assert_eq!(out.stdout, ["hi"]);
    assert!(
        out.stderr.contains(r#"closed: code 1005, reason """#),
        "{out:#?}"
    );
    server.expect_log("/echo: closed: code 1005");
}

#[test]
fn verbose_logs_the_connections_events_on_stderr() {
    let server = Server::start();
    let out = run(&["-v", "connect", &server.url("/echo")], "hi\n");
    assert_success(&out);
    assert_eq!(out.stdout, ["hi"]);
    // The close event of the wsstream crate, with its code, in the connection's span.
    assert!(
        out.stderr.contains("closed") && out.stderr.contains("code=1005"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("wsstream{"), "{out:#?}");
    // Without -v, nothing of it.
    let quiet = run(&["connect", &server.url("/echo")], "hi\n");
    assert!(!quiet.stderr.contains("code=1005"), "{quiet:#?}");
}

#[test]
fn many_lines_come_back_in_order() {
    let server = Server::start();
    let input: String = (0..500).map(|i| format!("line {i}\n")).collect();
    let out = run(&["connect", &server.url("/echo")], &input);
    assert_success(&out);
    let expected: Vec<String> = (0..500).map(|i| format!("line {i}")).collect();
    assert_eq!(out.stdout, expected);
}

#[test]
fn pingpong_answers_ping_and_echoes_the_rest() {
    let server = Server::start();
    let mut run = Run::spawn(&["connect", &server.url("/pingpong")]);
    run.send("ping\nhello\n");
    assert_eq!(run.expect_stdout(), "pong");
    assert_eq!(run.expect_stdout(), "hello");
    let out = run.finish();
    assert_success(&out);
}

#[test]
fn protocol_flags_are_offered_in_order() {
    let server = Server::start();
    let url = server.url("/protocol");
    let run = Run::spawn(&[
        "connect",
        "--jsonl",
        "--protocol",
        "chat",
        "--protocol",
        "superchat",
        &url,
    ]);
    assert_eq!(
        run.expect_stdout(),
        r#"{"type":"open","protocol":"chat","extensions":"permessage-deflate","http":"HTTP/1.1"}"#
    );
    assert_eq!(run.expect_stdout(), r#"{"type":"text","data":"chat"}"#);
    let out = run.finish();
    assert_success(&out);
    server.expect_log(r#"/protocol: connected (protocol "chat")"#);
}

#[test]
fn protocol_selected_by_the_server_is_reported_on_stderr() {
    let server = Server::start();
    let url = server.url("/protocol");
    let run = Run::spawn(&["connect", "--protocol", "v2.example", &url]);
    assert_eq!(run.expect_stdout(), "v2.example");
    let out = run.finish();
    assert_success(&out);
    assert!(out.stderr.contains(r#"protocol "v2.example""#), "{out:#?}");
}

#[test]
fn header_and_origin_flags_reach_the_server() {
    let server = Server::start();
    let url = server.url("/headers");
    let run = Run::spawn(&[
        "connect",
        "--jsonl",
        "-H",
        "X-Token: s3cret",
        "--header",
        "X-Other:two words",
        "--origin",
        "http://example.test",
        &url,
    ]);
    let _open = run.expect_stdout();
    let headers = run.expect_stdout().to_ascii_lowercase();
    assert!(
        headers.starts_with(r#"{"type":"text","data":""#),
        "{headers}"
    );
    for expected in [
        r"x-token: s3cret\n",
        r"x-other: two words\n",
        r"origin: http://example.test\n",
        r"upgrade: websocket\n",
    ] {
        assert!(
            headers.contains(expected),
            "{expected} missing in {headers}"
        );
    }
    let out = run.finish();
    assert_success(&out);
}

#[test]
fn malformed_header_flag_is_a_usage_error() {
    let out = run(&["connect", "-H", "no colon", "ws://127.0.0.1:9/"], "");
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("Name: value"), "{out:#?}");
}

#[test]
fn timeout_aborts_a_handshake_that_never_completes() {
    // A listener that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let silent = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        // Hold the connection open, silent, until the test is over.
        let _ = done_rx.recv_timeout(DEADLINE);
        drop(stream);
    });
    let start = Instant::now();
    let out = run(
        &["connect", "--timeout", "0.5", &format!("ws://{addr}/slow")],
        "",
    );
    let elapsed = start.elapsed();
    assert_failure(&out);
    assert!(out.stderr.contains("timed out"), "{out:#?}");
    assert!(out.stderr.contains("TimeoutError"), "{out:#?}");
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    drop(done_tx);
    silent.join().expect("listener thread");
}

#[test]
fn binary_hex_round_trip() {
    let server = Server::start();
    let url = server.url("/echo");
    let out = run(
        &["connect", "--binary", "--hex", &url],
        "0102ff\n00\n\nDEADbeef\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["0102ff", "00", "", "deadbeef"]);
    // And they really were binary messages.
    let out = run(
        &["connect", "--binary", "--hex", "--jsonl", &url],
        "0102ff\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout[1], r#"{"type":"binary","hex":"0102ff"}"#);
}

#[test]
fn binary_lines_without_encoding_are_sent_raw_and_printed_as_hex() {
    let server = Server::start();
    let out = run(&["connect", "--binary", &server.url("/echo")], "hello\n");
    assert_success(&out);
    assert_eq!(out.stdout, ["68656c6c6f"]);
}

#[test]
fn bad_hex_line_is_skipped_with_a_warning() {
    let server = Server::start();
    let out = run(
        &["connect", "--binary", "--hex", &server.url("/echo")],
        "zz\n01\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["01"]);
    assert!(out.stderr.contains("line 1 skipped"), "{out:#?}");
}

#[test]
fn base64_output_and_input() {
    let server = Server::start();
    let url = server.url("/echo");
    let out = run(
        &["connect", "--binary", "--base64", &url],
        "AQL/\naGVsbG8=\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["AQL/", "aGVsbG8="]);
    let out = run(
        &["connect", "--binary", "--base64", "--jsonl", &url],
        "AQL/\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout[1], r#"{"type":"binary","base64":"AQL/"}"#);
    // Text messages stay text.
    let out = run(&["connect", "--base64", &url], "plain\n");
    assert_success(&out);
    assert_eq!(out.stdout, ["plain"]);
}

#[test]
fn jsonl_prints_one_object_per_event() {
    let server = Server::start();
    let url = server.url("/echo");
    let out = run(&["connect", "--jsonl", &url], "say \"hi\"\tnow \\ é\n");
    assert_success(&out);
    assert_eq!(
        out.stdout,
        [
            r#"{"type":"open","protocol":"","extensions":"permessage-deflate","http":"HTTP/1.1"}"#,
            r#"{"type":"text","data":"say \"hi\"\tnow \\ é"}"#,
            r#"{"type":"close","code":1005,"reason":""}"#,
        ]
    );
}

#[test]
fn close_code_and_reason_are_sent_and_reflected_by_echo() {
    let server = Server::start();
    let url = server.url("/echo");
    let out = run(
        &[
            "connect",
            "--close-code",
            "4321",
            "--close-reason",
            "see you",
            &url,
        ],
        "x\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["x"]);
    assert!(
        out.stderr
            .contains(r#"closed: code 4321, reason "see you""#),
        "{out:#?}"
    );
    server.expect_log(r#"/echo: closed: code 4321, reason "see you""#);

    let out = run(
        &[
            "connect",
            "--jsonl",
            "--close-reason",
            "only a reason",
            &url,
        ],
        "",
    );
    assert_success(&out);
    assert_eq!(
        out.stdout.last().map(String::as_str),
        Some(r#"{"type":"close","code":1000,"reason":"only a reason"}"#)
    );
}

#[test]
fn linger_delays_the_close_after_the_end_of_stdin() {
    let server = Server::start();
    let url = server.url("/echo");
    let start = Instant::now();
    let out = run(&["connect", "--linger", "800", &url], "");
    assert_success(&out);
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let out = run(&["connect", "--linger", "0", &url], "");
    assert_success(&out);
    assert!(out.stderr.contains("closed: code 1005"), "{out:#?}");
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn invalid_close_code_is_a_usage_error() {
    let out = run(
        &["connect", "--close-code", "1006", "ws://127.0.0.1:9/"],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("InvalidAccessError"), "{out:#?}");
}

#[test]
fn unknown_path_fails_with_the_status() {
    let server = Server::start();
    let out = run(&["connect", &server.url("/nope")], "");
    assert_failure(&out);
    assert!(out.stderr.contains("404"), "{out:#?}");
    assert!(out.stderr.contains("WebSocketError"), "{out:#?}");
    assert!(out.stdout.is_empty());
    server.expect_log("/nope: 404");
}

#[test]
fn unknown_path_in_jsonl_mode_reports_an_error_event() {
    let server = Server::start();
    let out = run(&["connect", "--jsonl", &server.url("/nope")], "");
    assert_failure(&out);
    assert_eq!(out.stdout.len(), 1, "{out:#?}");
    assert!(
        out.stdout[0].starts_with(r#"{"type":"error","code":null,"#),
        "{out:#?}"
    );
    assert!(out.stdout[0].contains("404"), "{out:#?}");
}

#[test]
fn refused_connection_prints_the_cause() {
    // Bind and drop to get a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let out = run(&["connect", &format!("ws://{addr}/")], "");
    assert_failure(&out);
    assert!(out.stderr.contains("caused by"), "{out:#?}");
}

#[test]
fn invalid_url_is_a_usage_error() {
    let out = run(&["connect", "ftp://example.test/"], "");
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("SyntaxError"), "{out:#?}");
}

#[test]
fn unclean_close_exits_non_zero() {
    // Completes the handshake, then drops TCP without a Close frame.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("read request");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let key = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .expect("key");
        let accept = accept_key(&key);
        write!(
            stream,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .expect("write response");
        // One text frame, then an abrupt close.
        stream
            .write_all(&[0x81, 0x02, b'y', b'o'])
            .expect("write frame");
        thread::sleep(Duration::from_millis(100));
        drop(stream);
    });
    let run = Run::spawn(&["connect", &format!("ws://{addr}/")]);
    assert_eq!(run.expect_stdout(), "yo");
    peer.join().expect("peer thread");
    let out = run.finish();
    assert_failure(&out);
    assert!(out.stderr.contains("uncleanly"), "{out:#?}");
    assert!(out.stderr.contains("1006"), "{out:#?}");
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)).
fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let digest = sha1::Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[test]
fn accept_key_matches_the_rfc_example() {
    // RFC 6455 §1.3.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

// --- serve: HTTP ---------------------------------------------------------------------

fn http_get(addr: &str, path: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn get_of_the_root_serves_the_demo_page() {
    let server = Server::start();
    for path in ["/", "/index.html", "/?interval=50"] {
        let response = http_get(&server.addr, path, "");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Type: text/html"), "{response}");
        let body = response.split_once("\r\n\r\n").expect("head").1;
        assert!(body.contains("WebSocketStream"), "{body}");
        assert!(body.contains("/pingpong"), "{body}");
        assert!(body.contains(r#"closeCode: 1000, reason: "closed from the page""#));
        assert!(body.contains("DISCONNECTED: code"), "{body}");
    }
    server.expect_log("GET /: 200");
}

#[test]
fn plain_get_of_other_paths() {
    let server = Server::start();
    let response = http_get(&server.addr, "/missing", "");
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    // A WebSocket endpoint without the upgrade headers is refused by wsstream.
    let response = http_get(&server.addr, "/echo", "");
    assert!(response.starts_with("HTTP/1.1 4"), "{response}");
}

#[test]
fn oversized_request_head_is_refused() {
    let server = Server::start();
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    // The server may stop reading (and reset) before all of it is written.
    let _ = write!(stream, "GET / HTTP/1.1\r\nHost: x\r\n{big}\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
}

#[test]
fn a_client_that_trickles_its_request_is_cut_off_after_10_s() {
    let server = Server::start();
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .expect("read timeout");
    let start = Instant::now();
    // One byte every 250 ms: the head would take far longer than 10 s to arrive.
    let head = b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let mut cut_off = None;
    for byte in head.iter().cycle().take(120) {
        if stream.write_all(&[*byte]).is_err() {
            cut_off = Some(start.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {
                panic!(
                    "unexpected response {:?}",
                    String::from_utf8_lossy(&buf[..n])
                )
            }
            // Nothing yet: the read timed out.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // End of stream or a reset: cut off.
            Ok(_) | Err(_) => {
                cut_off = Some(start.elapsed());
                break;
            }
        }
    }
    let cut_off = cut_off.expect("the server kept the trickling connection open");
    assert!(
        cut_off >= Duration::from_secs(9) && cut_off < Duration::from_secs(15),
        "{cut_off:?}"
    );
    server.expect_log("no complete request within 10 s: closed");
}

// --- TLS ----------------------------------------------------------------------------

/// Certificates generated for this test run, written as PEM files into a fresh directory.
struct TlsFiles {
    dir: PathBuf,
    ca: Ca,
}

impl TlsFiles {
    /// `ca.pem` (a test CA), `cert.pem` + `key.pem` (its leaf for localhost and
    /// 127.0.0.1), `other-key.pem` (a key that matches nothing).
    fn new(test: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-tls-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the certificate directory");
        let ca = Ca::new("wsstream CLI test CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        let other = Leaf::self_signed(&["localhost"]);
        fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("write ca.pem");
        fs::write(dir.join("cert.pem"), &leaf.cert_pem).expect("write cert.pem");
        fs::write(dir.join("key.pem"), &leaf.key_pem).expect("write key.pem");
        fs::write(dir.join("other-key.pem"), &other.key_pem).expect("write other-key.pem");
        Self { dir, ca }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn server(&self) -> Server {
        Server::start_with(
            &[
                "--tls-cert",
                &self.path("cert.pem"),
                "--tls-key",
                &self.path("key.pem"),
            ],
            "wss",
        )
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn serve_over_tls_and_connect_with_the_ca() {
    let files = TlsFiles::new("echo");
    let server = files.server();
    let out = run(
        &[
            "connect",
            "--ca",
            &files.path("ca.pem"),
            &server.url("/echo"),
        ],
        "hi\nover tls\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["hi", "over tls"]);
    // localhost and https:// work too.
    let port = server.addr.rsplit(':').next().expect("port");
    let out = run(
        &[
            "connect",
            "--ca",
            &files.path("ca.pem"),
            &format!("https://localhost:{port}/pingpong"),
        ],
        "ping\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["pong"]);
    assert!(
        out.stderr
            .contains(&format!("connected to wss://localhost:{port}/pingpong")),
        "{out:#?}"
    );
}

#[test]
fn connect_http_chooses_http2_or_http11() {
    let files = TlsFiles::new("http-version");
    let server = files.server();
    let ca = files.path("ca.pem");
    let url = server.url("/echo");
    // auto and 2: wsstream serve allows WebSockets over HTTP/2 (RFC 8441).
    for http in ["auto", "2"] {
        let out = run(&["connect", "--ca", &ca, "--http", http, &url], "over h2\n");
        assert_success(&out);
        assert_eq!(out.stdout, ["over h2"], "--http {http}");
        assert!(
            out.stderr
                .contains(&format!("connected to {url} over HTTP/2")),
            "--http {http}: {out:#?}"
        );
    }
    let out = run(
        &["connect", "--ca", &ca, "--http", "1.1", &url],
        "over h1\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["over h1"]);
    assert!(!out.stderr.contains("HTTP/2"), "{out:#?}");
    // --jsonl names the version in its open event.
    let out = run(
        &["connect", "--ca", &ca, "--http", "2", "--jsonl", &url],
        "x\n",
    );
    assert_success(&out);
    assert!(
        out.stdout[0].contains(r#""http":"HTTP/2""#),
        "{:?}",
        out.stdout
    );
    // Over ws://, --http 2 speaks HTTP/2 from the first byte (prior knowledge).
    let plain = Server::start();
    let out = run(&["connect", "--http", "2", &plain.url("/echo")], "h2c\n");
    assert_success(&out);
    assert_eq!(out.stdout, ["h2c"]);
    assert!(out.stderr.contains("over HTTP/2"), "{out:#?}");
}

/// Runs the Node.js HTTP/2 WebSocket client (three extended CONNECT streams on one
/// connection: one closed with a WebSocket Close, one reset, one kept echoing) against
/// `url`; `false` when `node` is not installed (outside CI).
fn node_h2_client(url: &str) -> bool {
    if !wsstream_test_support::node::available("the HTTP/2 test of wsstream serve") {
        return false;
    }
    let mut child = Command::new("node")
        .arg(wsstream_test_support::node::h2_websocket_client())
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let stdout = lines_of(child.stdout.take().expect("node stdout"));
    let stderr = lines_of(child.stderr.take().expect("node stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            // Stop the client we started before failing.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node client hung");
        }
        thread::sleep(Duration::from_millis(20));
    };
    // The pipes end with the process: every line arrives before the channels close.
    let out: Vec<String> = stdout.iter().collect();
    let err: Vec<String> = stderr.iter().collect();
    assert!(status.success(), "node: {status}, {out:?}, {err:?}");
    assert_eq!(out, ["ok"], "{err:?}");
    true
}

#[test]
fn serve_over_tls_accepts_websockets_over_http2() {
    let files = TlsFiles::new("http2");
    let server = files.server();
    if !node_h2_client(&format!("https://{}/echo", server.addr)) {
        return;
    }
    server.expect_log("/echo: connected over HTTP/2");
    server.expect_log("/echo: closed: code 1000, reason \"bye\"");
    server.expect_log("/echo: closed uncleanly");
    server.expect_log("/echo: closed: code 1000, reason \"done\"");
    // HTTP/1.1 clients keep working on the same server (ALPN http/1.1 or none).
    let out = run(
        &[
            "connect",
            "--ca",
            &files.path("ca.pem"),
            &server.url("/echo"),
        ],
        "still http/1.1\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["still http/1.1"]);
}

/// The `h2` crate as the client (no Node.js needed): the SETTINGS of `wsstream serve`
/// enable extended CONNECT (RFC 8441 §3) over TLS (ALPN h2) and in cleartext (prior
/// knowledge); WebSocket routes answer `200`, the page is served on the same connection.
#[test]
fn serve_announces_extended_connect_and_answers_websockets_with_200_over_http2() {
    let files = TlsFiles::new("h2-client");
    let tls = files.server();
    let plain = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let connections = [
            H2Connection::tls(&tls.addr, files.ca.cert_der(), "localhost").await,
            H2Connection::cleartext(&plain.addr).await,
        ];
        for mut h2 in connections {
            assert!(h2.extended_connect_enabled(), "{h2:?}");
            let mut echo = h2.websocket("/echo", &[]).await;
            let mut protocol = h2
                .websocket("/protocol", &[("sec-websocket-protocol", "chat")])
                .await;
            assert_eq!(echo.response.status(), 200);
            assert!(!echo.response.headers().contains_key("sec-websocket-accept"));
            assert_eq!(protocol.response.status(), 200);
            assert_eq!(
                protocol.response.headers()["sec-websocket-protocol"],
                "chat"
            );
            let greeting = protocol.read().await.expect("the protocol's name");
            assert_eq!(greeting.text(), Some("chat"));
            echo.echoes("over HTTP/2").await;
            echo.close(1000, "bye").await;
            protocol.echoes("still here").await;
            let page = wsstream::http::Request::get(format!("{}://{}/", h2.scheme, h2.authority))
                .body(())
                .expect("a request");
            let (response, body) = h2.request(page).await;
            assert_eq!(response.status(), 200);
            assert!(!response.headers().contains_key("connection"));
            assert!(String::from_utf8_lossy(&body).contains("WebSocketStream"));
            protocol.close(1000, "").await;
            h2.driver.abort();
        }
    });
    tls.expect_log("/echo: connected over HTTP/2");
    plain.expect_log("/protocol: connected over HTTP/2 (protocol \"chat\")");
}

/// A client that completes TLS with ALPN `h2` and then sends nothing (no HTTP/2
/// preface) is closed after 10 s, like a slowloris client of HTTP/1.1.
#[test]
fn a_tls_client_that_picks_h2_and_sends_nothing_is_closed_after_10_s() {
    use tokio::io::AsyncReadExt;
    let files = TlsFiles::new("h2-silent");
    let server = files.server();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cut_off = runtime.block_on(async {
        let mut tls = tls_h2_stream(&server.addr, files.ca.cert_der(), "localhost").await;
        let start = Instant::now();
        let mut buf = [0; 1024];
        // The server may send its SETTINGS first; then it closes at the deadline.
        loop {
            match tokio::time::timeout(DEADLINE, tls.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break start.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("the server kept the silent HTTP/2 connection open"),
            }
        }
    });
    assert!(
        cut_off >= Duration::from_secs(9) && cut_off < Duration::from_secs(15),
        "{cut_off:?}"
    );
    server.expect_log("no HTTP/2 connection preface within 10 s: closed");
}

#[test]
fn serve_in_cleartext_accepts_websockets_over_http2_with_prior_knowledge() {
    let server = Server::start();
    if !node_h2_client(&format!("http://{}/echo", server.addr)) {
        return;
    }
    server.expect_log("/echo: connected over HTTP/2");
    server.expect_log("/echo: closed uncleanly");
    let out = run(&["connect", &server.url("/echo")], "plain\n");
    assert_success(&out);
    assert_eq!(out.stdout, ["plain"]);
}

#[test]
fn connect_without_the_ca_fails_with_the_tls_reason() {
    let files = TlsFiles::new("unknown-ca");
    let server = files.server();
    let out = run(&["connect", &server.url("/echo")], "hi\n");
    assert_failure(&out);
    assert!(out.stderr.contains("TLS handshake failed"), "{out:#?}");
    assert!(out.stderr.contains("UnknownIssuer"), "{out:#?}");
    server.expect_log("TLS handshake failed");
}

#[test]
fn plain_ws_client_against_the_tls_server_fails() {
    let files = TlsFiles::new("plain");
    let server = files.server();
    // A plain-text WebSocket client against the TLS server fails, and the server says why.
    let out = run(&["connect", &format!("ws://{}/echo", server.addr)], "");
    assert_failure(&out);
    server.expect_log("TLS handshake failed");
}

#[test]
fn ca_file_that_is_missing_or_not_pem_is_a_usage_error() {
    let files = TlsFiles::new("bad-ca");
    let missing = files.path("missing.pem");
    let out = run(&["connect", "--ca", &missing, "wss://localhost:1/"], "");
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("missing.pem"), "{out:#?}");
    let out = run(
        &[
            "connect",
            "--ca",
            &files.path("key.pem"),
            "wss://localhost:1/",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("no CERTIFICATE"), "{out:#?}");
}

#[test]
fn serve_tls_flags_need_each_other_and_a_matching_key() {
    let files = TlsFiles::new("bad-serve");
    let out = run(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            &files.path("cert.pem"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
    let out = run(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            &files.path("cert.pem"),
            "--tls-key",
            &files.path("other-key.pem"),
        ],
        "",
    );
    assert_failure(&out);
    assert!(out.stderr.contains("for TLS"), "{out:#?}");
}

/// A one-connection HTTP CONNECT proxy on a thread: answers 200 to the CONNECT and
/// relays both ways. Returns its address and the CONNECT request line it received.
fn one_shot_connect_proxy() -> (String, Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy addr").to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let line = head.lines().next().unwrap_or_default().to_owned();
        let _ = tx.send(line.clone());
        let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
        let Ok(server) = TcpStream::connect(&target) else {
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
        let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        let up = thread::spawn(move || {
            let _ = std::io::copy(&mut client_r, &mut server_w);
            let _ = server_w.shutdown(std::net::Shutdown::Write);
        });
        let (mut server_r, mut client_w) = (server, client);
        let _ = std::io::copy(&mut server_r, &mut client_w);
        let _ = client_w.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
    (addr, rx)
}

#[test]
fn proxy_flag_tunnels_through_an_http_connect_proxy() {
    let server = Server::start();
    let (proxy, requests) = one_shot_connect_proxy();
    let out = run(
        &[
            "connect",
            "--proxy",
            &format!("http://{proxy}"),
            &server.url("/echo"),
        ],
        "hi\n",
    );
    assert_success(&out);
    assert_eq!(out.stdout, ["hi"]);
    let line = requests.recv_timeout(DEADLINE).expect("a CONNECT request");
    assert_eq!(line, format!("CONNECT {} HTTP/1.1", server.addr));
}

#[test]
fn proxy_flag_with_an_unreachable_proxy_is_a_clear_error() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let out = run(
        &[
            "connect",
            "--proxy",
            &format!("http://{closed}"),
            "ws://127.0.0.1:9/",
        ],
        "",
    );
    assert_failure(&out);
    assert!(
        out.stderr
            .contains(&format!("cannot connect to the proxy http://{closed}")),
        "{out:#?}"
    );
    // --proxy and --no-proxy contradict each other: a usage error.
    let out = run(
        &["connect", "--proxy", "http://p:1", "--no-proxy", "ws://h/"],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{out:#?}");
}

#[test]
fn handshake_timeout_flag_fails_a_handshake_that_never_completes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let silent = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let _ = done_rx.recv_timeout(DEADLINE);
        drop(stream);
    });
    let start = Instant::now();
    let out = run(
        &[
            "connect",
            "--handshake-timeout",
            "0.5",
            "--no-proxy",
            "--max-redirects",
            "2",
            "--ping-interval",
            "1",
            "--ping-timeout",
            "1",
            "--tcp-keepalive",
            "30",
            &format!("ws://{addr}/slow"),
        ],
        "",
    );
    let elapsed = start.elapsed();
    assert_failure(&out);
    assert!(out.stderr.contains("timed out after 500ms"), "{out:#?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    drop(done_tx);
    silent.join().expect("listener thread");
}

#[test]
fn no_compression_offers_no_extension() {
    let server = Server::start();
    let url = server.url("/echo");
    let out = run(&["connect", "--jsonl", "--no-compression", &url], "x\n");
    assert_success(&out);
    assert_eq!(
        out.stdout[0],
        r#"{"type":"open","protocol":"","extensions":"","http":"HTTP/1.1"}"#
    );
}
