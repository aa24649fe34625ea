//! The writable stream: one [`Message`] per chunk, with send backpressure.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wsstream_proto::Message;

use crate::conn::{Handle, Shared, WriteState};
use crate::error::{CancelReason, ConnectionError, StreamError, TypeError};
use crate::promise::Wait;

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
        self.handle.core().lock_writer()?;
        Ok(WebSocketWriter {
            handle: self.handle.clone(),
            closing: None,
            room: false,
        })
    }

    /// Whether a writer holds the lock.
    pub fn locked(&self) -> bool {
        self.handle.core().writer_locked()
    }

    /// Aborts the stream (`writable.abort(reason)`): see [`WebSocketWriter::abort`].
    /// Fails if the stream is locked.
    pub async fn abort(&self, reason: CancelReason) -> Result<(), TypeError> {
        let mut core = self.handle.core();
        if core.writer_locked() {
            return Err(TypeError::new("cannot abort a locked writable stream"));
        }
        core.abort_writable(&reason);
        Ok(())
    }

    /// Closes the stream (`writable.close()`): see [`WebSocketWriter::close`].
    pub async fn close(&self) -> Result<(), StreamError> {
        let mut writer = self
            .get_writer()
            .map_err(|_| StreamError::invalid_state("cannot close a locked writable stream"))?;
        writer.close().await
    }
}

/// A writer locked to the writable stream (`getWriter()`). Also a
/// [`futures_sink::Sink<Message>`], whose `poll_flush` means "written to the socket".
///
/// The writer writes the socket itself, in the task that calls it: [`write`](Self::write)
/// frames the message into the connection's send buffer and writes the buffer right
/// away; the `Sink` frames into the buffer and writes it when it is full, on
/// `poll_flush` and on `poll_close` (so `feed` batches many messages into one socket
/// write, and, as with every `Sink`, a fed message is sent for sure only once flushed).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let url = format!("ws://{}/echo", listener.local_addr()?);
/// # tokio::spawn(async move {
/// #     let (tcp, _) = listener.accept().await.unwrap();
/// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
/// #     let info = wss.opened().await.unwrap();
/// #     let mut reader = info.readable.get_reader().unwrap();
/// #     let mut writer = info.writable.get_writer().unwrap();
/// #     while let Ok(Some(message)) = reader.read().await {
/// #         if writer.write(message).await.is_err() { break; }
/// #     }
/// # });
/// use futures_util::SinkExt; // the writer is a futures_sink::Sink<Message>
/// use wsstream::{Message, WebSocketStream, WebSocketStreamOptions};
///
/// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
/// let info = wss.opened().await?;
/// let mut writer = info.writable.get_writer()?;
///
/// // `feed` frames into the send buffer without a socket write; `flush` writes them all.
/// for i in 0..100 {
///     writer.feed(Message::from(format!("tick {i}"))).await?;
/// }
/// writer.flush().await?;
///
/// let mut reader = info.readable.get_reader()?;
/// assert_eq!(reader.read().await?, Some(Message::from("tick 0")));
/// # Ok(()) }
/// ```
pub struct WebSocketWriter {
    handle: Handle,
    closing: Option<Wait<Result<crate::WebSocketCloseInfo, ConnectionError>>>,
    /// The last `start_send` left room for another message. Only the connection can
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
    /// now and written to the socket as far as the socket takes it; the returned future
    /// completes once the message is in the connection's bounded send buffer, and
    /// dropping it does not cancel the write. It fails with the stream's error if the
    /// stream is closing or closed (a close started by
    /// [`WebSocketStream::close`](crate::WebSocketStream::close) still sends every write
    /// accepted before it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/echo", listener.local_addr()?);
    /// # tokio::spawn(async move {
    /// #     let (tcp, _) = listener.accept().await.unwrap();
    /// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
    /// #     let info = wss.opened().await.unwrap();
    /// #     let mut reader = info.readable.get_reader().unwrap();
    /// #     let mut writer = info.writable.get_writer().unwrap();
    /// #     while let Ok(Some(message)) = reader.read().await {
    /// #         if writer.write(message).await.is_err() { break; }
    /// #     }
    /// # });
    /// use wsstream::{Message, WebSocketStream, WebSocketStreamOptions};
    ///
    /// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    /// let info = wss.opened().await?;
    /// let mut writer = info.writable.get_writer()?;
    ///
    /// writer.write("a text message").await?; // &str, String: text
    /// writer.write(vec![0u8, 1, 2]).await?; // Vec<u8>, &[u8], Bytes: binary
    /// writer.write(Message::from("explicit")).await?;
    ///
    /// // Not awaiting is fine too: the write happens anyway, in order.
    /// let pending = writer.write("later");
    /// writer.flush().await?; // everything so far is on the socket
    /// pending.await?;
    /// # Ok(()) }
    /// ```
    pub fn write(&mut self, message: impl Into<Message>) -> WriteFuture {
        self.room = false;
        let state = self.handle.core().write(message.into());
        WriteFuture {
            shared: self.handle.shared().clone(),
            state,
        }
    }

    /// `desiredSize`: 1 minus the writes not yet completed (count strategy, high-water
    /// mark 1); `None` once the stream is errored.
    pub fn desired_size(&self) -> Option<isize> {
        self.handle.core().desired_size()
    }

    /// `ready`: completes when `desired_size() > 0`, fails with the stream's error.
    pub async fn ready(&self) -> Result<(), StreamError> {
        std::future::poll_fn(|cx| self.handle.core().poll_writer_ready(cx.waker())).await
    }

    /// `close()`: after the writes accepted so far are sent, sends a Close frame without
    /// body and completes when the closing handshake is done; fails with the
    /// WebSocketError of an unclean close.
    pub async fn close(&mut self) -> Result<(), StreamError> {
        std::future::poll_fn(|cx| self.poll_close_inner(cx)).await
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.room = false;
        if self.closing.is_none() {
            if let Err(e) = self.handle.core().close_writable() {
                return Poll::Ready(Err(e));
            }
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
            Poll::Pending => {
                self.handle.awaiting_closed();
                Poll::Pending
            }
        }
    }

    /// `abort(reason)`: the stream errors with `reason`; writes not yet handed to the
    /// connection are rejected, the one being sent completes, then the connection closes
    /// using `reason` (only a [`WebSocketError`](crate::WebSocketError)'s code and reason
    /// are used). Resolves at once.
    pub async fn abort(&mut self, reason: CancelReason) {
        self.room = false;
        self.handle.core().abort_writable(&reason);
    }

    /// Completes when every write so far has been written to the socket.
    pub fn flush(&mut self) -> FlushFuture<'_> {
        FlushFuture {
            writer: self,
            waiting: false,
        }
    }

    /// Releases the lock (`releaseLock()`).
    pub fn release_lock(self) {}
}

impl Drop for WebSocketWriter {
    fn drop(&mut self) {
        self.handle.core().release_writer();
    }
}

/// The future of [`WebSocketWriter::write`]: completes when the message is in the send
/// buffer. The write happens whether or not this future is polled.
#[must_use = "the write happens anyway; await the future to learn whether it succeeded"]
pub struct WriteFuture {
    /// Not a counted handle: pending writes alone do not keep the connection open.
    shared: Arc<Shared>,
    state: WriteState,
}

impl std::fmt::Debug for WriteFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFuture")
            .field("state", &self.state)
            .finish()
    }
}

impl Future for WriteFuture {
    type Output = Result<(), StreamError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &this.state {
            WriteState::Done => Ok(()),
            WriteState::Failed(e) => Err(e.clone()),
            WriteState::Pending(seq) => {
                let seq = *seq;
                match this.shared.core().poll_write_done(seq, cx.waker()) {
                    Poll::Ready(result) => result,
                    Poll::Pending => return Poll::Pending,
                }
            }
        };
        this.state = match &result {
            Ok(()) => WriteState::Done,
            Err(e) => WriteState::Failed(e.clone()),
        };
        Poll::Ready(result)
    }
}

impl Drop for WriteFuture {
    fn drop(&mut self) {
        if matches!(self.state, WriteState::Pending(_)) {
            // Whoever waited for the socket to drain is gone: the connection task sends
            // the rest.
            self.shared.writer_gone();
        }
    }
}

/// The future of [`WebSocketWriter::flush`].
pub struct FlushFuture<'a> {
    writer: &'a mut WebSocketWriter,
    waiting: bool,
}

impl std::fmt::Debug for FlushFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushFuture").finish()
    }
}

impl Future for FlushFuture<'_> {
    type Output = Result<(), StreamError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let poll = this.writer.handle.core().poll_flushed(cx.waker());
        this.waiting = poll.is_pending();
        poll
    }
}

impl Drop for FlushFuture<'_> {
    fn drop(&mut self) {
        if self.waiting {
            self.writer.handle.writer_gone();
        }
    }
}

impl futures_sink::Sink<Message> for WebSocketWriter {
    type Error = StreamError;

    /// Ready while the connection's send buffer has room; when it is full, writes it to
    /// the socket right here.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        if self.room {
            return Poll::Ready(Ok(()));
        }
        self.handle.core().poll_room(cx.waker())
    }

    /// Takes the message and frames it into the send buffer (no socket write).
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), StreamError> {
        let this = self.get_mut();
        this.room = false;
        this.room = this.handle.core().feed(item)?;
        Ok(())
    }

    /// Writes everything fed so far to the socket.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.handle.core().poll_flushed(cx.waker())
    }

    /// Flushes, then closes as [`WebSocketWriter::close`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.get_mut().poll_close_inner(cx)
    }
}
