//! `wsstream connect URL`: stdin lines become messages, received messages go to stdout.

use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Stdout};
use tokio::time::Instant;
use wsstream::{
    AbortSignal, ConnectionError, DEFAULT_PING_TIMEOUT, Message, Proxy, TlsOptions,
    WebSocketCloseInfo, WebSocketError, WebSocketOpenInfo, WebSocketReader, WebSocketStream,
    WebSocketStreamOptions, WebSocketWriter,
};

use crate::encoding::{base64_decode, base64_encode, hex_decode, hex_encode, json_string};
use crate::report;

/// Arguments of `wsstream connect`.
#[derive(Args, Debug)]
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
    /// Send each stdin line as a binary message (raw bytes, or decoded with --hex or
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
    /// Print one JSON object per event on stdout: open, text, binary, close (and error
    /// for a failed handshake or an unclean close).
    #[arg(long)]
    jsonl: bool,
    /// Close code sent when stdin ends (1000 or 3000–4999; default: no code).
    #[arg(long, value_name = "N")]
    close_code: Option<u16>,
    /// Close reason sent when stdin ends (at most 123 bytes; implies code 1000 if no
    /// --close-code is given).
    #[arg(long, value_name = "R", default_value = "")]
    close_reason: String,
    /// After stdin ends, keep receiving until nothing arrived for this many milliseconds
    /// (at most 5 s), then close. Messages that arrive after the close are discarded
    /// (WebSocketStream semantics), so this lets replies to the last lines arrive; 0
    /// closes at once.
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
    /// Send a ping every SECS seconds while connected (keepalive; default: none).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    ping_interval: Option<Duration>,
    /// With --ping-interval: close the connection (1006) when nothing arrives within
    /// SECS seconds of a ping (default 20).
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
}

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

/// Where events go: stdout, as plain lines or JSON lines.
struct Output {
    stdout: Stdout,
    jsonl: bool,
    base64: bool,
}

impl Output {
    /// Writes one line and waits until stdout took it (this is the receive
    /// backpressure: the next message is not read before).
    async fn line(&mut self, mut line: String) -> io::Result<()> {
        line.push('\n');
        self.stdout.write_all(line.as_bytes()).await?;
        self.stdout.flush().await
    }

    async fn open(&mut self, info: &WebSocketOpenInfo, url: &str) -> io::Result<()> {
        if self.jsonl {
            let line = format!(
                r#"{{"type":"open","protocol":{},"extensions":{}}}"#,
                json_string(&info.protocol),
                json_string(&info.extensions)
            );
            return self.line(line).await;
        }
        let mut note = format!("connected to {url}");
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
        if !self.jsonl {
            return Ok(());
        }
        let code = e
            .close_code()
            .map_or_else(|| "null".to_owned(), |c| c.to_string());
        let line = format!(
            r#"{{"type":"error","code":{code},"message":{}}}"#,
            json_string(message)
        );
        self.line(line).await
    }
}

/// Runs `wsstream connect`.
pub(crate) async fn run(args: ConnectArgs) -> ExitCode {
    let close_info = WebSocketCloseInfo {
        close_code: args.close_code,
        reason: args.close_reason.clone(),
    };
    // The same checks as close(), before connecting.
    if let Err(e) = WebSocketError::new("", close_info.clone()) {
        return report::usage(format_args!("invalid --close-code/--close-reason: {e}"));
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
    let options = WebSocketStreamOptions::default()
        .protocols(args.protocols.clone())
        .signal(args.timeout.map(AbortSignal::timeout))
        .headers(headers)
        .tls(tls)
        .proxy(match (&args.proxy, args.no_proxy) {
            (Some(url), _) => Proxy::Url(url.clone()),
            (None, true) => Proxy::None,
            (None, false) => Proxy::FromEnv,
        })
        .handshake_timeout(args.handshake_timeout)
        .ping_interval(args.ping_interval)
        .ping_timeout(args.ping_timeout.unwrap_or(DEFAULT_PING_TIMEOUT))
        .tcp_keepalive(args.tcp_keepalive)
        .max_redirects(args.max_redirects)
        .compression(if args.no_compression {
            None
        } else {
            Some(wsstream::DeflateConfig::default())
        });
    let wss = match WebSocketStream::new(&args.url, options) {
        Ok(wss) => wss,
        Err(e) => return report::usage(format_args!("{}: {e}", args.url)),
    };
    let mut out = Output {
        stdout: tokio::io::stdout(),
        jsonl: args.jsonl,
        base64: args.base64,
    };
    let info = match wss.opened().await {
        Ok(info) => info,
        Err(e) => {
            let text = report::connection_error(&e);
            let _ = out.error(&e, &text).await;
            return report::fail(format_args!("could not connect to {}: {text}", wss.url()));
        }
    };
    if let Err(e) = out.open(&info, wss.url()).await {
        return report::fail(format_args!("cannot write to stdout: {e}"));
    }
    let (mut reader, mut writer) = match (info.readable.get_reader(), info.writable.get_writer()) {
        (Ok(reader), Ok(writer)) => (reader, writer),
        (Err(e), _) | (_, Err(e)) => return report::fail(e),
    };
    let input = if !args.binary {
        None
    } else if args.hex {
        Some(BinaryText::Hex)
    } else if args.base64 {
        Some(BinaryText::Base64)
    } else {
        Some(BinaryText::Raw)
    };
    let last_message = Cell::new(Instant::now());
    let received = {
        let send = async {
            send_stdin(&mut writer, input).await;
            linger(&last_message, Duration::from_millis(args.linger)).await;
            if let Err(e) = wss.close(close_info) {
                eprintln!("wsstream: error: close failed: {e}");
            }
        };
        let receive = receive(&mut reader, &mut out, &last_message);
        tokio::pin!(send, receive);
        tokio::select! {
            received = &mut receive => received,
            () = &mut send => receive.await,
        }
    };
    drop((reader, writer));
    match received {
        Ok(()) | Err(Ended::Stream) => {}
        Err(Ended::Stdout(e)) => {
            // Nobody is reading any more: leave without waiting for the peer.
            let _ = wss.close(WebSocketCloseInfo::default());
            return report::fail(format_args!("cannot write to stdout: {e}"));
        }
    }
    match wss.closed().await {
        Ok(info) => match out.closed(&info).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report::fail(format_args!("cannot write to stdout: {e}")),
        },
        Err(e) => {
            let text = report::connection_error(&e);
            let _ = out.error(&e, &text).await;
            report::fail(format_args!("the connection closed uncleanly: {text}"))
        }
    }
}

/// Why the receive loop stopped early.
enum Ended {
    /// The readable errored (an unclean close; `closed` says why).
    Stream,
    /// Writing stdout failed.
    Stdout(io::Error),
}

/// Copies received messages to stdout, one at a time: the next message is read only once
/// stdout accepted the previous one.
async fn receive(
    reader: &mut WebSocketReader,
    out: &mut Output,
    last_message: &Cell<Instant>,
) -> Result<(), Ended> {
    loop {
        match reader.read().await {
            Ok(Some(message)) => {
                last_message.set(Instant::now());
                out.message(message).await.map_err(Ended::Stdout)?;
            }
            Ok(None) => return Ok(()),
            Err(_) => return Err(Ended::Stream),
        }
    }
}

/// Upper bound of the linger after the end of stdin.
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

/// Sends each stdin line as a message (`input`: `None` for text, else how binary lines
/// are encoded) until the end of stdin, then waits for the writes to reach the socket.
/// Returns early if the connection stops accepting writes.
async fn send_stdin(writer: &mut WebSocketWriter, input: Option<BinaryText>) {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("wsstream: error: reading stdin failed: {e}; closing");
                break;
            }
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let message = match to_message(&line, input) {
            Ok(message) => message,
            Err(e) => {
                eprintln!("wsstream: warning: stdin line {number} skipped: {e}");
                continue;
            }
        };
        if writer.write(message).await.is_err() {
            // The connection is closing; the receive side reports how it ended.
            return;
        }
    }
    // Everything written reaches the socket before the Close frame.
    let _ = writer.flush().await;
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
