//! The load client of the server-role scenarios: one raw client (hand-written handshake,
//! masked frames, no WebSocket library) in the measuring process, the same for every
//! server, so the server's CPU time per round trip is what compares the libraries.
//!
//! * `server-echo-C`: C connections (opened 64 at a time, each with one warm-up echo), then
//!   a closed loop on each, all released at once: send one masked binary message, wait for
//!   its exact echo, repeat, `n / C` times. Every message carries its connection and
//!   sequence number, so a server that replays or mixes up replies fails; every echoed
//!   byte is compared. At the end each connection sends Close 1000 and must get Close 1000
//!   back, then the end of the stream.
//! * `server-idle`: a warm-up connection (one echo, clean close), the server's VmRSS, then
//!   N connections each idle after one echo, the server's VmRSS again; the delta per
//!   connection. The server is stopped before the connections are dropped.
//!
//! The load client runs on a current-thread runtime with one task per connection. Each
//! read goes into a buffer longer than the expected reply: a short read lets tokio wait
//! for readiness instead of trying the socket again (one syscall less per round trip), and
//! a reply longer than the echo shows up as a mismatch. The server's CPU time comes from
//! `/proc/<pid>/task/*/schedstat`, read while it is idle (before the loops are released,
//! and 20 ms after the last echo arrived), so it is exact.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::clients::Client;
use crate::scenario::{Clock, Kind, Outcome, Scenario, payload, process_cpu_ns};
use crate::wire::{self, MASK, OP_BINARY, OP_CLOSE};
use crate::{BoxError, ServerChild};

/// Connections being opened (handshake and first echo) at the same time.
const OPENING: usize = 64;
/// How long each phase (opening, the measured loops, closing) may take before the run fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server has to answer a Close and end the stream.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause that lets the server go idle before its CPU time or memory is read.
const SETTLE: Duration = Duration::from_millis(20);

/// Runs a server-role scenario against `library`'s echo server (a `serve-echo` child on
/// one worker, or two when `scenario.multi`).
///
/// `WSB_SERVER=ADDR:PID` runs `server-echo-C` against a server already running at `ADDR`
/// (its `/echo`, its CPU time read from `PID`) instead of a `serve-echo` child: e.g.
/// `wsstream serve`, to compare this raw client with `wsstream bench` against the same
/// server (`bench/cli-vs-library.sh`). No permessage-deflate is offered to it.
pub(crate) fn run(scenario: &Scenario, library: Client) -> Result<Outcome, BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let (Some((addr, pid)), Kind::ServerEcho { conns, n, size }) = (external(), scenario.kind) {
        return rt.block_on(echo(&addr, pid, conns, n, size));
    }
    let workers = if scenario.multi { "2" } else { "1" };
    let server = ServerChild::start(&["serve-echo", library.name(), workers])?;
    let pid = server.pid();
    match scenario.kind {
        Kind::ServerEcho { conns, n, size } => {
            rt.block_on(echo(server.addr(), pid, conns, n, size))
        }
        Kind::ServerIdle { conns } => rt.block_on(async {
            let (outcome, held) = idle(server.addr(), pid, conns).await?;
            // Stop the server first: it then has no 10,000 disconnections to report.
            drop(server);
            drop(held);
            Ok(outcome)
        }),
        _ => Err(format!("{} is not a server scenario", scenario.name).into()),
    }
}

/// The server of `WSB_SERVER=ADDR:PID`, if set.
fn external() -> Option<(String, u32)> {
    let value = std::env::var("WSB_SERVER").ok()?;
    let (addr, pid) = value.rsplit_once(':')?;
    Some((addr.to_owned(), pid.parse().ok()?))
}

/// One connection of the load client, with its frames built once.
struct Conn {
    tcp: TcpStream,
    /// Stamped into every message with the sequence number.
    id: u64,
    /// The masked request frame (masked with [`MASK`]).
    frame: Vec<u8>,
    /// The reply expected: the same message, unmasked.
    expected: Vec<u8>,
    /// Read buffer, longer than `expected`.
    buf: Vec<u8>,
}

impl Conn {
    /// Connects and handshakes, offering permessage-deflate: the server must decline it.
    async fn open(addr: &str, id: u64, size: usize) -> Result<Self, BoxError> {
        let mut tcp = TcpStream::connect(addr).await.map_err(fd_hint)?;
        tcp.set_nodelay(true)?;
        let offer = external().is_none().then_some("permessage-deflate");
        let agreed = wire::client_handshake_ext(&mut tcp, "/echo", offer).await?;
        if !agreed.is_empty() {
            return Err(format!("the server agreed to {agreed:?}; it must decline").into());
        }
        let data = payload(size);
        let mut frame = Vec::new();
        wire::put_frame(&mut frame, OP_BINARY, &data, true);
        let mut expected = Vec::new();
        wire::put_frame(&mut expected, OP_BINARY, &data, false);
        let buf = vec![0u8; expected.len() + 64];
        Ok(Self {
            tcp,
            id,
            frame,
            expected,
            buf,
        })
    }

    /// Writes `seq` and the connection id into the first (up to) 8 payload bytes of both
    /// frames.
    fn stamp(&mut self, seq: u64) {
        let stamp = ((self.id << 40) | seq).to_le_bytes();
        let size = self.expected.len() - wire::parse_header(&self.expected).map_or(0, |h| h.size);
        let (f, e) = (self.frame.len() - size, self.expected.len() - size);
        for (i, b) in stamp.iter().take(size).enumerate() {
            self.expected[e + i] = *b;
            self.frame[f + i] = *b ^ MASK[i % 4];
        }
    }

    /// One round trip: the message stamped with `seq`, then exactly its echo.
    async fn round_trip(&mut self, seq: u64) -> Result<(), BoxError> {
        self.stamp(seq);
        self.tcp.write_all(&self.frame).await?;
        let want = self.expected.len();
        let mut got = 0;
        while got < want {
            let k = self.tcp.read(&mut self.buf[got..]).await?;
            if k == 0 {
                return Err(format!("end of stream while waiting for echo {seq}").into());
            }
            got += k;
        }
        if got != want || self.buf[..want] != self.expected[..] {
            return Err(format!(
                "echo {seq}: got {:02x?}, expected {:02x?}",
                &self.buf[..got],
                self.expected
            )
            .into());
        }
        Ok(())
    }

    /// Sends Close 1000 and requires the server's Close 1000, then the end of the stream.
    async fn close(mut self) -> Result<(), BoxError> {
        let mut close = Vec::new();
        wire::put_frame(&mut close, OP_CLOSE, &wire::close_body(1000, ""), true);
        self.tcp.write_all(&close).await?;
        let mut rest = Vec::new();
        tokio::time::timeout(CLOSE_TIMEOUT, self.tcp.read_to_end(&mut rest))
            .await
            .map_err(|_| format!("no end of stream {CLOSE_TIMEOUT:?} after our Close"))??;
        match wire::parse_header(&rest) {
            Some(h)
                if h.opcode == OP_CLOSE
                    && h.mask.is_none()
                    && rest.len() == h.size + h.len as usize
                    && wire::parse_close(&rest[h.size..]).0 == 1000 =>
            {
                Ok(())
            }
            _ => Err(format!(
                "after our Close 1000: {} bytes {:02x?}, expected the server's Close 1000",
                rest.len(),
                &rest[..rest.len().min(32)]
            )
            .into()),
        }
    }
}

/// Adds a hint to "too many open files".
fn fd_hint(e: std::io::Error) -> BoxError {
    if e.raw_os_error() == Some(24) {
        format!("{e} (raise the limit: `ulimit -n 65536`, as bench/run.sh does)").into()
    } else {
        e.into()
    }
}

/// Where the connection tasks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Open,
    Go,
    Close,
}

/// What a connection task reports.
enum Event {
    Ready,
    Done(Vec<u64>),
    Failed(String),
}

/// The closed loops of `server-echo-C`; see the module docs.
async fn echo(addr: &str, pid: u32, conns: u64, n: u64, size: usize) -> Result<Outcome, BoxError> {
    let rounds = (n / conns).max(1);
    let addr: Arc<str> = addr.into();
    let opening = Arc::new(Semaphore::new(OPENING));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (phase_tx, phase_rx) = watch::channel(Phase::Open);
    let mut tasks = JoinSet::new();
    for id in 0..conns {
        tasks.spawn(conn_task(
            Arc::clone(&addr),
            id,
            rounds,
            size,
            Arc::clone(&opening),
            events_tx.clone(),
            phase_rx.clone(),
        ));
    }
    drop(events_tx);
    let mut next = async |what: &str, deadline: tokio::time::Instant| -> Result<Event, BoxError> {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => Err(format!("{what}: timed out after {PHASE_TIMEOUT:?}").into()),
            Ok(None) => Err(format!("{what}: the connection tasks ended").into()),
            Ok(Some(Event::Failed(e))) => Err(e.into()),
            Ok(Some(event)) => Ok(event),
        }
    };
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    for _ in 0..conns {
        if !matches!(next("opening", deadline).await?, Event::Ready) {
            return Err("a connection finished before the start".into());
        }
    }
    tokio::time::sleep(SETTLE).await;
    let server_cpu = process_cpu_ns(pid);
    let clock = Clock::start();
    phase_tx.send_replace(Phase::Go);
    let mut rtts = Vec::with_capacity((rounds * conns) as usize);
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    for _ in 0..conns {
        match next("echoing", deadline).await? {
            Event::Done(mut v) => rtts.append(&mut v),
            _ => return Err("a connection reported ready twice".into()),
        }
    }
    let span = clock.stop();
    tokio::time::sleep(SETTLE).await;
    let server_cpu = process_cpu_ns(pid).saturating_sub(server_cpu);
    phase_tx.send_replace(Phase::Close);
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    while let Some(joined) = tokio::time::timeout_at(deadline, tasks.join_next())
        .await
        .map_err(|_| format!("closing: timed out after {PHASE_TIMEOUT:?}"))?
    {
        joined??;
    }
    let total = rtts.len() as f64;
    Ok(Outcome {
        server_cpu_ns: server_cpu as f64 / total,
        ..Outcome::latency(rtts, size, span)
    })
}

/// One connection of `server-echo-C`: open (holding one of the [`OPENING`] permits) and
/// echo once, report ready, wait for the start, run `rounds` timed round trips, report
/// them, wait for the close phase, close. A failure is reported as an event too, so the
/// run stops at once instead of waiting for the phase's timeout.
async fn conn_task(
    addr: Arc<str>,
    id: u64,
    rounds: u64,
    size: usize,
    opening: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), BoxError> {
    let result: Result<(), BoxError> = async {
        let mut conn = {
            let _permit = opening.acquire().await?;
            let mut conn = Conn::open(&addr, id, size).await?;
            conn.round_trip(0).await?;
            conn
        };
        events.send(Event::Ready)?;
        phase.wait_for(|p| *p >= Phase::Go).await?;
        let mut rtts = Vec::with_capacity(rounds as usize);
        for seq in 1..=rounds {
            let t = Instant::now();
            conn.round_trip(seq).await?;
            rtts.push(t.elapsed().as_nanos() as u64);
        }
        events.send(Event::Done(rtts))?;
        phase.wait_for(|p| *p >= Phase::Close).await?;
        conn.close().await
    }
    .await;
    result.map_err(|e| {
        let e = format!("connection {id}: {e}");
        let _ = events.send(Event::Failed(e.clone()));
        e.into()
    })
}

/// `server-idle`: see the module docs. Returns the outcome and the open connections (to be
/// dropped after the server has been stopped).
async fn idle(addr: &str, pid: u32, conns: u64) -> Result<(Outcome, Vec<Conn>), BoxError> {
    let mut warm = Conn::open(addr, 0, 32).await?;
    warm.round_trip(0).await?;
    warm.close().await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rss0 = crate::mem::rss_kib_of(pid)?;
    let mut held = Vec::with_capacity(conns as usize);
    let mut opening = JoinSet::new();
    let mut id = 1;
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    while (held.len() as u64) < conns {
        while opening.len() < OPENING && id <= conns {
            let addr = addr.to_owned();
            opening.spawn(async move {
                let mut conn = Conn::open(&addr, id, 32).await?;
                conn.round_trip(0).await?;
                Ok::<_, BoxError>(conn)
            });
            id += 1;
        }
        let joined = tokio::time::timeout_at(deadline, opening.join_next())
            .await
            .map_err(|_| {
                format!(
                    "{} of {conns} connections open after {PHASE_TIMEOUT:?}",
                    held.len()
                )
            })?
            .ok_or("no connection being opened")?;
        held.push(joined?.map_err(|e| format!("opening connection {}: {e}", held.len() + 1))?);
    }
    // Let every connection task reach its idle wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss1 = crate::mem::rss_kib_of(pid)?;
    let outcome = Outcome {
        rss_kib: (rss1 as f64 - rss0 as f64) / conns as f64,
        heap_kib: -1.0,
        ..Outcome::default()
    };
    Ok((outcome, held))
}
