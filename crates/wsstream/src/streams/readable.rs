//! The readable stream: one [`Message`] per chunk, with receive backpressure.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wsstream_proto::Message;

use crate::conn::Handle;
use crate::error::{CancelReason, StreamError, TypeError};

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
        self.handle.core().lock_reader()?;
        Ok(WebSocketReader {
            handle: self.handle.clone(),
            held: VecDeque::new(),
            waiting: false,
            done: false,
        })
    }

    /// Whether a reader holds the lock.
    pub fn locked(&self) -> bool {
        self.handle.core().reader_locked()
    }

    /// Cancels the stream (`readable.cancel(reason)`): discards the queued messages and
    /// closes the connection using `reason` (only a [`WebSocketError`](crate::WebSocketError)'s
    /// code and reason are used), after the writes already accepted. Resolves at once;
    /// fails if the stream is locked.
    pub async fn cancel(&self, reason: CancelReason) -> Result<(), TypeError> {
        let mut core = self.handle.core();
        if core.reader_locked() {
            return Err(TypeError::new("cannot cancel a locked readable stream"));
        }
        core.cancel_readable(&reason);
        Ok(())
    }
}

/// A reader locked to the readable stream (`getReader()`): [`read`](Self::read) one
/// message at a time, or use it as a [`futures_core::Stream`].
///
/// The reader reads the socket itself, in the task that awaits it: when nothing is
/// queued it decodes what is buffered and reads the socket right there, and a read that
/// waits is woken by the socket directly. Messages already buffered are handed out in
/// batches, without a lock per message.
///
/// Reads are cancel-safe: dropping a `read()` future loses no message, and the
/// connection task takes over reading (so pings are answered and `closed` settles). A
/// [`poll_read`](Self::poll_read) or `poll_next` that returned `Pending` keeps the socket's
/// attention until it is polled again, the reader is dropped, or another operation of
/// the stream (a write, `closed()`) finds it has not come back after a wake-up; drop the
/// reader when you stop reading for good.
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
/// use futures_util::StreamExt; // the reader is a futures_core::Stream
/// use wsstream::{WebSocketStream, WebSocketStreamOptions};
///
/// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
/// let info = wss.opened().await?;
/// let mut writer = info.writable.get_writer()?;
/// for word in ["one", "two", "three"] {
///     writer.write(word).await?;
/// }
/// writer.close().await?;
///
/// let reader = info.readable.get_reader()?;
/// let words: Vec<String> = reader
///     .map(|message| message.map(|m| m.as_text().unwrap_or_default().to_owned()))
///     .collect::<Vec<_>>()
///     .await
///     .into_iter()
///     .collect::<Result<_, _>>()?;
/// assert_eq!(words, ["one", "two", "three"]);
/// # Ok(()) }
/// ```
pub struct WebSocketReader {
    handle: Handle,
    /// Messages taken from the connection in one batch, still part of the readable's
    /// queue (they go back to it if the lock is released).
    held: VecDeque<Message>,
    /// The last poll returned `Pending`: the wake hub routes readiness to this reader.
    waiting: bool,
    done: bool,
}

impl std::fmt::Debug for WebSocketReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketReader").finish_non_exhaustive()
    }
}

impl WebSocketReader {
    /// The next message: `Ok(Some(message))`, `Ok(None)` once the stream is closed (after
    /// every queued message), or the stream's error (the same value every time).
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
    /// let mut reader = info.readable.get_reader()?;
    /// writer.write("text").await?;
    /// writer.write(vec![1u8, 2, 3]).await?;
    /// writer.close().await?; // the echo server answers our Close after echoing
    ///
    /// while let Some(message) = reader.read().await? {
    ///     match message {
    ///         Message::Text(text) => println!("text: {}", text.as_str()),
    ///         Message::Binary(bytes) => println!("{} bytes", bytes.len()),
    ///     }
    /// }
    /// // Ok(None): the connection closed cleanly, and `closed` has already settled.
    /// # Ok(()) }
    /// ```
    pub fn read(&mut self) -> ReadFuture<'_> {
        ReadFuture { reader: self }
    }

    /// Poll form of [`read`](Self::read).
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Message>, StreamError>> {
        if let Some(message) = self.held.pop_front() {
            if self.held.is_empty() {
                // The last of the batch: the queue is empty now, so the connection goes on
                // (the next message, a Close or a ping behind it) even if the application
                // does not read again.
                self.handle.core().reader_emptied();
            }
            return Poll::Ready(Ok(Some(message)));
        }
        let mut core = self.handle.core();
        match core.poll_reader(&mut self.held) {
            Poll::Pending => {
                // Registered while the connection is locked: nothing queued in between is
                // missed.
                self.handle.reader_waits(cx.waker());
                self.waiting = true;
                Poll::Pending
            }
            ready => {
                drop(core);
                if std::mem::take(&mut self.waiting) {
                    // No longer waiting: readiness goes to the connection task again.
                    self.handle.reader_done();
                }
                ready
            }
        }
    }

    /// Hands the socket's attention back to the connection task if a poll was waiting.
    #[inline]
    fn stop_waiting(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.handle.reader_gone();
        }
    }

    /// Cancels the stream (`reader.cancel(reason)`), as [`WebSocketReadable::cancel`].
    pub async fn cancel(&mut self, reason: CancelReason) {
        self.held.clear();
        self.stop_waiting();
        self.handle.core().cancel_readable(&reason);
    }

    /// Releases the lock (`releaseLock()`); another reader can then be taken and
    /// continues exactly where this one stopped.
    pub fn release_lock(self) {}
}

impl Drop for WebSocketReader {
    fn drop(&mut self) {
        self.stop_waiting();
        self.handle.core().release_reader(&mut self.held);
    }
}

/// The future of [`WebSocketReader::read`]. Dropping it loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct ReadFuture<'a> {
    reader: &'a mut WebSocketReader,
}

impl std::fmt::Debug for ReadFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadFuture").finish_non_exhaustive()
    }
}

impl Future for ReadFuture<'_> {
    type Output = Result<Option<Message>, StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().reader.poll_read(cx)
    }
}

impl Drop for ReadFuture<'_> {
    fn drop(&mut self) {
        // A read abandoned while waiting: the connection task reads in its place.
        self.reader.stop_waiting();
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
