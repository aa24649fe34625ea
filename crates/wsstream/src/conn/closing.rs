//! The closing handshake (RFC 6455 §7) and the end of the connection.
//!
//! A close we start (`close()`, `readable.cancel`, `writable.abort`, `writer.close()`,
//! every handle dropped) is *requested* first: every write accepted before it is framed
//! and sent, then our Close frame, so `close()` loses nothing that was written. New writes
//! are refused from the request on. The peer's Close ends the input: its reply is sent
//! at once, and writes not yet sent are rejected (RFC 6455 §5.5.1: no data after a
//! Close), which makes the close unclean.
//!
//! The connection is closed when the closing handshake is done and the TCP connection is
//! closed, or when it fails. Then, in one step under the lock, `closed` settles and the
//! readable and the writable end: closed / errored with InvalidStateError after a clean
//! close; all three with the same WebSocketError otherwise. A reader that sees the end
//! therefore always finds `closed` already settled.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio::time::Instant;
use wsstream_proto::{CloseCode, State};

use super::{Core, PendingPing, Phase, PingPromise};
use crate::WebSocketCloseInfo;
use crate::error::{
    AbortReason, CancelReason, ConnectionError, PingError, StreamError, WebSocketError,
};

/// After failing the connection, at most this much of the peer's input is read and
/// discarded while waiting for it to close (the lingering close).
const LINGER_BYTES: usize = 16 << 20;

/// What the close timer of the connection task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerPhase {
    /// Our Close to go out (after the accepted writes) and the peer's Close to come back.
    AwaitingClose,
    /// The end of the TCP connection, after the closing handshake (or a failure).
    AwaitingTcpClose,
}

/// Why the connection ended uncleanly, exposed as the WebSocketError's `source()`.
#[derive(Debug)]
pub(crate) enum CloseCause {
    Io(std::io::Error),
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

impl Core {
    /// Starts the closing handshake with an already validated code and reason, once open:
    /// the Close frame follows every write accepted so far. Does nothing if a close was
    /// already requested or sent (the first close wins: RFC 6455 §7.1.2).
    pub(crate) fn request_close(&mut self, code: Option<u16>, reason: &str) {
        self.end_turn();
        if self.phase != Phase::Open || self.closing.requested.is_some() {
            return;
        }
        if self.conn.as_ref().is_none_or(|c| c.close_sent()) {
            return;
        }
        self.closing.local = true;
        self.closing.requested = Some((code, reason.to_owned()));
        if self.writable.error.is_none() {
            // New writes are refused from now on; the accepted ones go out first. If the
            // close turns out unclean, the writable takes the WebSocketError instead.
            self.writable.error =
                Some(StreamError::invalid_state("the WebSocketStream is closing"));
            self.writable.provisional = true;
            self.hub.wake_writers();
        }
        if self.make_progress() {
            self.hub.wake_driver();
        }
    }

    /// "Close using a reason" (`readable.cancel`, `writable.abort`): only a
    /// WebSocketError's code and reason are used; anything else closes without code.
    pub(crate) fn close_using_reason(&mut self, reason: &CancelReason) {
        // The brand check is on the value: a WebSocketError passed as `Other` (one the
        // API returned, as an `Arc<dyn Error>`) counts too.
        let (code, text) = match reason {
            CancelReason::WebSocketError(e) => (e.close_code(), e.reason().to_owned()),
            CancelReason::Other(r) => match r.downcast_ref::<WebSocketError>() {
                Some(e) => (e.close_code(), e.reason().to_owned()),
                None => (None, String::new()),
            },
            CancelReason::None => (None, String::new()),
        };
        // A code the application may not send (e.g. 1006 from a connection-made error)
        // falls back to no code and no reason.
        let (code, text) = match code {
            Some(c) if !self.close_codes.allows(c) => (None, String::new()),
            other => (other, text),
        };
        self.request_close(code, &text);
    }

    /// Every handle is gone: close without status code (the WebSocket rule for a
    /// collected socket).
    pub(super) fn abandon(&mut self) {
        self.abandoned = true;
        self.request_close(None, "");
        self.hub.wake_driver();
    }

    /// The peer's Close arrived (its reply is queued by the engine).
    pub(super) fn on_peer_close(&mut self) {
        self.readable.finished_input = true;
        if !self.closing.local {
            self.closing.peer_closed_first = true;
        }
        self.closing.requested = None;
        // As Chromium does: the writable errors now, before TCP closes; writes not yet
        // sent are rejected (and make the close unclean).
        self.error_writable(StreamError::invalid_state(
            "the peer closed the WebSocketStream",
        ));
    }

    /// We failed the connection (the peer violated the protocol; our Close with the
    /// reason is queued).
    pub(super) fn on_failure(&mut self, error: &wsstream_proto::ProtocolError) {
        crate::trace::protocol_violation(&self.span, error, error.close_code().0);
        self.readable.finished_input = true;
        self.closing.requested = None;
    }

    /// Sends a Ping while the connection is open and not closing; `waiter` (a `ping()`
    /// future) settles with the round-trip time when its Pong arrives. The payload is the
    /// ping's number, so each Pong names the ping it answers.
    pub(crate) fn ping(&mut self, waiter: Option<Arc<PingPromise>>) -> Result<(), PingError> {
        /// Pings waiting for their Pong, at most.
        const MAX_PINGS: usize = 1024;
        let Some(conn) = self.conn.as_mut() else {
            return Err(PingError::NotOpen);
        };
        if self.phase != Phase::Open
            || conn.state() != State::Open
            || self.closing.requested.is_some()
        {
            return Err(PingError::NotOpen);
        }
        if self.pings.len() >= MAX_PINGS {
            return Err(PingError::TooMany);
        }
        self.ping_seq += 1;
        let payload = self.ping_seq.to_be_bytes();
        if conn.ping(&payload).is_err() {
            return Err(PingError::NotOpen);
        }
        self.pings.push_back(PendingPing {
            payload,
            sent: Instant::now(),
            waiter,
        });
        if self.make_progress() {
            self.hub.wake_driver();
        }
        Ok(())
    }

    /// A Pong arrived: it answers the ping with its payload and every earlier one (a peer
    /// may answer only the most recent ping, RFC 6455 §5.5.3). An unsolicited Pong, or one
    /// with a payload we never sent, is ignored.
    pub(super) fn on_pong(&mut self, payload: &[u8]) {
        let Some(at) = self.pings.iter().position(|p| p.payload[..] == *payload) else {
            return;
        };
        let now = Instant::now();
        for ping in self.pings.drain(..=at) {
            if let Some(waiter) = ping.waiter {
                waiter.settle(Ok(now.saturating_duration_since(ping.sent)));
            }
        }
    }

    /// The timer the connection task should run now.
    pub(crate) fn timer(&self) -> Option<TimerPhase> {
        self.closing.timer
    }

    /// The close timer expired.
    pub(crate) fn close_timed_out(&mut self) {
        self.closing.timed_out = true;
        self.finish();
    }

    /// The keepalive gave up: nothing arrived within `timeout` of a ping.
    pub(crate) fn peer_unresponsive(&mut self, timeout: Duration) {
        crate::trace::unresponsive(&self.span, timeout);
        self.closing.unresponsive = Some(timeout);
        self.finish();
    }

    /// Sends a requested Close once every accepted write is framed, and ends the
    /// connection when the closing handshake and the transport are done.
    pub(super) fn advance_closing(&mut self) -> bool {
        if self.closing.requested.is_none()
            && self.closing.io_error.is_none()
            && !self.input.eof
            && self.closing.timer.is_none()
            && self.conn.as_ref().is_some_and(|c| c.state() == State::Open)
        {
            // Open, nothing asked: the common case.
            return false;
        }
        let mut moved = false;
        if self.writable.queue.is_empty() && !self.writable.in_progress {
            if let (Some((code, reason)), Some(conn)) =
                (self.closing.requested.take(), self.conn.as_mut())
            {
                // A code that cannot be sent (a connection-made WebSocketError carrying
                // 1006, say) falls back to no code and no reason.
                if conn.close(code.map(CloseCode), &reason).is_err() {
                    let _ = conn.close(None, "");
                }
                moved = true;
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            return moved;
        };
        if self.closing.io_error.is_some() {
            self.finish();
            return true;
        }
        let state = conn.state();
        let transmitted = !conn.has_transmit() && !self.output.unflushed;
        let timer = match state {
            State::Open | State::CloseReceived => self
                .closing
                .requested
                .is_some()
                .then_some(TimerPhase::AwaitingClose),
            State::CloseSent => Some(TimerPhase::AwaitingClose),
            State::Closed | State::Failed if !transmitted => Some(TimerPhase::AwaitingClose),
            State::Closed | State::Failed => {
                if state == State::Failed {
                    // Lingering close, as HTTP servers do: our Close (with the reason of
                    // the failure) is sent; closing the socket now, with the peer's data
                    // still unread, would make the kernel reset the connection and the peer
                    // might never read that Close. So the write side is shut down and the
                    // input read and discarded until the peer closes, for at most
                    // `LINGER_BYTES` and the TCP-close wait.
                    self.closing.lingering = true;
                    if self.closing.lingered > LINGER_BYTES {
                        self.finish();
                        return true;
                    }
                }
                // Shutting down our write side (over TLS: close_notify first) tells the
                // peer we are done. RFC 6455 §7.1.1: the server then closes TCP; the
                // client waits for the server to close it, bounded by a timer.
                if !self.output.shutdown {
                    if let Some(io) = self.io.as_mut() {
                        let mut cx = std::task::Context::from_waker(&self.write_waker);
                        if std::pin::Pin::new(io).poll_shutdown(&mut cx).is_ready() {
                            self.output.shutdown = true;
                            moved = true;
                        }
                    }
                }
                if self.role == wsstream_proto::Role::Server
                    && self.output.shutdown
                    && state != State::Failed
                {
                    self.finish();
                    return true;
                }
                Some(TimerPhase::AwaitingTcpClose)
            }
        };
        if self.input.eof {
            self.finish();
            return true;
        }
        if self.closing.timer != timer {
            self.closing.timer = timer;
            self.hub.wake_driver();
        }
        moved
    }

    /// The connection is closed: settles `closed`, then ends the readable and the
    /// writable, in this one step. Clean means: both Close frames exchanged, everything
    /// sent, no failure, no accepted write left unsent.
    pub(super) fn finish(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        let Some(conn) = self.conn.take() else {
            return;
        };
        let transmitted = !conn.has_transmit();
        let received = conn.close_received().cloned();
        let failure = conn.failure().cloned();
        let unsent = self.closing.unsent_data || conn.abandoned_data() || self.pending_writes() > 0;
        let clean =
            received.is_some() && conn.close_sent() && transmitted && failure.is_none() && !unsent;
        drop(conn);
        for ping in self.pings.drain(..) {
            if let Some(waiter) = ping.waiter {
                waiter.settle(Err(PingError::Closed));
            }
        }
        self.io = None;
        self.input.rbuf = BytesMut::new();
        self.closing.timer = None;
        let code = received.as_ref().map_or(1006, |f| f.reported_code().0);
        let reason = received
            .as_ref()
            .map(|f| f.reason.to_string())
            .unwrap_or_default();
        if clean {
            crate::trace::closed(&self.span, code, &reason, true, None);
            self.closed.settle(Ok(WebSocketCloseInfo {
                close_code: Some(code),
                reason,
            }));
            self.end_readable(None);
            self.error_writable(StreamError::invalid_state("the WebSocketStream is closed"));
        } else {
            let cause = if let Some(e) = failure {
                CloseCause::Protocol(e)
            } else if let Some(timeout) = self.closing.unresponsive {
                CloseCause::Unresponsive(crate::keepalive::PeerUnresponsive { timeout })
            } else if let Some(e) = self.closing.io_error.take() {
                CloseCause::Io(e)
            } else if unsent && received.is_some() {
                CloseCause::UnsentData
            } else if self.closing.timed_out {
                CloseCause::Timeout
            } else {
                CloseCause::Eof
            };
            crate::trace::closed(&self.span, code, &reason, false, Some(&cause));
            let source: AbortReason = Arc::new(cause);
            let error = Arc::new(WebSocketError::from_connection(
                "WebSocket was not cleanly closed",
                Some(code),
                reason,
                Some(source),
            ));
            self.closed
                .settle(Err(ConnectionError::WebSocket(error.clone())));
            self.end_readable(Some(StreamError::WebSocket(error.clone())));
            if self.writable.provisional {
                // After our own close() turns out unclean, the writable is errored with
                // the same WebSocketError as `closed` and the readable.
                self.writable.error = None;
            }
            self.error_writable(StreamError::WebSocket(error));
        }
        self.hub.wake_driver();
    }
}
