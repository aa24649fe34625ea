//! The connection: one state type, [`Core`], behind one lock, and the socket inside it.
//!
//! # How it works
//!
//! Whoever needs the connection to make progress makes it, in its own task. There is no
//! hand-over of messages between tasks on the hot paths:
//!
//! ```text
//!  reader.read()                                   writer.write(m) / Sink
//!     │ lock Core                                     │ lock Core
//!     ▼                                               ▼
//!  inbound.rs                                      outbound.rs
//!   queued message? → return it                     queue the message (taken now)
//!   buffered frames? → decode (engine)              frame it into the engine's send buffer
//!   socket → read buffer (only while the            write the send buffer to the socket
//!     readable has room: backpressure)                (write(): at once; Sink: when the buffer
//!   decode → the one-message queue                    is full, on flush)
//!   control frames: the engine queues the           complete the writes now in the buffer
//!     pong / Close reply; outbound writes it
//! ```
//!
//! Every step is a method of [`Core`]; [`Core::make_progress`] runs them all in order
//! (decode, frame writes, write the socket, read the socket, the closing handshake) until
//! none moves. Readers, writers, `close()`, a dropped handle and the connection task all
//! call it, under the lock, with the socket operations reporting readiness to the
//! [`wake`] hub, which wakes whoever is waiting: a pending read, pending writes, or the
//! connection task.
//!
//! The connection task (`driver.rs`) is what remains: the timers (close timeout, the wait
//! for the server's TCP close, keepalive pings), and the reading nobody else does: when
//! no read is waiting it keeps the one-message queue filled, answers pings and completes
//! the closing handshake, so `opened` and `closed` settle without anyone reading. On the
//! hot paths it is never woken: a reader that waits is woken by the socket directly, a
//! writer writes the socket itself.
//!
//! The files: `inbound.rs` (how a message flows in), `outbound.rs` (how one flows out),
//! `closing.rs` (close requests, the peer's Close, and the end: settling `closed`, the
//! readable and the writable in one step), `wake.rs` (who is woken).

mod closing;
mod inbound;
mod outbound;
mod wake;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use bytes::BytesMut;
use tokio::sync::Notify;
use wsstream_proto::{Connection, Message, Role};

use crate::WebSocketCloseInfo;
use crate::error::{CloseCodes, ConnectionError, PingError, StreamError};
use crate::promise::Promise;
use crate::transport::Transport;

pub(crate) use closing::TimerPhase;
pub(crate) use outbound::WriteState;
use wake::WakeHub;

/// What `opened` resolves with, minus the stream handles (built per awaiter so the
/// promise holds no handle and dropping every handle is observable).
#[derive(Clone, Debug)]
pub(crate) struct OpenState {
    pub(crate) protocol: String,
    pub(crate) extensions: String,
    /// The `101` response head as sent (received by a client, sent by a server); parsed
    /// into `http` types for each `opened` awaiter, so a connection keeps ~200 bytes for it
    /// rather than a header map.
    pub(crate) head: bytes::Bytes,
}

pub(crate) type OpenedPromise = Promise<Result<OpenState, ConnectionError>>;
pub(crate) type ClosedPromise = Promise<Result<WebSocketCloseInfo, ConnectionError>>;

/// Lifecycle of the connection (the spec's ready state, which is not exposed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Open,
    Closed,
}

/// State of the readable stream.
#[derive(Clone, Debug)]
enum ReadState {
    Open,
    /// Closed: queued messages stay readable, then `None`.
    Closed,
    /// Errored: queued messages stay readable (nothing received is lost), then this error.
    Errored(StreamError),
    /// Cancelled by the application: the queue was discarded; reads return `None`.
    Cancelled,
}

/// The state shared by the connection task and every handle.
pub(crate) struct Shared {
    core: Mutex<Core>,
    hub: Arc<WakeHub>,
    pub(crate) opened: Arc<OpenedPromise>,
    pub(crate) closed: Arc<ClosedPromise>,
    url: String,
    /// Which codes `close()` accepts.
    close_codes: CloseCodes,
    /// Live user handles (stream, readable, writable, reader, writer).
    handles: AtomicUsize,
    /// Wakes the connecting task when `close()` is called or every handle is dropped.
    interrupt: Notify,
}

impl Shared {
    /// A connection that is still connecting; `close()` accepts `close_codes`.
    pub(crate) fn connecting(url: String, close_codes: CloseCodes) -> Arc<Self> {
        let hub = Arc::new(WakeHub::default());
        let closed = Arc::new(Promise::new());
        let mut core = Core::new(hub.clone(), closed.clone());
        core.close_codes = close_codes;
        core.span = crate::trace::connection(&url);
        Arc::new(Self {
            core: Mutex::new(core),
            hub,
            opened: Arc::new(Promise::new()),
            closed,
            url,
            close_codes,
            handles: AtomicUsize::new(0),
            interrupt: Notify::new(),
        })
    }

    /// Locks the connection state.
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The URL, serialised.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Which codes `close()` accepts.
    pub(crate) fn close_codes(&self) -> CloseCodes {
        self.close_codes
    }

    /// The connection's `tracing` span.
    pub(crate) fn span(&self) -> crate::trace::Span {
        self.core().span.clone()
    }

    /// Resolves when `close()` is called or every handle is dropped during the handshake.
    pub(crate) async fn interrupted(&self) {
        loop {
            let notified = self.interrupt.notified();
            if self.core().interrupted {
                return;
            }
            notified.await;
        }
    }

    /// Interrupts the opening handshake (`close()` during the handshake fails the
    /// connection, whatever code and reason it was given): `close()` or the last handle
    /// dropped.
    fn interrupt_handshake(&self, core: &mut Core) {
        core.interrupted = true;
        self.interrupt.notify_one();
    }

    /// `close(closeInfo)` with an already validated code and reason: during the handshake
    /// it fails the connection; once open it starts the closing handshake after the
    /// writes accepted so far; afterwards it does nothing.
    pub(crate) fn close(&self, code: Option<u16>, reason: &str) {
        let mut core = self.core();
        match core.phase {
            Phase::Connecting => self.interrupt_handshake(&mut core),
            Phase::Open => core.request_close(code, reason),
            Phase::Closed => {}
        }
    }

    /// The connection task is polled with `waker`.
    pub(crate) fn driver_polled(&self, waker: &Waker) {
        self.hub.driver_polled(waker);
    }

    /// A read returned `Pending` and now waits for a message.
    pub(crate) fn reader_waits(&self, waker: &Waker) {
        self.hub.reader_waits(waker);
    }

    /// The read that was waiting completed.
    pub(crate) fn reader_done(&self) {
        self.hub.reader_done();
    }

    /// The read that was waiting was dropped: the connection task reads instead.
    pub(crate) fn reader_gone(&self) {
        self.hub.reader_gone();
    }

    /// A waiting write or flush was dropped: the connection task finishes sending what
    /// it left in the send buffer.
    pub(crate) fn writer_gone(&self) {
        self.hub.wake_driver();
    }

    /// Someone awaits `closed`: the application's turn is over (the connection goes on
    /// right here), and if a read was woken and never came back (its task may have
    /// stopped polling it), the connection task takes over reading.
    pub(crate) fn awaiting_closed(&self) {
        self.core().awaiting_closed();
        self.hub.nudge_if_reader_stale();
    }
}

/// A counted reference held by every user-facing handle. When the last one goes, the
/// connection starts a closing handshake without status code, or abandons the handshake.
pub(crate) struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Self { shared }
    }

    /// The shared state (not a counted handle).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
            let mut core = self.shared.core();
            if core.phase == Phase::Connecting {
                self.shared.interrupt_handshake(&mut core);
            } else {
                core.abandon();
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

/// How reading goes: the read buffer and what the socket said last.
#[derive(Debug)]
struct Input {
    /// Bytes read from the socket and not yet decoded.
    rbuf: BytesMut,
    /// `rbuf` (or a message split off it) lives in an allocation grown past the read
    /// size for a large frame. `BytesMut::capacity` only sees the view's own spare room,
    /// not the allocation behind it, so it is marked; once drained, the buffer is dropped
    /// rather than kept for the rest of the connection.
    oversized: bool,
    /// How much to read at once; doubles while reads fill it.
    read_size: usize,
    /// The last decode ran out of complete frames: the socket must be read.
    needs_input: bool,
    /// The peer closed its side of the TCP connection.
    eof: bool,
    /// Bytes arrived since the keepalive last asked.
    received: bool,
}

/// The readable stream.
#[derive(Debug)]
struct Readable {
    /// Decoded messages for the application: one (the high-water mark) while open, more
    /// after our own `close()`.
    queue: VecDeque<Message>,
    /// Payload bytes in `queue`.
    queued_bytes: usize,
    /// The reader holds messages it took in one batch and has not handed out yet: they
    /// count as queued, so nothing behind them is decoded meanwhile.
    reader_holds: bool,
    state: ReadState,
    locked: bool,
    /// No more messages will come (the peer's Close arrived, or the connection failed);
    /// the readable ends when the connection is closed.
    finished_input: bool,
}

/// The writable stream. Writes are numbered in order; they complete in order.
#[derive(Debug)]
struct Writable {
    /// Accepted messages not yet handed to the engine.
    queue: VecDeque<Message>,
    /// The engine is framing the oldest accepted write not yet completed.
    in_progress: bool,
    /// Number of the next write.
    next_seq: u64,
    /// Writes numbered below this have completed.
    done_seq: u64,
    /// Writes numbered from this on were rejected with `error` (`u64::MAX`: none).
    rejected_from: u64,
    /// Why new writes are rejected.
    error: Option<StreamError>,
    /// `error` is the InvalidStateError of a close we started: if that close turns out
    /// unclean, the writable takes the WebSocketError instead.
    provisional: bool,
    locked: bool,
}

/// How writing goes.
#[derive(Debug, Default)]
struct Output {
    /// Bytes were written since the last completed flush (TLS keeps records until
    /// flushed).
    unflushed: bool,
    /// Our side of the transport was shut down.
    shutdown: bool,
}

/// The closing handshake and the causes of an unclean end.
#[derive(Debug, Default)]
struct Closing {
    /// A close we were asked for, sent once every accepted write is framed.
    requested: Option<(Option<u16>, String)>,
    /// We started the closing handshake (`close()`, cancel, abort, writer close, drop).
    local: bool,
    /// The peer's Close arrived before we started closing.
    peer_closed_first: bool,
    /// Accepted data was never sent: the close is unclean.
    unsent_data: bool,
    /// The transport failed.
    io_error: Option<std::io::Error>,
    /// The close timer expired.
    timed_out: bool,
    /// The keepalive gave up: nothing arrived within this ping timeout.
    unresponsive: Option<Duration>,
    /// The timer the connection task should run now.
    timer: Option<TimerPhase>,
    /// We failed the connection, sent our Close, and read and discard the peer's input
    /// until it closes (bounded).
    lingering: bool,
    /// Bytes discarded while lingering.
    lingered: usize,
}

/// Everything about one connection: the engine, the socket, both streams and the closing
/// handshake. Fields are private to this module; handles and the connection task use its
/// methods, which keep the invariants (queued bytes, write numbering, one-way data flow).
pub(crate) struct Core {
    phase: Phase,
    role: Role,
    /// `close()` was called, or every handle dropped, during the handshake.
    interrupted: bool,
    /// Every handle is gone.
    abandoned: bool,
    conn: Option<Connection>,
    io: Option<Transport>,
    hub: Arc<WakeHub>,
    /// Passed to every socket read: readiness is routed by the hub.
    read_waker: Waker,
    /// Passed to every socket write, flush and shutdown.
    write_waker: Waker,
    closed: Arc<ClosedPromise>,
    input: Input,
    readable: Readable,
    writable: Writable,
    output: Output,
    closing: Closing,
    /// The application's turn: it was just handed a message with more bytes behind it in
    /// the read buffer (or the connection opened with bytes behind the handshake), and
    /// nothing of those is decoded until its next move (a read, a write, a close, awaiting
    /// `closed`) or until the connection task sees the turn last a whole tick, so a reply
    /// to that message goes out before a Close or a violation that came with it takes
    /// effect.
    turn: bool,
    /// Counts the turns, so the connection task can tell a turn that lasted from a new one.
    turn_epoch: u64,
    /// The connection task runs its turn tick.
    turn_timer_armed: bool,
    /// Which codes a close may carry (for `close_using_reason`).
    close_codes: CloseCodes,
    /// Pings sent and not yet answered, oldest first.
    pings: VecDeque<PendingPing>,
    /// The connection's `tracing` span.
    span: crate::trace::Span,
    /// Numbers the pings: the payload of each is its number.
    ping_seq: u64,
}

/// A Ping waiting for its Pong.
struct PendingPing {
    payload: [u8; 8],
    sent: Instant,
    /// The `ping()` future waiting for it (none for keepalive pings).
    waiter: Option<Arc<PingPromise>>,
}

/// What a `ping()` future waits for.
pub(crate) type PingPromise = Promise<Result<Duration, PingError>>;

impl Core {
    fn new(hub: Arc<WakeHub>, closed: Arc<ClosedPromise>) -> Self {
        Self {
            phase: Phase::Connecting,
            role: Role::Client,
            interrupted: false,
            abandoned: false,
            conn: None,
            io: None,
            read_waker: hub.read_waker(),
            write_waker: hub.write_waker(),
            hub,
            closed,
            input: Input {
                rbuf: BytesMut::new(),
                oversized: false,
                read_size: inbound::MIN_READ_SIZE,
                needs_input: true,
                eof: false,
                received: false,
            },
            readable: Readable {
                queue: VecDeque::new(),
                queued_bytes: 0,
                reader_holds: false,
                state: ReadState::Open,
                locked: false,
                finished_input: false,
            },
            writable: Writable {
                queue: VecDeque::new(),
                in_progress: false,
                next_seq: 0,
                done_seq: 0,
                rejected_from: u64::MAX,
                error: None,
                provisional: false,
                locked: false,
            },
            output: Output::default(),
            closing: Closing::default(),
            turn: false,
            turn_epoch: 0,
            turn_timer_armed: false,
            close_codes: CloseCodes::Browser,
            pings: VecDeque::new(),
            ping_seq: 0,
            span: crate::trace::none(),
        }
    }

    /// The handshake succeeded: the connection is open over `io`, with `leftover` the
    /// bytes that came after the handshake. Fails (returns `false`) if `close()` was
    /// called or every handle dropped meanwhile; the decision is atomic with both.
    pub(crate) fn open(
        &mut self,
        role: Role,
        conn: Connection,
        io: Transport,
        leftover: BytesMut,
    ) -> bool {
        if self.interrupted || self.phase != Phase::Connecting {
            return false;
        }
        self.phase = Phase::Open;
        self.role = role;
        let role_name = match role {
            Role::Client => "client",
            Role::Server => "server",
        };
        crate::trace::open(&self.span, role_name, io.peer_addr());
        self.conn = Some(conn);
        self.io = Some(io);
        self.input.needs_input = leftover.is_empty();
        self.input.rbuf = leftover;
        if !self.input.needs_input {
            // Frames came with the handshake (a Close, say): they wait for the
            // application's first move, as they would behind a message.
            self.begin_turn();
        }
        true
    }

    /// Starts the application's turn (see `turn`).
    fn begin_turn(&mut self) {
        self.turn = true;
        self.turn_epoch = self.turn_epoch.wrapping_add(1);
        if !self.turn_timer_armed {
            self.hub.wake_driver();
        }
    }

    /// The application made a move: input is decoded again.
    pub(crate) fn end_turn(&mut self) {
        self.turn = false;
    }

    /// Whether the application has a turn now, and the count of turns so far (for the
    /// connection task's tick).
    pub(crate) fn turn(&self) -> (bool, u64) {
        (self.turn, self.turn_epoch)
    }

    /// The connection task started or stopped its turn tick. While it runs, starting a
    /// turn wakes nobody: the tick will see it.
    pub(crate) fn set_turn_tick(&mut self, running: bool) {
        self.turn_timer_armed = running;
    }

    /// Someone awaits `closed`: the application's turn is over, and the connection goes
    /// on right here.
    pub(crate) fn awaiting_closed(&mut self) {
        if std::mem::take(&mut self.turn) && self.make_progress() {
            self.hub.wake_driver();
        }
    }

    /// The handshake failed or was aborted: nothing more will happen.
    pub(crate) fn set_closed_before_open(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Whether the opening handshake was interrupted (`close()`, every handle dropped).
    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted
    }

    /// Whether the connection has ended (or never opened): the connection task can stop.
    pub(crate) fn is_finished(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Makes every step of progress possible now, in any task: frame queued writes,
    /// write the send buffer, decode buffered frames and read the socket (while the
    /// readable has room and it is not the application's turn), and advance the closing
    /// handshake, until nothing moves. Socket
    /// readiness is reported to the wake hub. Returns `true` if it stopped with work
    /// left (a peer that keeps sending while nobody reads it): the caller should come back.
    pub(crate) fn make_progress(&mut self) -> bool {
        /// Rounds per call, so a peer that never stops sending (pings, say) cannot keep
        /// one task busy forever.
        const ROUNDS: usize = 32;
        for _ in 0..ROUNDS {
            if self.phase != Phase::Open {
                return false;
            }
            // Writes are framed first: a reply the application wrote goes out before
            // whatever the decoding then finds (a Close, a violation). What the peer has
            // already sent is decoded before more of a large message is framed, so a Close
            // that is already here ends it (unsent: an unclean close), whatever the speed
            // of the socket. Each step's output feeds the steps after it in the same
            // round; another round is needed only when a later step gave an earlier one
            // work: bytes read (to decode), a Close queued, or room made in the send
            // buffer for a write in progress or queued (to frame and complete).
            self.frame_writes();
            self.decode();
            let wrote = self.write_socket();
            let read = self.read_socket();
            let closing = self.advance_closing();
            let writes_waiting = self.writable.in_progress || !self.writable.queue.is_empty();
            if !(read || closing || (wrote && writes_waiting)) {
                return false;
            }
        }
        true
    }
}
