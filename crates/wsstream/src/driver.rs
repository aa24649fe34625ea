//! The connection task: what nobody else will do. One per open connection.
//!
//! Readers and writers do their own socket I/O (see the `conn` module). This task runs
//! the timers (the close timeout, the wait for the server's TCP close, keepalive pings)
//! and the progress that no application task is there to make: while no read is waiting
//! it keeps the readable's one-message queue filled, answers pings and completes the
//! closing handshake, so `opened` and `closed` settle whether or not anyone reads or
//! writes. It is woken by the socket only when no read is waiting, by the timers, and
//! when a handle hands work over (a dropped read, a close); it ends with the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::conn::{Core, Shared, TimerPhase};
use crate::keepalive::{Action, Keepalive};

/// After the closing handshake, how long the client waits for the server to close TCP
/// (RFC 6455 §7.1.1) before closing it itself; the handshake is complete, so the close
/// stays clean. Capped by the close timeout.
const TCP_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often the connection task looks at the application's turn: a turn that makes no
/// move ends after one to two ticks.
const TURN_TICK: Duration = Duration::from_millis(50);

pub(crate) struct Driver {
    shared: Arc<Shared>,
    close_timeout: Duration,
    /// The close timer: what it waits for, and until when.
    close_timer: Option<(TimerPhase, Instant)>,
    /// The turn tick: the count of the application's turns it saw, and when it looks
    /// again. A turn still the same then has lasted a whole tick without a move: it ends.
    /// The tick runs while turns come and go, and stops once a whole tick saw none.
    turn_tick: Option<(u64, Instant)>,
    /// Sleeps until the earliest of the close timer and the turn tick; allocated only
    /// while one of them runs.
    sleep: Option<Pin<Box<Sleep>>>,
    keepalive: Option<Keepalive>,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        close_timeout: Duration,
        keepalive: Option<Keepalive>,
    ) -> Self {
        if let Some(Ok(state)) = shared.opened.get() {
            crate::trace::opened(&shared.span(), &state.protocol, &state.extensions);
        }
        Self {
            shared,
            close_timeout,
            close_timer: None,
            turn_tick: None,
            sleep: None,
            keepalive,
        }
    }

    /// Keepalive pings: one every interval while open; the peer is gone when nothing
    /// arrives within the ping timeout of one.
    fn run_keepalive(&mut self, cx: &mut Context<'_>, core: &mut Core) {
        let Some(keepalive) = self.keepalive.as_mut() else {
            return;
        };
        if core.timer().is_some() {
            // Closing: no more pings; the close timer bounds what is left.
            return;
        }
        if core.take_received() {
            keepalive.on_received();
        }
        loop {
            match keepalive.poll(cx, core.is_reading()) {
                Action::SendPing => {
                    // A failure means the connection is closing: the close timer runs.
                    let _ = core.ping(None);
                }
                Action::TimedOut => return core.peer_unresponsive(keepalive.timeout()),
                Action::Nothing => return,
            }
        }
    }

    /// The close timer (the close timeout while the closing handshake is under way, then
    /// the wait for the server's TCP close) and the end of the application's turn.
    fn run_timers(&mut self, cx: &mut Context<'_>, core: &mut Core) {
        loop {
            let now = Instant::now();
            match core.timer() {
                None => self.close_timer = None,
                Some(phase) if self.close_timer.is_none_or(|(armed, _)| armed != phase) => {
                    let duration = match phase {
                        TimerPhase::AwaitingClose => self.close_timeout,
                        TimerPhase::AwaitingTcpClose => self.close_timeout.min(TCP_CLOSE_WAIT),
                    };
                    self.close_timer = Some((phase, now + duration));
                }
                Some(_) => {}
            }
            if self.close_timer.is_some_and(|(_, at)| now >= at) {
                return core.close_timed_out();
            }
            let (active, epoch) = core.turn();
            match self.turn_tick {
                None if active => {
                    core.set_turn_tick(true);
                    self.turn_tick = Some((epoch, now + TURN_TICK));
                }
                None => {}
                Some((seen, at)) if now >= at => {
                    if active && epoch == seen {
                        // The application made no move for a whole tick: the connection
                        // goes on without it.
                        core.end_turn();
                        self.turn_tick = Some((epoch, now + TURN_TICK));
                        if core.make_progress() {
                            cx.waker().wake_by_ref();
                        }
                        continue;
                    }
                    if !active && epoch == seen {
                        // No turn since the last tick: the connection is idle; stop ticking
                        // (the next turn wakes this task).
                        core.set_turn_tick(false);
                        self.turn_tick = None;
                    } else {
                        // Turns come and go (a busy connection): keep ticking, without a
                        // wake-up per turn.
                        self.turn_tick = Some((epoch, now + TURN_TICK));
                    }
                }
                Some(_) => {}
            }
            let next = match (
                self.close_timer.map(|(_, at)| at),
                self.turn_tick.map(|(_, at)| at),
            ) {
                (Some(a), Some(b)) => a.min(b),
                (Some(at), None) | (None, Some(at)) => at,
                (None, None) => {
                    self.sleep = None;
                    return;
                }
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return;
            }
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        shared.driver_polled(cx.waker());
        let mut core = shared.core();
        let busy = core.make_progress();
        this.run_keepalive(cx, &mut core);
        this.run_timers(cx, &mut core);
        if core.is_finished() {
            return Poll::Ready(());
        }
        if busy {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
