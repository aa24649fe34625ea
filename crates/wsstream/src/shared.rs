//! The state shared by the driver task and the user's handles. Only the driver touches the
//! socket; handles only touch this state (under one mutex) and wake the driver.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::BytesMut;
use tokio::sync::Notify;
use wsstream_proto::{CloseCode, Connection, Event, Message};

use crate::WebSocketCloseInfo;
use crate::error::{ConnectionError, StreamError};
use crate::promise::Promise;

/// What `opened` resolves with, minus the stream handles (built per awaiter so the
/// promise holds no handle and dropping every handle is observable).
#[derive(Clone, Debug)]
pub(crate) struct OpenState {
    pub(crate) protocol: String,
    pub(crate) extensions: String,
}

/// After our own close(), at most this many bytes of later messages are kept for the
/// application; beyond it they are dropped.
pub(crate) const AFTER_CLOSE_QUEUE_CAP: usize = 16 << 20;

/// Most messages the reader takes from the shared state at once.
pub(crate) const READ_BATCH: usize = 64;

pub(crate) type OpenedPromise = Promise<Result<OpenState, ConnectionError>>;
pub(crate) type ClosedPromise = Promise<Result<WebSocketCloseInfo, ConnectionError>>;

/// Lifecycle of the connection (the spec's ready state, not exposed: B70).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Open,
    Closed,
}

/// State of the readable stream.
#[derive(Clone, Debug)]
pub(crate) enum ReadState {
    Open,
    /// Closed: queued messages stay readable, then `None` (B31).
    Closed,
    /// Errored: queued messages stay readable (nothing received is lost), then this error
    /// (B32).
    Errored(StreamError),
    /// Cancelled by the application: the queue was discarded; reads return `None`.
    Cancelled,
}

pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) opened: Arc<OpenedPromise>,
    pub(crate) closed: Arc<ClosedPromise>,
    pub(crate) url: String,
    /// Live user handles (stream, readable, writable, reader, writer).
    handles: AtomicUsize,
    /// Wakes the connecting task when `close()` is called or every handle is dropped.
    pub(crate) interrupt: Notify,
}

pub(crate) struct Inner {
    pub(crate) phase: Phase,
    pub(crate) conn: Option<Connection>,
    /// `close()` was called, or every handle dropped, during the handshake.
    pub(crate) interrupted: bool,
    // Readable.
    /// Bytes read from the socket and not yet decoded. The driver fills it; whoever needs
    /// the next message (the driver when the queue is empty, or the reader itself) decodes
    /// from it, one message at a time, so a protocol error (or a Close) after a message is
    /// only acted on once that message has been handed to the application.
    pub(crate) rbuf: BytesMut,
    /// `rbuf` (or a message split off it) lives in an allocation grown past the driver's
    /// read size for a large frame. `BytesMut::capacity` only sees the view's own spare
    /// room, not the allocation behind it, so the driver marks it; once drained, the
    /// buffer is dropped rather than kept for the rest of the connection.
    pub(crate) rbuf_oversized: bool,
    /// The last decode ran out of complete frames: the socket must be read.
    pub(crate) needs_input: bool,
    pub(crate) read_queue: VecDeque<Message>,
    /// The reader holds messages it took in one batch and has not yet handed out: they
    /// count as queued, so nothing behind them is decoded meanwhile.
    pub(crate) reader_holds: bool,
    /// Payload bytes in `read_queue`.
    pub(crate) queued_bytes: usize,
    pub(crate) read_state: ReadState,
    pub(crate) reader_waker: Option<Waker>,
    pub(crate) readable_locked: bool,
    // Writable.
    pub(crate) write_queue: VecDeque<Message>,
    pub(crate) in_progress: bool,
    /// Sequence number the next write gets.
    pub(crate) next_seq: u64,
    /// Writes with a sequence number below this have completed.
    pub(crate) done_seq: u64,
    pub(crate) write_error: Option<StreamError>,
    /// `write_error` is the InvalidStateError of our own close(): if the close then
    /// proves unclean, the writable takes the WebSocketError instead (B57).
    pub(crate) write_error_is_provisional: bool,
    pub(crate) writer_wakers: Vec<Waker>,
    pub(crate) writable_locked: bool,
    /// `writer.close()` was called: close once the queued writes are done.
    pub(crate) close_after_writes: bool,
    pub(crate) tx_taken: u64,
    pub(crate) tx_written: u64,
    // Closing.
    /// We started the closing handshake.
    pub(crate) local_close: bool,
    /// Accepted data was never sent (B61: the close is unclean).
    pub(crate) unsent_data: bool,
    // Driver.
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) driver_notified: bool,
    pub(crate) abandoned: bool,
}

impl Shared {
    pub(crate) fn new(url: String, phase: Phase, conn: Option<Connection>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                phase,
                conn,
                interrupted: false,
                rbuf: BytesMut::new(),
                rbuf_oversized: false,
                needs_input: true,
                read_queue: VecDeque::new(),
                reader_holds: false,
                queued_bytes: 0,
                read_state: ReadState::Open,
                reader_waker: None,
                readable_locked: false,
                write_queue: VecDeque::new(),
                in_progress: false,
                next_seq: 0,
                done_seq: 0,
                write_error: None,
                write_error_is_provisional: false,
                writer_wakers: Vec::new(),
                writable_locked: false,
                close_after_writes: false,
                tx_taken: 0,
                tx_written: 0,
                local_close: false,
                unsent_data: false,
                driver_waker: None,
                driver_notified: false,
                abandoned: false,
            }),
            opened: Arc::new(Promise::new()),
            closed: Arc::new(Promise::new()),
            url,
            handles: AtomicUsize::new(0),
            interrupt: Notify::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A counted reference held by every user-facing handle. When the last one goes, the
/// driver starts a closing handshake (B71) or abandons the handshake.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Self { shared }
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut inner = self.shared.lock();
            inner.abandoned = true;
            if inner.phase == Phase::Connecting {
                inner.interrupted = true;
                drop(inner);
                self.shared.interrupt.notify_one();
            } else {
                inner.wake_driver();
            }
        }
    }
}

impl std::ops::Deref for Handle {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Inner {
    /// Wakes the driver unless it was already woken and has not run since.
    pub(crate) fn wake_driver(&mut self) {
        if !self.driver_notified {
            self.driver_notified = true;
            if let Some(waker) = &self.driver_waker {
                waker.wake_by_ref();
            }
        }
    }

    pub(crate) fn wake_reader(&mut self) {
        if let Some(waker) = self.reader_waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn register_writer(&mut self, waker: &Waker) {
        if !self.writer_wakers.iter().any(|w| w.will_wake(waker)) {
            self.writer_wakers.push(waker.clone());
        }
    }

    pub(crate) fn wake_writers(&mut self) {
        if self.writer_wakers.is_empty() {
            return;
        }
        for waker in self.writer_wakers.drain(..) {
            waker.wake();
        }
    }

    /// Decodes the next message for the application from the read buffer, handling the
    /// control events on the way. `None` when more input is needed or the stream will
    /// deliver no more messages. Messages are dropped here only once the readable is
    /// cancelled or closed.
    pub(crate) fn decode_next(&mut self) -> Option<Message> {
        loop {
            let conn = self.conn.as_mut()?;
            let Some(event) = conn.poll_event(&mut self.rbuf) else {
                self.needs_input = true;
                self.release_drained_buffer();
                return None;
            };
            match event {
                Event::Message(message) => {
                    // Deliberately not B27: a message that arrives after our own close()
                    // is still delivered while the readable is open (as Chromium does), so
                    // a reply that crossed our Close frame is never lost.
                    if matches!(self.read_state, ReadState::Open) {
                        return Some(message);
                    }
                }
                Event::Close(_) => {
                    // The peer's Close: no more messages (B31) and no more writes: pending
                    // ones fail with InvalidStateError (B39, B43; Chromium closes both
                    // streams here, before TCP closes). The reply is queued: wake the driver.
                    self.close_readable();
                    self.error_writable(StreamError::invalid_state(
                        "the peer closed the WebSocketStream",
                    ));
                    self.wake_driver();
                }
                Event::Failed(_) | Event::Ping(_) => self.wake_driver(),
                Event::Pong(_) => {}
            }
        }
    }

    /// Moves buffered messages to the readable's queue: one while it is empty (high-water
    /// mark 1), and after our own `close()` everything, so the peer's Close reply behind
    /// unread messages is still seen. Past [`AFTER_CLOSE_QUEUE_CAP`] bytes, messages that
    /// arrive after our close are dropped (bounded memory against a peer that keeps
    /// sending).
    pub(crate) fn fill_queue(&mut self) {
        let mut queued = false;
        while !self.needs_input && (self.queue_is_empty() || self.local_close) {
            let Some(message) = self.decode_next() else {
                break;
            };
            if self.read_queue.is_empty() || self.queued_bytes < AFTER_CLOSE_QUEUE_CAP {
                self.queued_bytes += message.len();
                self.read_queue.push_back(message);
                queued = true;
            }
        }
        if queued {
            self.wake_reader();
        }
    }

    /// Whether the readable's queue is empty: nothing queued and nothing held by the
    /// reader.
    pub(crate) fn queue_is_empty(&self) -> bool {
        self.read_queue.is_empty() && !self.reader_holds
    }

    /// Moves up to [`READ_BATCH`] more messages that are ready into `out` (the reader's
    /// own queue), so it can hand them out without taking the lock for each: first the
    /// queued ones, then complete messages decoded from the read buffer by the engine's
    /// fast path, which stops before anything that is not a plain valid message. A Close,
    /// a ping or a violation behind them is therefore only acted on once the reader has
    /// handed out every message before it, exactly as when decoding one at a time.
    pub(crate) fn take_ready(&mut self, out: &mut VecDeque<Message>) {
        while out.len() < READ_BATCH {
            let Some(message) = self.pop_message() else {
                break;
            };
            out.push_back(message);
        }
        if matches!(self.read_state, ReadState::Open) {
            if let Some(conn) = self.conn.as_mut() {
                while out.len() < READ_BATCH {
                    let Some(message) = conn.poll_message(&mut self.rbuf) else {
                        break;
                    };
                    out.push_back(message);
                }
            }
        }
        if self.rbuf.is_empty() {
            self.needs_input = true;
            self.release_drained_buffer();
        }
        self.reader_holds = !out.is_empty();
    }

    /// Drops an emptied read buffer that was grown for a large frame: its empty view
    /// would otherwise pin the whole allocation until later reads fill it up.
    fn release_drained_buffer(&mut self) {
        if self.rbuf_oversized && self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
            self.rbuf_oversized = false;
        }
    }

    /// Takes the next queued message.
    pub(crate) fn pop_message(&mut self) -> Option<Message> {
        let message = self.read_queue.pop_front()?;
        self.queued_bytes -= message.len();
        Some(message)
    }

    /// Writes accepted but not yet completed.
    pub(crate) fn pending_writes(&self) -> u64 {
        self.next_seq - self.done_seq
    }

    /// Moves queued writes into the engine while it has room, and completes the ones that
    /// are fully framed into the transmit buffer.
    pub(crate) fn advance_writes(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut completed = false;
        loop {
            if self.in_progress {
                if conn.message_in_progress() {
                    break;
                }
                self.in_progress = false;
                self.done_seq += 1;
                completed = true;
            }
            if !conn.wants_data() {
                break;
            }
            let Some(message) = self.write_queue.pop_front() else {
                break;
            };
            if conn.send(message).is_err() {
                // The closing handshake started between the checks; error_writable
                // rejects what is left.
                break;
            }
            self.in_progress = true;
        }
        if completed {
            self.wake_writers();
        }
        if self.close_after_writes && self.pending_writes() == 0 && self.write_error.is_none() {
            self.close_after_writes = false;
            self.start_close(None, "");
        }
        if self.conn.as_ref().is_some_and(Connection::has_transmit) {
            self.wake_driver();
        }
    }

    /// Errors the writable (if not already): pending and later writes fail with `error`.
    pub(crate) fn error_writable(&mut self, error: StreamError) {
        if self.write_error.is_none() {
            if self.pending_writes() > 0 {
                self.unsent_data = true;
            }
            self.write_queue.clear();
            self.in_progress = false;
            self.write_error = Some(error);
        }
        self.wake_writers();
    }

    /// Closes the readable (B31): queued messages stay readable.
    pub(crate) fn close_readable(&mut self) {
        if matches!(self.read_state, ReadState::Open) {
            self.read_state = ReadState::Closed;
        }
        self.wake_reader();
    }

    /// Errors the readable (B32) unless it is already closed or errored.
    pub(crate) fn error_readable(&mut self, error: StreamError) {
        if matches!(self.read_state, ReadState::Open) {
            self.read_state = ReadState::Errored(error);
        }
        self.wake_reader();
    }

    /// "Close the WebSocket" with an already validated code and reason, once open
    /// (B46, B47). Pending writes are rejected with `InvalidStateError`.
    pub(crate) fn start_close(&mut self, code: Option<u16>, reason: &str) {
        if self.phase != Phase::Open {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.close_sent() {
            return;
        }
        self.local_close = true;
        // B51: if the code cannot be sent (a connection-made WebSocketError carrying 1006,
        // say), close with no code and no reason instead.
        if conn.close(code.map(CloseCode), reason).is_err() {
            let _ = conn.close(None, "");
        }
        let first = self.write_error.is_none();
        self.error_writable(StreamError::invalid_state("the WebSocketStream is closing"));
        self.write_error_is_provisional = first;
        self.wake_driver();
    }
}
