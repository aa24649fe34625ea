//! How a message flows out: writer → the writable's queue → engine (deflate, fragment,
//! mask, frame) → the send buffer → socket.
//!
//! Send backpressure: the engine's send buffer holds at most `send_buffer_size` bytes of
//! encoded frames (64 KiB by default). A write completes once its last frame is in that
//! buffer (the spec's "UA's send buffer"); a message larger than the buffer is framed as
//! the buffer drains, so its write completes when its tail is in. The writable's count
//! strategy (high-water mark 1) is `desired_size() = 1 - writes not yet completed`.
//!
//! Who writes the socket: `write()` writes the send buffer at once, in the caller's task;
//! the `Sink` frames into the buffer and writes it when the buffer is full, on
//! `poll_flush` and on `poll_close`, so `feed` batches many messages into one socket
//! write. Whoever runs [`Core::make_progress`] (a reader, a writer, the connection task)
//! also writes what is buffered, so pongs and the closing handshake never wait for the
//! application. When the socket is full, the writers that wait and the connection task
//! are woken when it drains.
//!
//! Writes are numbered in the order they are accepted and complete in that order; they
//! are rejected (with the writable's error) only from some number on, never in between.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;
use wsstream_proto::Message;

use super::Core;
use crate::error::{CancelReason, StreamError, TypeError};

/// Where a write stands.
#[derive(Debug)]
pub(crate) enum WriteState {
    /// In the send buffer: the write completed.
    Done,
    /// Rejected.
    Failed(StreamError),
    /// Accepted with this number, not yet completed.
    Pending(u64),
}

impl Core {
    /// Hands queued writes to the engine while it wants data, and completes the writes
    /// whose last frame is in the send buffer.
    pub(super) fn frame_writes(&mut self) -> bool {
        if self.writable.queue.is_empty() && !self.writable.in_progress {
            return false;
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let writable = &mut self.writable;
        let mut moved = false;
        let mut completed = false;
        loop {
            if writable.in_progress {
                if conn.message_in_progress() {
                    break;
                }
                writable.in_progress = false;
                writable.done_seq += 1;
                completed = true;
            }
            if !conn.wants_data() {
                break;
            }
            let Some(message) = writable.queue.pop_front() else {
                break;
            };
            if let Err(e) = conn.send(message) {
                // Cannot happen while the engine wants data; the message stays queued.
                let _ = e;
                break;
            }
            writable.in_progress = true;
            moved = true;
        }
        if completed {
            self.hub.wake_writers();
            moved = true;
        }
        moved
    }

    /// Writes the send buffer to the socket until it is empty or the socket is full, then
    /// flushes the transport (TLS keeps records until flushed).
    pub(super) fn write_socket(&mut self) -> bool {
        if self.closing.io_error.is_some() || self.output.shutdown {
            return false;
        }
        let (Some(conn), Some(io)) = (self.conn.as_mut(), self.io.as_mut()) else {
            return false;
        };
        if !conn.has_transmit() && !self.output.unflushed {
            return false;
        }
        let mut cx = Context::from_waker(&self.write_waker);
        let mut moved = false;
        loop {
            let buf = conn.transmit();
            if buf.is_empty() {
                break;
            }
            match Pin::new(&mut *io).poll_write(&mut cx, buf) {
                Poll::Ready(Ok(0)) => {
                    self.closing.io_error = Some(std::io::ErrorKind::WriteZero.into());
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    conn.advance_transmit(n);
                    self.output.unflushed = true;
                    moved = true;
                }
                Poll::Ready(Err(e)) => {
                    self.closing.io_error = Some(e);
                    return true;
                }
                Poll::Pending => break,
            }
        }
        if moved {
            // Room in the send buffer: writers waiting for it (the `Sink`, a flush) go on.
            self.hub.wake_writers();
        }
        if conn.has_transmit() {
            return moved;
        }
        if self.output.unflushed {
            match Pin::new(io).poll_flush(&mut cx) {
                Poll::Ready(Ok(())) => self.output.unflushed = false,
                Poll::Ready(Err(e)) => {
                    self.closing.io_error = Some(e);
                    return true;
                }
                Poll::Pending => {}
            }
        }
        moved
    }

    /// Accepted writes not yet completed (nor rejected).
    pub(super) fn pending_writes(&self) -> u64 {
        self.writable.next_seq.min(self.writable.rejected_from) - self.writable.done_seq
    }

    /// Errors the writable (keeping an earlier error) and rejects every pending write
    /// with its error. Pending writes are data that will never be sent: the close is
    /// then unclean. (Called when the engine sends nothing more of them: after the peer's
    /// Close, or at the end.)
    pub(super) fn error_writable(&mut self, error: StreamError) {
        let writable = &mut self.writable;
        if writable.error.is_none() {
            writable.error = Some(error);
        }
        if writable.done_seq < writable.next_seq.min(writable.rejected_from) {
            writable.rejected_from = writable.done_seq;
            self.closing.unsent_data = true;
        }
        writable.queue.clear();
        writable.in_progress = false;
        self.hub.wake_writers();
    }

    /// Takes `message` as the next write, or fails with the writable's error. A write
    /// refused because the peer's Close arrived (before the connection is closed) is data
    /// the peer will never get: the close is then unclean, whatever the timing between
    /// the Close frame and this call.
    ///
    /// When nothing is queued before it and the engine wants data, the message goes
    /// straight into the engine (the common case: no queue round trip).
    fn accept(&mut self, message: Message) -> Result<u64, StreamError> {
        self.end_turn();
        if let Some(error) = &self.writable.error {
            if self.closing.peer_closed_first && self.is_open() {
                self.closing.unsent_data = true;
            }
            return Err(error.clone());
        }
        let writable = &mut self.writable;
        let seq = writable.next_seq;
        writable.next_seq += 1;
        match self.conn.as_mut() {
            Some(conn)
                if writable.queue.is_empty() && !writable.in_progress && conn.wants_data() =>
            {
                match conn.send(message) {
                    Ok(()) if conn.message_in_progress() => writable.in_progress = true,
                    Ok(()) => {
                        writable.done_seq += 1;
                        self.hub.wake_writers();
                    }
                    // Cannot happen while the engine wants data.
                    Err(_) => {}
                }
            }
            _ => {
                writable.queue.push_back(message);
                self.frame_writes();
            }
        }
        Ok(seq)
    }

    /// Where write number `seq` stands.
    pub(super) fn write_state(&self, seq: u64) -> WriteState {
        if seq < self.writable.done_seq {
            WriteState::Done
        } else if seq >= self.writable.rejected_from {
            WriteState::Failed(self.writable_error())
        } else {
            WriteState::Pending(seq)
        }
    }

    fn writable_error(&self) -> StreamError {
        self.writable
            .error
            .clone()
            .unwrap_or_else(|| StreamError::invalid_state("the WebSocketStream is closed"))
    }

    // ----- The writer's side -----

    /// Locks the writable to a writer (`getWriter()`).
    pub(crate) fn lock_writer(&mut self) -> Result<(), TypeError> {
        if self.writable.locked {
            return Err(TypeError::new("the writable stream is locked to a writer"));
        }
        self.writable.locked = true;
        Ok(())
    }

    /// Whether a writer holds the lock.
    pub(crate) fn writer_locked(&self) -> bool {
        self.writable.locked
    }

    /// The writer releases its lock.
    pub(crate) fn release_writer(&mut self) {
        self.writable.locked = false;
    }

    /// `write()`: takes the message now, frames it and writes the send buffer to the
    /// socket right here.
    pub(crate) fn write(&mut self, message: Message) -> WriteState {
        match self.accept(message) {
            Ok(seq) => {
                if self.make_progress() {
                    self.hub.wake_driver();
                }
                self.write_state(seq)
            }
            Err(e) => WriteState::Failed(e),
        }
    }

    /// Polls write number `seq`, writing the socket if it is still pending.
    pub(crate) fn poll_write_done(
        &mut self,
        seq: u64,
        waker: &Waker,
    ) -> Poll<Result<(), StreamError>> {
        if let WriteState::Pending(_) = self.write_state(seq) {
            if self.make_progress() {
                self.hub.wake_driver();
            }
        }
        match self.write_state(seq) {
            WriteState::Done => Poll::Ready(Ok(())),
            WriteState::Failed(e) => Poll::Ready(Err(e)),
            WriteState::Pending(_) => {
                self.hub.writer_waits(waker);
                Poll::Pending
            }
        }
    }

    /// `Sink::start_send`: takes the message and frames it into the send buffer without
    /// writing the socket. Returns whether there is room for another message.
    pub(crate) fn feed(&mut self, message: Message) -> Result<bool, StreamError> {
        self.accept(message)?;
        Ok(self.has_room())
    }

    /// Whether a fed message would go straight into the send buffer.
    fn has_room(&self) -> bool {
        self.writable.queue.is_empty()
            && self
                .conn
                .as_ref()
                .is_some_and(wsstream_proto::Connection::wants_data)
    }

    /// `Sink::poll_ready`: ready while the send buffer has room; when it is full, writes
    /// it to the socket right here.
    pub(crate) fn poll_room(&mut self, waker: &Waker) -> Poll<Result<(), StreamError>> {
        self.end_turn();
        for attempt in 0..2 {
            if let Some(e) = &self.writable.error {
                return Poll::Ready(Err(e.clone()));
            }
            if self.has_room() {
                return Poll::Ready(Ok(()));
            }
            if attempt == 0 && self.make_progress() {
                self.hub.wake_driver();
            }
        }
        self.hub.writer_waits(waker);
        Poll::Pending
    }

    /// `ready`: completes when no write is pending (`desired_size() > 0`).
    pub(crate) fn poll_writer_ready(&mut self, waker: &Waker) -> Poll<Result<(), StreamError>> {
        self.end_turn();
        for attempt in 0..2 {
            if let Some(e) = &self.writable.error {
                return Poll::Ready(Err(e.clone()));
            }
            if self.pending_writes() == 0 {
                return Poll::Ready(Ok(()));
            }
            if attempt == 0 && self.make_progress() {
                self.hub.wake_driver();
            }
        }
        self.hub.writer_waits(waker);
        Poll::Pending
    }

    /// `desiredSize`: 1 minus the writes not yet completed; `None` once errored.
    pub(crate) fn desired_size(&self) -> Option<isize> {
        if self.writable.error.is_some() {
            return None;
        }
        Some(1 - self.pending_writes() as isize)
    }

    /// `Sink::poll_flush` / `flush()`: completes when every accepted write has been
    /// written to the socket (and the transport flushed); fails if one was rejected.
    pub(crate) fn poll_flushed(&mut self, waker: &Waker) -> Poll<Result<(), StreamError>> {
        self.end_turn();
        if self.make_progress() {
            self.hub.wake_driver();
        }
        let buffered = self
            .conn
            .as_ref()
            .is_some_and(wsstream_proto::Connection::has_transmit)
            || self.output.unflushed;
        if self.pending_writes() == 0 && !buffered {
            let rejected = self.writable.rejected_from < self.writable.next_seq;
            return Poll::Ready(if rejected {
                Err(self.writable_error())
            } else {
                Ok(())
            });
        }
        if self.is_finished() {
            return Poll::Ready(Err(self.writable_error()));
        }
        self.hub.writer_waits(waker);
        Poll::Pending
    }

    /// `writer.close()`: closes the connection once every accepted write is sent. Fails
    /// at once with the writable's error if it is errored.
    pub(crate) fn close_writable(&mut self) -> Result<(), StreamError> {
        if let Some(e) = &self.writable.error {
            return Err(e.clone());
        }
        self.request_close(None, "");
        Ok(())
    }

    /// `writable.abort(reason)` (streams spec): the writable errors with `reason`; writes
    /// still queued are rejected with it, the one in flight (being framed) completes,
    /// then the connection closes using `reason`.
    pub(crate) fn abort_writable(&mut self, reason: &CancelReason) {
        self.end_turn();
        let error = match reason {
            CancelReason::WebSocketError(e) => StreamError::WebSocket(Arc::new(e.clone())),
            CancelReason::Other(r) => StreamError::Aborted(r.clone()),
            CancelReason::None => StreamError::invalid_state("the writable stream was aborted"),
        };
        if self.writable.error.is_none() {
            self.writable.error = Some(error);
            let in_flight = u64::from(self.writable.in_progress);
            let keep = self.writable.done_seq + in_flight;
            if keep < self.writable.next_seq.min(self.writable.rejected_from) {
                self.writable.rejected_from = keep;
                self.writable.queue.clear();
            }
            self.hub.wake_writers();
        }
        self.close_using_reason(reason);
    }
}
