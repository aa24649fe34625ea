//! End-to-end tests of `wsstream bench`: the built binary against `wsstream serve` (a
//! separate process on 127.0.0.1 port 0) or against small in-process servers built on
//! `wsstream::server` that misbehave on purpose. Timing assertions are loose: the machine
//! may be busy.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wsstream::server::ServerOptions;
use wsstream::{Message, WebSocketStream};
use wsstream_test_support::faults::Faults;

const BIN: &str = env!("CARGO_BIN_EXE_wsstream");
/// Bound for a whole run; every run here is meant to take a few seconds at most.
const DEADLINE: Duration = Duration::from_secs(60);

/// `wsstream serve --addr 127.0.0.1:0`, killed (by its PID) when dropped. Its stderr is
/// drained by a thread so its per-connection log never blocks it.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// `wsstream serve` with extra arguments (`--tls-cert`, `--tls-key`).
    fn start_with(extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsstream serve");
        let stderr = child.stderr.take().expect("server stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = rx.recv_timeout(DEADLINE).expect("the server's first line");
        let addr = first
            .strip_prefix("listening on ws://")
            .or_else(|| first.strip_prefix("listening on wss://"))
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Self { child, addr }
    }

    fn echo(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished `wsstream bench`.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Finished {
    fn json(&self) -> Json {
        parse_json(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Runs `wsstream bench ARGS…` to completion (killed after [`DEADLINE`]).
fn bench(args: &[&str]) -> Finished {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsstream bench");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsstream bench {args:?} did not exit within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    Finished {
        status,
        stdout: stdout.join().expect("stdout thread"),
        stderr: stderr.join().expect("stderr thread"),
        took,
    }
}

fn assert_success(out: &Finished) {
    assert!(out.status.success(), "exit {:?}: {out:#?}", out.status);
}

// --- a small JSON parser (the workspace has no serde_json) ---------------------------

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Self>),
    Object(BTreeMap<String, Self>),
}

impl Json {
    fn get(&self, key: &str) -> &Self {
        match self {
            Self::Object(map) => map
                .get(key)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    fn num(&self, key: &str) -> f64 {
        match self.get(key) {
            Self::Number(n) => *n,
            other => panic!("{key} is not a number: {other:?}"),
        }
    }

    fn count(&self, key: &str) -> u64 {
        let n = self.num(key);
        assert!(n >= 0.0 && n.fract() == 0.0, "{key} = {n} is not a count");
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = n as u64;
        n
    }
}

fn parse_json(text: &str) -> Result<Json, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value()?;
    parser.space();
    if parser.at != parser.bytes.len() {
        return Err(format!("trailing characters at {}", parser.at));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<(), String> {
        self.space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", char::from(byte), self.at))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.space();
        match self.bytes.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut map = BTreeMap::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Json::Object(map));
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    self.eat(b':')?;
                    let value = self.value()?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(format!("duplicate key {key:?}"));
                    }
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Object(map));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.at)),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.at)),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => {
                let start = self.at;
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    self.at += 1;
                }
                let text =
                    std::str::from_utf8(&self.bytes[start..self.at]).map_err(|e| e.to_string())?;
                text.parse()
                    .map(Json::Number)
                    .map_err(|_| format!("bad number {text:?} at {start}"))
            }
            None => Err("unexpected end".to_owned()),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.at));
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.bytes.get(self.at) {
                None => return Err("unterminated string".to_owned()),
                Some(b'"') => {
                    self.at += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                Some(b'\\') => {
                    let escaped = *self.bytes.get(self.at + 1).ok_or("bad escape")?;
                    self.at += 2;
                    match escaped {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self.bytes.get(self.at..self.at + 4).ok_or("bad \\u")?;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            self.at += 4;
                            let c = char::from_u32(code).unwrap_or('\u{fffd}');
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                Some(&b) => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }
}

#[test]
fn the_json_parser_parses() {
    let json = parse_json(r#" {"a": [1, -2.5e3, true, null], "b": "x\"\u00e9"} "#).unwrap();
    assert_eq!(json.get("b"), &Json::String("x\"é".into()));
    assert!(parse_json("{").is_err());
    assert!(parse_json("{} x").is_err());
}

// --- in-process servers -----------------------------------------------------------

/// A tokio runtime serving one kind of misbehaving server on 127.0.0.1:0; dropped with
/// the test (which ends its tasks).
struct InProcess {
    _runtime: tokio::runtime::Runtime,
    url: String,
}

/// What an in-process server does.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Echoes until it has read `n` bytes, then resets the TCP connection (no Close).
    ResetAfterRead(u64),
    /// Answers every message with a different one.
    WrongReplies,
    /// Echoes, but stops reading for 600 ms after the 40th message of each connection.
    StallOnce,
    /// Refuses (403) a handshake without the subprotocol `bench.v1` and the header
    /// `X-Bench: yes`; accepts `bench.v1` and echoes otherwise.
    RequireProtocolAndHeader,
    /// Echoes the first `n` messages of each connection and ignores the rest.
    EchoOnly(u32),
}

fn in_process(misbehaviour: Misbehaviour) -> InProcess {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let url = format!("ws://{}/echo", listener.local_addr().expect("local addr"));
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let options = ServerOptions::default();
                let wss = match misbehaviour {
                    Misbehaviour::ResetAfterRead(n) => {
                        wsstream::server::accept(
                            Faults::new().reset_after_read(n).wrap(tcp),
                            options,
                        )
                        .await
                    }
                    Misbehaviour::RequireProtocolAndHeader => {
                        let Ok(upgrade) = wsstream::server::read_request(tcp).await else {
                            return;
                        };
                        let request = upgrade.request();
                        let offered = request.protocols.iter().any(|p| p == "bench.v1");
                        let header = request.headers.iter().any(|(name, value)| {
                            name.eq_ignore_ascii_case("x-bench") && value == b"yes"
                        });
                        if !(offered && header) {
                            let _ = upgrade
                                .reject(403, "Forbidden", "bench.v1 and X-Bench: yes, please")
                                .await;
                            return;
                        }
                        upgrade.accept(Some("bench.v1"), options).await
                    }
                    Misbehaviour::WrongReplies
                    | Misbehaviour::StallOnce
                    | Misbehaviour::EchoOnly(_) => wsstream::server::accept(tcp, options).await,
                };
                let Ok(wss) = wss else { return };
                serve(wss, misbehaviour).await;
            });
        }
    });
    InProcess {
        _runtime: runtime,
        url,
    }
}

async fn serve(wss: WebSocketStream, misbehaviour: Misbehaviour) {
    let Ok(info) = wss.opened().await else { return };
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    let mut count = 0u32;
    while let Ok(Some(message)) = reader.read().await {
        count += 1;
        let reply = match misbehaviour {
            Misbehaviour::StallOnce if count == 40 => {
                tokio::time::sleep(Duration::from_millis(600)).await;
                message
            }
            Misbehaviour::EchoOnly(n) if count > n => continue,
            Misbehaviour::ResetAfterRead(_)
            | Misbehaviour::StallOnce
            | Misbehaviour::RequireProtocolAndHeader
            | Misbehaviour::EchoOnly(_) => message,
            Misbehaviour::WrongReplies => Message::from("not what you sent, not at all"),
        };
        if writer.write(reply).await.is_err() {
            break;
        }
    }
    let _ = wss.closed().await;
}

// --- the tests ------------------------------------------------------------------

#[test]
fn bench_m_sends_exactly_that_many_messages() {
    let server = Serve::start();
    let out = bench(&[
        &server.echo(),
        "-c",
        "3",
        "-m",
        "1000",
        "--pipeline",
        "4",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    let json = out.json();
    assert_eq!(json.count("sent"), 1000, "{json:?}");
    assert_eq!(json.count("received"), 1000, "{json:?}");
    assert_eq!(json.count("mismatched"), 0);
    assert_eq!(json.count("unanswered"), 0);
    assert_eq!(json.count("bytes_sent"), 32_000);
    assert_eq!(json.count("bytes_received"), 32_000);
    assert_eq!(json.get("rtt_us").count("count"), 1000);
    assert_eq!(json.count("clean_closes"), 3);
    assert_eq!(json.get("ok"), &Json::Bool(true));
}

#[test]
fn bench_d_stops_in_time() {
    let server = Serve::start();
    let out = bench(&[&server.echo(), "-d", "1s", "--json", "-q"]);
    assert_success(&out);
    let json = out.json();
    let elapsed = json.num("elapsed_s");
    assert!((0.9..5.0).contains(&elapsed), "elapsed {elapsed}: {json:?}");
    // The process: the phase, the handshake and the close; generous for a busy machine.
    assert!(out.took < Duration::from_secs(15), "took {:?}", out.took);
    assert!(json.count("sent") > 0);
    assert_eq!(json.count("sent"), json.count("received"));
    assert_eq!(json.get("duration_s"), &Json::Number(1.0));
}

#[test]
fn bench_json_has_every_key_and_sent_equals_received() {
    let server = Serve::start();
    let out = bench(&[&server.echo(), "-c", "2", "-m", "200", "--json", "-q"]);
    assert_success(&out);
    // One JSON object, nothing else on stdout.
    assert_eq!(out.stdout.trim().lines().count(), 1, "{out:#?}");
    let json = out.json();
    for key in [
        "url",
        "connections",
        "size",
        "binary",
        "compression",
        "pipeline",
        "rate",
        "duration_s",
        "messages",
        "elapsed_s",
        "opened",
        "opened_http2",
        "failed",
        "handshake_ms",
        "clean_closes",
        "unclean_closes",
        "closed_by_server",
        "sent",
        "received",
        "mismatched",
        "unanswered",
        "bytes_sent",
        "bytes_received",
        "sent_per_s",
        "received_per_s",
        "sent_mb_per_s",
        "received_mb_per_s",
        "rtt_us",
        "latency_us",
        "errors",
        "ok",
    ] {
        json.get(key);
    }
    assert_eq!(json.get("url"), &Json::String(server.echo()));
    assert_eq!(json.count("connections"), 2);
    assert_eq!(json.count("opened"), 2);
    assert_eq!(json.count("failed"), 0);
    assert_eq!(json.get("compression"), &Json::Bool(false));
    assert_eq!(
        json.get("latency_us"),
        &Json::Null,
        "no -r: no corrected latency"
    );
    assert_eq!(json.get("errors"), &Json::Array(Vec::new()));
    assert_eq!(json.count("sent"), 200);
    assert_eq!(json.count("sent"), json.count("received"));
    let handshake = json.get("handshake_ms");
    assert!(handshake.num("p50") > 0.0 && handshake.num("p50") <= handshake.num("max"));
    let rtt = json.get("rtt_us");
    let (p50, p90, p99, p999, max) = (
        rtt.num("p50"),
        rtt.num("p90"),
        rtt.num("p99"),
        rtt.num("p99_9"),
        rtt.num("max"),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{rtt:?}"
    );
    assert!(json.num("received_per_s") > 0.0);
}

#[test]
fn bench_r_holds_roughly_the_rate() {
    let server = Serve::start();
    let out = bench(&[
        &server.echo(),
        "-c",
        "2",
        "-r",
        "200",
        "-d",
        "2s",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    let json = out.json();
    // 200/s for 2 s: 400 on schedule; a loose bound, never a tight timing assertion.
    let sent = json.count("sent");
    assert!((200..=600).contains(&sent), "sent {sent}: {json:?}");
    let rate = json.num("sent_per_s");
    assert!((100.0..=300.0).contains(&rate), "rate {rate}: {json:?}");
    assert_eq!(sent, json.count("received"));
    assert_eq!(json.get("pipeline"), &Json::Null);
    assert_eq!(json.num("rate"), 200.0);
    // The corrected latency is measured from the intended send time: never below the
    // round trip from the actual send.
    let latency = json.get("latency_us");
    assert_eq!(latency.count("count"), sent);
    assert!(
        latency.num("p50") >= json.get("rtt_us").num("p50") * 0.999,
        "{json:?}"
    );
}

#[test]
fn bench_r_charges_a_stall_to_every_message_scheduled_during_it() {
    // The server stalls 600 ms once. In a closed loop (one in flight) only the message
    // that was waiting sees it: a handful of samples. On a fixed schedule of 100/s, the
    // ~60 messages due during the stall are all late, so p90 of the latency from the
    // intended send time reflects the stall (coordinated omission corrected).
    let server = in_process(Misbehaviour::StallOnce);
    let closed = bench(&[&server.url, "-m", "150", "--json", "-q"]);
    assert_success(&closed);
    let closed = closed.json();
    assert!(closed.get("rtt_us").num("max") >= 500_000.0, "{closed:?}");
    assert!(closed.get("rtt_us").num("p90") < 300_000.0, "{closed:?}");
    let fixed = bench(&[&server.url, "-r", "100", "-m", "150", "--json", "-q"]);
    assert_success(&fixed);
    let fixed = fixed.json();
    assert!(fixed.get("latency_us").num("p90") >= 100_000.0, "{fixed:?}");
    assert!(fixed.get("latency_us").num("max") >= 500_000.0, "{fixed:?}");
}

#[test]
fn bench_four_connections_all_open_and_close_cleanly() {
    let server = Serve::start();
    // Four connections on three client threads (two share one).
    let out = bench(&[
        &server.echo(),
        "-c",
        "4",
        "-t",
        "3",
        "-m",
        "401",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    let json = out.json();
    assert_eq!(json.count("opened"), 4);
    assert_eq!(json.count("clean_closes"), 4);
    assert_eq!(json.count("unclean_closes"), 0);
    assert_eq!(
        json.count("sent"),
        401,
        "401 split over 4 connections (101, 100, 100, 100)"
    );
    assert_eq!(json.count("received"), 401);
}

#[test]
fn bench_binary_messages_of_a_suffixed_size() {
    let server = Serve::start();
    let out = bench(&[
        &server.echo(),
        "--binary",
        "-s",
        "1k",
        "-m",
        "200",
        "--pipeline",
        "8",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    let json = out.json();
    assert_eq!(json.get("binary"), &Json::Bool(true));
    assert_eq!(json.count("size"), 1024);
    assert_eq!(json.count("received"), 200);
    assert_eq!(json.count("bytes_received"), 200 * 1024);
    assert_eq!(json.count("mismatched"), 0);
}

#[test]
fn bench_with_compression_on() {
    let server = Serve::start();
    let out = bench(&[
        &server.echo(),
        "--compression",
        "on",
        "-s",
        "4k",
        "-m",
        "100",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    let json = out.json();
    assert_eq!(json.get("compression"), &Json::Bool(true));
    assert_eq!(json.count("received"), 100);
}

#[test]
fn bench_prints_a_table_and_progress() {
    let server = Serve::start();
    let out = bench(&[&server.echo(), "-c", "2", "-d", "6s", "-r", "100"]);
    assert_success(&out);
    for needle in [
        "wsstream bench ws://",
        "2 connections, 32 B text messages, rate 100 msg/s, compression off",
        "2 opened, 0 failed; handshake p50",
        "2 clean, 0 unclean, 0 closed by the server",
        "mismatched 0, unanswered 0",
        "p99.9",
        "round trip",
        "latency (*)",
        "coordinated omission",
    ] {
        assert!(
            out.stdout.contains(needle),
            "no {needle:?} in {}",
            out.stdout
        );
    }
    // stderr is not a terminal here: one progress line every 5 s.
    assert!(
        out.stderr.contains(" open  sent "),
        "no progress line: {out:#?}"
    );
}

#[test]
fn bench_counts_a_server_that_resets_as_unclean_and_fails() {
    let server = in_process(Misbehaviour::ResetAfterRead(2_000));
    let out = bench(&[&server.url, "-c", "2", "-d", "3s", "--json", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let json = out.json();
    assert_eq!(json.count("opened"), 2);
    assert_eq!(json.count("unclean_closes"), 2, "{json:?}");
    assert_eq!(json.count("clean_closes"), 0);
    assert_eq!(json.get("ok"), &Json::Bool(false));
    // Every send is accounted for: echoed, or unanswered when the connection died.
    assert_eq!(
        json.count("sent"),
        json.count("received") + json.count("mismatched") + json.count("unanswered")
    );
    assert!(out.took < Duration::from_secs(20), "took {:?}", out.took);
    assert!(out.stderr.contains("2 closed uncleanly"), "{}", out.stderr);
    let Json::Array(errors) = json.get("errors") else {
        panic!("errors is not an array");
    };
    let Json::String(message) = errors[0].get("message") else {
        panic!("no message");
    };
    assert!(message.starts_with("closed uncleanly"), "{message}");
}

#[test]
fn bench_counts_mismatched_echoes_and_fails() {
    let server = in_process(Misbehaviour::WrongReplies);
    let out = bench(&[&server.url, "-m", "50", "--json", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let json = out.json();
    assert_eq!(json.count("sent"), 50);
    assert_eq!(json.count("received"), 0);
    assert_eq!(json.count("mismatched"), 50);
    assert_eq!(json.count("unanswered"), 0);
    assert_eq!(json.count("clean_closes"), 1);
    assert_eq!(json.get("rtt_us"), &Json::Null);
    assert!(
        out.stderr.contains("50 echoes did not match"),
        "{}",
        out.stderr
    );
}

#[test]
fn bench_reports_connections_that_cannot_open() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let out = bench(&[&url, "-c", "2", "-m", "10", "--json", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let json = out.json();
    assert_eq!(json.count("failed"), 2);
    assert_eq!(json.count("opened"), 0);
    assert_eq!(json.count("sent"), 0);
    assert!(
        out.stderr.contains("2 of 2 connections failed to open"),
        "{}",
        out.stderr
    );
}

#[test]
fn bench_long_flags_connections_messages_size_threads_quiet() {
    let server = Serve::start();
    let out = bench(&[
        &server.echo(),
        "--connections",
        "4",
        "--messages",
        "200",
        "--size",
        "1k",
        "--threads",
        "2",
        "--binary",
        "--json",
        "--quiet",
    ]);
    assert_success(&out);
    let json = out.json();
    assert_eq!(json.count("connections"), 4);
    assert_eq!(json.count("size"), 1024);
    assert_eq!(json.count("received"), 200, "{json:?}");
    assert_eq!(json.count("bytes_received"), 200 * 1024);
    assert_eq!(json.count("clean_closes"), 4);
    // --quiet: no progress line; the only stderr output would be a problem report.
    assert!(out.stderr.trim().is_empty(), "{}", out.stderr);
}

#[test]
fn bench_long_flags_rate_and_duration() {
    let server = Serve::start();
    let out = bench(&[
        &server.echo(),
        "--rate",
        "200",
        "--duration",
        "1s",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    let json = out.json();
    assert_eq!(json.get("duration_s"), &Json::Number(1.0));
    assert_eq!(json.get("rate"), &Json::Number(200.0));
    let sent = json.count("sent");
    assert!((100..=260).contains(&sent), "sent {sent}: {json:?}");
    assert_eq!(json.count("received"), sent);
}

#[test]
fn bench_protocol_and_header_reach_the_server() {
    let server = in_process(Misbehaviour::RequireProtocolAndHeader);
    let out = bench(&[
        &server.url,
        "--protocol",
        "bench.v1",
        "-H",
        "X-Bench: yes",
        "-m",
        "20",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    assert_eq!(out.json().count("received"), 20);

    // Without the header the server refuses the handshake, and the run says why.
    let out = bench(&[
        &server.url,
        "--protocol",
        "bench.v1",
        "-m",
        "20",
        "--json",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let json = out.json();
    assert_eq!(json.count("failed"), 1);
    let error = first_error(&json);
    assert!(error.contains("403"), "{error}");
}

/// The message of the first entry of the JSON summary's `errors`.
fn first_error(json: &Json) -> String {
    let Json::Array(errors) = json.get("errors") else {
        panic!("errors is not an array: {json:?}");
    };
    let Json::String(message) = errors[0].get("message") else {
        panic!("no message in {json:?}");
    };
    message.clone()
}

#[test]
fn bench_handshake_timeout_fails_a_server_that_never_answers() {
    // Accepts TCP connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!("ws://{}/echo", listener.local_addr().expect("local addr"));
    let held = thread::spawn(move || {
        let mut held = Vec::new();
        if let Ok((tcp, _)) = listener.accept() {
            held.push(tcp);
            thread::sleep(Duration::from_secs(5));
        }
    });
    let out = bench(&[
        &url,
        "--handshake-timeout",
        "300ms",
        "-m",
        "10",
        "--json",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let json = out.json();
    assert_eq!(json.count("failed"), 1, "{json:?}");
    assert!(out.took < Duration::from_secs(4), "took {:?}", out.took);
    let error = first_error(&json);
    assert!(
        error.contains("the opening handshake timed out after 300ms"),
        "{error}"
    );
    drop(held);
}

#[test]
fn bench_drain_bounds_the_wait_for_missing_echoes() {
    // Echoes 10 of 30 messages: 20 stay unanswered, and --drain bounds the wait for them.
    let server = in_process(Misbehaviour::EchoOnly(10));
    let out = bench(&[
        &server.url,
        "-m",
        "30",
        "--pipeline",
        "30",
        "--drain",
        "500ms",
        "--json",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let json = out.json();
    assert_eq!(json.count("sent"), 30);
    assert_eq!(json.count("received"), 10);
    assert_eq!(json.count("unanswered"), 20, "{json:?}");
    assert!(out.took < Duration::from_secs(10), "took {:?}", out.took);
    assert!(
        out.took >= Duration::from_millis(500),
        "took {:?}",
        out.took
    );
}

/// A test CA and a server certificate signed by it, as PEM files in a directory of the
/// test's own (removed on drop).
struct TlsFiles {
    dir: std::path::PathBuf,
}

impl TlsFiles {
    fn new(test: &str) -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bench-tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let ca = wsstream_test_support::certs::Ca::new("wsstream bench test CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("write ca.pem");
        std::fs::write(dir.join("cert.pem"), &leaf.cert_pem).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), &leaf.key_pem).expect("write key.pem");
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// `wsstream serve` over TLS with the certificate (ALPN h2 and http/1.1).
    fn serve(&self) -> Serve {
        Serve::start_with(&[
            "--tls-cert",
            &self.path("cert.pem"),
            "--tls-key",
            &self.path("key.pem"),
        ])
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn bench_over_tls_trusts_the_ca_given_with_ca() {
    let files = TlsFiles::new("ca");
    let server = files.serve();
    let url = format!("wss://{}/echo", server.addr);

    let out = bench(&[
        &url,
        "--ca",
        &files.path("ca.pem"),
        "-m",
        "50",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    assert_eq!(out.json().count("received"), 50);

    // Without --ca the server's certificate is not trusted: the handshake fails.
    let out = bench(&[&url, "-m", "50", "--json", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert_eq!(out.json().count("failed"), 1);
}

#[test]
fn bench_http_chooses_http2_or_http11() {
    let files = TlsFiles::new("http");
    let server = files.serve();
    let url = format!("wss://{}/echo", server.addr);
    let ca = files.path("ca.pem");
    // auto: wsstream serve allows WebSockets over HTTP/2, so all four go over it.
    for (http, over_http2) in [("auto", 4), ("2", 4), ("1.1", 0)] {
        let out = bench(&[
            &url, "--ca", &ca, "--http", http, "-c", "4", "-m", "200", "--json", "-q",
        ]);
        assert_success(&out);
        let json = out.json();
        assert_eq!(json.count("opened"), 4, "--http {http}: {json:?}");
        assert_eq!(
            json.count("opened_http2"),
            over_http2,
            "--http {http}: {json:?}"
        );
        assert_eq!(json.count("received"), 200, "--http {http}");
        assert_eq!(json.count("clean_closes"), 4, "--http {http}");
    }
    // The table says it.
    let out = bench(&[&url, "--ca", &ca, "--http", "2", "-c", "2", "-m", "20"]);
    assert_success(&out);
    assert!(
        out.stdout.contains("2 opened (over HTTP/2)"),
        "{}",
        out.stdout
    );
    // Over ws://, --http 2 is HTTP/2 with prior knowledge, which serve accepts too.
    let plain = Serve::start();
    let out = bench(&[
        &plain.echo(),
        "--http",
        "2",
        "-c",
        "2",
        "-m",
        "20",
        "--json",
        "-q",
    ]);
    assert_success(&out);
    assert_eq!(out.json().count("opened_http2"), 2);
}

#[test]
fn bench_refuses_bad_arguments() {
    for (args, needle) in [
        (&["ws://127.0.0.1:1/", "-s", "10"][..], "too small"),
        (
            &["ws://127.0.0.1:1/", "--binary", "-s", "19"][..],
            "too small",
        ),
        (
            &["ws://127.0.0.1:1/", "-s", "1g"][..],
            "unknown size suffix",
        ),
        (&["ws://127.0.0.1:1/", "-d", "0s"][..], "more than zero"),
        (&["ws://127.0.0.1:1/", "-r", "0"][..], "positive"),
        (&["ws://127.0.0.1:1/", "-c", "0"][..], "at least 1"),
        (&["ws://127.0.0.1:1/", "-t", "0"][..], "at least 1"),
        (
            &["ws://127.0.0.1:1/", "-r", "10", "--pipeline", "2"][..],
            "cannot be used with",
        ),
        (&["ws://127.0.0.1:1/", "-m", "0"][..], "at least 1"),
        (&["ftp://127.0.0.1:1/"][..], "ftp://"),
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:#?}");
        assert!(
            out.stderr.contains(needle),
            "{args:?}: no {needle:?} in {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:#?}");
    }
}
