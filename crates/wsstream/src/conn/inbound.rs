//! How a message flows in: socket → read buffer → engine (decode, unmask, reassemble,
//! inflate, validate) → the readable's queue → the reader.
//!
//! Receive backpressure (the spec's count strategy with a high-water mark of 1): the
//! socket is read only while the queue is empty, so a reader that stops reading stops
//! the socket reads and the peer feels it through TCP. Below the queue there is one
//! bounded read buffer (4 KiB at first, doubling to 64 KiB while reads fill it, grown
//! for a large frame only as its bytes arrive, released once drained) and the message
//! being reassembled (bounded by the message size limit).
//!
//! A reader takes what is ready in batches: the queued message, then up to
//! [`READ_BATCH`] complete plain messages decoded by the engine's fast path, under one
//! lock. The batch counts as queued: nothing behind it (a Close, a ping, a violation) is
//! acted on before the application has read every message before it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use wsstream_proto::{Event, Message, State};

use super::{Core, Phase, ReadState};
use crate::error::{CancelReason, StreamError, TypeError};

/// Smallest read; the read size doubles while reads fill it, up to [`MAX_READ_SIZE`].
pub(super) const MIN_READ_SIZE: usize = 4 * 1024;
const MAX_READ_SIZE: usize = 64 * 1024;
/// Largest amount reserved ahead of data for a big frame; beyond it the buffer grows as
/// bytes arrive, so a peer announcing a huge frame cannot make us allocate it up front.
const MAX_EAGER_RESERVE: usize = 1 << 20;
/// After our own `close()`, at most this many bytes of later messages are kept for the
/// application; beyond it they are dropped.
const AFTER_CLOSE_QUEUE_CAP: usize = 16 << 20;
/// Most messages a reader takes at once.
const READ_BATCH: usize = 64;

impl Core {
    /// Decodes buffered frames while the readable has room: one message (the high-water
    /// mark), or everything after our own `close()` (so the peer's Close reply behind
    /// unread messages is still seen). Control frames are handled on the way: the engine
    /// queues pongs and the Close reply, which the outbound steps then write.
    pub(super) fn decode(&mut self) -> bool {
        if self.turn {
            return false;
        }
        let mut moved = false;
        while !self.input.needs_input && self.queue_has_room() {
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            let Some(event) = conn.poll_event(&mut self.input.rbuf) else {
                self.input.needs_input = true;
                self.release_drained_buffer();
                break;
            };
            moved = true;
            match event {
                Event::Message(message) => self.queue_message(message),
                Event::Close(_) => self.on_peer_close(),
                Event::Failed(error) => self.on_failure(&error),
                Event::Pong(payload) => self.on_pong(&payload),
                Event::Ping(_) => {}
            }
        }
        moved
    }

    /// Whether the readable can take another decoded message.
    fn queue_has_room(&self) -> bool {
        match self.readable.state {
            ReadState::Open => {
                (self.readable.queue.is_empty() && !self.readable.reader_holds)
                    || self.closing.local
            }
            // Nothing is delivered any more; decoding goes on for the control frames.
            ReadState::Closed | ReadState::Errored(_) | ReadState::Cancelled => true,
        }
    }

    /// Hands a decoded message to the readable. Deliberately not the spec's "discard
    /// once closing": a message that arrives after our own `close()` is still delivered
    /// while the readable is open (as Chromium does), so a reply that crossed our Close
    /// frame is not lost, up to [`AFTER_CLOSE_QUEUE_CAP`] bytes.
    fn queue_message(&mut self, message: Message) {
        let readable = &mut self.readable;
        if !matches!(readable.state, ReadState::Open) {
            return;
        }
        if readable.queue.is_empty() || readable.queued_bytes < AFTER_CLOSE_QUEUE_CAP {
            readable.queued_bytes += message.len();
            readable.queue.push_back(message);
            self.hub.wake_reader();
        }
    }

    fn pop_queued(&mut self) -> Option<Message> {
        let message = self.readable.queue.pop_front()?;
        self.readable.queued_bytes -= message.len();
        Some(message)
    }

    /// Whether the socket may be read now: more input is needed, and the readable has
    /// room (or no more messages can come, and only the end of the connection is awaited).
    fn may_read(&self) -> bool {
        !self.turn
            && self.input.needs_input
            && !self.input.eof
            && self.io.is_some()
            && self.closing.io_error.is_none()
            && (self.closing.lingering
                || self
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.state() != State::Failed))
            && (self.queue_has_room() || self.readable.finished_input)
    }

    /// Reads the socket into the read buffer, if allowed.
    pub(super) fn read_socket(&mut self) -> bool {
        if !self.may_read() {
            return false;
        }
        let (Some(io), Some(conn)) = (self.io.as_mut(), self.conn.as_ref()) else {
            return false;
        };
        let mut cx = Context::from_waker(&self.read_waker);
        let input = &mut self.input;
        if input.rbuf.is_empty() {
            match io.poll_read_ready(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    self.closing.io_error = Some(e);
                    return true;
                }
                Poll::Pending => {
                    // Nothing to read: an idle connection holds no read buffer (unless
                    // messages still share its allocation).
                    input.rbuf = BytesMut::new();
                    input.oversized = false;
                    return false;
                }
            }
        }
        if input.rbuf.len() < MIN_READ_SIZE && input.oversized {
            // The buffer grew for a large frame: give that memory back instead of keeping
            // it for the rest of the connection.
            let mut small = BytesMut::with_capacity(input.read_size);
            small.extend_from_slice(&input.rbuf);
            input.rbuf = small;
            input.oversized = false;
        }
        let hint = conn.read_hint();
        let want = input
            .read_size
            .max(hint.min(MAX_EAGER_RESERVE.max(input.rbuf.len())));
        let spare = input.rbuf.capacity() - input.rbuf.len();
        if spare < input.read_size.min(want) || spare < hint {
            input.rbuf.reserve(want);
        }
        let spare = input.rbuf.capacity() - input.rbuf.len();
        input.oversized |= input.rbuf.capacity() > MAX_READ_SIZE + MIN_READ_SIZE;
        match tokio_util::io::poll_read_buf(Pin::new(io), &mut cx, &mut input.rbuf) {
            Poll::Ready(Ok(0)) => {
                input.eof = true;
                true
            }
            Poll::Ready(Ok(n)) => {
                input.received = true;
                if self.closing.lingering {
                    self.closing.lingered += n;
                }
                if n == spare && input.read_size < MAX_READ_SIZE {
                    input.read_size *= 2;
                }
                input.needs_input = false;
                true
            }
            Poll::Ready(Err(e)) => {
                self.closing.io_error = Some(e);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Drops an emptied read buffer that was grown for a large frame: its empty view
    /// would otherwise pin the whole allocation until later reads fill it up.
    fn release_drained_buffer(&mut self) {
        if self.input.oversized && self.input.rbuf.is_empty() {
            self.input.rbuf = BytesMut::new();
            self.input.oversized = false;
        }
    }

    /// Whether bytes arrived since the last call (for the keepalive).
    pub(crate) fn take_received(&mut self) -> bool {
        std::mem::take(&mut self.input.received)
    }

    /// Whether the connection reads the socket now (the readable has room). While it
    /// does not, a Pong could not be seen, so the keepalive waits for none.
    pub(crate) fn is_reading(&self) -> bool {
        !self.turn && self.queue_has_room()
    }

    // ----- The reader's side -----

    /// Locks the readable to a reader (`getReader()`).
    pub(crate) fn lock_reader(&mut self) -> Result<(), TypeError> {
        if self.readable.locked {
            return Err(TypeError::new("the readable stream is locked to a reader"));
        }
        self.readable.locked = true;
        Ok(())
    }

    /// Whether a reader holds the lock.
    pub(crate) fn reader_locked(&self) -> bool {
        self.readable.locked
    }

    /// The next message for the reader, decoding and reading the socket right here if
    /// nothing is queued. More messages that are ready go into `held`, the reader's own
    /// batch. `Pending` means: nothing now; the caller registers its waker with the hub.
    ///
    /// Handing out a message that leaves nothing queued starts the application's turn:
    /// what follows it is decoded on the next move.
    pub(crate) fn poll_reader(
        &mut self,
        held: &mut VecDeque<Message>,
    ) -> Poll<Result<Option<Message>, StreamError>> {
        self.end_turn();
        self.readable.reader_holds = false;
        let mut message = self.pop_queued();
        let mut busy = false;
        if message.is_none() {
            busy = self.make_progress();
            message = self.pop_queued();
        }
        if let Some(message) = message {
            self.take_batch(held);
            if !self.readable.reader_holds {
                self.after_last_message();
            }
            return Poll::Ready(Ok(Some(message)));
        }
        match &self.readable.state {
            ReadState::Open => {
                if busy {
                    // The peer keeps sending what is not a message (pings, say): the
                    // connection task goes on with it.
                    self.hub.wake_driver();
                }
                Poll::Pending
            }
            ReadState::Closed | ReadState::Cancelled => Poll::Ready(Ok(None)),
            ReadState::Errored(e) => Poll::Ready(Err(e.clone())),
        }
    }

    /// Moves up to [`READ_BATCH`] ready messages into `held`: first the queued ones, then
    /// complete plain messages decoded by the engine's fast path, which stops before
    /// anything that is not a plain valid message.
    fn take_batch(&mut self, held: &mut VecDeque<Message>) {
        while held.len() < READ_BATCH {
            let Some(message) = self.pop_queued() else {
                break;
            };
            held.push_back(message);
        }
        if matches!(self.readable.state, ReadState::Open) && !self.readable.finished_input {
            if let Some(conn) = self.conn.as_mut() {
                while held.len() < READ_BATCH {
                    let Some(message) = conn.poll_message(&mut self.input.rbuf) else {
                        break;
                    };
                    held.push_back(message);
                }
            }
        }
        if self.input.rbuf.is_empty() {
            self.input.needs_input = true;
            self.release_drained_buffer();
        }
        self.readable.reader_holds = !held.is_empty();
    }

    /// The reader handed out the last message of its batch: the queue is empty.
    pub(crate) fn reader_emptied(&mut self) {
        self.readable.reader_holds = false;
        self.after_last_message();
    }

    /// The application took the last queued message. If more arrived with it (bytes
    /// behind it in the read buffer), it is the application's turn: they are decoded on
    /// its next move. Otherwise the connection goes on now (reads the socket, or waits for
    /// it to become readable), so the next message, a ping or a Close is seen even if the
    /// application does not read again.
    fn after_last_message(&mut self) {
        if self.input.rbuf.is_empty() {
            // Usually the socket has nothing more yet: this only registers for it.
            if self.read_socket() && self.make_progress() {
                self.hub.wake_driver();
            }
        } else {
            self.begin_turn();
        }
    }

    /// The reader releases its lock: the messages of its batch go back to the front of
    /// the queue, in order, for the next reader.
    pub(crate) fn release_reader(&mut self, held: &mut VecDeque<Message>) {
        self.readable.locked = false;
        self.readable.reader_holds = false;
        while let Some(message) = held.pop_back() {
            self.readable.queued_bytes += message.len();
            self.readable.queue.push_front(message);
        }
    }

    /// Cancels the readable (`readable.cancel(reason)`): discards what is queued and
    /// closes the connection using `reason`.
    pub(crate) fn cancel_readable(&mut self, reason: &CancelReason) {
        self.end_turn();
        self.readable.queue.clear();
        self.readable.queued_bytes = 0;
        self.readable.reader_holds = false;
        if matches!(self.readable.state, ReadState::Open | ReadState::Closed) {
            self.readable.state = ReadState::Cancelled;
        }
        self.hub.wake_reader();
        self.close_using_reason(reason);
    }

    /// Ends the readable when the connection is closed: closed after a clean close,
    /// errored with `error` otherwise. Queued messages stay readable.
    pub(super) fn end_readable(&mut self, error: Option<StreamError>) {
        if matches!(self.readable.state, ReadState::Open) {
            self.readable.state = match error {
                None => ReadState::Closed,
                Some(e) => ReadState::Errored(e),
            };
        }
        self.hub.wake_reader();
    }

    /// Whether the connection is open and past the handshake.
    pub(super) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }
}
