//! The interactive mode of `wsstream connect` (wscat's prompt): a line editor runs on a
//! thread of its own and passes what was typed over a channel; received messages, pongs
//! and notes are printed above the prompt through rustyline's `ExternalPrinter`.

use std::cell::Cell;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wsstream::{Message, PingError, WebSocketCloseInfo, WebSocketError, WebSocketStreamOptions};

use super::{ConnectArgs, End, Stop, close, keepalive, start};
use crate::encoding::{base64_encode, hex_decode, hex_encode};
use crate::report;

/// What `/help` prints.
const HELP: &str = "\
Lines are sent as text messages; received ones are printed as `< HH:MM:SS.mmm (UTC) ...`.
  /ping [payload]       ping the server and print the round-trip time (the payload is
                        ignored: wsstream's pings carry their own)
  /close [code] [reason] close (default code 1000) and exit once closed
  /binary <hex>         send a binary message, e.g. /binary 0102ff
  /help                 this help
  //text                send `/text` (a message starting with a slash)
Ctrl-D or Ctrl-C: close with 1000 and exit. Up/Down: history (kept in ~/.wsstream_history,
or in the file WSSTREAM_HISTORY names; WSSTREAM_HISTORY= keeps none).";

/// What the prompt asks the connection to do.
#[derive(Debug, PartialEq)]
enum Command {
    Send(Message),
    /// Ping; whether a payload was given (and is ignored).
    Ping {
        payload: bool,
    },
    /// Close with this code and reason (checked already), then exit.
    Close(WebSocketCloseInfo),
}

/// What a line typed at the prompt means.
#[derive(Debug, PartialEq)]
enum Line {
    Command(Command),
    Help,
    /// An empty line: nothing is sent.
    Nothing,
    /// A command that cannot be run: why.
    Error(String),
}

/// The close of Ctrl-D, Ctrl-C and a bare `/close`.
fn normal_close() -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(1000),
        reason: String::new(),
    }
}

fn parse(line: &str) -> Line {
    if line.is_empty() {
        return Line::Nothing;
    }
    if line.starts_with("//") {
        return Line::Command(Command::Send(Message::from(&line[1..])));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Line::Command(Command::Send(Message::from(line)));
    };
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    match name {
        "help" => Line::Help,
        "ping" => Line::Command(Command::Ping {
            payload: !rest.is_empty(),
        }),
        "binary" => match hex_decode(rest) {
            Ok(bytes) => Line::Command(Command::Send(Message::from(bytes))),
            Err(e) => Line::Error(format!("/binary: {e}")),
        },
        "close" => {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let info = if code.is_empty() {
                normal_close()
            } else {
                match code.parse() {
                    Ok(code) => WebSocketCloseInfo {
                        close_code: Some(code),
                        reason: reason.trim().to_owned(),
                    },
                    Err(_) => return Line::Error(format!("/close: bad code {code:?}")),
                }
            };
            match WebSocketError::new("", info.clone()) {
                Ok(_) => Line::Command(Command::Close(info)),
                Err(e) => Line::Error(format!("/close: {e}")),
            }
        }
        _ => Line::Error(format!(
            "unknown command /{name} (/help lists them; //{name} sends \"/{name}\")"
        )),
    }
}

/// The prompt's loop, on a thread of its own: reads lines until a close is asked for (a
/// `/close`, Ctrl-D, Ctrl-C), passing the commands to the connection.
fn prompt(mut editor: DefaultEditor, commands: mpsc::Sender<Command>) {
    let mut history = History::open(&mut editor);
    loop {
        let command = match editor.readline("> ") {
            Ok(line) => {
                if editor.add_history_entry(line.as_str()).unwrap_or(false) {
                    history.append(&line);
                }
                match parse(&line) {
                    Line::Command(command) => command,
                    Line::Help => {
                        println!("{HELP}");
                        continue;
                    }
                    Line::Nothing => continue,
                    Line::Error(e) => {
                        eprintln!("wsstream: {e}");
                        continue;
                    }
                }
            }
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => Command::Close(normal_close()),
            Err(e) => {
                eprintln!("wsstream: error: reading the terminal failed: {e}; closing");
                Command::Close(normal_close())
            }
        };
        let last = matches!(command, Command::Close(_));
        if commands.blocking_send(command).is_err() || last {
            return;
        }
    }
}

/// How many lines of the history file are kept (and loaded).
const HISTORY_LINES: usize = 1000;

/// The history file, `$HOME/.wsstream_history` (`WSSTREAM_HISTORY` names another one; set
/// empty, there is none): loaded at start, each new entry appended.
struct History {
    file: Option<std::fs::File>,
}

impl History {
    fn path() -> Option<PathBuf> {
        match std::env::var_os("WSSTREAM_HISTORY") {
            Some(path) if path.is_empty() => None,
            Some(path) => Some(PathBuf::from(path)),
            None => std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".wsstream_history")),
        }
    }

    /// Loads the last [`HISTORY_LINES`] entries into `editor` (rewriting a longer file)
    /// and opens the file for appending. Without a file, history stays in memory.
    fn open(editor: &mut DefaultEditor) -> Self {
        let Some(path) = Self::path() else {
            return Self { file: None };
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let kept = &lines[lines.len().saturating_sub(HISTORY_LINES)..];
        for line in kept {
            let _ = editor.add_history_entry(*line);
        }
        if kept.len() < lines.len() {
            let mut text = kept.join("\n");
            text.push('\n');
            let _ = std::fs::write(&path, text);
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        // What is typed may be secret: the file is the user's only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        Self {
            file: options.open(&path).ok(),
        }
    }

    fn append(&mut self, line: &str) {
        if line.contains('\n') {
            return;
        }
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// `HH:MM:SS.mmm` of `time`, in UTC.
fn clock(time: SystemTime) -> String {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// How a received message is shown.
fn received(message: &Message, base64: bool, time: SystemTime) -> String {
    let time = clock(time);
    match message {
        Message::Text(text) => format!("< {time} {text}"),
        Message::Binary(bytes) if base64 => format!("< {time} [binary] {}", base64_encode(bytes)),
        Message::Binary(bytes) => format!("< {time} [binary] {}", hex_encode(bytes)),
    }
}

/// Prints on stdout, where no prompt is drawn.
struct Plain;

impl ExternalPrinter for Plain {
    fn print(&mut self, msg: String) -> rustyline::Result<()> {
        print!("{msg}");
        std::io::stdout().flush()?;
        Ok(())
    }
}

/// Prints a line above the prompt (or plainly once the prompt is gone).
fn show(printer: &mut dyn ExternalPrinter, line: &str) {
    if printer.print(format!("{line}\n")).is_err() {
        println!("{line}");
    }
}

/// The terminal's settings before the prompt put it in raw mode, restored when we exit
/// while the prompt is still reading (the server closed).
struct Terminal {
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
}

impl Terminal {
    fn save() -> Self {
        Self {
            #[cfg(unix)]
            saved: nix::sys::termios::tcgetattr(std::io::stdin()).ok(),
        }
    }

    fn restore(&self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSADRAIN,
                saved,
            );
        }
    }
}

/// Runs the interactive mode: one connection, until it closes.
pub(super) async fn run(args: &ConnectArgs, options: WebSocketStreamOptions) -> ExitCode {
    let terminal = Terminal::save();
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => return report::fail(format_args!("cannot start the prompt: {e}")),
    };
    // Not at a terminal (--interactive with a pipe): lines are read without editing and
    // printed as they come.
    let mut printer: Box<dyn ExternalPrinter + Send> = match editor.create_external_printer() {
        Ok(printer) => Box::new(printer),
        Err(_) => Box::new(Plain),
    };
    let mut stop = Stop::install();
    let wss = tokio::select! {
        wss = start(args, options) => wss,
        status = stop.wait() => return ExitCode::from(status),
    };
    let wss = match wss {
        Ok(wss) => wss,
        Err(End::Exit(status)) => return status,
        Err(_) => return ExitCode::FAILURE,
    };
    let opened = tokio::select! {
        opened = wss.opened() => opened,
        status = stop.wait() => return ExitCode::from(status),
    };
    let info = match opened {
        Ok(info) => info,
        Err(e) => {
            let text = report::connection_error(&e);
            return report::fail(format_args!("could not connect to {}: {text}", wss.url()));
        }
    };
    let (mut reader, mut writer) = match (info.readable.get_reader(), info.writable.get_writer()) {
        (Ok(reader), Ok(writer)) => (reader, writer),
        (Err(e), _) | (_, Err(e)) => return report::fail(e),
    };
    let mut note = format!("connected to {}", wss.url());
    if !info.protocol.is_empty() {
        note.push_str(&format!(", protocol {:?}", info.protocol));
    }
    eprintln!("{note} (/help for the commands, Ctrl-D to close)");

    let (tx, mut commands) = mpsc::channel(1);
    std::thread::spawn(move || prompt(editor, tx));
    // The prompt thread is reading the terminal (it stops after asking for a close).
    let mut prompting = true;
    let mut signalled = false;
    let mut pings: JoinSet<Result<Duration, PingError>> = JoinSet::new();
    let stalled = Cell::new(false);
    let keepalive = keepalive(
        &wss,
        args,
        &stalled,
        tracing::enabled!(tracing::Level::INFO),
    );
    tokio::pin!(keepalive);
    let unresponsive = loop {
        tokio::select! {
            read = reader.read() => match read {
                Ok(Some(message)) => {
                    show(&mut *printer, &received(&message, args.base64, SystemTime::now()));
                }
                // Closed (cleanly or not): `closed` says how.
                Ok(None) | Err(_) => break None,
            },
            command = commands.recv(), if prompting => match command {
                Some(Command::Send(message)) => {
                    // A failed write means the connection is closing: the read ends.
                    let _ = writer.write(message).await;
                }
                Some(Command::Ping { payload }) => {
                    if payload {
                        show(&mut *printer, "(the payload is ignored: wsstream's pings carry their own)");
                    }
                    pings.spawn(wss.ping());
                }
                Some(Command::Close(info)) => {
                    prompting = false;
                    close(&wss, info);
                }
                None => prompting = false,
            },
            Some(pong) = pings.join_next() => match pong {
                Ok(Ok(rtt)) => show(
                    &mut *printer,
                    &format!("pong: round trip {:.3} ms", rtt.as_secs_f64() * 1000.0),
                ),
                Ok(Err(e)) => show(&mut *printer, &format!("wsstream: ping failed: {e}")),
                Err(_) => {}
            },
            _ = stop.wait(), if !signalled => {
                signalled = true;
                close(&wss, normal_close());
            }
            text = &mut keepalive => break Some(text),
        }
    };
    drop((reader, writer));
    if prompting {
        // The prompt thread still reads the terminal, in raw mode: leave it at exit.
        terminal.restore();
        eprintln!();
    }
    if let Some(text) = unresponsive {
        return report::fail(format_args!("the connection closed uncleanly: {text}"));
    }
    match wss.closed().await {
        Ok(info) => {
            let code = info.close_code.unwrap_or(1005);
            eprintln!("closed: code {code}, reason {:?}", info.reason);
            ExitCode::SUCCESS
        }
        Err(e) => report::fail(format_args!(
            "the connection closed uncleanly: {}",
            report::connection_error(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_commands() {
        let text = |s: &str| Line::Command(Command::Send(Message::from(s)));
        assert_eq!(parse("hello"), text("hello"));
        assert_eq!(parse("//x y"), text("/x y"));
        assert_eq!(parse(""), Line::Nothing);
        assert_eq!(parse("/help"), Line::Help);
        assert_eq!(
            parse("/ping"),
            Line::Command(Command::Ping { payload: false })
        );
        assert_eq!(
            parse("/ping abc"),
            Line::Command(Command::Ping { payload: true })
        );
        assert_eq!(
            parse("/binary 01 02ff"),
            Line::Command(Command::Send(Message::from(vec![1u8, 2, 0xff])))
        );
        assert!(matches!(parse("/binary 0g"), Line::Error(_)));
        assert_eq!(
            parse("/close"),
            Line::Command(Command::Close(normal_close()))
        );
        assert_eq!(
            parse("/close 4000 bye now"),
            Line::Command(Command::Close(WebSocketCloseInfo {
                close_code: Some(4000),
                reason: "bye now".into(),
            }))
        );
        assert!(matches!(parse("/close 1006"), Line::Error(_)));
        assert!(matches!(parse("/close x"), Line::Error(_)));
        assert!(matches!(parse("/nope"), Line::Error(_)));
    }

    #[test]
    fn clock_is_utc_with_milliseconds() {
        let time = UNIX_EPOCH
            + Duration::from_millis(86_400_000 * 3 + 12 * 3_600_000 + 34 * 60_000 + 56_789);
        assert_eq!(clock(time), "12:34:56.789");
        assert_eq!(
            received(&Message::from(vec![1u8, 0xff]), false, time),
            "< 12:34:56.789 [binary] 01ff"
        );
    }
}
