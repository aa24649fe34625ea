//! The per-connection driver: the only code that touches both the socket and the stream
//! state. One task per connection runs it; it reads the socket only while the readable
//! has room, writes the engine's transmit buffer, and runs the closing handshake timers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;
use tokio::time::Sleep;
use wsstream_proto::{Role, State};

use crate::WebSocketCloseInfo;
use crate::error::{AbortReason, ConnectionError, StreamError, WebSocketError};
use crate::keepalive::{Action, Keepalive};
use crate::shared::{Phase, ReadState, Shared};
use crate::transport::Transport;

/// Smallest read buffer; it doubles while reads fill it, up to [`MAX_READ_SIZE`].
const MIN_READ_SIZE: usize = 4 * 1024;
const MAX_READ_SIZE: usize = 64 * 1024;
/// Largest amount reserved ahead of data for a big frame; beyond it the buffer grows as
/// bytes arrive, so a peer announcing a huge frame cannot make us allocate it up front.
const MAX_EAGER_RESERVE: usize = 1 << 20;
/// After the closing handshake, how long the client waits for the server to close TCP
/// (RFC 6455 §7.1.1) before closing it itself; the handshake is complete, so the close
/// stays clean. Capped by the close timeout.
const TCP_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the close timer is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerPhase {
    /// The peer's Close frame, after ours.
    AwaitingClose,
    /// The end of the TCP connection, after the closing handshake (or a failure).
    AwaitingTcpClose,
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    io: Transport,
    role: Role,
    read_size: usize,
    wbuf: Option<BytesMut>,
    eof: bool,
    /// Bytes were written since the last completed flush. TLS keeps encrypted records
    /// when the socket is full; they must be flushed even if no further write comes.
    unflushed: bool,
    shutdown: bool,
    close_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    timer_phase: TimerPhase,
    timed_out: bool,
    io_error: Option<io::Error>,
    keepalive: Option<Keepalive>,
    /// The keepalive gave up: nothing arrived within this ping timeout.
    unresponsive: Option<Duration>,
}

/// Why the connection ended uncleanly, exposed as the WebSocketError's `source()`.
#[derive(Debug)]
pub(crate) enum CloseCause {
    Io(io::Error),
    Protocol(wsstream_proto::ProtocolError),
    Timeout,
    Eof,
    UnsentData,
    Unresponsive(crate::keepalive::PeerUnresponsive),
}

impl std::fmt::Display for CloseCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(_) => f.write_str("transport error"),
            Self::Protocol(_) => f.write_str("the peer violated the protocol"),
            Self::Timeout => f.write_str("the peer did not complete the closing handshake in time"),
            Self::Eof => f.write_str("the connection was closed without a closing handshake"),
            Self::UnsentData => f.write_str("the connection closed with data still unsent"),
            Self::Unresponsive(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CloseCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        io: Transport,
        leftover: BytesMut,
        role: Role,
        close_timeout: Duration,
        keepalive: Option<Keepalive>,
    ) -> Self {
        {
            let mut inner = shared.lock();
            inner.needs_input = leftover.is_empty();
            inner.rbuf = leftover;
        }
        Self {
            shared,
            io,
            role,
            read_size: MIN_READ_SIZE,
            wbuf: None,
            eof: false,
            unflushed: false,
            shutdown: false,
            close_timeout,
            timer: None,
            timer_phase: TimerPhase::AwaitingClose,
            timed_out: false,
            io_error: None,
            keepalive,
            unresponsive: None,
        }
    }

    /// Starts the close timer for `phase` (replacing a timer of an earlier phase).
    fn start_timer(&mut self, phase: TimerPhase) {
        if self.timer.is_none() || self.timer_phase != phase {
            let duration = match phase {
                TimerPhase::AwaitingClose => self.close_timeout,
                TimerPhase::AwaitingTcpClose => self.close_timeout.min(TCP_CLOSE_WAIT),
            };
            self.timer = Some(Box::pin(tokio::time::sleep(duration)));
            self.timer_phase = phase;
        }
    }

    /// Settles everything: streams, `closed`. Called once, when the transport is done.
    fn finish(&mut self) {
        let shared = self.shared.clone();
        let mut inner = shared.lock();
        inner.phase = Phase::Closed;
        let transmitted =
            self.wbuf.is_none() && !inner.conn.as_ref().is_some_and(|c| c.has_transmit());
        let Some(conn) = inner.conn.as_ref() else {
            return;
        };
        let received = conn.close_received().cloned();
        let failure = conn.failure().cloned();
        let close_sent = conn.close_sent();
        let unsent = inner.unsent_data || conn.abandoned_data() || inner.pending_writes() > 0;
        let clean = received.is_some() && close_sent && transmitted && failure.is_none() && !unsent;
        let code = received.as_ref().map_or(1006, |f| f.reported_code().0);
        let reason = received
            .as_ref()
            .map(|f| f.reason.to_string())
            .unwrap_or_default();
        if clean {
            inner.close_readable();
            inner.error_writable(StreamError::invalid_state("the WebSocketStream is closed"));
            drop(inner);
            shared.closed.settle(Ok(WebSocketCloseInfo {
                close_code: Some(code),
                reason,
            }));
            return;
        }
        let cause = if let Some(e) = failure {
            CloseCause::Protocol(e)
        } else if let Some(timeout) = self.unresponsive {
            CloseCause::Unresponsive(crate::keepalive::PeerUnresponsive { timeout })
        } else if let Some(e) = self.io_error.take() {
            CloseCause::Io(e)
        } else if unsent && received.is_some() {
            CloseCause::UnsentData
        } else if self.timed_out {
            CloseCause::Timeout
        } else {
            CloseCause::Eof
        };
        let source: AbortReason = Arc::new(cause);
        let error = Arc::new(WebSocketError::from_connection(
            "WebSocket was not cleanly closed",
            Some(code),
            reason,
            Some(source),
        ));
        inner.error_readable(StreamError::WebSocket(error.clone()));
        if inner.write_error_is_provisional {
            // B57: after our own close() turns out unclean, the writable is errored with the
            // same WebSocketError as `closed` and the readable.
            inner.write_error = None;
        }
        inner.error_writable(StreamError::WebSocket(error.clone()));
        drop(inner);
        shared.closed.settle(Err(ConnectionError::WebSocket(error)));
    }

    /// One round of work; returns whether anything progressed and whether we are done.
    fn poll_once(&mut self, cx: &mut Context<'_>) -> (bool, bool) {
        let mut progress = false;
        let mut rbuf = BytesMut::new();
        let mut oversized = false;
        let mut read_allowed;
        let read_hint;
        let state;
        {
            let shared = self.shared.clone();
            let mut inner = shared.lock();
            inner.driver_notified = false;
            if !inner
                .driver_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.driver_waker = Some(cx.waker().clone());
            }
            if inner.abandoned && inner.conn.as_ref().is_some_and(|c| !c.close_sent()) {
                // B71: every handle is gone: start a closing handshake without status.
                inner.start_close(None, "");
            }
            inner.advance_writes();
            if self.wbuf.is_none() {
                if let Some(chunk) = inner.conn.as_mut().and_then(|c| c.take_transmit()) {
                    inner.tx_taken += chunk.len() as u64;
                    self.wbuf = Some(chunk);
                    inner.advance_writes();
                }
            }
            let Some(conn) = inner.conn.as_ref() else {
                return (false, true);
            };
            state = conn.state();
            let hint = conn.read_hint();
            // Hand the next buffered message to the readable if its queue is empty (this
            // also decodes the bytes that arrived with the handshake response).
            inner.fill_queue();
            inner.advance_writes();
            let queue_room = inner.queue_is_empty()
                || inner.local_close
                || !matches!(inner.read_state, ReadState::Open);
            read_allowed = !self.eof && queue_room && inner.needs_input && state != State::Failed;
            if let (Some(keepalive), State::Open) = (self.keepalive.as_mut(), state) {
                match keepalive.poll(cx, queue_room) {
                    Action::SendPing(payload) => {
                        let _ = inner.conn.as_mut().map(|c| c.ping(&payload));
                        progress = true;
                    }
                    Action::TimedOut => {
                        self.unresponsive = Some(keepalive.timeout());
                        return (true, true);
                    }
                    Action::Nothing => {}
                }
            }
            if read_allowed {
                rbuf = std::mem::take(&mut inner.rbuf);
                oversized = std::mem::take(&mut inner.rbuf_oversized);
            }
            read_hint = hint;
        }

        // Write.
        if let Some(buf) = self.wbuf.as_mut() {
            match Pin::new(&mut self.io).poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => {
                    self.io_error = Some(io::ErrorKind::WriteZero.into());
                    return (true, true);
                }
                Poll::Ready(Ok(n)) => {
                    buf.advance(n);
                    progress = true;
                    self.unflushed = true;
                    if buf.is_empty() {
                        self.wbuf = None;
                    }
                    let mut inner = self.shared.lock();
                    inner.tx_written += n as u64;
                    if inner.tx_written == inner.tx_taken {
                        inner.wake_writers();
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.io_error = Some(e);
                    return (true, true);
                }
                Poll::Pending => {}
            }
        }

        // Flush once the transmit buffer is drained (a no-op for TCP).
        if self.wbuf.is_none() && self.unflushed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => {
                    self.io_error = Some(e);
                    return (true, true);
                }
                Poll::Pending => {}
            }
        }

        // Read (the buffer was taken out of the shared state for the duration).
        if read_allowed && rbuf.is_empty() {
            match self.io.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    self.io_error = Some(e);
                    return (true, true);
                }
                Poll::Pending => {
                    // Nothing to read: an idle connection holds no read buffer (unless
                    // messages still share its allocation).
                    read_allowed = false;
                    rbuf = BytesMut::new();
                    oversized = false;
                }
            }
        }
        if read_allowed {
            if rbuf.len() < MIN_READ_SIZE && oversized {
                // The buffer grew for a large frame: give that memory back instead of
                // keeping it for the rest of the connection.
                let mut small = BytesMut::with_capacity(self.read_size);
                small.extend_from_slice(&rbuf);
                rbuf = small;
                oversized = false;
            }
            let want = self
                .read_size
                .max(read_hint.min(MAX_EAGER_RESERVE.max(rbuf.len())));
            let spare = rbuf.capacity() - rbuf.len();
            if spare < self.read_size.min(want) || spare < read_hint {
                rbuf.reserve(want);
            }
            let spare = rbuf.capacity() - rbuf.len();
            oversized |= rbuf.capacity() > MAX_READ_SIZE + MIN_READ_SIZE;
            let result = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut rbuf);
            let shared = self.shared.clone();
            let mut inner = shared.lock();
            inner.rbuf = rbuf;
            inner.rbuf_oversized = oversized;
            match result {
                Poll::Ready(Ok(0)) => {
                    self.eof = true;
                    progress = true;
                }
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    if let Some(keepalive) = self.keepalive.as_mut() {
                        keepalive.on_received();
                    }
                    if n == spare && self.read_size < MAX_READ_SIZE {
                        self.read_size *= 2;
                    }
                    inner.needs_input = false;
                    inner.fill_queue();
                    inner.advance_writes();
                }
                Poll::Ready(Err(e)) => {
                    self.io_error = Some(e);
                    return (true, true);
                }
                Poll::Pending => {}
            }
        }

        // Closing handshake and termination.
        let state = {
            let inner = self.shared.lock();
            inner.conn.as_ref().map_or(state, |c| c.state())
        };
        let transmitted = self.wbuf.is_none()
            && !self.unflushed
            && !self
                .shared
                .lock()
                .conn
                .as_ref()
                .is_some_and(|c| c.has_transmit());
        match state {
            State::Open | State::CloseReceived => {
                if self.eof {
                    return (progress, true);
                }
            }
            State::CloseSent => {
                self.start_timer(TimerPhase::AwaitingClose);
                if self.eof {
                    return (progress, true);
                }
            }
            State::Closed | State::Failed => {
                if transmitted {
                    if state == State::Failed || self.eof {
                        // A failed connection is closed at once.
                        return (progress, true);
                    }
                    // Shutting down our write side (over TLS: close_notify first) tells
                    // the peer we are done. RFC 6455 §7.1.1: the server then closes TCP;
                    // the client waits for the server to close it, bounded by the close
                    // timeout.
                    if !self.shutdown {
                        match Pin::new(&mut self.io).poll_shutdown(cx) {
                            Poll::Ready(_) => {
                                self.shutdown = true;
                                progress = true;
                            }
                            Poll::Pending => {}
                        }
                    }
                    if self.role == Role::Server && self.shutdown {
                        return (progress, true);
                    }
                }
                self.start_timer(if transmitted {
                    TimerPhase::AwaitingTcpClose
                } else {
                    TimerPhase::AwaitingClose
                });
                if self.eof {
                    return (progress, true);
                }
            }
        }
        if let Some(timer) = self.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                self.timed_out = true;
                return (true, true);
            }
        }
        (progress, false)
    }
}

impl Future for Driver {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let (progress, done) = this.poll_once(cx);
            if done {
                this.finish();
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}
