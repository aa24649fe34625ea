//! The streams-N scenarios: N WebSocketStreams to one origin, over HTTP/2 (RFC 8441: the
//! streams share pooled connections) against HTTP/1.1 (one connection each), with wsstream
//! on both sides.
//!
//! * Server: `wsstream-bench serve-h2 <1|2> [max streams]`, a child process with a hyper
//!   server on a current-thread runtime (`1`) or two workers (`2`). It listens on two
//!   ports of 127.0.0.1 with a backlog of 4,096 (`LISTEN <addr>`, then `WARMUP <addr>` for the warm-up stream, a
//!   different origin so it does not leave a pooled HTTP/2 connection behind for the
//!   measured streams). On each accepted connection it looks at the first byte: a TLS
//!   handshake gets TLS with ALPN `h2` and `http/1.1` and then HTTP/2 (hyper's
//!   `http2::Builder` with `enable_connect_protocol()` and `max_concurrent_streams` set to
//!   the command's limit, default 1,000) or HTTP/1.1 as the client chose; anything else
//!   is cleartext HTTP/1.1. Every request goes through `HyperUpgrade` (permessage-deflate
//!   declined, as in the server-role scenarios) and each stream is echoed by a task of its
//!   own (`reader.read()` → `writer.write()`, then `closed()`). Its certificate comes from
//!   the measuring process (`WSB_TLS_CERT`, `WSB_TLS_KEY`, PEM), or, run alone, from a
//!   throwaway authority it prints on stderr. On stdin it answers `stats` with one line:
//!   the TCP connections accepted on the main port (and how many were TLS with `h2`, TLS
//!   with `http/1.1`, cleartext), the WebSockets opened, and how many of them ended with a
//!   clean close 1000 or otherwise.
//! * Client, in the measuring process on a current-thread runtime: wsstream's
//!   `WebSocketStream` with default options but for `http_version` (`Http2Only`, or
//!   `Http1Only`) and a `TlsOptions` trusting the throwaway authority. One warm-up stream
//!   (open, echo, close) to the warm-up origin; then VmRSS of both processes and the
//!   server's counts; then N tasks, each opening one stream to the same origin (all at
//!   once, or holding one of `at_once` permits while it opens). Every stream must report
//!   the HTTP version asked for and no extension. When all are open: one echo on each (a
//!   text message naming the stream, compared with its reply), 200 ms for both sides to
//!   settle with every stream waiting in `reader.read()`, VmRSS of both processes and the
//!   server's counts again. Then every stream closes with 1000 and must see `closed`
//!   resolve with 1000, and the server must count N clean closes.
//!
//! Figures: the time from the first `WebSocketStream::new` to the last `opened`; p50 and
//! p99 of each stream's own time from `new` to `opened`; client and server CPU time over
//! that window per stream; VmRSS growth per stream of both processes; the TCP connections
//! the server accepted for the streams (N for HTTP/1.1; for HTTP/2 N divided by the
//! server's stream limit, rounded up, if the client shares as it should).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use wsstream::http::{self, HeaderMap};
use wsstream::server::hyper::{Body, HyperUpgrade, Upgrading, error_response};
use wsstream::server::{ServerOptions, TlsAcceptor};
use wsstream::{
    AsyncIo, HttpVersionPreference, Message, TlsOptions, WebSocketCloseInfo, WebSocketStream,
    WebSocketStreamOptions,
};

use crate::scenario::{Clock, Http, Kind, Outcome, Scenario, set_server_pid};
use crate::{BoxError, HeapProbe, ServerChild};

/// How long each phase (opening, echoing, closing) may take before the run fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause that lets both processes settle before their memory is read.
const SETTLE: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------
// The certificates.

/// A throwaway certificate authority and a server certificate it signed for `127.0.0.1`
/// and `localhost`, PEM.
struct Certs {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Certs {
    fn new() -> Result<Self, BoxError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "wsstream-bench CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// The server (`serve-h2`).

/// The server's counts, printed on request (`stats` on stdin).
#[derive(Default)]
struct Counts {
    /// TCP connections accepted on the main port.
    tcp: AtomicU64,
    /// Of those: TLS with ALPN `h2`, TLS with `http/1.1` (or none), cleartext.
    tls_h2: AtomicU64,
    tls_h1: AtomicU64,
    plain: AtomicU64,
    /// WebSockets opened on the main port.
    opened: AtomicU64,
    /// Of those: ended with a clean close 1000, or otherwise (an error, another code).
    clean: AtomicU64,
    unclean: AtomicU64,
    /// Connections or requests that failed before a WebSocket opened (all ports).
    failed: AtomicU64,
}

static COUNTS: Counts = Counts {
    tcp: AtomicU64::new(0),
    tls_h2: AtomicU64::new(0),
    tls_h1: AtomicU64::new(0),
    plain: AtomicU64::new(0),
    opened: AtomicU64::new(0),
    clean: AtomicU64::new(0),
    unclean: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

impl Counts {
    /// The `STATS` line, with the live heap bytes when `heap` can tell them.
    fn line(&self, heap: Option<HeapProbe>) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let heap = heap.map_or_else(String::new, |h| format!(" heap={}", h()));
        format!(
            "STATS tcp={} tls_h2={} tls_h1={} plain={} opened={} clean={} unclean={} \
             failed={}{heap}",
            get(&self.tcp),
            get(&self.tls_h2),
            get(&self.tls_h1),
            get(&self.plain),
            get(&self.opened),
            get(&self.clean),
            get(&self.unclean),
            get(&self.failed),
        )
    }
}

fn bump(counter: &AtomicU64, main: bool) {
    if main {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `wsstream-bench serve-h2 <1|2> [max streams]` (`args` without the command).
pub(crate) fn serve(args: &[String], heap: Option<HeapProbe>) -> Result<(), BoxError> {
    let usage = "usage: wsstream-bench serve-h2 <1|2 workers> [max streams per HTTP/2 connection]";
    let workers: usize = match args.first().map(String::as_str) {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(other) => return Err(format!("{usage} (got {other:?} workers)").into()),
    };
    let max_streams: u32 = match args.get(1) {
        None => 1000,
        Some(v) => v.parse().map_err(|_| format!("{usage} (got {v:?})"))?,
    };
    let (cert, key) = match (std::env::var("WSB_TLS_CERT"), std::env::var("WSB_TLS_KEY")) {
        (Ok(cert), Ok(key)) => (cert, key),
        _ => {
            let certs = Certs::new()?;
            eprintln!(
                "serve-h2: trust this certificate authority:\n{}",
                certs.ca_pem
            );
            (certs.cert_pem, certs.key_pem)
        }
    };
    let acceptor = TlsAcceptor::from_pem(cert.as_bytes(), key.as_bytes())?;
    let mut config = (**acceptor.config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tls = TlsAcceptor::new(Arc::new(config));
    let rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    let main = rt.block_on(async { listen() })?;
    let warm = rt.block_on(async { listen() })?;
    println!("LISTEN {}", main.local_addr()?);
    println!("WARMUP {}", warm.local_addr()?);
    std::io::stdout().flush()?;
    let watch_parent = std::env::var_os(crate::WATCH_STDIN).is_some();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "stats" {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", COUNTS.line(heap));
                let _ = out.flush();
            }
        }
        // Started by a run: exit with it.
        if watch_parent {
            std::process::exit(0);
        }
    });
    rt.spawn(accept_loop(warm, tls.clone(), max_streams, false));
    rt.block_on(accept_loop(main, tls, max_streams, true));
    Ok(())
}

/// Connections waiting to be accepted, at most (the kernel caps it at `somaxconn`).
const BACKLOG: u32 = 4096;

/// A listener on a free port of 127.0.0.1 with a backlog of [`BACKLOG`]. `TcpListener::bind`
/// takes 128, the standard library's value: 1,000 HTTP/1.1 connections arriving at once
/// overflow it, and the connections whose SYN is dropped wait a second for its
/// retransmission.
fn listen() -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(([127, 0, 0, 1], 0).into())?;
    socket.listen(BACKLOG)
}

/// Accepts connections forever, each served by a task of its own; `main`: counted.
async fn accept_loop(listener: TcpListener, tls: TlsAcceptor, max_streams: u32, main: bool) {
    let mut reported = false;
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // E.g. EMFILE: say it once, back off, and keep serving the others.
                if !reported {
                    eprintln!("serve-h2: accept: {e}");
                    reported = true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        bump(&COUNTS.tcp, main);
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, tls.clone(), max_streams, main));
    }
}

/// One connection: TLS (then HTTP/2 or HTTP/1.1 by ALPN) when it starts with a TLS
/// handshake record, else cleartext HTTP/1.1.
async fn connection(tcp: TcpStream, tls: TlsAcceptor, max_streams: u32, main: bool) {
    let mut first = [0u8; 1];
    if !matches!(tcp.peek(&mut first).await, Ok(1)) {
        COUNTS.failed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    if first[0] != 0x16 {
        bump(&COUNTS.plain, main);
        return serve_h1(tcp, false, main).await;
    }
    let io = match tls.accept(tcp).await {
        Ok(io) => io,
        Err(e) => {
            COUNTS.failed.fetch_add(1, Ordering::SeqCst);
            eprintln!("serve-h2: TLS handshake: {e}");
            return;
        }
    };
    if io.get_ref().1.alpn_protocol() == Some(b"h2") {
        bump(&COUNTS.tls_h2, main);
        let service =
            service_fn(
                move |request| async move { Ok::<_, Infallible>(route(request, true, main)) },
            );
        let served = http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .max_concurrent_streams(max_streams)
            .serve_connection(TokioIo::new(io), service)
            .await;
        if let Err(e) = served {
            eprintln!("serve-h2: HTTP/2 connection: {e}");
        }
    } else {
        bump(&COUNTS.tls_h1, main);
        serve_h1(io, true, main).await;
    }
}

/// One HTTP/1.1 request with upgrades on (the WebSocket then has the connection).
async fn serve_h1<S: AsyncIo>(io: S, secure: bool, main: bool) {
    let service =
        service_fn(move |request| async move { Ok::<_, Infallible>(route(request, secure, main)) });
    let served = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        COUNTS.failed.fetch_add(1, Ordering::SeqCst);
        eprintln!("serve-h2: HTTP/1.1 connection: {e}");
    }
}

/// Accepts the WebSocket (permessage-deflate declined) and echoes it on a task of its own.
fn route(mut request: Request<Incoming>, secure: bool, main: bool) -> Response<Body> {
    let mut upgrade = match HyperUpgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(e) => {
            COUNTS.failed.fetch_add(1, Ordering::SeqCst);
            return error_response(&e);
        }
    };
    upgrade.set_secure(secure);
    let options = ServerOptions::default().compression(None);
    match upgrade.accept(None, &HeaderMap::new(), options) {
        Ok((response, upgrading)) => {
            tokio::spawn(echo(upgrading, main));
            response
        }
        Err(e) => {
            COUNTS.failed.fetch_add(1, Ordering::SeqCst);
            eprintln!("serve-h2: accept: {e}");
            let mut response = Response::new(Body::default());
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Echoes every message until the client's Close, then waits for the closing handshake.
async fn echo(upgrading: Upgrading, main: bool) {
    let wss = match upgrading.await {
        Ok(wss) => wss,
        Err(e) => {
            COUNTS.failed.fetch_add(1, Ordering::SeqCst);
            eprintln!("serve-h2: upgrade: {e}");
            return;
        }
    };
    bump(&COUNTS.opened, main);
    let result: Result<Option<u16>, BoxError> = async {
        let info = wss.opened().await?;
        let mut reader = info.readable.get_reader()?;
        let mut writer = info.writable.get_writer()?;
        drop(info);
        while let Some(message) = reader.read().await? {
            writer.write(message).await?;
        }
        Ok(wss.closed().await?.close_code)
    }
    .await;
    match result {
        Ok(Some(1000)) => bump(&COUNTS.clean, main),
        other => {
            bump(&COUNTS.unclean, main);
            eprintln!("serve-h2: a WebSocket ended with {other:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The client (the measured run).

/// The server's counts, parsed from its `STATS` line.
#[derive(Debug, Default)]
struct Stats(BTreeMap<String, u64>);

impl Stats {
    fn ask(server: &mut ServerChild) -> Result<Self, BoxError> {
        let line = server.ask("stats")?;
        let rest = line
            .strip_prefix("STATS ")
            .ok_or_else(|| format!("the server answered {line:?} to stats"))?;
        let mut map = BTreeMap::new();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=').ok_or("malformed STATS line")?;
            map.insert(k.to_owned(), v.parse()?);
        }
        Ok(Self(map))
    }

    /// `name` here minus `name` in `before`.
    fn since(&self, before: &Self, name: &str) -> u64 {
        let get = |s: &Self| s.0.get(name).copied().unwrap_or(0);
        get(self).saturating_sub(get(before))
    }
}

/// Where the stream tasks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Open,
    Echo,
    Close,
}

/// What a stream task reports.
enum Event {
    /// Opened, after this many nanoseconds.
    Opened(u64),
    Echoed,
    Failed(String),
}

/// Runs a streams scenario: starts the `serve-h2` child, measures, checks.
pub(crate) fn run(scenario: &Scenario, heap: Option<HeapProbe>) -> Result<Outcome, BoxError> {
    let Kind::Streams {
        n,
        http,
        at_once,
        max_streams,
    } = scenario.kind
    else {
        return Err(format!("{} is not a streams scenario", scenario.name).into());
    };
    let certs = Certs::new()?;
    let max = max_streams.to_string();
    let mut server = ServerChild::start_with_env(
        &["serve-h2", "1", &max],
        &[
            ("WSB_TLS_CERT", certs.cert_pem.as_str()),
            ("WSB_TLS_KEY", certs.key_pem.as_str()),
        ],
    )?;
    let warm = server.read_line()?;
    let warm = warm
        .strip_prefix("WARMUP ")
        .ok_or_else(|| format!("serve-h2 said {warm:?}"))?
        .to_owned();
    set_server_pid(server.pid());
    let mut tls = TlsOptions::default();
    tls.add_root_pem(certs.ca_pem.as_bytes())?;
    let options = WebSocketStreamOptions::default()
        .tls(tls)
        .http_version(match http {
            Http::H2 => HttpVersionPreference::Http2Only,
            Http::H1 | Http::Plain => HttpVersionPreference::Http1Only,
        });
    let scheme = if http == Http::Plain { "ws" } else { "wss" };
    let url = format!("{scheme}://{}/echo", server.addr());
    let warm_url = format!("{scheme}://{warm}/echo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(measure(
        &mut server,
        Plan {
            n,
            http,
            at_once,
            max_streams,
            url,
            warm_url,
            options,
            heap,
        },
    ));
    // Stop the server before the client's runtime (and its connections) goes away.
    drop(server);
    drop(rt);
    outcome
}

/// What [`measure`] does.
struct Plan {
    n: u64,
    http: Http,
    at_once: u64,
    max_streams: u32,
    url: String,
    warm_url: String,
    options: WebSocketStreamOptions,
    /// The live heap of this process, in the `wsstream-bench-heap` binary.
    heap: Option<HeapProbe>,
}

async fn measure(server: &mut ServerChild, plan: Plan) -> Result<Outcome, BoxError> {
    let Plan {
        n,
        http,
        at_once,
        max_streams,
        url,
        warm_url,
        options,
        heap,
    } = plan;
    let version = match http {
        Http::H2 => http::Version::HTTP_2,
        Http::H1 | Http::Plain => http::Version::HTTP_11,
    };
    // Warm up what the first stream initialises lazily, on another origin (its HTTP/2
    // connection stays pooled for a while and must not serve the measured streams).
    warm_up(&warm_url, &options, version).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pid = server.pid();
    let stats0 = Stats::ask(server)?;
    let rss0 = crate::mem::rss_kib()?;
    let heap0 = heap.map(|h| h());
    let server_rss0 = crate::mem::rss_kib_of(pid)?;

    let url: Arc<str> = url.into();
    let options = Arc::new(options);
    let permits = Arc::new(Semaphore::new(if at_once == 0 {
        n as usize
    } else {
        at_once as usize
    }));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (phase_tx, phase_rx) = watch::channel(Phase::Open);
    let mut tasks = JoinSet::new();
    let clock = Clock::start();
    for id in 0..n {
        tasks.spawn(stream_task(
            id,
            n,
            version,
            Arc::clone(&url),
            Arc::clone(&options),
            Arc::clone(&permits),
            events_tx.clone(),
            phase_rx.clone(),
        ));
    }
    drop(events_tx);
    let mut next = async |what: &str, deadline: tokio::time::Instant| -> Result<Event, BoxError> {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => Err(format!("{what}: timed out after {PHASE_TIMEOUT:?}").into()),
            Ok(None) => Err(format!("{what}: the stream tasks ended").into()),
            Ok(Some(Event::Failed(e))) => Err(e.into()),
            Ok(Some(event)) => Ok(event),
        }
    };
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    let mut opens = Vec::with_capacity(n as usize);
    for _ in 0..n {
        match next("opening", deadline).await? {
            Event::Opened(ns) => opens.push(ns),
            _ => return Err("a stream echoed before all were open".into()),
        }
    }
    let span = clock.stop();
    phase_tx.send_replace(Phase::Echo);
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    for _ in 0..n {
        if !matches!(next("echoing", deadline).await?, Event::Echoed) {
            return Err("a stream reported open twice".into());
        }
    }
    // Every stream now waits in `reader.read()`, on both sides.
    tokio::time::sleep(SETTLE).await;
    let rss1 = crate::mem::rss_kib()?;
    let heap1 = heap.map(|h| h());
    let server_rss1 = crate::mem::rss_kib_of(pid)?;
    let stats1 = Stats::ask(server)?;

    phase_tx.send_replace(Phase::Close);
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    while let Some(joined) = tokio::time::timeout_at(deadline, tasks.join_next())
        .await
        .map_err(|_| format!("closing: timed out after {PHASE_TIMEOUT:?}"))?
    {
        joined??;
    }
    // The server's side of every close.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats2 = loop {
        let stats = Stats::ask(server)?;
        if stats.since(&stats0, "clean") + stats.since(&stats0, "unclean") >= n
            || Instant::now() > deadline
        {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // The checks.
    let opened = stats1.since(&stats0, "opened");
    if opened != n {
        return Err(format!("the server opened {opened} WebSockets, expected {n}").into());
    }
    let (clean, unclean) = (
        stats2.since(&stats0, "clean"),
        stats2.since(&stats0, "unclean"),
    );
    if clean != n || unclean != 0 {
        return Err(format!(
            "the server saw {clean} clean closes (1000) and {unclean} others, expected {n} clean"
        )
        .into());
    }
    let failed = stats2.since(&stats0, "failed");
    if failed != 0 {
        return Err(format!("the server counted {failed} failed connections or requests").into());
    }
    let conns = stats1.since(&stats0, "tcp");
    let (kind, expected) = match http {
        Http::H2 => ("tls_h2", n.div_ceil(u64::from(max_streams.max(1)))),
        Http::H1 => ("tls_h1", n),
        Http::Plain => ("plain", n),
    };
    if stats1.since(&stats0, kind) != conns {
        return Err(format!(
            "{conns} TCP connections, not all of them {kind}: {:?} then {:?}",
            stats0.0, stats1.0
        )
        .into());
    }
    if http != Http::H2 && conns != expected {
        return Err(format!("{conns} TCP connections for {n} HTTP/1.1 streams").into());
    }
    if conns < expected {
        return Err(format!(
            "{conns} HTTP/2 connections carried {n} streams with at most {max_streams} each"
        )
        .into());
    }

    opens.sort_unstable();
    let pct = |p: f64| {
        let i = ((opens.len() as f64 - 1.0) * p).round() as usize;
        opens.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    let secs = span.wall.as_secs_f64();
    let per = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
    Ok(Outcome {
        rate: n as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_ns: span.cpu_ns as f64 / n as f64,
        server_cpu_ns: span.server_cpu_ns as f64 / n as f64,
        rss_kib: per(rss0, rss1),
        heap_kib: match (heap0, heap1) {
            (Some(a), Some(b)) => per(a as u64, b as u64) / 1024.0,
            _ => -1.0,
        },
        server_heap_kib: match (stats0.0.get("heap"), stats1.0.get("heap")) {
            (Some(&a), Some(&b)) => per(a, b) / 1024.0,
            _ => -1.0,
        },
        open_ms: secs * 1e3,
        server_rss_kib: per(server_rss0, server_rss1),
        conns: conns as f64,
        ..Outcome::default()
    })
}

/// Opens `url` and requires the HTTP `version` and no extension.
async fn open(
    url: &str,
    options: &WebSocketStreamOptions,
    version: http::Version,
) -> Result<(WebSocketStream, wsstream::WebSocketOpenInfo), BoxError> {
    let wss = WebSocketStream::new(url, options.clone())?;
    let info = wss.opened().await.map_err(fd_hint)?;
    if info.http_version() != version {
        return Err(format!(
            "opened over {:?}, expected {version:?}",
            info.http_version()
        )
        .into());
    }
    if !info.extensions.is_empty() {
        return Err(format!("extensions {:?}: the server must decline", info.extensions).into());
    }
    Ok((wss, info))
}

/// Adds a hint to "too many open files".
fn fd_hint(e: impl std::error::Error + Send + Sync + 'static) -> BoxError {
    let text = format!("{e}");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            == Some(24)
        {
            return format!("{text} (raise the limit: `ulimit -n 65536`, as bench/run.sh does)")
                .into();
        }
        source = s.source();
    }
    e.into()
}

/// One echo on `writer`/`reader`, compared.
async fn echo_once(
    reader: &mut wsstream::WebSocketReader,
    writer: &mut wsstream::WebSocketWriter,
    text: String,
) -> Result<(), BoxError> {
    let message = Message::from(text);
    writer.write(message.clone()).await?;
    let reply = reader.read().await?.ok_or("closed before the echo")?;
    if reply != message {
        return Err(format!("echo {reply:?}, expected {message:?}").into());
    }
    Ok(())
}

/// Closes with 1000 and requires `closed` to resolve with 1000.
async fn close(wss: &WebSocketStream) -> Result<(), BoxError> {
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: String::new(),
    })?;
    let closed = tokio::time::timeout(Duration::from_secs(10), wss.closed())
        .await
        .map_err(|_| "no close within 10 s")??;
    if closed.close_code != Some(1000) {
        return Err(format!("closed with {closed:?}, expected 1000").into());
    }
    Ok(())
}

/// The warm-up stream: open, one echo, close.
async fn warm_up(
    url: &str,
    options: &WebSocketStreamOptions,
    version: http::Version,
) -> Result<(), BoxError> {
    let (wss, info) = open(url, options, version)
        .await
        .map_err(|e| format!("warm-up: {e}"))?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    echo_once(&mut reader, &mut writer, "warm-up".into()).await?;
    close(&wss)
        .await
        .map_err(|e| format!("warm-up: {e}").into())
}

/// One measured stream: open (holding a permit), report, wait for the echo phase, echo
/// once, report, wait in `reader.read()` for the close phase (a message or a close
/// meanwhile fails), close. A failure is reported as an event too, so the run stops at
/// once instead of waiting for the phase's timeout.
#[allow(clippy::too_many_arguments)]
async fn stream_task(
    id: u64,
    n: u64,
    version: http::Version,
    url: Arc<str>,
    options: Arc<WebSocketStreamOptions>,
    permits: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), BoxError> {
    let result: Result<(), BoxError> = async {
        let (wss, info) = {
            let _permit = permits.acquire().await?;
            let t = Instant::now();
            let opened = open(&url, &options, version).await?;
            events.send(Event::Opened(t.elapsed().as_nanos() as u64))?;
            opened
        };
        let mut reader = info.readable.get_reader()?;
        let mut writer = info.writable.get_writer()?;
        drop(info);
        phase.wait_for(|p| *p >= Phase::Echo).await?;
        echo_once(&mut reader, &mut writer, format!("stream {id} of {n}")).await?;
        events.send(Event::Echoed)?;
        tokio::select! {
            read = reader.read() => {
                return Err(format!("while idle: {:?}", read.map(|m| m.map(|m| m.as_bytes().len())))
                    .into());
            }
            waited = phase.wait_for(|p| *p >= Phase::Close) => { waited?; }
        }
        close(&wss).await
    }
    .await;
    result.map_err(|e| {
        let e = format!("stream {id}: {e}");
        let _ = events.send(Event::Failed(e.clone()));
        e.into()
    })
}
