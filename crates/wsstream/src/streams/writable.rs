//! The writable stream: one [`Message`] per chunk, with send backpressure.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wsstream_proto::Message;

use crate::error::{CancelReason, ConnectionError, StreamError, TypeError};
use crate::promise::Wait;
use crate::shared::{Handle, Inner, Phase, Shared};
use crate::streams::readable::close_using_reason;

/// The `writable` of [`WebSocketOpenInfo`](crate::WebSocketOpenInfo). Cheap to clone;
/// every clone is the same stream.
#[derive(Clone)]
pub struct WebSocketWritable {
    handle: Handle,
}

impl std::fmt::Debug for WebSocketWritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketWritable")
            .field("locked", &self.locked())
            .finish()
    }
}

impl WebSocketWritable {
    pub(crate) fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// Locks the stream to a writer (`getWriter()`); fails if it is already locked.
    pub fn get_writer(&self) -> Result<WebSocketWriter, TypeError> {
        let mut inner = self.handle.lock();
        if inner.writable_locked {
            return Err(TypeError::new("the writable stream is locked to a writer"));
        }
        inner.writable_locked = true;
        drop(inner);
        Ok(WebSocketWriter {
            handle: self.handle.clone(),
            closing: None,
            room: false,
        })
    }

    /// Whether a writer holds the lock.
    pub fn locked(&self) -> bool {
        self.handle.lock().writable_locked
    }

    /// Aborts the stream: closes the connection using `reason` (B42, B50) and resolves at
    /// once. Fails if the stream is locked.
    pub async fn abort(&self, reason: CancelReason) -> Result<(), TypeError> {
        let mut inner = self.handle.lock();
        if inner.writable_locked {
            return Err(TypeError::new("cannot abort a locked writable stream"));
        }
        abort(&mut inner, reason);
        Ok(())
    }

    /// Closes the stream (`writable.close()`): see [`WebSocketWriter::close`].
    pub async fn close(&self) -> Result<(), StreamError> {
        {
            let inner = self.handle.lock();
            if inner.writable_locked {
                return Err(StreamError::invalid_state(
                    "cannot close a locked writable stream",
                ));
            }
        }
        let mut writer = self
            .get_writer()
            .map_err(|_| StreamError::invalid_state("the writable stream is locked"))?;
        writer.close().await
    }
}

fn abort(inner: &mut Inner, reason: CancelReason) {
    let error = match &reason {
        CancelReason::WebSocketError(e) => StreamError::WebSocket(Arc::new(e.clone())),
        CancelReason::Other(r) => StreamError::Aborted(r.clone()),
        CancelReason::None => StreamError::invalid_state("the writable stream was aborted"),
    };
    inner.error_writable(error);
    close_using_reason(inner, &reason);
    inner.wake_driver();
}

/// A writer locked to the writable stream (`getWriter()`). Also a
/// [`futures_sink::Sink<Message>`], whose `poll_flush` means "written to the socket".
pub struct WebSocketWriter {
    handle: Handle,
    closing: Option<Wait<Result<crate::WebSocketCloseInfo, ConnectionError>>>,
    /// The last `start_send` left room for another message. Only the connection task can
    /// change that in between, and only by making room or by erroring the stream (which
    /// the next `start_send` reports), so `poll_ready` can answer without the lock.
    room: bool,
}

impl std::fmt::Debug for WebSocketWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketWriter")
            .field("desired_size", &self.desired_size())
            .finish()
    }
}

impl WebSocketWriter {
    /// Writes one message (`&str`/`String` → text, bytes → binary). The message is taken
    /// now (B33); the returned future completes once it is in the connection's bounded
    /// send buffer (B37) — dropping the future does not cancel the write. It fails with
    /// the stream's error if the connection closes first (B39).
    pub fn write(&mut self, message: impl Into<Message>) -> WriteFuture {
        self.room = false;
        let mut inner = self.handle.lock();
        if inner.write_error.is_some() {
            return WriteFuture {
                shared: self.handle.shared.clone(),
                seq: u64::MAX,
            };
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.write_queue.push_back(message.into());
        inner.advance_writes();
        WriteFuture {
            shared: self.handle.shared.clone(),
            seq,
        }
    }

    /// `desiredSize`: 1 minus the writes not yet completed (count strategy, high-water
    /// mark 1); `None` once the stream is errored.
    pub fn desired_size(&self) -> Option<isize> {
        let inner = self.handle.lock();
        if inner.write_error.is_some() {
            return None;
        }
        Some(1 - inner.pending_writes() as isize)
    }

    /// `ready`: completes when `desired_size() > 0`, fails with the stream's error.
    pub async fn ready(&self) -> Result<(), StreamError> {
        std::future::poll_fn(|cx| {
            let mut inner = self.handle.lock();
            if let Some(e) = &inner.write_error {
                return Poll::Ready(Err(e.clone()));
            }
            if inner.pending_writes() == 0 {
                return Poll::Ready(Ok(()));
            }
            inner.register_writer(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// `close()`: after the queued writes complete, sends a Close frame without body
    /// (B40) and completes when the closing handshake is done (B41, G1); fails with the
    /// WebSocketError of an unclean close.
    pub async fn close(&mut self) -> Result<(), StreamError> {
        std::future::poll_fn(|cx| self.poll_close_inner(cx)).await
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.room = false;
        if self.closing.is_none() {
            let mut inner = self.handle.lock();
            if let Some(e) = &inner.write_error {
                return Poll::Ready(Err(e.clone()));
            }
            if inner.phase == Phase::Open {
                inner.close_after_writes = true;
                inner.advance_writes();
            }
            drop(inner);
            self.closing = Some(Wait {
                promise: self.handle.closed.clone(),
            });
        }
        let Some(closing) = self.closing.as_mut() else {
            return Poll::Pending;
        };
        match Pin::new(closing).poll(cx) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(ConnectionError::WebSocket(e))) => {
                Poll::Ready(Err(StreamError::WebSocket(e)))
            }
            Poll::Ready(Err(ConnectionError::Aborted(r))) => {
                Poll::Ready(Err(StreamError::Aborted(r)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// `abort(reason)`: closes using `reason` (B42, B50) and resolves at once.
    pub async fn abort(&mut self, reason: CancelReason) {
        self.room = false;
        let mut inner = self.handle.lock();
        abort(&mut inner, reason);
    }

    /// Completes when every write so far has been written to the socket.
    pub fn flush(&mut self) -> FlushFuture<'_> {
        FlushFuture { writer: self }
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        let mut inner = self.handle.lock();
        if let Some(e) = &inner.write_error {
            if inner.pending_writes() > 0 || inner.tx_written != inner.tx_taken {
                return Poll::Ready(Err(e.clone()));
            }
        }
        let idle = inner.pending_writes() == 0
            && !inner
                .conn
                .as_ref()
                .is_some_and(wsstream_proto::Connection::has_transmit)
            && inner.tx_written == inner.tx_taken;
        if idle || inner.phase == Phase::Closed {
            return Poll::Ready(
                inner
                    .write_error
                    .clone()
                    .map_or(Ok(()), |e| if idle { Ok(()) } else { Err(e) }),
            );
        }
        inner.register_writer(cx.waker());
        inner.wake_driver();
        Poll::Pending
    }

    /// Releases the lock (`releaseLock()`).
    pub fn release_lock(self) {}
}

impl Drop for WebSocketWriter {
    fn drop(&mut self) {
        self.handle.lock().writable_locked = false;
    }
}

/// The future of [`WebSocketWriter::write`]: completes when the message is in the send
/// buffer. The write happens whether or not this future is polled.
#[must_use = "the write happens anyway; await the future to learn whether it succeeded"]
pub struct WriteFuture {
    /// Not a counted handle: pending writes alone do not keep the connection open.
    shared: Arc<Shared>,
    seq: u64,
}

impl std::fmt::Debug for WriteFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFuture")
            .field("seq", &self.seq)
            .finish()
    }
}

impl Future for WriteFuture {
    type Output = Result<(), StreamError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.shared.lock();
        if self.seq < inner.done_seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = &inner.write_error {
            return Poll::Ready(Err(e.clone()));
        }
        inner.register_writer(cx.waker());
        Poll::Pending
    }
}

/// The future of [`WebSocketWriter::flush`].
pub struct FlushFuture<'a> {
    writer: &'a mut WebSocketWriter,
}

impl std::fmt::Debug for FlushFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushFuture").finish()
    }
}

impl Future for FlushFuture<'_> {
    type Output = Result<(), StreamError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().writer.poll_flush_inner(cx)
    }
}

impl futures_sink::Sink<Message> for WebSocketWriter {
    type Error = StreamError;

    /// Ready while the connection's send buffer has room, so `feed` batches many small
    /// messages into one socket write.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        if self.room {
            return Poll::Ready(Ok(()));
        }
        let mut inner = self.handle.lock();
        if let Some(e) = &inner.write_error {
            return Poll::Ready(Err(e.clone()));
        }
        let room = inner.write_queue.is_empty()
            && inner
                .conn
                .as_ref()
                .is_some_and(wsstream_proto::Connection::wants_data);
        if room {
            return Poll::Ready(Ok(()));
        }
        inner.register_writer(cx.waker());
        inner.wake_driver();
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), StreamError> {
        let this = self.get_mut();
        this.room = false;
        let mut inner = this.handle.lock();
        if let Some(e) = &inner.write_error {
            return Err(e.clone());
        }
        inner.next_seq += 1;
        inner.write_queue.push_back(item);
        inner.advance_writes();
        this.room = inner.write_queue.is_empty()
            && inner
                .conn
                .as_ref()
                .is_some_and(wsstream_proto::Connection::wants_data);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.get_mut().poll_close_inner(cx)
    }
}
