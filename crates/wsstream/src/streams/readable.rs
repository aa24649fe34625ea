//! The readable stream: one [`Message`] per chunk, with receive backpressure.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use wsstream_proto::{CloseCode, Message};

use crate::error::{CancelReason, StreamError, TypeError};
use crate::shared::{Handle, Inner, ReadState};

/// The `readable` of [`WebSocketOpenInfo`](crate::WebSocketOpenInfo). Cheap to clone;
/// every clone is the same stream.
#[derive(Clone)]
pub struct WebSocketReadable {
    handle: Handle,
}

impl std::fmt::Debug for WebSocketReadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketReadable")
            .field("locked", &self.locked())
            .finish()
    }
}

impl WebSocketReadable {
    pub(crate) fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// Locks the stream to a reader (`getReader()`); fails if it is already locked.
    pub fn get_reader(&self) -> Result<WebSocketReader, TypeError> {
        let mut inner = self.handle.lock();
        if inner.readable_locked {
            return Err(TypeError::new("the readable stream is locked to a reader"));
        }
        inner.readable_locked = true;
        drop(inner);
        Ok(WebSocketReader {
            handle: self.handle.clone(),
            held: VecDeque::new(),
            done: false,
        })
    }

    /// Whether a reader holds the lock.
    pub fn locked(&self) -> bool {
        self.handle.lock().readable_locked
    }

    /// Cancels the stream: discards queued messages and closes the connection using
    /// `reason` (B30, B50). Fails if the stream is locked.
    pub async fn cancel(&self, reason: CancelReason) -> Result<(), TypeError> {
        let mut inner = self.handle.lock();
        if inner.readable_locked {
            return Err(TypeError::new("cannot cancel a locked readable stream"));
        }
        cancel(&mut inner, reason);
        Ok(())
    }
}

/// "Close using a reason" (B50–B52): only a WebSocketError's code and reason are used.
pub(crate) fn close_using_reason(inner: &mut Inner, reason: &CancelReason) {
    // The brand check of B50 is on the value: a WebSocketError passed as `Other` (e.g.
    // one the API returned, as an `Arc<dyn Error>`) counts too.
    let (code, text) = match reason {
        CancelReason::WebSocketError(e) => (e.close_code(), e.reason().to_owned()),
        CancelReason::Other(r) => match r.downcast_ref::<crate::WebSocketError>() {
            Some(e) => (e.close_code(), e.reason().to_owned()),
            None => (None, String::new()),
        },
        CancelReason::None => (None, String::new()),
    };
    // B51: a code the application may not send (e.g. 1006 from a connection-made error)
    // falls back to no code and no reason.
    let (code, text) = match code {
        Some(c) if !CloseCode(c).is_allowed_for_application() => (None, String::new()),
        other => (other, text),
    };
    inner.start_close(code, &text);
}

fn cancel(inner: &mut Inner, reason: CancelReason) {
    inner.read_queue.clear();
    inner.queued_bytes = 0;
    if matches!(inner.read_state, ReadState::Open | ReadState::Closed) {
        inner.read_state = ReadState::Cancelled;
    }
    close_using_reason(inner, &reason);
    inner.wake_driver();
}

/// A reader locked to the readable stream (`getReader()`): [`read`](Self::read) one
/// message at a time, or use it as a [`futures_core::Stream`].
///
/// Reads are cancel-safe: dropping a `read()` future loses no message.
pub struct WebSocketReader {
    handle: Handle,
    /// Messages taken from the shared state in one batch, still part of the readable's
    /// queue (they go back to it if the lock is released).
    held: VecDeque<Message>,
    done: bool,
}

impl std::fmt::Debug for WebSocketReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketReader").finish_non_exhaustive()
    }
}

impl WebSocketReader {
    /// The next message: `Ok(Some(message))`, `Ok(None)` once the stream is closed (after
    /// every queued message), or the stream's error (the same value every time: B32).
    pub async fn read(&mut self) -> Result<Option<Message>, StreamError> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// Poll form of [`read`](Self::read). Messages already buffered are decoded right
    /// here, several under one lock, without waking the connection task.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Message>, StreamError>> {
        if let Some(message) = self.held.pop_front() {
            return Poll::Ready(Ok(Some(message)));
        }
        let mut inner = self.handle.lock();
        inner.reader_holds = false;
        let message = match inner.pop_message() {
            Some(message) => Some(message),
            None if !inner.needs_input => inner.decode_next(),
            None => None,
        };
        if let Some(message) = message {
            inner.take_ready(&mut self.held);
            if !inner.needs_input && !inner.reader_holds {
                // More is buffered: pulling released the backpressure, so the driver
                // processes the next frame (a Close or a ping behind this message is seen
                // even if the application does not read again).
                inner.wake_driver();
            }
            return Poll::Ready(Ok(Some(message)));
        }
        match &inner.read_state {
            ReadState::Open => {
                if !inner
                    .reader_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    inner.reader_waker = Some(cx.waker().clone());
                }
                // Out of buffered messages: the driver reads the socket again.
                inner.wake_driver();
                Poll::Pending
            }
            ReadState::Closed | ReadState::Cancelled => Poll::Ready(Ok(None)),
            ReadState::Errored(e) => Poll::Ready(Err(e.clone())),
        }
    }

    /// Cancels the stream (`reader.cancel(reason)`, B30, B50).
    pub async fn cancel(&mut self, reason: CancelReason) {
        self.held.clear();
        let mut inner = self.handle.lock();
        inner.reader_holds = false;
        cancel(&mut inner, reason);
    }

    /// Releases the lock (`releaseLock()`); another reader can then be taken.
    pub fn release_lock(self) {}
}

impl Drop for WebSocketReader {
    fn drop(&mut self) {
        let mut inner = self.handle.lock();
        inner.readable_locked = false;
        // Messages this reader took but did not hand out go back to the front of the
        // queue, in order, for the next reader.
        inner.reader_holds = false;
        while let Some(message) = self.held.pop_back() {
            inner.queued_bytes += message.len();
            inner.read_queue.push_front(message);
        }
    }
}

impl futures_core::Stream for WebSocketReader {
    type Item = Result<Message, StreamError>;

    /// `Some(Ok(message))` per message; a clean close ends the stream; an unclean close
    /// yields one `Some(Err(e))`, then `None`.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.poll_read(cx) {
            Poll::Ready(Ok(Some(message))) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Ok(None)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_core::stream::FusedStream for WebSocketReader {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
