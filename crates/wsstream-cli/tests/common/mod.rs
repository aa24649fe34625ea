//! What the tests that drive the `wsstream` binary through its stdio share: spawning it
//! with piped stdio, its output as channels of lines, writing its stdin, waiting for a line.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wsstream");
/// Generous bound for anything that should take well under a second.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Forwards the lines of a child's pipe to a channel, from a thread.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
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

/// A spawned process with piped stdio: the child, its stdin, its stdout and stderr lines.
pub struct Piped {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

/// Spawns `command` with stdin, stdout and stderr piped.
pub fn spawn_piped(command: &mut Command) -> Piped {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsstream");
    let stdin = child.stdin.take();
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    Piped {
        child,
        stdin,
        stdout,
        stderr,
    }
}

/// Writes `input` to an open stdin and flushes it.
pub fn write_stdin(stdin: &mut Option<ChildStdin>, input: &str) {
    let stdin = stdin.as_mut().expect("stdin is open");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    stdin.flush().expect("flush stdin");
}

/// The next line of `lines` within [`DEADLINE`].
pub fn next_line(lines: &Receiver<String>) -> String {
    lines
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("no line on stdout: {e}"))
}

/// The first line of `lines` containing `needle` within [`DEADLINE`] (the lines before it
/// are dropped), or `None`.
pub fn line_containing(lines: &Receiver<String>, needle: &str) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            if line.contains(needle) {
                return Some(line);
            }
        }
    }
    None
}
