//! Keepalive pings (opt-in, [`ping_interval`](crate::WebSocketStreamOptions::ping_interval)):
//! a Ping every interval while the connection is open; when nothing at all arrives from
//! the peer within [`ping_timeout`](crate::WebSocketStreamOptions::ping_timeout) of a
//! Ping, the peer is gone and the connection closes uncleanly (1006).
//!
//! Self-contained: the driver reports received bytes and polls it for what to do.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::options::WebSocketStreamOptions;

/// What the driver should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send a Ping.
    SendPing,
    /// Nothing arrived within the ping timeout: close uncleanly (1006) with
    /// [`PeerUnresponsive`] as the cause.
    TimedOut,
    /// Nothing to do; the timer is armed and will wake the task.
    Nothing,
}

/// The keepalive state of one connection.
#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    /// When the next Ping is due.
    next_ping: Instant,
    /// Set while a Ping is unanswered: nothing arrived since it was sent.
    deadline: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl Keepalive {
    /// Keepalive for a connection that opens now, if `options` ask for it.
    pub(crate) fn from_options(options: &WebSocketStreamOptions) -> Option<Self> {
        options
            .ping_interval
            .map(|interval| Self::new(interval, options.ping_timeout))
    }

    /// The first Ping is due one `interval` from now (a zero interval counts as 1 ms).
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        let next_ping = Instant::now() + interval;
        Self {
            interval,
            timeout,
            next_ping,
            deadline: None,
            sleep: Box::pin(tokio::time::sleep_until(next_ping)),
        }
    }

    /// The timeout this keepalive enforces (for the error message).
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Bytes arrived from the peer (a Pong or anything else): it is alive.
    pub(crate) fn on_received(&mut self) {
        self.deadline = None;
    }

    /// What to do now. `reading` tells whether the driver is reading the socket: while
    /// it is not (the application is not reading and the readable is full), a Pong
    /// could not be seen, so no Ping is waited for.
    ///
    /// Registers the task's waker for the next due time when it returns
    /// [`Action::Nothing`].
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, reading: bool) -> Action {
        loop {
            let now = Instant::now();
            if !reading {
                self.deadline = None;
            }
            if self.deadline.is_some_and(|deadline| now >= deadline) {
                return Action::TimedOut;
            }
            if now >= self.next_ping {
                self.next_ping = now + self.interval;
                if self.deadline.is_none() && reading {
                    self.deadline = Some(now + self.timeout);
                }
                self.arm();
                return Action::SendPing;
            }
            self.arm();
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Action::Nothing;
            }
        }
    }

    /// Points the timer at the earliest due time.
    fn arm(&mut self) {
        let due = match self.deadline {
            Some(deadline) => deadline.min(self.next_ping),
            None => self.next_ping,
        };
        if self.sleep.deadline() != due {
            self.sleep.as_mut().reset(due);
        }
    }
}

/// The `source()` of the WebSocketError of a connection closed by the keepalive: the
/// peer stopped answering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerUnresponsive {
    /// The ping timeout that expired.
    pub(crate) timeout: Duration,
}

impl std::fmt::Display for PeerUnresponsive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the peer stopped answering: nothing received within {:?} of a ping",
            self.timeout
        )
    }
}

impl std::error::Error for PeerUnresponsive {}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Waits until the keepalive has something to do.
    async fn next(k: &mut Keepalive, reading: bool) -> Action {
        poll_fn(|cx| match k.poll(cx, reading) {
            Action::Nothing => Poll::Pending,
            action => Poll::Ready(action),
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn pings_every_interval_while_answered() {
        let start = Instant::now();
        let mut k = Keepalive::new(10 * S, 5 * S);
        for i in 1..=3u64 {
            assert_eq!(next(&mut k, true).await, Action::SendPing);
            assert_eq!(start.elapsed(), 10 * S * i as u32);
            tokio::time::advance(S).await;
            k.on_received();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_when_nothing_arrives() {
        let start = Instant::now();
        let mut k = Keepalive::new(10 * S, 5 * S);
        assert!(matches!(next(&mut k, true).await, Action::SendPing));
        assert_eq!(next(&mut k, true).await, Action::TimedOut);
        assert_eq!(start.elapsed(), 15 * S);
        assert_eq!(k.timeout(), 5 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_longer_than_the_interval_keeps_pinging() {
        let start = Instant::now();
        let mut k = Keepalive::new(2 * S, 5 * S);
        let mut pings = 0;
        loop {
            match next(&mut k, true).await {
                Action::SendPing => pings += 1,
                Action::TimedOut => break,
                Action::Nothing => unreachable!(),
            }
        }
        // Pings at 2, 4, 6; the first one's deadline is 7.
        assert_eq!((pings, start.elapsed()), (3, 7 * S));
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_while_not_reading() {
        let start = Instant::now();
        let mut k = Keepalive::new(10 * S, 5 * S);
        assert!(matches!(next(&mut k, false).await, Action::SendPing));
        assert!(matches!(next(&mut k, false).await, Action::SendPing));
        assert_eq!(start.elapsed(), 20 * S);
        // Reading again: the next ping is waited for.
        assert!(matches!(next(&mut k, true).await, Action::SendPing));
        assert_eq!(next(&mut k, true).await, Action::TimedOut);
        assert_eq!(start.elapsed(), 35 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_still_count() {
        let start = Instant::now();
        let mut k = Keepalive::new(10 * S, 5 * S);
        assert!(matches!(next(&mut k, true).await, Action::SendPing));
        tokio::time::advance(4 * S).await;
        k.on_received();
        assert!(matches!(next(&mut k, true).await, Action::SendPing));
        assert_eq!(start.elapsed(), 20 * S);
    }

    #[test]
    fn unresponsive_message() {
        let e = PeerUnresponsive { timeout: 5 * S };
        assert!(e.to_string().contains("stopped answering"), "{e}");
    }
}
