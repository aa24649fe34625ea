//! `wsstream bench URL`: a load generator against any WebSocket echo server.
//!
//! Opens `-c` connections (at most [`HANDSHAKE_CONCURRENCY`] handshakes at a time), waits
//! until every handshake has finished, then runs the message phase on all of them at
//! once, for `-d` or until `-m` messages are sent. Every message carries its connection
//! id, its sequence number and its send time ([`payload`]); each echo is checked byte
//! for byte and its round trip recorded in an HdrHistogram.
//!
//! * Closed loop (default): each connection keeps `--pipeline K` messages in flight and
//!   sends the next one when an echo arrives.
//! * Fixed rate (`-r RATE`): the messages of each connection go out on a fixed schedule
//!   (`RATE / c` per second, the connections staggered), whether or not the echoes keep
//!   up. The latency is measured from each message's *intended* send time on that
//!   schedule, so a server that stalls is charged for every message that should have
//!   been sent during the stall (coordinated omission, as wrk2 corrects it), not only
//!   for the one that was waiting. The round trip from the actual send is reported too.
//!
//! At the end (time up, quota sent, or Ctrl-C) the senders stop, the echoes still in
//! flight get up to `--drain` to arrive, and every connection is closed with 1000.

mod parse;
mod payload;
mod progress;
mod summary;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_sink::Sink as _;
use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use wsstream::{
    AbortSignal, DeflateConfig, Message, StreamError, TlsOptions, WebSocketCloseInfo,
    WebSocketReader, WebSocketStream, WebSocketStreamOptions, WebSocketWriter,
};

use self::parse::{parse_duration, parse_positive, parse_rate, parse_size};
use self::payload::{Payload, Stamp};
use self::summary::{End, Outcome, Summary};
use crate::http_version::HttpVersion;
use crate::report;

/// Handshakes in progress at once (a listen backlog is often 128 or 1024; more SYNs at
/// once would measure the backlog, not the server).
const HANDSHAKE_CONCURRENCY: usize = 64;

/// The close timeout of each connection (how long `closed` waits for the server's Close
/// frame and the end of TCP).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `wsstream bench`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct BenchArgs {
    /// URL of a WebSocket echo server (`ws://` or `wss://`), e.g. the `/echo` of
    /// `wsstream serve`.
    url: String,
    /// Number of connections.
    #[arg(short = 'c', long, value_name = "N", default_value = "1", value_parser = parse_positive)]
    connections: u32,
    /// Target rate in messages per second, in total over all connections, on a fixed
    /// schedule; latency is then measured from each message's intended send time
    /// (coordinated omission corrected). Default: unlimited (closed loop, see --pipeline).
    #[arg(short = 'r', long, value_name = "RATE", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Without -r: messages in flight per connection (the next is sent when an echo
    /// arrives).
    #[arg(long, value_name = "K", default_value = "1", value_parser = parse_positive, conflicts_with = "rate")]
    pipeline: u32,
    /// Message size in bytes; k and m are 1024 and 1024² (32, 1k, 64k, 1m). At least 27
    /// for text and 20 for --binary (the header: connection, sequence, send time).
    #[arg(short = 's', long, value_name = "SIZE", default_value = "32", value_parser = parse_size)]
    size: usize,
    /// Length of the message phase (10s, 500ms, 2m; a bare number is seconds). Default
    /// 10s unless -m is given; with both, whichever ends first.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Total number of messages to send, spread evenly over the connections.
    #[arg(short = 'm', long, value_name = "N")]
    messages: Option<u64>,
    /// Send binary messages (default: text).
    #[arg(long)]
    binary: bool,
    /// Offer permessage-deflate (default off, unlike `connect` and browsers, so the
    /// figures measure the WebSocket path, not zlib; every message has the same padding,
    /// so with compression on they compress well).
    #[arg(long, value_enum, value_name = "on|off", default_value = "off")]
    compression: OnOff,
    /// The HTTP version of the handshakes: auto (wss:// uses HTTP/2 when the server
    /// allows WebSockets over it, RFC 8441: the connections to one origin then share
    /// HTTP/2 connections; ws:// uses HTTP/1.1), 1.1, or 2 (on ws://, HTTP/2 with prior
    /// knowledge).
    #[arg(long, value_enum, value_name = "auto|1.1|2", default_value = "auto")]
    http: HttpVersion,
    /// Client threads, each running its share of the connections on a single-threaded
    /// tokio runtime (default: one per CPU, at most -c).
    #[arg(short = 't', long, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,
    /// Print the summary as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// After the senders stop, wait at most this long for the echoes still in flight
    /// (those that do not arrive are counted as unanswered).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Fail a connection whose opening handshake takes longer than this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Subprotocol to offer (repeatable).
    #[arg(long = "protocol", value_name = "P")]
    protocols: Vec<String>,
    /// Extra request header, `"Name: value"` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Trust the CA certificates of this PEM file for `wss://`, in addition to the
    /// system's (repeatable).
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
}

const AFTER_HELP: &str = "\
The connections are opened first (64 handshakes at a time); the message phase starts on all
of them together once every handshake has finished, and -d counts from there. At the end
the echoes still in flight get up to --drain to arrive, then every connection is closed
with 1000.

Measures: handshake time per connection (p50, max); messages/s and MB/s (10^6 bytes of
payload) each way over the message phase; round-trip percentiles (p50, p90, p99, p99.9,
max; HdrHistogram, 3 significant digits); connection errors, unclean closes, connections
the server closed, and echoes that are not the next expected message of their connection
(wrong connection, sequence, type, size or bytes, or nothing outstanding).

Coordinated omission: with -r, messages are sent on a fixed schedule and the latency is
measured from the time each message was *meant* to be sent, so a stalled server is charged
for the whole queue that built up behind the stall (a closed-loop client would send less
and hide it). The round trip from the actual send is shown beside it. tokio's timers have a
resolution of 1 ms: a message goes out up to 1 ms before its time rather than after it, and
is then measured from its actual send.

The progress line goes to stderr (every 500 ms on a terminal, every 5 s otherwise); the
summary to stdout. The exit status is 1 if a connection failed to open, closed uncleanly
or was closed by the server, an echo did not match, or an echo never arrived; the summary
is printed either way.

Examples:
  wsstream serve --addr 127.0.0.1:8080 &
  wsstream bench ws://127.0.0.1:8080/echo -c 1 -s 32 -d 10s
  wsstream bench ws://127.0.0.1:8080/echo -c 100 --pipeline 16 -d 10s --json
  wsstream bench ws://127.0.0.1:8080/echo -c 10 -r 5000 -s 1k -d 30s";

/// `--compression on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn parse_threads(value: &str) -> Result<usize, String> {
    parse_positive(value).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn parse_header(value: &str) -> Result<(String, String), String> {
    let (name, value) = value
        .split_once(':')
        .ok_or_else(|| format!("expected \"Name: value\", got {value:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err("the header name is empty".into());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// How the senders are paced.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// Closed loop: this many messages in flight per connection.
    Window(u32),
    /// Open loop: one message every `interval_ns` per connection.
    Rate { rate: f64, interval_ns: f64 },
}

/// Progress counters, updated in batches by the connections.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) opened: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) mismatched: AtomicU64,
    pub(crate) unclean: AtomicU64,
}

/// The latency histograms, in nanoseconds.
#[derive(Debug)]
struct Histograms {
    /// From the actual send.
    rtt: Histogram<u64>,
    /// From the intended send (with -r only).
    latency: Histogram<u64>,
}

/// Everything the connections share.
#[derive(Debug)]
pub(crate) struct Shared {
    url: String,
    options: WebSocketStreamOptions,
    payload: Payload,
    pace: Pace,
    connections: u32,
    messages: Option<u64>,
    duration: Option<Duration>,
    drain: Duration,
    /// The origin of every timestamp.
    run_start: Instant,
    /// Start of the message phase.
    pub(crate) phase_start: OnceLock<Instant>,
    /// Set when the senders must stop (time up or Ctrl-C); `time_up_tx` wakes waiters.
    time_up: AtomicBool,
    time_up_tx: watch::Sender<bool>,
    pub(crate) live: Live,
    histograms: Mutex<Histograms>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.run_start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn ns_since_start(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.run_start).as_nanos()).unwrap_or(u64::MAX)
    }

    fn stop(&self) {
        self.time_up.store(true, Ordering::Relaxed);
        self.time_up_tx.send_replace(true);
    }

    /// Messages connection `id` sends at most (with -m).
    fn quota(&self, id: u32) -> Option<u64> {
        self.messages.map(|total| {
            let n = u64::from(self.connections);
            total / n + u64::from(u64::from(id) < total % n)
        })
    }

    /// With -r: when message `seq` of connection `id` is due, in ns since the run start.
    fn intended_ns(&self, phase_start_ns: u64, id: u32, seq: u64) -> Option<u64> {
        let Pace::Rate { rate, interval_ns } = self.pace else {
            return None;
        };
        let offset = f64::from(id) * 1e9 / rate;
        // Exact to the nanosecond for any schedule shorter than a hundred days.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let at = (offset + seq as f64 * interval_ns) as u64;
        Some(phase_start_ns.saturating_add(at))
    }
}

/// Runs `wsstream bench`.
pub(crate) async fn run(args: BenchArgs) -> ExitCode {
    let payload = match Payload::new(args.size, args.binary) {
        Ok(payload) => payload,
        Err(e) => return report::usage(e),
    };
    if args.messages == Some(0) {
        return report::usage("-m must be at least 1");
    }
    let mut tls = TlsOptions::default();
    for path in &args.ca {
        let added = std::fs::read(path).and_then(|pem| tls.add_root_pem(&pem));
        if let Err(e) = added {
            return report::usage(format_args!("--ca {}: {e}", path.display()));
        }
    }
    let options = WebSocketStreamOptions::default()
        .protocols(args.protocols.clone())
        .headers(args.headers.clone())
        .tls(tls)
        .handshake_timeout(Some(args.handshake_timeout))
        .close_timeout(CLOSE_TIMEOUT)
        .max_message_size(
            args.size
                .max(WebSocketStreamOptions::default().max_message_size),
        )
        .http_version(args.http.preference())
        .compression(match args.compression {
            OnOff::On => Some(DeflateConfig::default()),
            OnOff::Off => None,
        });
    // Validate the URL and the options without connecting (an aborted signal).
    if let Err(e) = WebSocketStream::new(
        &args.url,
        options.clone().signal(Some(AbortSignal::abort())),
    ) {
        return report::usage(format_args!("{}: {e}", args.url));
    }
    let duration = match (args.duration, args.messages) {
        (None, None) => Some(Duration::from_secs(10)),
        (duration, _) => duration,
    };
    let pace = match args.rate {
        Some(rate) => Pace::Rate {
            rate,
            interval_ns: f64::from(args.connections) * 1e9 / rate,
        },
        None => Pace::Window(args.pipeline),
    };
    let histogram = || {
        // 1 ns to 1 hour at 3 significant digits (about 270 KB each).
        Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
    };
    let (time_up_tx, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        url: args.url.clone(),
        options,
        payload,
        pace,
        connections: args.connections,
        messages: args.messages,
        duration,
        drain: args.drain,
        run_start: Instant::now(),
        phase_start: OnceLock::new(),
        time_up: AtomicBool::new(false),
        time_up_tx,
        live: Live::default(),
        histograms: Mutex::new(Histograms {
            rtt: histogram(),
            latency: histogram(),
        }),
    });

    let progress = (!args.quiet).then(|| {
        let terminal = std::io::stderr().is_terminal();
        tokio::spawn(progress::run(shared.clone(), duration, terminal))
    });
    let ctrl_c = tokio::spawn(stop_on_ctrl_c(shared.clone()));

    // Open the connections, HANDSHAKE_CONCURRENCY at a time, on the client threads.
    let handshakes = Arc::new(Semaphore::new(HANDSHAKE_CONCURRENCY));
    let (handshake_tx, mut handshake_rx) = mpsc::unbounded_channel();
    let (go_tx, go_rx) = watch::channel(None);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, usize::try_from(args.connections).unwrap_or(usize::MAX));
    let client_threads: Vec<_> = (0..threads)
        .map(|thread| {
            let ids: Vec<u32> = (0..args.connections)
                .filter(|&id| usize::try_from(id).unwrap_or(0) % threads == thread)
                .collect();
            let count = ids.len();
            let shared = shared.clone();
            let handshakes = handshakes.clone();
            let handshake_tx = handshake_tx.clone();
            let reports = handshake_tx.clone();
            let go_rx = go_rx.clone();
            let (done_tx, done_rx) = oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name(format!("bench-{thread}"))
                .spawn(move || {
                    let outcomes = client_thread(&ids, &shared, &handshakes, &handshake_tx, &go_rx);
                    let _ = done_tx.send(outcomes);
                });
            if let Err(e) = spawned {
                eprintln!("wsstream: error: cannot start a client thread: {e}");
                // Its connections count as failed; report their handshakes as over.
                for _ in 0..count {
                    let _ = reports.send(());
                }
            }
            done_rx
        })
        .collect();
    drop(handshake_tx);
    // Every connection reports once, opened or failed (the report is sent on drop, so a
    // connection that panicked reports too, and a thread that could not start drops its
    // sender).
    for _ in 0..args.connections {
        if handshake_rx.recv().await.is_none() {
            break;
        }
    }

    // The message phase.
    let phase_start = Instant::now();
    let _ = shared.phase_start.set(phase_start);
    go_tx.send_replace(Some(phase_start));
    let timer = duration.map(|duration| {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(phase_start + duration)).await;
            shared.stop();
        })
    });
    let mut outcomes = Vec::with_capacity(usize::try_from(args.connections).unwrap_or(0));
    for done in client_threads {
        outcomes.extend(done.await.unwrap_or_default());
    }
    let missing = u64::from(args.connections).saturating_sub(outcomes.len() as u64);
    for _ in 0..missing {
        outcomes.push(Outcome::failed("the client thread failed".into()));
    }
    if let Some(timer) = timer {
        timer.abort();
    }
    ctrl_c.abort();
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[K");
        }
    }

    let (rtt, latency) = match shared.histograms.lock() {
        Ok(h) => (h.rtt.clone(), h.latency.clone()),
        Err(poisoned) => {
            let h = poisoned.into_inner();
            (h.rtt.clone(), h.latency.clone())
        }
    };
    let summary = Summary::new(
        summary::Setup {
            url: args.url.clone(),
            connections: args.connections,
            size: args.size,
            binary: args.binary,
            compression: args.compression == OnOff::On,
            pipeline: match pace {
                Pace::Window(k) => Some(k),
                Pace::Rate { .. } => None,
            },
            rate: args.rate,
            duration,
            messages: args.messages,
        },
        &outcomes,
        phase_start,
        &rtt,
        args.rate.is_some().then_some(&latency),
    );
    let text = if args.json {
        summary.json()
    } else {
        summary.table()
    };
    println!("{text}");
    match summary.problems() {
        None => ExitCode::SUCCESS,
        Some(problems) => report::fail(problems),
    }
}

/// One client thread: a single-threaded tokio runtime running the connections `ids`
/// (as wrk and tcpkali run one event loop per thread: a connection's reads, writes and
/// timers stay on one thread, with no cross-thread wake-ups).
fn client_thread(
    ids: &[u32],
    shared: &Arc<Shared>,
    handshakes: &Arc<Semaphore>,
    handshake_tx: &mpsc::UnboundedSender<()>,
    go_rx: &watch::Receiver<Option<Instant>>,
) -> Vec<Outcome> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return ids
                .iter()
                .map(|_| {
                    let _ = handshake_tx.send(());
                    Outcome::failed(format!("cannot start a tokio runtime: {e}"))
                })
                .collect();
        }
    };
    runtime.block_on(async {
        let tasks: Vec<_> = ids
            .iter()
            .map(|&id| {
                tokio::spawn(connection(
                    id,
                    shared.clone(),
                    handshakes.clone(),
                    Reported(Some(handshake_tx.clone())),
                    go_rx.clone(),
                ))
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(
                task.await.unwrap_or_else(|e| {
                    Outcome::failed(format!("the connection task failed: {e}"))
                }),
            );
        }
        outcomes
    })
}

/// Tells the main task that a connection's handshake is over, once: when `done` is
/// called or, failing that, when dropped.
struct Reported(Option<mpsc::UnboundedSender<()>>);

impl Reported {
    fn done(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Reported {
    fn drop(&mut self) {
        self.done();
    }
}

/// The first Ctrl-C stops the senders (the run then drains, closes and reports); a
/// second one exits at once.
async fn stop_on_ctrl_c(shared: Arc<Shared>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("\nwsstream: stopping (Ctrl-C again to quit at once)");
    shared.stop();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}

/// One connection: the handshake, then (after every handshake finished) the message
/// phase, then the close.
async fn connection(
    id: u32,
    shared: Arc<Shared>,
    handshakes: Arc<Semaphore>,
    mut handshake_done: Reported,
    mut go: watch::Receiver<Option<Instant>>,
) -> Outcome {
    let permit = handshakes.acquire().await.ok();
    let start = Instant::now();
    let opened = match WebSocketStream::new(&shared.url, shared.options.clone()) {
        Ok(wss) => wss
            .opened()
            .await
            .map(|info| (wss, info))
            .map_err(|e| one_line(&report::connection_error(&e))),
        Err(e) => Err(e.to_string()),
    };
    let took = start.elapsed();
    drop(permit);
    let (wss, info) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            shared.live.failed.fetch_add(1, Ordering::Relaxed);
            handshake_done.done();
            return Outcome::failed(e);
        }
    };
    shared.live.opened.fetch_add(1, Ordering::Relaxed);
    handshake_done.done();
    let mut outcome = Outcome {
        handshake: Some(took),
        http2: info.http_version() == wsstream::http::Version::HTTP_2,
        ..Outcome::default()
    };
    let (mut reader, mut writer) = match (info.readable.get_reader(), info.writable.get_writer()) {
        (Ok(reader), Ok(writer)) => (reader, writer),
        (Err(e), _) | (_, Err(e)) => {
            outcome.end = End::Unclean(e.to_string());
            return outcome;
        }
    };
    let phase_start = match go.wait_for(Option::is_some).await {
        Ok(start) => *start,
        Err(_) => None,
    };
    let Some(phase_start) = phase_start else {
        outcome.end = End::Unclean("the run ended before the message phase".into());
        return outcome;
    };

    let phase_start_ns = shared.ns_since_start(phase_start);
    let (sent, received) = match shared.pace {
        Pace::Window(window) => {
            closed_loop(
                id,
                &shared,
                window,
                &mut writer,
                &mut reader,
                phase_start_ns,
            )
            .await
        }
        Pace::Rate { .. } => {
            let flow = Flow::new();
            let mut tally = Tally::default();
            let ((), received) = tokio::join!(
                send(id, &shared, &flow, &mut writer, phase_start_ns, &mut tally),
                receive(id, &shared, &flow, &mut reader, phase_start_ns),
            );
            (flow.sent.load(Ordering::Acquire), received)
        }
    };
    outcome.sent = sent;
    outcome.received = received.received;
    outcome.replies = received.replies;
    outcome.mismatched = received.mismatched;
    outcome.bytes_received = received.bytes;
    outcome.bytes_sent = outcome.sent * shared.payload.size() as u64;
    outcome.receive_done = Some(received.done_at);
    drop((reader, writer));

    if received.end == ReceiveEnd::Done {
        let _ = wss.close(WebSocketCloseInfo {
            close_code: Some(1000),
            reason: String::new(),
        });
    }
    outcome.end = match wss.closed().await {
        Ok(info) if received.end == ReceiveEnd::Done => End::Clean(info.close_code),
        Ok(info) => End::ClosedByServer(info.close_code, info.reason),
        Err(e) => {
            shared.live.unclean.fetch_add(1, Ordering::Relaxed);
            End::Unclean(one_line(&report::connection_error(&e)))
        }
    };
    outcome
}

fn one_line(text: &str) -> String {
    text.replace("\n ", ";").replace('\n', "; ")
}

/// What the sender and the receiver of one connection share (fixed-rate runs; a closed
/// loop runs in one loop, [`closed_loop`]).
#[derive(Debug)]
struct Flow {
    /// Messages handed to the writer (counted before the write, so an echo can never
    /// arrive before its message is counted).
    sent: AtomicU64,
    /// Set when the sender stopped; `wake` tells the receiver.
    sending_done: AtomicBool,
    wake: Notify,
    /// Set when the receiver stopped (the connection ended).
    ended: watch::Sender<bool>,
}

impl Flow {
    fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            sending_done: AtomicBool::new(false),
            wake: Notify::new(),
            ended: watch::channel(false).0,
        }
    }
}

/// Counts published to [`Live`] in batches.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pending: u64,
    last_flush_ns: u64,
}

impl Tally {
    /// Counts one event; publishes to `counter` every 64 events or 200 ms.
    fn add(&mut self, counter: &AtomicU64, now_ns: u64) {
        self.pending += 1;
        if self.pending >= 64 || now_ns.saturating_sub(self.last_flush_ns) >= 200_000_000 {
            self.flush(counter, now_ns);
        }
    }

    fn flush(&mut self, counter: &AtomicU64, now_ns: u64) {
        if self.pending > 0 {
            counter.fetch_add(self.pending, Ordering::Relaxed);
            self.pending = 0;
        }
        self.last_flush_ns = now_ns;
    }
}

/// With -r, a message is sent once it is due within this much (tokio's timers have a
/// resolution of 1 ms and round a deadline up): so it goes out up to 1 ms early rather
/// than up to 1 ms late, and its latency is measured from the earlier of its intended and
/// its actual send time. The timer then adds nothing to the latency; a sender that falls
/// behind (a stalled server, a full send buffer) is still charged from the intended time.
const TIMER_SLACK_NS: u64 = 1_000_000;

/// Messages fed to the writer before it is flushed at the latest.
const MAX_BATCH: u32 = 64;

/// Feeds `message` into the writer's send buffer (the `Sink`: no socket write unless the
/// buffer is full).
async fn feed(writer: &mut WebSocketWriter, message: Message) -> Result<(), StreamError> {
    std::future::poll_fn(|cx| Pin::new(&mut *writer).poll_ready(cx)).await?;
    Pin::new(&mut *writer).start_send(message)
}

/// Writes everything fed so far to the socket.
async fn flush(writer: &mut WebSocketWriter) -> Result<(), StreamError> {
    std::future::poll_fn(|cx| Pin::new(&mut *writer).poll_flush(cx)).await
}

/// The end of the phase for a connection that started it at `phase_start_ns`, if the run
/// has a duration.
fn deadline_ns(shared: &Shared, phase_start_ns: u64) -> Option<u64> {
    shared
        .duration
        .map(|d| phase_start_ns.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

/// The closed loop (`--pipeline K`, default 1) of one connection, in one loop as a
/// hand-written load client would run it: feed messages while fewer than K are
/// unanswered, write them with one flush, then read a reply; until the quota is sent or
/// the time is up, then until every message is answered (or the drain time runs out).
/// Returns the messages sent and what the replies counted.
async fn closed_loop(
    id: u32,
    shared: &Shared,
    window: u32,
    writer: &mut WebSocketWriter,
    reader: &mut WebSocketReader,
    phase_start_ns: u64,
) -> (u64, Received) {
    let quota = shared.quota(id);
    let deadline_ns = deadline_ns(shared, phase_start_ns);
    let mut time_up = shared.time_up_tx.subscribe();
    let mut replies = Replies::new(id, shared, phase_start_ns);
    let mut tally = Tally::default();
    let mut sent = 0u64;
    let mut sending = true;
    let mut drain_until = None;
    'run: loop {
        if sending {
            let mut unflushed = 0u32;
            while sent - replies.out.replies < u64::from(window) {
                let now = shared.now_ns();
                if quota.is_some_and(|quota| sent >= quota)
                    || shared.time_up.load(Ordering::Relaxed)
                    || deadline_ns.is_some_and(|end| now >= end)
                {
                    sending = false;
                    break;
                }
                let message = shared.payload.message(Stamp {
                    conn: id,
                    seq: sent,
                    sent_ns: now,
                });
                if feed(writer, message).await.is_err() {
                    // The connection failed; the read below sees it.
                    sending = false;
                    break;
                }
                sent += 1;
                unflushed += 1;
                tally.add(&shared.live.sent, now);
                if unflushed >= MAX_BATCH {
                    if flush(writer).await.is_err() {
                        sending = false;
                        break;
                    }
                    unflushed = 0;
                }
            }
            if unflushed > 0 && flush(writer).await.is_err() {
                sending = false;
            }
        }
        if !sending {
            if replies.out.replies >= sent {
                break;
            }
            drain_until.get_or_insert_with(|| tokio::time::Instant::now() + shared.drain);
        }
        let read = match drain_until {
            Some(deadline) => tokio::select! {
                read = reader.read() => read,
                () = tokio::time::sleep_until(deadline) => break,
            },
            None => tokio::select! {
                biased;
                read = reader.read() => read,
                _ = time_up.wait_for(|up| *up) => {
                    sending = false;
                    continue;
                }
            },
        };
        let mut next = Poll::Ready(read);
        // With more than one in flight, take the replies that are already here (buffered,
        // or readable without waiting) before sending more: the window then refills in
        // one burst written with one flush, not one write per reply.
        while let Poll::Ready(read) = next {
            match read {
                Ok(Some(message)) => {
                    replies.take(&message, sent);
                }
                Ok(None) => {
                    replies.out.end = ReceiveEnd::PeerClosed;
                    break 'run;
                }
                Err(_) => {
                    replies.out.end = ReceiveEnd::Failed;
                    break 'run;
                }
            }
            next = if replies.out.replies < sent {
                std::future::poll_fn(|cx| Poll::Ready(reader.poll_read(cx))).await
            } else {
                Poll::Pending
            };
        }
    }
    tally.flush(&shared.live.sent, shared.now_ns());
    (sent, replies.finish())
}

/// Sends on schedule (`-r`) until the quota is sent, the time is up, or the connection
/// ends.
///
/// Messages that are due are fed into the writer's send buffer and written with one
/// flush, before the sender waits and at least every [`MAX_BATCH`] messages: one socket
/// write for a burst, as a browser's send queue would do, instead of one per message.
async fn send(
    id: u32,
    shared: &Shared,
    flow: &Flow,
    writer: &mut WebSocketWriter,
    phase_start_ns: u64,
    tally: &mut Tally,
) {
    let quota = shared.quota(id);
    // The end of the phase, checked on every message as well as by the timer task (whose
    // wake-up may come a little late).
    let deadline_ns = deadline_ns(shared, phase_start_ns);
    let mut time_up = shared.time_up_tx.subscribe();
    let mut ended = flow.ended.subscribe();
    let mut seq = 0u64;
    let mut unflushed = 0u32;
    loop {
        if quota.is_some_and(|quota| seq >= quota) || shared.time_up.load(Ordering::Relaxed) {
            break;
        }
        let due = shared
            .intended_ns(phase_start_ns, id, seq)
            .unwrap_or(phase_start_ns);
        if deadline_ns.is_some_and(|end| due >= end) {
            break;
        }
        // Due within the timer's resolution: send now (see TIMER_SLACK_NS).
        if due > shared.now_ns().saturating_add(TIMER_SLACK_NS) {
            if unflushed > 0 {
                if flush(writer).await.is_err() {
                    break;
                }
                unflushed = 0;
            }
            let wake = due.saturating_sub(TIMER_SLACK_NS);
            let at = shared.run_start + Duration::from_nanos(wake);
            tokio::select! {
                biased;
                _ = time_up.wait_for(|up| *up) => break,
                _ = ended.wait_for(|ended| *ended) => break,
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
            }
        }
        if *ended.borrow() {
            break;
        }
        let now = shared.now_ns();
        if shared.time_up.load(Ordering::Relaxed) || deadline_ns.is_some_and(|end| now >= end) {
            break;
        }
        let message = shared.payload.message(Stamp {
            conn: id,
            seq,
            sent_ns: now,
        });
        flow.sent.store(seq + 1, Ordering::Release);
        if feed(writer, message).await.is_err() {
            flow.sent.store(seq, Ordering::Release);
            break;
        }
        seq += 1;
        unflushed += 1;
        tally.add(&shared.live.sent, now);
        if unflushed >= MAX_BATCH {
            if flush(writer).await.is_err() {
                break;
            }
            unflushed = 0;
            // A sender that is behind its schedule must still let the receiver (and the
            // other tasks of this worker) run.
            tokio::task::coop::consume_budget().await;
        }
    }
    if unflushed > 0 {
        // Fails only if the connection failed; the receiver sees that too.
        let _ = flush(writer).await;
    }
    tally.flush(&shared.live.sent, shared.now_ns());
    flow.sending_done.store(true, Ordering::Release);
    flow.wake.notify_one();
}

/// Why the receiver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReceiveEnd {
    /// Every message was answered, or the drain time ran out.
    Done,
    /// The server closed the connection (a Close frame).
    PeerClosed,
    /// The connection failed.
    Failed,
}

/// What the receiver counted.
#[derive(Debug)]
struct Received {
    end: ReceiveEnd,
    /// Echoes that were the next expected message.
    received: u64,
    /// Messages that answered an outstanding send (matching or not).
    replies: u64,
    /// Echoes that did not match, plus messages with nothing outstanding.
    mismatched: u64,
    bytes: u64,
    done_at: Instant,
}

/// Batches of samples recorded into the shared histograms.
struct Recorder<'a> {
    shared: &'a Shared,
    rtt: Vec<u64>,
    latency: Vec<u64>,
}

impl Recorder<'_> {
    const BATCH: usize = 256;

    fn record(&mut self, rtt: u64, latency: Option<u64>) {
        self.rtt.push(rtt);
        if let Some(latency) = latency {
            self.latency.push(latency);
        }
        if self.rtt.len() >= Self::BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut histograms = match self.shared.histograms.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        for value in self.rtt.drain(..) {
            histograms.rtt.saturating_record(value.max(1));
        }
        for value in self.latency.drain(..) {
            histograms.latency.saturating_record(value.max(1));
        }
    }
}

/// Checks one connection's replies against what it sent: each echo must be the next
/// message, byte for byte; its round trip (and, at a fixed rate, its latency from the
/// intended send time) goes to the histograms.
struct Replies<'a> {
    id: u32,
    shared: &'a Shared,
    phase_start_ns: u64,
    out: Received,
    recorder: Recorder<'a>,
    tally: Tally,
    mismatch_tally: Tally,
    /// The sequence number of the next expected echo.
    expected: u64,
}

impl<'a> Replies<'a> {
    fn new(id: u32, shared: &'a Shared, phase_start_ns: u64) -> Self {
        Self {
            id,
            shared,
            phase_start_ns,
            out: Received {
                end: ReceiveEnd::Done,
                received: 0,
                replies: 0,
                mismatched: 0,
                bytes: 0,
                done_at: Instant::now(),
            },
            recorder: Recorder {
                shared,
                rtt: Vec::with_capacity(Recorder::BATCH),
                latency: Vec::new(),
            },
            tally: Tally::default(),
            mismatch_tally: Tally::default(),
            expected: 0,
        }
    }

    /// Counts `message`, received when `sent` messages had been sent; returns whether it
    /// answered one of them.
    fn take(&mut self, message: &Message, sent: u64) -> bool {
        let shared = self.shared;
        let now = shared.now_ns();
        self.out.bytes += message.len() as u64;
        if self.out.replies >= sent {
            // Nothing outstanding: not an echo of ours.
            self.out.mismatched += 1;
            self.mismatch_tally.add(&shared.live.mismatched, now);
            return false;
        }
        self.out.replies += 1;
        match shared.payload.check(message) {
            Some(stamp) if stamp.conn == self.id && stamp.seq == self.expected => {
                self.expected += 1;
                self.out.received += 1;
                let latency = shared
                    .intended_ns(self.phase_start_ns, self.id, stamp.seq)
                    .map(|due| now.saturating_sub(due.min(stamp.sent_ns)));
                self.recorder
                    .record(now.saturating_sub(stamp.sent_ns), latency);
                self.tally.add(&shared.live.received, now);
            }
            stamp => {
                if let Some(stamp) = stamp.filter(|s| s.conn == self.id && s.seq > self.expected) {
                    // Skipped some: those stay unanswered.
                    self.expected = stamp.seq + 1;
                }
                self.out.mismatched += 1;
                self.mismatch_tally.add(&shared.live.mismatched, now);
            }
        }
        true
    }

    /// Publishes what is left in the batches; the counts.
    fn finish(mut self) -> Received {
        self.out.done_at = Instant::now();
        self.recorder.flush();
        let now = self.shared.now_ns();
        self.tally.flush(&self.shared.live.received, now);
        self.mismatch_tally.flush(&self.shared.live.mismatched, now);
        self.out
    }
}

/// Reads and checks the echoes of a fixed-rate run until every sent message is answered
/// (after the sender stopped), the drain time runs out, or the connection ends.
async fn receive(
    id: u32,
    shared: &Shared,
    flow: &Flow,
    reader: &mut WebSocketReader,
    phase_start_ns: u64,
) -> Received {
    let mut replies = Replies::new(id, shared, phase_start_ns);
    let mut drain_until = None;
    loop {
        if flow.sending_done.load(Ordering::Acquire) {
            if replies.out.replies >= flow.sent.load(Ordering::Acquire) {
                break;
            }
            drain_until.get_or_insert_with(|| tokio::time::Instant::now() + shared.drain);
        }
        let read = match drain_until {
            Some(deadline) => tokio::select! {
                read = reader.read() => read,
                () = tokio::time::sleep_until(deadline) => break,
            },
            None => tokio::select! {
                read = reader.read() => read,
                () = flow.wake.notified() => continue,
            },
        };
        match read {
            Ok(Some(message)) => {
                replies.take(&message, flow.sent.load(Ordering::Acquire));
            }
            Ok(None) => {
                replies.out.end = ReceiveEnd::PeerClosed;
                break;
            }
            Err(_) => {
                replies.out.end = ReceiveEnd::Failed;
                break;
            }
        }
    }
    flow.ended.send_replace(true);
    replies.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_header("X-Test:  a: b ").unwrap(),
            ("X-Test".to_owned(), "a: b".to_owned())
        );
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn tallies_publish_in_batches() {
        let counter = AtomicU64::new(0);
        let mut tally = Tally::default();
        for _ in 0..63 {
            tally.add(&counter, 1);
        }
        assert_eq!(counter.load(Ordering::Relaxed), 0);
        tally.add(&counter, 1);
        assert_eq!(counter.load(Ordering::Relaxed), 64);
        tally.add(&counter, 300_000_000);
        assert_eq!(counter.load(Ordering::Relaxed), 65);
    }
}
