//! End-to-end loopback benchmark of wsstream against tokio-tungstenite, fastwebsockets,
//! tokio-websockets and a raw-TCP client that moves the same bytes without WebSocket
//! parsing (the physical limit). The permessage-deflate scenarios (`recv-1k-deflate`,
//! `send-1k-deflate`) compare wsstream with yawc and raw only; the peers without deflate
//! skip them. The server-role scenarios (`server-echo-C`, `server-idle`, and their `-mt`
//! twins) turn it around: the participant is an echo server built on each library's own
//! server API (`src/serve.rs`), the load client is one raw client for all (`src/load.rs`).
//!
//! One binary, four uses:
//!
//! * `wsstream-bench <scenario> <client>`: one measured run. It starts the near-zero-cost
//!   server as a child process (`wsstream-bench server`, one current-thread runtime, so it
//!   takes at most one of the two cores), runs the client on a current-thread runtime in
//!   this process, checks what the client received or what the server counted, and prints
//!   a `RESULT` line (with the server child's CPU time per message, `server_cpu_ns`, for
//!   telling whether the server could be the cap). A client that skips work fails the run
//!   instead of winning it. For a server scenario, `<client>` names the library whose echo
//!   server is measured; it runs as `wsstream-bench serve-echo <library> <1|2>`.
//! * `wsstream-bench matrix`: every scenario × client, repeated (`WSB_REPS`, default 3)
//!   with the client order rotated each repetition, each run in a fresh process; prints the
//!   medians as markdown tables with ratios to the raw limit and to the best peer.
//! * `wsstream-bench server`: the server alone; prints `LISTEN <addr>`.
//! * `wsstream-bench serve-echo <library> <1|2>`: one library's echo server alone, on a
//!   current-thread runtime (`1`) or two workers (`2`); prints `LISTEN <addr>`.
//! * `wsstream-bench serve-h2 <1|2> [max streams]`: the server of the streams-N scenarios
//!   (`streams-1000-h2`, `streams-1000-h1`, ...; `src/streams.rs`), a hyper server with
//!   TLS (ALPN `h2` and `http/1.1`) and cleartext on one port, upgrading every request
//!   with wsstream's `HyperUpgrade` over HTTP/2 or HTTP/1.1 and echoing. In those
//!   scenarios `<client>` must be `wsstream`: its client opens N streams to one origin.
//!
//! `WSB_SCALE` multiplies every message and connection count (default 1: the issue's
//! counts; the server echo scenarios keep their connection count and scale the round
//! trips). `WSB_RT=multi` runs the client on a two-worker multi-thread runtime instead.
//! `WSB_SPAWN=1` runs the client's code in a spawned task instead of the `block_on` future.
//! `WSB_SERVER=<addr>` points a single run at a server already running (to profile the
//! client alone). `WSB_OPT=write` makes the wsstream client send with
//! `writer.write(message).await` per message instead of the `Sink`'s `feed` in the send
//! scenarios (for investigation; the matrix does not use it).
//!
//! The `wsstream-bench-heap` binary is the same program with a counting global allocator;
//! the idle scenario runs through it (when built) to report heap bytes per connection
//! without slowing the throughput scenarios down with allocation counting. A streams
//! scenario runs once in this binary (times, CPU, RSS) and once more in that one (heap
//! per stream on both sides).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

mod clients;
mod load;
mod matrix;
mod mem;
mod scenario;
mod serve;
mod server;
mod streams;
mod wire;

use clients::{CLIENTS, Client};
use scenario::{Kind, SCENARIOS, Scenario};

/// The error type of a run.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Returns the bytes currently allocated on the heap (by a counting global allocator).
pub type HeapProbe = fn() -> usize;

/// Runs the command line (see the crate docs). `heap` reads the live heap size when the
/// binary has a counting allocator.
pub fn run_cli(heap: Option<HeapProbe>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => run_server(),
        Some("serve-echo") => serve::run(&args[1..]),
        Some("serve-h2") => streams::serve(&args[1..], heap),
        Some("matrix") => matrix::run(),
        Some("list") => {
            for s in SCENARIOS {
                println!("scenario {} {:?}", s.name, s.kind);
            }
            for c in CLIENTS {
                println!("client {}", c.name());
            }
            Ok(())
        }
        Some(scenario) if args.len() >= 2 => single(scenario, &args[1], heap),
        _ => {
            eprintln!(
                "usage: wsstream-bench <scenario> <client> | matrix | server | \
                 serve-echo <library> <1|2> | serve-h2 <1|2> [max streams] | list\n\
                 scenarios: {}\nclients: {}",
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(" "),
                CLIENTS
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `WSB_SCALE`, default 1.
pub(crate) fn scale() -> f64 {
    std::env::var("WSB_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

/// Set for a server started by a run: it then exits when its stdin closes.
const WATCH_STDIN: &str = "WSB_SERVER_WATCH_STDIN";

fn run_server() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    println!("LISTEN {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    exit_with_parent();
    rt.block_on(server::serve(listener));
    Ok(())
}

/// In a server started by a run ([`ServerChild`]): exits this process when that parent
/// goes away (its end of our stdin closes).
pub(crate) fn exit_with_parent() {
    if std::env::var_os(WATCH_STDIN).is_some() {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
    }
}

/// A server child process of a run (`wsstream-bench server` or `serve-echo`): started
/// with its stdin piped so it exits with this process, it prints `LISTEN <addr>`; killed
/// and reaped on drop.
pub(crate) struct ServerChild {
    child: std::process::Child,
    addr: String,
    /// Its stdout, for the lines after `LISTEN` (`serve-h2` answers requests on it).
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl ServerChild {
    /// Starts `wsstream-bench <args>` and waits for its `LISTEN` line.
    pub(crate) fn start(args: &[&str]) -> Result<Self, BoxError> {
        Self::start_with_env(args, &[])
    }

    /// [`start`](Self::start) with extra environment variables.
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Self, BoxError> {
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .env(WATCH_STDIN, "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        // Dropped (killed) on the error paths below.
        let mut server = Self {
            child,
            addr: String::new(),
            stdout: None,
        };
        server.stdout = server.child.stdout.take().map(BufReader::new);
        let line = server.read_line()?;
        server.addr = line
            .trim()
            .strip_prefix("LISTEN ")
            .ok_or_else(|| format!("server {args:?} said {line:?}"))?
            .to_owned();
        Ok(server)
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints on stdout (without the line end).
    pub(crate) fn read_line(&mut self) -> Result<String, BoxError> {
        let mut line = String::new();
        let out = self.stdout.as_mut().ok_or("no stdout")?;
        if out.read_line(&mut line)? == 0 {
            return Err("the server child ended".into());
        }
        Ok(line.trim_end().to_owned())
    }

    /// Writes `request` as a line on its stdin and returns the line it answers.
    pub(crate) fn ask(&mut self, request: &str) -> Result<String, BoxError> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        self.read_line()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sibling binary `name` next to this executable, if it was built.
pub(crate) fn sibling(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name(name);
    path.exists().then_some(path)
}

fn single(scenario: &str, client: &str, heap: Option<HeapProbe>) -> Result<(), BoxError> {
    let scenario = Scenario::find(scenario)
        .ok_or_else(|| format!("unknown scenario {scenario:?} (try `list`)"))?
        .scaled(scale());
    let client =
        Client::find(client).ok_or_else(|| format!("unknown client {client:?} (try `list`)"))?;
    if matches!(scenario.kind, Kind::Idle { .. })
        && heap.is_none()
        && let Some(heap_bin) = sibling("wsstream-bench-heap")
    {
        let status = Command::new(heap_bin)
            .args(std::env::args().skip(1))
            .status()?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!("wsstream-bench-heap: {status}").into())
        };
    }
    if let Kind::Streams { .. } = scenario.kind {
        // wsstream on both sides: its client here, a hyper server upgrading with
        // `HyperUpgrade` in a `serve-h2` child (`src/streams.rs`).
        if client != Client::Wsstream {
            return Err(format!("{} does not run {}", client.name(), scenario.name).into());
        }
        let mut outcome =
            streams::run(&scenario, heap).map_err(|e| format!("{}: {e}", scenario.name))?;
        if heap.is_none()
            && let Some(heap_bin) = sibling("wsstream-bench-heap")
        {
            // The heap figures come from a second run with the counting allocator, which
            // slows the handshakes down by 10–20 %: the times, CPU and RSS are this run's.
            let counted = Command::new(heap_bin)
                .args(std::env::args().skip(1))
                .stderr(Stdio::inherit())
                .output()?;
            if !counted.status.success() {
                return Err(format!("wsstream-bench-heap: {}", counted.status).into());
            }
            let counted = String::from_utf8_lossy(&counted.stdout)
                .lines()
                .find_map(scenario::Outcome::parse)
                .ok_or("no RESULT line from wsstream-bench-heap")?;
            outcome.heap_kib = counted.heap_kib;
            outcome.server_heap_kib = counted.server_heap_kib;
        }
        println!("{}", outcome.line());
        return Ok(());
    }
    if scenario.kind.is_server() {
        // The participant is the server; the load client is raw (`src/load.rs`).
        if !client.supports(scenario.kind) {
            return Err(format!("{} has no echo server here", client.name()).into());
        }
        let outcome = load::run(&scenario, client)
            .map_err(|e| format!("{} {}: {e}", scenario.name, client.name()))?;
        println!("{}", outcome.line());
        return Ok(());
    }
    // `WSB_SERVER=addr` uses a server already running (for profiling the client alone).
    let mut server = None;
    let addr = match std::env::var("WSB_SERVER") {
        Ok(addr) if !addr.is_empty() => addr,
        _ => {
            let child = ServerChild::start(&["server"])?;
            // Clock reads its CPU time too (the `server_cpu_ns` of the RESULT line).
            scenario::set_server_pid(child.pid());
            let addr = child.addr().to_owned();
            server = Some(child);
            addr
        }
    };
    let rt = if scenario.multi || std::env::var("WSB_RT").is_ok_and(|v| v == "multi") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    let kind = scenario.kind;
    let outcome = if std::env::var("WSB_SPAWN").is_ok_and(|v| v == "1") {
        // The client's code in a spawned task rather than in `block_on`'s future.
        rt.block_on(async move {
            tokio::spawn(async move { client.run(&addr, kind, heap).await })
                .await
                .unwrap_or_else(|e| Err(e.to_string().into()))
        })
    } else {
        rt.block_on(client.run(&addr, kind, heap))
    };
    drop(rt);
    drop(server);
    let outcome = outcome.map_err(|e| format!("{} {}: {e}", scenario.name, client.name()))?;
    println!("{}", outcome.line());
    Ok(())
}
