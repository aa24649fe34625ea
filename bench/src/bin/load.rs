//! Load: opens many concurrent connections (default 10 000) to a wsstream echo server,
//! exchanges a message on each, measures the resident memory per idle connection and the
//! time to open them, exchanges a second message on all of them, then closes them all
//! and checks that every close was clean on both sides.
//!
//! ```text
//! scripts/load.sh                                   # 10 000 connections, release build
//! cargo run --release -p wsstream-bench --bin load -- --connections 10000
//! cargo run --release -p wsstream-bench --bin load -- --connections 5000 --in-process
//! ```
//!
//! By default the server runs in a child process (this binary with `--serve`), so the
//! client's and the server's memory are measured apart (and each process needs one file
//! descriptor per connection, not two). `--in-process` runs both in one process and
//! reports the combined figure directly. The file descriptor limit is not raised here:
//! `scripts/load.sh` raises it before running.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use wsstream::server::{self, ServerOptions};
use wsstream::{
    Message, WebSocketCloseInfo, WebSocketReader, WebSocketStream, WebSocketStreamOptions,
    WebSocketWriter,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    connections: usize,
    concurrency: usize,
    in_process: bool,
    serve: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        connections: 10_000,
        concurrency: 256,
        in_process: false,
        serve: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--connections" | "-n" => {
                args.connections = it.next().ok_or("--connections N")?.parse()?;
            }
            "--concurrency" => args.concurrency = it.next().ok_or("--concurrency N")?.parse()?,
            "--in-process" => args.in_process = true,
            "--serve" => args.serve = true,
            "--help" | "-h" => {
                println!(
                    "usage: load [--connections N] [--concurrency N] [--in-process]\n       \
                     load --serve   (the echo server, driven over stdin)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The soft limit of open files, from `/proc/self/limits`.
fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Connection counters of the echo server.
#[derive(Default)]
struct ServerStats {
    accepted: AtomicU64,
    clean: AtomicU64,
    unclean: AtomicU64,
}

impl ServerStats {
    fn line(&self) -> String {
        format!(
            "STATS {} {} {}",
            self.accepted.load(Ordering::Acquire),
            self.clean.load(Ordering::Acquire),
            self.unclean.load(Ordering::Acquire)
        )
    }
}

/// The echo server: echoes every message; counts clean and unclean closes.
async fn serve(listener: TcpListener, stats: Arc<ServerStats>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
                stats.unclean.fetch_add(1, Ordering::AcqRel);
                return;
            };
            stats.accepted.fetch_add(1, Ordering::AcqRel);
            if let Ok(info) = wss.opened().await
                && let (Ok(mut reader), Ok(mut writer)) =
                    (info.readable.get_reader(), info.writable.get_writer())
            {
                while let Ok(Some(message)) = reader.read().await {
                    if writer.write(message).await.is_err() {
                        break;
                    }
                }
            }
            match wss.closed().await {
                Ok(_) => stats.clean.fetch_add(1, Ordering::AcqRel),
                Err(_) => stats.unclean.fetch_add(1, Ordering::AcqRel),
            };
        });
    }
}

/// `--serve`: the server of a child process. Prints `LISTENING addr`, then answers
/// `stats` lines on stdin with `STATS accepted clean unclean`; exits at EOF.
async fn serve_child() -> Result<(), Error> {
    let listener = bind().await?;
    let stats = Arc::new(ServerStats::default());
    println!("LISTENING {}", listener.local_addr()?);
    tokio::spawn(serve(listener, stats.clone()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        if line.trim() == "stats" {
            println!("{}", stats.line());
        }
    }
    Ok(())
}

/// A listener with a deep accept queue (the kernel caps it at `somaxconn`).
async fn bind() -> Result<TcpListener, Error> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind("127.0.0.1:0".parse()?)?;
    Ok(socket.listen(8192)?)
}

/// The server, in a child process or in this one.
enum Server {
    Child {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    },
    InProcess(Arc<ServerStats>),
}

impl Server {
    fn pid(&self) -> Option<u32> {
        match self {
            Self::Child { child, .. } => Some(child.id()),
            Self::InProcess(_) => None,
        }
    }

    /// (accepted, clean, unclean)
    fn stats(&mut self) -> Result<(u64, u64, u64), Error> {
        let line = match self {
            Self::Child { stdin, stdout, .. } => {
                writeln!(stdin, "stats")?;
                stdin.flush()?;
                let mut line = String::new();
                stdout.read_line(&mut line)?;
                line
            }
            Self::InProcess(stats) => stats.line(),
        };
        let mut it = line
            .trim()
            .strip_prefix("STATS ")
            .ok_or("bad stats line")?
            .split(' ')
            .map(str::parse::<u64>);
        let mut next = || -> Result<u64, Error> { Ok(it.next().ok_or("short stats line")??) };
        Ok((next()?, next()?, next()?))
    }
}

struct Conn {
    wss: WebSocketStream,
    reader: WebSocketReader,
    writer: WebSocketWriter,
}

async fn open_one(url: String, i: usize) -> Result<Conn, Error> {
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    let info = wss.opened().await?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    exchange(&mut reader, &mut writer, format!("hello from {i}")).await?;
    Ok(Conn {
        wss,
        reader,
        writer,
    })
}

async fn exchange(
    reader: &mut WebSocketReader,
    writer: &mut WebSocketWriter,
    text: String,
) -> Result<(), Error> {
    writer.write(text.as_str()).await?;
    match reader.read().await? {
        Some(Message::Text(echo)) if *echo == *text => Ok(()),
        other => Err(format!("bad echo {other:?}").into()),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run(args: Args) -> Result<bool, Error> {
    let n = args.connections;
    let per_process_fds = if args.in_process { 2 * n } else { n } as u64 + 64;
    if let Some(limit) = fd_limit()
        && limit < per_process_fds
    {
        return Err(format!(
            "{n} connections need about {per_process_fds} file descriptors per process, \
             the limit is {limit}: run scripts/load.sh (it raises the limit), or fewer \
             connections"
        )
        .into());
    }
    let (mut server, addr) = if args.in_process {
        let listener = bind().await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        tokio::spawn(serve(listener, stats.clone()));
        (Server::InProcess(stats), addr.to_string())
    } else {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .ok_or("the server did not start")?
            .to_owned();
        (
            Server::Child {
                child,
                stdin,
                stdout,
            },
            addr,
        )
    };
    let url = format!("ws://{addr}/load");
    let mode = if args.in_process {
        "client and server in one process"
    } else {
        "server in a child process"
    };
    println!(
        "load: {n} connections to {url} ({mode}), at most {} opening at once",
        args.concurrency
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base_client = rss_kib(None);
    let base_server = server.pid().map(|p| rss_kib(Some(p)));

    // Open, with one exchange each.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let mut opening = JoinSet::new();
    for i in 0..n {
        let url = url.clone();
        let gate = gate.clone();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let t = Instant::now();
            (open_one(url, i).await, t.elapsed())
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut open_errors = Vec::new();
    while let Some(joined) = opening.join_next().await {
        let (result, latency) = joined?;
        latencies.push(latency);
        match result {
            Ok(conn) => conns.push(conn),
            Err(e) => open_errors.push(e.to_string()),
        }
    }
    let open_time = started.elapsed();
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "opened {} of {n} in {:.2?} ({:.0} connections/s); handshake+echo latency p50 {:.2?} p99 {:.2?} max {:.2?}",
        conns.len(),
        open_time,
        conns.len() as f64 / open_time.as_secs_f64(),
        pct(50),
        pct(99),
        latencies.last().copied().unwrap_or_default()
    );
    if !open_errors.is_empty() {
        open_errors.sort();
        open_errors.dedup();
        println!(
            "open errors ({}): {:?}",
            open_errors.len(),
            &open_errors[..open_errors.len().min(5)]
        );
    }

    // Idle memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_client = rss_kib(None);
    let idle_server = server.pid().map(|p| rss_kib(Some(p)));
    let open = conns.len().max(1) as f64;
    let client_per = (idle_client.saturating_sub(base_client)) as f64 / open;
    match (base_server, idle_server) {
        (Some(b), Some(i)) => {
            let server_per = i.saturating_sub(b) as f64 / open;
            println!(
                "RSS: client {:.1} -> {:.1} MiB, server {:.1} -> {:.1} MiB",
                mib(base_client),
                mib(idle_client),
                mib(b),
                mib(i)
            );
            println!(
                "per idle connection: client {client_per:.1} KiB, server {server_per:.1} KiB, \
                 both ends {:.1} KiB",
                client_per + server_per
            );
        }
        _ => println!(
            "RSS: {:.1} -> {:.1} MiB; per idle connection (client and server ends): {client_per:.1} KiB",
            mib(base_client),
            mib(idle_client)
        ),
    }

    // A second exchange on every connection, all at once.
    let started = Instant::now();
    let mut exchanging = JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        exchanging.spawn(async move {
            let result = exchange(&mut conn.reader, &mut conn.writer, format!("again {i}")).await;
            (conn, result)
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut exchange_errors = 0usize;
    while let Some(joined) = exchanging.join_next().await {
        let (conn, result) = joined?;
        if result.is_err() {
            exchange_errors += 1;
        }
        conns.push(conn);
    }
    println!(
        "second exchange on all {} connections at once: {:.2?}, {exchange_errors} errors",
        conns.len(),
        started.elapsed()
    );

    // Close all.
    let started = Instant::now();
    let mut closing = JoinSet::new();
    for conn in conns {
        closing.spawn(async move {
            conn.wss.close(WebSocketCloseInfo {
                close_code: Some(1000),
                reason: "load done".into(),
            })?;
            let closed = conn.wss.closed().await?;
            if closed.close_code == Some(1000) {
                Ok(())
            } else {
                Err::<(), Error>(format!("closed with {closed:?}").into())
            }
        });
    }
    let (mut clean, mut unclean) = (0usize, 0usize);
    while let Some(joined) = closing.join_next().await {
        match joined? {
            Ok(()) => clean += 1,
            Err(_) => unclean += 1,
        }
    }
    let close_time = started.elapsed();
    // The server's view, once every connection has ended there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut accepted, mut s_clean, mut s_unclean);
    loop {
        (accepted, s_clean, s_unclean) = tokio::task::block_in_place(|| server.stats())?;
        if s_clean + s_unclean >= accepted || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "closed in {close_time:.2?}: client {clean} clean, {unclean} unclean; server accepted \
         {accepted}, {s_clean} clean, {s_unclean} unclean"
    );
    if let Server::Child {
        mut child, stdin, ..
    } = server
    {
        drop(stdin);
        let _ = child.wait();
    }
    let ok = open_errors.is_empty()
        && exchange_errors == 0
        && unclean == 0
        && clean == n
        && s_clean == n as u64
        && s_unclean == 0;
    println!("load: {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.serve {
        return runtime.block_on(serve_child());
    }
    let ok = runtime.block_on(run(args))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
