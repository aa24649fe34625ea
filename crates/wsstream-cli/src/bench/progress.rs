//! The progress line on stderr while `bench` runs.
//!
//! Hand-written rather than with `indicatif`: one line of counters needs no bars,
//! templates or terminal-width handling, and indicatif would add console,
//! unicode-width, portable-atomic and number_prefix to a CLI that otherwise builds on
//! what the library already pulls in. On a terminal the line is redrawn in place (`\r`)
//! every 500 ms; otherwise (a pipe, a log file, CI) a full line is printed every 5 s.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;

/// Prints the progress line until the task is aborted.
pub(crate) async fn run(shared: Arc<Shared>, duration: Option<Duration>, terminal: bool) {
    let period = if terminal {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last = (Instant::now(), 0u64);
    loop {
        ticks.tick().await;
        let live = &shared.live;
        let opened = live.opened.load(Ordering::Relaxed);
        let failed = live.failed.load(Ordering::Relaxed);
        let received = live.received.load(Ordering::Relaxed);
        let mut line = String::new();
        match shared.phase_start.get() {
            None => {
                let _ = write!(
                    line,
                    "connecting: {opened} open, {failed} failed of {}",
                    shared.connections
                );
            }
            Some(start) => {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(*start).as_secs_f64();
                let _ = write!(line, "{elapsed:6.1} s");
                if let Some(d) = duration {
                    let _ = write!(line, "/{} s", d.as_secs_f64());
                }
                let window = now.saturating_duration_since(last.0).as_secs_f64();
                #[allow(clippy::cast_precision_loss)]
                let recent = (received.saturating_sub(last.1)) as f64 / window.max(1e-9);
                last = (now, received);
                let _ = write!(
                    line,
                    "  {opened} open  sent {}  received {received} ({recent:.0}/s)  mismatched {}  unclean {}  failed {failed}",
                    live.sent.load(Ordering::Relaxed),
                    live.mismatched.load(Ordering::Relaxed),
                    live.unclean.load(Ordering::Relaxed),
                );
            }
        }
        let mut stderr = std::io::stderr().lock();
        let _ = if terminal {
            write!(stderr, "\r{line}\x1b[K")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }
}
