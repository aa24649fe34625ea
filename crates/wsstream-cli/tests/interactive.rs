//! The interactive mode of `wsstream connect`, driven as a person would use it: the binary
//! runs in a tmux pane (a real terminal), keys are typed with `tmux send-keys` and the
//! screen is read with `tmux capture-pane`. The echo server runs in the test.
//!
//! Needs `tmux`; without it the test prints a note and passes.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use wsstream::WebSocketCloseInfo;
use wsstream::server::{self, ServerOptions};

const BIN: &str = env!("CARGO_BIN_EXE_wsstream");
/// How long the screen may take to show what is expected.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(10);

/// An echo server on 127.0.0.1:0; each connection reports the Close it received.
fn echo_server(rt: &Runtime) -> (SocketAddr, Receiver<Option<WebSocketCloseInfo>>) {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
                    return;
                };
                let Ok(info) = wss.opened().await else { return };
                let (Ok(mut reader), Ok(mut writer)) =
                    (info.readable.get_reader(), info.writable.get_writer())
                else {
                    return;
                };
                while let Ok(Some(message)) = reader.read().await {
                    if writer.write(message).await.is_err() {
                        break;
                    }
                }
                drop((reader, writer));
                let _ = tx.send(wss.closed().await.ok());
            });
        }
    });
    (addr, rx)
}

/// A tmux server of our own (its own socket, no configuration file), killed on drop.
struct Tmux {
    socket: String,
    /// The server's socket file (tmux leaves it behind), removed on drop.
    socket_path: Option<PathBuf>,
}

impl Tmux {
    fn start(width: u16, height: u16, command: &str) -> Self {
        static SERVERS: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let number = SERVERS.fetch_add(1, Ordering::Relaxed);
        let mut tmux = Self {
            socket: format!("wsstream-test-{}-{number}-{nanos}", std::process::id()),
            socket_path: None,
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let out = tmux.run(&["display-message", "-p", "#{socket_path}"]);
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            tmux.socket_path = Some(PathBuf::from(path));
        }
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Types `text` key by key, as a person does, then Enter. (rustyline 17 leaves keys
    /// that arrive in one burst unprocessed until the next key; a pasted line comes as a
    /// bracketed paste and is not affected.)
    fn type_line(&self, text: &str) {
        for c in text.chars() {
            let out = self.run(&["send-keys", "-l", &c.to_string()]);
            assert!(out.status.success(), "tmux send-keys: {out:?}");
            thread::sleep(Duration::from_millis(15));
        }
        self.key("Enter");
    }

    fn key(&self, key: &str) {
        let out = self.run(&["send-keys", key]);
        assert!(out.status.success(), "tmux send-keys {key}: {out:?}");
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `ready`, and returns it.
    fn wait_for(&self, what: &str, ready: impl Fn(&[&str]) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
            if ready(&lines) {
                return screen;
            }
            assert!(
                start.elapsed() < SCREEN_TIMEOUT,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = fs::remove_file(path);
        }
    }
}

/// A directory of the test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wsstream-interactive-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The last line of the screen that is not empty.
fn last_line<'a>(lines: &[&'a str]) -> &'a str {
    lines
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .copied()
        .unwrap_or("")
}

fn tmux_installed() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Whether `line` is `< HH:MM:SS.mmm BODY`.
fn is_received(line: &str, body: &str) -> bool {
    let Some(rest) = line.strip_prefix("< ") else {
        return false;
    };
    let Some((time, rest)) = rest.split_at_checked(12) else {
        return false;
    };
    let shape = time.bytes().enumerate().all(|(i, b)| match i {
        2 | 5 => b == b':',
        8 => b == b'.',
        _ => b.is_ascii_digit(),
    });
    shape && rest.strip_prefix(' ') == Some(body)
}

/// Whether the screen shows the received line `body` with a fresh prompt below it.
fn received_above_prompt(lines: &[&str], body: &str) -> bool {
    lines
        .iter()
        .position(|line| is_received(line, body))
        .is_some_and(|i| lines[i + 1..].contains(&">"))
}

/// Whether tmux is here to run the test; without it, a note (and the test passes) except
/// in CI, which installs tmux (.ci/run): there a missing tmux is a failure, not a skip.
fn tmux_or_skip() -> bool {
    if tmux_installed() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux is required for the interactive mode test in CI"
    );
    eprintln!("note: tmux is not installed: the interactive mode test is skipped");
    false
}

#[test]
fn interactive_prompt_sends_pings_sends_binary_and_closes() {
    if !tmux_or_skip() {
        return;
    }
    let rt = Runtime::new().expect("runtime");
    let (addr, closes) = echo_server(&rt);
    // The history goes to $HOME/.wsstream_history: a HOME of the test's own.
    let home = TempDir::new("home");
    let command = format!(
        "env -u WSSTREAM_HISTORY HOME={} {BIN} connect --interactive ws://{addr}/echo; \
         echo \"[exit $?]\"; sleep 60",
        home.0.display()
    );
    let tmux = Tmux::start(120, 30, &command);

    tmux.wait_for("the prompt", |lines| {
        lines.iter().any(|l| l.starts_with("connected to ws://")) && lines.contains(&">")
    });

    // A text message comes back above a fresh prompt.
    tmux.type_line("hello there");
    tmux.wait_for("the echo of the message", |lines| {
        lines.contains(&"> hello there") && received_above_prompt(lines, "hello there")
    });

    // A line starting with // is sent with one slash less.
    tmux.type_line("//slash");
    tmux.wait_for("the echo of /slash", |lines| {
        received_above_prompt(lines, "/slash")
    });

    // /ping prints the round-trip time.
    tmux.type_line("/ping");
    tmux.wait_for("the round-trip time", |lines| {
        lines.iter().any(|l| {
            l.strip_prefix("pong: round trip ")
                .and_then(|rest| rest.strip_suffix(" ms"))
                .is_some_and(|ms| ms.parse::<f64>().is_ok())
        })
    });

    // /binary sends a binary message; its echo is shown as hex.
    tmux.type_line("/binary 0102ff");
    tmux.wait_for("the echo of the binary message", |lines| {
        received_above_prompt(lines, "[binary] 0102ff")
    });

    // An unknown command is refused, nothing is sent.
    tmux.type_line("/nope");
    tmux.wait_for("the refusal of /nope", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("wsstream: unknown command /nope"))
    });

    // Up brings the last line back; Ctrl-U clears it.
    tmux.key("Up");
    tmux.wait_for("/nope from the history", |lines| {
        lines.iter().filter(|l| **l == "> /nope").count() == 2
    });
    tmux.key("C-u");
    tmux.wait_for("an empty prompt", |lines| last_line(lines) == ">");

    // /close closes cleanly with the code and reason, and the client exits with 0.
    tmux.type_line("/close 4000 bye now");
    let screen = tmux.wait_for("the exit", |lines| lines.contains(&"[exit 0]"));
    assert!(
        screen.contains("closed: code 4000, reason \"bye now\""),
        "{screen}"
    );
    let close = closes
        .recv_timeout(SCREEN_TIMEOUT)
        .expect("the server saw the connection end");
    let close = close.expect("a clean close");
    assert_eq!(close.close_code, Some(4000));
    assert_eq!(close.reason, "bye now");

    let history = fs::read_to_string(home.0.join(".wsstream_history")).expect("the history");
    let history: Vec<&str> = history.lines().collect();
    assert_eq!(
        history,
        [
            "hello there",
            "//slash",
            "/ping",
            "/binary 0102ff",
            "/nope",
            "/close 4000 bye now"
        ]
    );
}

#[test]
fn ctrl_d_at_the_prompt_closes_with_1000() {
    if !tmux_or_skip() {
        return;
    }
    let rt = Runtime::new().expect("runtime");
    let (addr, closes) = echo_server(&rt);
    let dir = TempDir::new("history");
    let history = dir.0.join("history");
    fs::write(&history, "older\nfrom before\n").expect("write the history");
    let command = format!(
        "WSSTREAM_HISTORY={} {BIN} connect --interactive ws://{addr}/echo; \
         echo \"[exit $?]\"; sleep 60",
        history.display()
    );
    let tmux = Tmux::start(120, 30, &command);
    tmux.wait_for("the prompt", |lines| lines.contains(&">"));
    // The history of earlier sessions is loaded.
    tmux.key("Up");
    tmux.wait_for("the last line of the history file", |lines| {
        lines.contains(&"> from before")
    });
    tmux.key("C-u");
    tmux.wait_for("an empty prompt", |lines| last_line(lines) == ">");
    tmux.key("C-d");
    let screen = tmux.wait_for("the exit", |lines| lines.contains(&"[exit 0]"));
    assert!(screen.contains("closed: code 1000"), "{screen}");
    let close = closes
        .recv_timeout(SCREEN_TIMEOUT)
        .expect("the server saw the connection end")
        .expect("a clean close");
    assert_eq!(close.close_code, Some(1000));
}

#[test]
fn a_terminal_gets_the_prompt_by_default_and_no_interactive_keeps_the_pipe_mode() {
    if !tmux_or_skip() {
        return;
    }
    let rt = Runtime::new().expect("runtime");
    let (addr, closes) = echo_server(&rt);
    let home = TempDir::new("default-home");

    // Without a flag, stdin and stdout being a terminal means the prompt.
    let command = format!(
        "env -u WSSTREAM_HISTORY HOME={} {BIN} connect ws://{addr}/echo; \
         echo \"[exit $?]\"; sleep 60",
        home.0.display()
    );
    let tmux = Tmux::start(120, 30, &command);
    tmux.wait_for("the prompt", |lines| lines.contains(&">"));
    tmux.key("C-d");
    tmux.wait_for("the exit", |lines| lines.contains(&"[exit 0]"));
    drop(tmux);
    closes
        .recv_timeout(SCREEN_TIMEOUT)
        .expect("the server saw the first connection end");

    // --no-interactive: lines typed at the terminal are sent as in a pipe, the echo is
    // printed as a plain line, no prompt; Ctrl-D (the end of the input) closes as the
    // end of piped input does: a Close without a code (the server sees 1005).
    let command = format!(
        "env -u WSSTREAM_HISTORY HOME={} {BIN} connect --no-interactive ws://{addr}/echo; \
         echo \"[exit $?]\"; sleep 60",
        home.0.display()
    );
    let tmux = Tmux::start(120, 30, &command);
    tmux.wait_for("the connection", |lines| {
        lines.iter().any(|l| l.starts_with("connected to ws://"))
    });
    tmux.type_line("plain mode");
    // The terminal echoes the typed line once; the server's echo is the second copy.
    tmux.wait_for("the echo", |lines| {
        lines.iter().filter(|l| **l == "plain mode").count() == 2
    });
    tmux.key("C-d");
    let screen = tmux.wait_for("the exit", |lines| lines.contains(&"[exit 0]"));
    assert!(
        !screen
            .lines()
            .any(|l| l.trim_end() == ">" || l.starts_with("> ")),
        "a prompt in the pipe mode: {screen}"
    );
    let close = closes
        .recv_timeout(SCREEN_TIMEOUT)
        .expect("the server saw the connection end")
        .expect("a clean close");
    assert_eq!(close.close_code, Some(1005));
}
