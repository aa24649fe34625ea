//! `wsstream connect URL`: stdin lines become messages, received messages go to stdout
//! (or to and from an --exec command), with -n, --max-messages, --reconnect, keepalive
//! pings, client certificates, Unix sockets and NUL-separated messages.

use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::process::Stdio;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use wsstream::{
    AbortSignal, ConnectionError, DEFAULT_PING_TIMEOUT, Message, PingError, Proxy, TlsOptions,
    WebSocketCloseInfo, WebSocketError, WebSocketOpenInfo, WebSocketReader, WebSocketStream,
    WebSocketStreamOptions, WebSocketWriter,
};

mod interactive;

use crate::encoding::{base64_decode, base64_encode, hex_decode, hex_encode, json_string};
use crate::http_version::HttpVersion;
use crate::report;

/// Arguments of `wsstream connect`.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ConnectArgs {
    /// The WebSocket URL (`ws://` or `wss://`; `http://` and `https://` are mapped to
    /// them).
    url: String,
    /// Trust the CA certificates of this PEM file for `wss://`, in addition to the
    /// system's (repeatable). Certificate verification is always on.
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Subprotocol to offer (repeatable, in order of preference).
    #[arg(long = "protocol", value_name = "P")]
    protocols: Vec<String>,
    /// Extra request header, `"Name: value"` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// `Origin` request header.
    #[arg(long, value_name = "O")]
    origin: Option<String>,
    /// Abort the opening handshake after this many seconds (an `AbortSignal::timeout`).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<Duration>,
    /// Send each input line as a binary message (raw bytes, or decoded with --hex or
    /// --base64) instead of text.
    #[arg(long)]
    binary: bool,
    /// Binary data is hex in both directions: --binary input lines are hex-decoded;
    /// received binary messages are printed as hex (the default output anyway).
    #[arg(long, conflicts_with = "base64")]
    hex: bool,
    /// Binary data is base64 in both directions: --binary input lines are
    /// base64-decoded; received binary messages are printed as base64 instead of hex.
    #[arg(long)]
    base64: bool,
    /// Print one JSON object per event on stdout (or to the --exec command): open, text,
    /// binary, close (and error for a failed handshake or an unclean close).
    #[arg(long)]
    jsonl: bool,
    /// Close code sent when we close: at the end of the input, after --max-messages, on
    /// a signal (1000 or 3000–4999; default: no code, but 1000 on a signal).
    #[arg(long, value_name = "N")]
    close_code: Option<u16>,
    /// Close reason sent when we close (at most 123 bytes; implies code 1000 if no
    /// --close-code is given).
    #[arg(long, value_name = "R", default_value = "")]
    close_reason: String,
    /// After the input ends, keep receiving until nothing arrived for this many
    /// milliseconds (at most 5 s), then close. Messages that arrive after our Close are
    /// still printed until the closing handshake completes, but a server stops sending
    /// once it has our Close: this lets slow replies to the last lines arrive; 0 closes
    /// at once.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    linger: u64,
    /// Connect through this proxy: `http://[user:password@]host:port` (HTTP CONNECT),
    /// `https://…` (TLS to the proxy), `socks5://…` or `socks5h://…` (the proxy
    /// resolves the host). Default: from the environment (`wss_proxy`, `https_proxy`,
    /// `ws_proxy`, `http_proxy`, `all_proxy`, `no_proxy`).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    proxy: Option<String>,
    /// Connect directly, ignoring the proxy environment variables.
    #[arg(long)]
    no_proxy: bool,
    /// Send a ping every SECS seconds while connected (keepalive; default: none). With
    /// -v, each pong's round-trip time is printed on stderr.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    ping_interval: Option<Duration>,
    /// With --ping-interval: give the connection up as unclean (exit 1, or reconnect with
    /// --reconnect) when a ping's pong does not arrive within SECS seconds (default 20;
    /// not counted while the output is not taking messages, which stops the reading).
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "ping_interval")]
    ping_timeout: Option<Duration>,
    /// Fail the opening handshake (DNS, TCP, proxy, TLS and HTTP) after SECS seconds
    /// (default: no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    handshake_timeout: Option<Duration>,
    /// Follow up to N redirects of the opening handshake (with 0 a redirect fails the
    /// connection; wss:// never goes to ws://).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_redirects: usize,
    /// TCP keepalive on the connection, probing after SECS seconds idle (default: off).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    tcp_keepalive: Option<Duration>,
    /// Do not offer permessage-deflate (offered by default, as browsers do).
    #[arg(long)]
    no_compression: bool,
    /// The HTTP version of the handshake: auto (wss:// uses HTTP/2 when the server allows
    /// WebSockets over it, RFC 8441, else HTTP/1.1; ws:// uses HTTP/1.1), 1.1, or 2
    /// (fails unless the server allows it; on ws://, HTTP/2 with prior knowledge).
    #[arg(long, value_enum, value_name = "auto|1.1|2", default_value = "auto")]
    http: HttpVersion,
    /// Do not close when the input (stdin, or the --exec command's output) ends: keep
    /// receiving until the server closes, a signal arrives or --max-messages were
    /// received (websocat -n).
    #[arg(short = 'n', long = "no-close", visible_alias = "keep-open")]
    no_close: bool,
    /// Close (cleanly, as at the end of the input) once N messages were received;
    /// messages arriving after the N-th are discarded. Counts across reconnections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_messages: Option<u64>,
    /// Connect again after a failed handshake, an unclean close (1006, ping timeout) or
    /// a server's close with 1001, 1011, 1012 or 1013 (going away, internal error,
    /// service restart, try again later), with exponential backoff and jitter (0.5 s,
    /// 1 s, 2 s, … up to --max-delay, each a random 50–100 % of that), reporting each
    /// attempt on stderr. Stops on any other clean close (ours or the server's), at the
    /// end of the input (without -n) and on a signal. The input is kept between connections; a message being sent when the
    /// connection drops may be lost.
    #[arg(long)]
    reconnect: bool,
    /// With --reconnect: the longest wait between two attempts.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30", requires = "reconnect")]
    max_delay: Duration,
    /// Client certificate (PEM, the chain with the client's certificate first) presented
    /// when a wss:// server asks for one; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Connect to the Unix domain socket PATH instead of the URL's host; the URL still
    /// gives the Host header, the path and the scheme (wss:// runs TLS over the socket).
    /// No proxy is used. HTTP/1.1, or with --http 2 an HTTP/2 connection over the socket
    /// (prior knowledge for ws://).
    #[arg(long, value_name = "PATH", conflicts_with = "proxy")]
    unix: Option<PathBuf>,
    /// Messages are separated by NUL bytes instead of newlines, in the input and in the
    /// output, so a message may hold newlines (websocat -0).
    #[arg(short = '0', long = "null")]
    null: bool,
    /// Run `sh -c CMD` instead of using stdin and stdout: each line (or NUL-separated
    /// record with -0) of its stdout becomes a message, each received message is written
    /// to its stdin followed by a newline (NUL with -0). When its stdout ends (it
    /// exited), the connection closes cleanly (unless -n). Its stderr is ours; at the
    /// end its stdin is closed and it gets 2 s to exit before it is killed.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Interactive mode even if stdin or stdout is not a terminal (see below).
    #[arg(
        long,
        conflicts_with_all = ["exec", "null", "jsonl", "binary", "no_close", "max_messages", "reconnect"]
    )]
    interactive: bool,
    /// Never the interactive mode: stdin lines are messages even at a terminal.
    #[arg(long, conflicts_with = "interactive")]
    no_interactive: bool,
}

impl ConnectArgs {
    /// Whether to run the interactive prompt: with --interactive, or when stdin and
    /// stdout are terminals and no flag asks for scripting.
    fn interactive_mode(&self) -> bool {
        use std::io::IsTerminal;
        if self.interactive {
            return true;
        }
        let scripted = self.no_interactive
            || self.exec.is_some()
            || self.null
            || self.jsonl
            || self.binary
            || self.no_close
            || self.max_messages.is_some()
            || self.reconnect;
        !scripted && io::stdin().is_terminal() && io::stdout().is_terminal()
    }
}

/// The rules that concern several flags, at the end of `--help`.
const AFTER_HELP: &str = "\
Interactive mode (like `wscat -c URL`): when stdin and stdout are terminals (or with \
--interactive) and none of --exec, -0, --jsonl, --binary, -n, --max-messages, \
--reconnect or --no-interactive is given, connect shows a `> ` prompt with line editing \
and history (kept in ~/.wsstream_history, or the file $WSSTREAM_HISTORY names; set it \
empty to keep none). Each line is sent as a text message; received messages are \
printed above the prompt as `< HH:MM:SS.mmm TEXT` (UTC time; binary ones as \
`[binary] HEX`, or base64 with --base64). Commands: /ping (prints the round-trip time; \
a payload after it is ignored: wsstream's pings carry their own), /close [CODE] \
[REASON] (default 1000, then exits once closed), /binary HEX (sends a binary message), \
/help. A line starting with // is sent without its first slash; an empty line sends \
nothing. Ctrl-D or Ctrl-C at the prompt closes with 1000 and exits.

Closing: at the end of the input (unless -n), after --max-messages, or on SIGINT (Ctrl-C) \
or SIGTERM, wsstream sends a Close (--close-code/--close-reason; 1000 on a signal if no \
code is given) and keeps delivering the messages that still arrive until the closing \
handshake completes (only those past --max-messages are discarded). A second signal \
exits at once (status 130 for SIGINT, 143 for SIGTERM), and so does a first one that \
arrives while no connection is open (during the handshake or a --reconnect wait).

Exit status: 0 after a clean close (ours or the server's), 1 after a failed handshake or \
an unclean close (with --reconnect: when it stops retrying), 2 for bad arguments.";

fn parse_header(value: &str) -> Result<(String, String), String> {
    let (name, value) = value
        .split_once(':')
        .ok_or_else(|| format!("expected \"Name: value\", got {value:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err("the header name is empty".into());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

fn parse_secs(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {value:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {value:?}: {e}"))
}

/// How binary payloads are written as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinaryText {
    Raw,
    Hex,
    Base64,
}

/// Where events go: stdout or the --exec command's stdin, as plain lines or JSON lines,
/// each ended by `separator` (newline, or NUL with -0).
struct Output {
    sink: Box<dyn AsyncWrite + Send + Unpin>,
    /// What the sink is, for error messages.
    name: &'static str,
    jsonl: bool,
    base64: bool,
    separator: u8,
    /// The sink is an --exec command's stdin.
    exec: bool,
    /// The --exec command closed its stdin.
    gone: bool,
}

impl Output {
    /// Writes one line and waits until the sink took it (this is the receive
    /// backpressure: the next message is not read before).
    ///
    /// An --exec command that stopped reading (it exited: its output ending closes the
    /// connection) gets nothing more: what it would have been given is discarded.
    async fn line(&mut self, line: String) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        let mut bytes = line.into_bytes();
        bytes.push(self.separator);
        let written = async {
            self.sink.write_all(&bytes).await?;
            self.sink.flush().await
        };
        match written.await {
            Err(e) if self.exec && e.kind() == io::ErrorKind::BrokenPipe => {
                eprintln!(
                    "wsstream: warning: the --exec command no longer reads its stdin; \
                     discarding received messages"
                );
                self.gone = true;
                Ok(())
            }
            written => written,
        }
    }

    async fn open(&mut self, info: &WebSocketOpenInfo, url: &str) -> io::Result<()> {
        if self.jsonl {
            let line = format!(
                r#"{{"type":"open","protocol":{},"extensions":{},"http":{}}}"#,
                json_string(&info.protocol),
                json_string(&info.extensions),
                json_string(crate::http_version::describe(info.http_version()))
            );
            return self.line(line).await;
        }
        let mut note = format!("connected to {url}");
        if info.http_version() == wsstream::http::Version::HTTP_2 {
            note.push_str(" over HTTP/2");
        }
        if !info.protocol.is_empty() {
            note.push_str(&format!(", protocol {:?}", info.protocol));
        }
        if !info.extensions.is_empty() {
            note.push_str(&format!(", extensions {:?}", info.extensions));
        }
        eprintln!("{note}");
        Ok(())
    }

    async fn message(&mut self, message: Message) -> io::Result<()> {
        let line = match (&message, self.jsonl) {
            (Message::Text(text), false) => text.to_string(),
            (Message::Text(text), true) => {
                format!(r#"{{"type":"text","data":{}}}"#, json_string(text))
            }
            (Message::Binary(bytes), false) if self.base64 => base64_encode(bytes),
            (Message::Binary(bytes), false) => hex_encode(bytes),
            (Message::Binary(bytes), true) if self.base64 => {
                format!(r#"{{"type":"binary","base64":"{}"}}"#, base64_encode(bytes))
            }
            (Message::Binary(bytes), true) => {
                format!(r#"{{"type":"binary","hex":"{}"}}"#, hex_encode(bytes))
            }
        };
        self.line(line).await
    }

    async fn closed(&mut self, info: &WebSocketCloseInfo) -> io::Result<()> {
        let code = info.close_code.unwrap_or(1005);
        if self.jsonl {
            let line = format!(
                r#"{{"type":"close","code":{code},"reason":{}}}"#,
                json_string(&info.reason)
            );
            return self.line(line).await;
        }
        eprintln!("closed: code {code}, reason {:?}", info.reason);
        Ok(())
    }

    async fn error(&mut self, e: &ConnectionError, message: &str) -> io::Result<()> {
        self.error_event(e.close_code(), message).await
    }

    /// The `error` event of --jsonl (nothing otherwise: stderr has the report).
    async fn error_event(&mut self, code: Option<u16>, message: &str) -> io::Result<()> {
        if !self.jsonl {
            return Ok(());
        }
        let code = code.map_or_else(|| "null".to_owned(), |c| c.to_string());
        let line = format!(
            r#"{{"type":"error","code":{code},"message":{}}}"#,
            json_string(message)
        );
        self.line(line).await
    }
}

/// The exit status a signal stands for (128 + its number), once one arrived.
type SignalStatus = Option<u8>;

/// A stop request from a signal (SIGINT or SIGTERM): the exit status a process killed by
/// it would have (128 + the signal number), once one arrived.
#[derive(Clone)]
struct Stop(watch::Receiver<SignalStatus>);

impl Stop {
    /// Installs the SIGINT and SIGTERM handlers: the first signal asks for a clean close,
    /// a second one exits at once.
    ///
    /// The handlers are registered before this returns, so a signal arriving any time
    /// later is seen.
    fn install() -> Self {
        let (tx, rx) = watch::channel(None);
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!("wsstream: warning: cannot handle signals: {e}");
                return Self(rx);
            }
        };
        tokio::spawn(async move {
            loop {
                let (name, status) = signals.next().await;
                if tx.borrow().is_some() {
                    eprintln!("wsstream: {name} again: exiting at once");
                    std::process::exit(i32::from(status));
                }
                eprintln!("wsstream: {name}: closing (again to exit at once)");
                let _ = tx.send(Some(status));
            }
        });
        Self(rx)
    }

    /// The exit status of the signal that asked to stop, if one did.
    fn requested(&self) -> SignalStatus {
        *self.0.borrow()
    }

    /// Completes once a signal asked to stop.
    async fn wait(&mut self) -> u8 {
        let status = match self.0.wait_for(Option::is_some).await {
            Ok(status) => *status,
            Err(_) => None,
        };
        match status {
            Some(status) => status,
            None => std::future::pending().await,
        }
    }
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal's name and the exit status it stands for.
    async fn next(&mut self) -> (&'static str, u8) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => ("SIGINT", 130),
                _ = self.terminate.recv() => ("SIGTERM", 143),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ("Ctrl-C", 130)
        }
    }
}

/// The messages to send, read by a task of their own (so nothing read is lost between
/// reconnections); `None` once the input ended.
struct Input {
    messages: mpsc::Receiver<Message>,
    ended: bool,
}

impl Input {
    /// Reads `source` record by record (ended by `separator`; a newline also drops a
    /// `\r` before it) and turns each record into a message (`binary`: `None` for text,
    /// else how binary records are encoded). Records that do not convert are skipped
    /// with a warning.
    fn spawn(
        source: impl AsyncRead + Send + Unpin + 'static,
        separator: u8,
        binary: Option<BinaryText>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut source = BufReader::new(source);
            let mut record = Vec::new();
            let mut number = 0u64;
            loop {
                record.clear();
                match source.read_until(separator, &mut record).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("wsstream: error: reading the input failed: {e}; closing");
                        break;
                    }
                }
                number += 1;
                if record.last() == Some(&separator) {
                    record.pop();
                    if separator == b'\n' && record.last() == Some(&b'\r') {
                        record.pop();
                    }
                }
                let message = match to_message(&record, binary) {
                    Ok(message) => message,
                    Err(e) => {
                        eprintln!("wsstream: warning: input line {number} skipped: {e}");
                        continue;
                    }
                };
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        Self {
            messages: rx,
            ended: false,
        }
    }
}

/// Everything that outlives one connection.
struct Session<'a> {
    args: &'a ConnectArgs,
    tls: &'a TlsOptions,
    headers: &'a [(String, String)],
    input: Input,
    out: Output,
    stop: Stop,
    /// Messages received so far (for --max-messages).
    received: u64,
    /// Whether the RTT of pings is printed (-v).
    verbose: bool,
}

/// How one connection ended.
enum End {
    /// It closed cleanly, with this code (from the Close frame received).
    Clean(u16),
    /// It could not be opened, or closed uncleanly (already reported).
    Failed {
        /// Whether the handshake had succeeded (resets the backoff).
        opened: bool,
    },
    /// Stop with this status, without reconnecting.
    Exit(ExitCode),
}

/// Runs `wsstream connect`.
pub(crate) async fn run(args: ConnectArgs) -> ExitCode {
    let close_info = WebSocketCloseInfo {
        close_code: args.close_code,
        reason: args.close_reason.clone(),
    };
    // The same checks as close(), before connecting.
    if let Err(e) = WebSocketError::new("", close_info) {
        return report::usage(format_args!("invalid --close-code/--close-reason: {e}"));
    }
    #[cfg(not(unix))]
    if args.unix.is_some() {
        return report::usage("--unix needs a Unix system");
    }
    let mut headers = args.headers.clone();
    if let Some(origin) = &args.origin {
        headers.push(("Origin".to_owned(), origin.clone()));
    }
    let mut tls = TlsOptions::default();
    for path in &args.ca {
        let added = std::fs::read(path).and_then(|pem| tls.add_root_pem(&pem));
        if let Err(e) = added {
            return report::usage(format_args!("--ca {}: {e}", path.display()));
        }
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("--cert/--key {}: {e}", path.display()))
        };
        let added = read(cert).and_then(|cert_pem| {
            let key_pem = read(key)?;
            tls.set_client_auth_pem(&cert_pem, &key_pem)
                .map_err(|e| format!("--cert {} --key {}: {e}", cert.display(), key.display()))
        });
        if let Err(e) = added {
            return report::usage(e);
        }
    }
    if args.interactive_mode() {
        return interactive::run(&args, options(&args, &tls, &headers)).await;
    }
    let binary = if !args.binary {
        None
    } else if args.hex {
        Some(BinaryText::Hex)
    } else if args.base64 {
        Some(BinaryText::Base64)
    } else {
        Some(BinaryText::Raw)
    };
    let separator = if args.null { b'\0' } else { b'\n' };
    let mut child = None;
    let (input, sink, name): (_, Box<dyn AsyncWrite + Send + Unpin>, _) = match &args.exec {
        None => (
            Input::spawn(tokio::io::stdin(), separator, binary),
            Box::new(tokio::io::stdout()),
            "stdout",
        ),
        Some(command) => {
            let mut command_line = tokio::process::Command::new("sh");
            command_line
                .arg("-c")
                .arg(command)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            // Its own process group: a Ctrl-C at the terminal goes to us, and we close.
            #[cfg(unix)]
            command_line.process_group(0);
            let mut spawned = match command_line.spawn() {
                Ok(spawned) => spawned,
                Err(e) => return report::fail(format_args!("cannot run --exec {command:?}: {e}")),
            };
            let (Some(stdin), Some(stdout)) = (spawned.stdin.take(), spawned.stdout.take()) else {
                return report::fail("--exec: the command's pipes are missing");
            };
            child = Some(spawned);
            (
                Input::spawn(stdout, separator, binary),
                Box::new(stdin),
                "the --exec command's stdin",
            )
        }
    };
    let mut session = Session {
        args: &args,
        tls: &tls,
        headers: &headers,
        input,
        out: Output {
            sink,
            name,
            jsonl: args.jsonl,
            base64: args.base64,
            separator,
            exec: args.exec.is_some(),
            gone: false,
        },
        stop: Stop::install(),
        received: 0,
        verbose: tracing::enabled!(tracing::Level::INFO),
    };
    let status = session.run().await;
    if let Some(child) = child {
        // EOF on its stdin, then a little time to finish.
        drop(session);
        finish_child(child).await;
    }
    status
}

/// Waits up to 2 s for the --exec command to exit, then kills it.
async fn finish_child(mut child: tokio::process::Child) {
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(status)) if !status.success() => {
            eprintln!("wsstream: warning: the --exec command exited with {status}");
        }
        Ok(_) => {}
        Err(_) => {
            eprintln!("wsstream: warning: the --exec command did not exit; killing it");
            let _ = child.kill().await;
        }
    }
}

/// Whether a server that closed cleanly with `code` said it will be back, so that
/// --reconnect connects again: 1001 (going away), 1011 (internal error), 1012 (service
/// restart), 1013 (try again later).
fn comes_back(code: u16) -> bool {
    matches!(code, 1001 | 1011 | 1012 | 1013)
}

/// The first reconnection delay; each next one doubles, up to --max-delay.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// The delay before reconnection attempt `attempt` (1 for the first): exponential, capped
/// at `max`, then a random 50–100 % of that (jitter, so that many clients do not come
/// back at the same instant).
fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = FIRST_DELAY
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(max);
    base.mul_f64(0.5 + 0.5 * random_unit())
}

/// A random number in [0, 1), from the standard library's randomly keyed hasher.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(std::time::SystemTime::now()) >> 11;
    // 53 random bits: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let unit = bits as f64 / (1u64 << 53) as f64;
    unit
}

impl Session<'_> {
    /// Connects (again and again with --reconnect) and returns the exit status.
    async fn run(&mut self) -> ExitCode {
        let mut attempt = 0u32;
        loop {
            let end = self.connection().await;
            let opened = match end {
                End::Clean(code) => {
                    if !(self.args.reconnect && comes_back(code) && !self.stopping()) {
                        return ExitCode::SUCCESS;
                    }
                    true
                }
                End::Exit(status) => return status,
                End::Failed { opened } => opened,
            };
            if !self.args.reconnect || self.stopping() {
                return ExitCode::FAILURE;
            }
            attempt = if opened { 1 } else { attempt + 1 };
            let delay = backoff(attempt, self.args.max_delay);
            eprintln!(
                "wsstream: reconnecting in {:.2} s (attempt {attempt})",
                delay.as_secs_f64()
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                status = self.stop.wait() => return ExitCode::from(status),
            }
        }
    }

    /// Whether we asked to stop: a signal, the end of the input (without -n), enough
    /// messages.
    fn stopping(&self) -> bool {
        self.stop.requested().is_some()
            || (self.input.ended && !self.args.no_close)
            || self
                .args
                .max_messages
                .is_some_and(|max| self.received >= max)
    }

    fn options(&self) -> WebSocketStreamOptions {
        options(self.args, self.tls, self.headers)
    }

    /// One connection, from the handshake to the close.
    async fn connection(&mut self) -> End {
        let mut stop = self.stop.clone();
        let wss = tokio::select! {
            wss = start(self.args, self.options()) => wss,
            status = stop.wait() => return End::Exit(ExitCode::from(status)),
        };
        let wss = match wss {
            Ok(wss) => wss,
            Err(end) => return end,
        };
        let opened = tokio::select! {
            opened = wss.opened() => opened,
            status = stop.wait() => return End::Exit(ExitCode::from(status)),
        };
        let info = match opened {
            Ok(info) => info,
            Err(e) => {
                let text = report::connection_error(&e);
                if let Err(e) = self.out.error(&e, &text).await {
                    return self.output_failed(&e);
                }
                report::fail(format_args!("could not connect to {}: {text}", wss.url()));
                return End::Failed { opened: false };
            }
        };
        if let Err(e) = self.out.open(&info, wss.url()).await {
            return self.output_failed(&e);
        }
        let (mut reader, mut writer) =
            match (info.readable.get_reader(), info.writable.get_writer()) {
                (Ok(reader), Ok(writer)) => (reader, writer),
                (Err(e), _) | (_, Err(e)) => return End::Exit(report::fail(e)),
            };
        let args = self.args;
        let close_info = WebSocketCloseInfo {
            close_code: args.close_code,
            reason: args.close_reason.clone(),
        };
        let last_message = Cell::new(Instant::now());
        // Set while a received message waits for the output to take it.
        let stalled = Cell::new(false);
        let received = {
            let Self {
                input,
                out,
                received,
                verbose,
                ..
            } = self;
            let send = async {
                match send_input(&mut writer, input, &mut stop, args.no_close).await {
                    Sent::InputEnded => {
                        tokio::select! {
                            () = linger(&last_message, Duration::from_millis(args.linger)) => {
                                close(&wss, close_info.clone());
                            }
                            _ = stop.wait() => close(&wss, signal_close(&close_info)),
                        }
                    }
                    Sent::Signal => close(&wss, signal_close(&close_info)),
                    // The connection is closing; the receive side reports how it ended.
                    Sent::WriteFailed => {}
                }
            };
            let receive = receive(
                &mut reader,
                out,
                &last_message,
                &stalled,
                Limit {
                    received,
                    max: args.max_messages,
                    wss: &wss,
                    close_info: &close_info,
                },
            );
            let keepalive = keepalive(&wss, args, &stalled, *verbose);
            tokio::pin!(send, receive, keepalive);
            tokio::select! {
                received = &mut receive => received,
                () = &mut send => receive.await,
                text = &mut keepalive => Err(Ended::Unresponsive(text)),
            }
        };
        drop((reader, writer));
        match received {
            Ok(()) | Err(Ended::Stream) => {}
            Err(Ended::Unresponsive(text)) => {
                // Give the connection up: dropping every handle abandons it.
                if let Err(e) = self.out.error_event(Some(1006), &text).await {
                    return self.output_failed(&e);
                }
                report::fail(format_args!("the connection closed uncleanly: {text}"));
                return End::Failed { opened: true };
            }
            Err(Ended::Output(e)) => {
                // Nobody is reading any more: leave without waiting for the peer.
                let _ = wss.close(WebSocketCloseInfo::default());
                return self.output_failed(&e);
            }
        }
        match wss.closed().await {
            Ok(info) => match self.out.closed(&info).await {
                Ok(()) => End::Clean(info.close_code.unwrap_or(1005)),
                Err(e) => self.output_failed(&e),
            },
            Err(e) => {
                let text = report::connection_error(&e);
                if let Err(e) = self.out.error(&e, &text).await {
                    return self.output_failed(&e);
                }
                report::fail(format_args!("the connection closed uncleanly: {text}"));
                End::Failed { opened: true }
            }
        }
    }

    fn output_failed(&self, e: &io::Error) -> End {
        End::Exit(report::fail(format_args!(
            "cannot write to {}: {e}",
            self.out.name
        )))
    }
}

/// The options of a connection, from the flags.
fn options(
    args: &ConnectArgs,
    tls: &TlsOptions,
    headers: &[(String, String)],
) -> WebSocketStreamOptions {
    WebSocketStreamOptions::default()
        .protocols(args.protocols.clone())
        .signal(args.timeout.map(AbortSignal::timeout))
        .headers(headers.to_vec())
        .tls(tls.clone())
        .proxy(match (&args.proxy, args.no_proxy) {
            (Some(url), _) => Proxy::Url(url.clone()),
            (None, true) => Proxy::None,
            (None, false) => Proxy::FromEnv,
        })
        .handshake_timeout(args.handshake_timeout)
        .tcp_keepalive(args.tcp_keepalive)
        .max_redirects(args.max_redirects)
        .http_version(args.http.preference())
        .compression(if args.no_compression {
            None
        } else {
            Some(wsstream::DeflateConfig::default())
        })
}

/// Starts the connection: over TCP (or a proxy), or over the --unix socket.
async fn start(
    args: &ConnectArgs,
    options: WebSocketStreamOptions,
) -> Result<WebSocketStream, End> {
    let url = &args.url;
    let started = match &args.unix {
        None => WebSocketStream::new(url, options),
        #[cfg(unix)]
        Some(path) => match tokio::net::UnixStream::connect(path).await {
            Ok(io) => WebSocketStream::with_stream(url, options, io),
            Err(e) => {
                report::fail(format_args!(
                    "could not connect to {url}: cannot connect to {}: {e}",
                    path.display()
                ));
                return Err(End::Failed { opened: false });
            }
        },
        #[cfg(not(unix))]
        Some(_) => unreachable!("refused in run"),
    };
    started.map_err(|e| End::Exit(report::usage(format_args!("{url}: {e}"))))
}

/// The close sent on a signal: --close-code/--close-reason, else 1000.
fn signal_close(info: &WebSocketCloseInfo) -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: info.close_code.or(Some(1000)),
        reason: info.reason.clone(),
    }
}

/// Starts the closing handshake (checked before connecting, so it only fails if the
/// connection is already closing).
fn close(wss: &WebSocketStream, info: WebSocketCloseInfo) {
    if let Err(e) = wss.close(info) {
        eprintln!("wsstream: error: close failed: {e}");
    }
}

/// Pings every --ping-interval and waits for each pong; returns (giving the connection
/// up) when one does not come within --ping-timeout while the output was taking
/// messages. Never returns without --ping-interval.
async fn keepalive(
    wss: &WebSocketStream,
    args: &ConnectArgs,
    stalled: &Cell<bool>,
    verbose: bool,
) -> String {
    let Some(interval) = args.ping_interval else {
        return std::future::pending().await;
    };
    let interval = interval.max(Duration::from_millis(1));
    let timeout = args.ping_timeout.unwrap_or(DEFAULT_PING_TIMEOUT);
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match tokio::time::timeout(timeout, wss.ping()).await {
            Ok(Ok(rtt)) if verbose => {
                eprintln!("wsstream: pong after {:.3} ms", rtt.as_secs_f64() * 1000.0);
            }
            Ok(Ok(_) | Err(PingError::TooMany)) => {}
            // Closing: the receive side reports how it ends.
            Ok(Err(_)) => return std::future::pending().await,
            // No socket reads while the output is stalled: not the peer's fault.
            Err(_) if stalled.get() => {}
            Err(_) => return format!("no pong within {timeout:?} of a ping"),
        }
    }
}

/// How sending stopped.
enum Sent {
    /// The input ended (without -n).
    InputEnded,
    /// A signal asked to stop.
    Signal,
    /// A write failed: the connection is closing.
    WriteFailed,
}

/// Sends the input's messages until it ends (then waits for the writes to reach the
/// socket; with `no_close` it waits for a signal instead), a signal arrives or a write
/// fails.
async fn send_input(
    writer: &mut WebSocketWriter,
    input: &mut Input,
    stop: &mut Stop,
    no_close: bool,
) -> Sent {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait() => return Sent::Signal,
            next = input.messages.recv(), if !input.ended => next,
        };
        let Some(message) = next else {
            input.ended = true;
            if no_close {
                continue;
            }
            // Everything written reaches the socket before the Close frame.
            let _ = writer.flush().await;
            return Sent::InputEnded;
        };
        // A peer that does not read stalls the write: a signal must still get through.
        tokio::select! {
            biased;
            _ = stop.wait() => return Sent::Signal,
            written = writer.write(message) => {
                if written.is_err() {
                    return Sent::WriteFailed;
                }
            }
        }
    }
}

/// Why the receive loop stopped early.
enum Ended {
    /// The readable errored (an unclean close; `closed` says why).
    Stream,
    /// Writing the output failed.
    Output(io::Error),
    /// A ping's pong did not come in time (why, for the report).
    Unresponsive(String),
}

/// --max-messages: the count so far, the limit, and how to close when it is reached.
struct Limit<'a> {
    received: &'a mut u64,
    max: Option<u64>,
    wss: &'a WebSocketStream,
    close_info: &'a WebSocketCloseInfo,
}

/// Copies received messages to the output, one at a time: the next message is read only
/// once the output accepted the previous one. Messages that arrive after our Close are
/// still delivered until the closing handshake completes, except past --max-messages:
/// the N-th message starts the close, later ones are discarded.
async fn receive(
    reader: &mut WebSocketReader,
    out: &mut Output,
    last_message: &Cell<Instant>,
    stalled: &Cell<bool>,
    limit: Limit<'_>,
) -> Result<(), Ended> {
    loop {
        match reader.read().await {
            Ok(Some(message)) => {
                last_message.set(Instant::now());
                if limit.max.is_some_and(|max| *limit.received >= max) {
                    continue;
                }
                stalled.set(true);
                let written = out.message(message).await;
                stalled.set(false);
                written.map_err(Ended::Output)?;
                *limit.received += 1;
                if limit.max == Some(*limit.received) {
                    close(limit.wss, limit.close_info.clone());
                }
            }
            Ok(None) => return Ok(()),
            Err(_) => return Err(Ended::Stream),
        }
    }
}

/// Upper bound of the linger after the end of the input.
const MAX_LINGER: Duration = Duration::from_secs(5);

/// Waits until no message has arrived for `quiet` (counting from now), at most
/// [`MAX_LINGER`].
async fn linger(last_message: &Cell<Instant>, quiet: Duration) {
    if quiet.is_zero() {
        return;
    }
    let start = Instant::now();
    let cap = start + MAX_LINGER;
    loop {
        let deadline = (last_message.get().max(start) + quiet).min(cap);
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

fn to_message(line: &[u8], input: Option<BinaryText>) -> Result<Message, String> {
    let text = || std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"));
    Ok(match input {
        None => Message::from(text()?),
        Some(BinaryText::Raw) => Message::from(line),
        Some(BinaryText::Hex) => Message::from(hex_decode(text()?)?),
        Some(BinaryText::Base64) => Message::from(base64_decode(text()?)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_header("X-Test:  a: b ").unwrap(),
            ("X-Test".to_owned(), "a: b".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": v").is_err());
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let secs = Duration::from_secs;
        for _ in 0..100 {
            let first = backoff(1, secs(30));
            assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
            let third = backoff(3, secs(30));
            assert!(third >= secs(1) && third <= secs(2), "{third:?}");
            let capped = backoff(10, secs(2));
            assert!(capped >= secs(1) && capped <= secs(2), "{capped:?}");
            let huge = backoff(u32::MAX, secs(30));
            assert!(huge >= secs(15) && huge <= secs(30), "{huge:?}");
        }
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff(5, secs(30))).collect();
        assert!(delays.len() > 1, "no jitter: {delays:?}");
    }

    #[test]
    fn only_closes_that_announce_a_return_reconnect() {
        for code in [1001, 1011, 1012, 1013] {
            assert!(comes_back(code), "{code}");
        }
        for code in [1000, 1005, 1008, 4000] {
            assert!(!comes_back(code), "{code}");
        }
    }

    #[test]
    fn lines_become_messages() {
        assert_eq!(to_message(b"hi", None).unwrap(), Message::from("hi"));
        assert_eq!(
            to_message(b"0102", Some(BinaryText::Hex)).unwrap(),
            Message::from(vec![1u8, 2])
        );
        assert_eq!(
            to_message(b"AQI=", Some(BinaryText::Base64)).unwrap(),
            Message::from(vec![1u8, 2])
        );
        assert_eq!(
            to_message(b"ab", Some(BinaryText::Raw)).unwrap(),
            Message::from(b"ab".to_vec())
        );
        assert!(to_message(b"\xff", None).is_err());
    }
}
