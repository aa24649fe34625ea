//! `wsstream listen ADDR`: a WebSocket server that bridges its clients to stdin/stdout
//! (websocat `-s`, wscat `-l`), or to a command per connection (`--exec`, inetd-style).
//!
//! * `--once`: one client, bridged both ways; exits when it closes (0 if cleanly) or,
//!   once stdin ends, after closing it with 1000.
//! * Default: any number of clients. Their messages go to stdout (with `--prefix`, as
//!   `[ID] message`); each stdin line goes to the most recently connected client still
//!   open, or with `--broadcast` to all of them. A stdin line is only read while at least
//!   one client is connected, so nothing typed before the first client is lost. The end
//!   of stdin does not stop the server.
//! * `--exec CMD`: each connection runs `sh -c CMD`; messages become lines on its stdin,
//!   lines of its stdout become messages, and the connection closes (1000) when the
//!   command's stdout ends.
//!
//! Every client has a bounded queue of outgoing messages (`--queue`, 256 by default), so
//! memory stays bounded. To the most recent client, stdin waits for room (backpressure:
//! stdin is not read further while that client does not take messages). With
//! `--broadcast`, a line waits at most `--queue-timeout` (2 s) for full queues; a client
//! whose queue is still full then is disconnected with 1008 ("too slow"). So stdin goes
//! at the pace of the clients that keep up, and a stalled client holds the others up
//! once, for at most that long.
//!
//! Ctrl-C or SIGTERM closes every client with 1001 (going away), waits up to 5 s for the
//! closing handshakes, and exits 0.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Stdout};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{Message, WebSocketCloseInfo, WebSocketStream};

use crate::encoding::{base64_decode, base64_encode, hex_decode, hex_encode};
use crate::report;

/// How long the shutdown waits for the clients' closing handshakes.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// How long an `--exec` command may take to exit after its client went away (its stdin
/// closed) before it is killed.
const EXEC_GRACE: Duration = Duration::from_secs(1);

/// What `wsstream listen --help` prints after the options.
const AFTER_HELP: &str = "\
Modes:
  --once          one client, bridged to stdin/stdout; exit when it closes (0 if cleanly)
                  or close it (1000) when stdin ends, then exit
  (default)       any number of clients; their messages go to stdout (--prefix: `[ID] msg`),
                  each stdin line goes to the most recent client still connected
                  (--broadcast: to all); stdin is only read while a client is connected;
                  the end of stdin does not stop the server
  --exec CMD      each connection runs `sh -c CMD` (inetd-style); stdin/stdout unused

stderr: `listening on ws://ADDR`, then `[ID] connected from PEER: URL` and
`[ID] closed: code N, reason \"…\"` per client. Ctrl-C or SIGTERM closes every client with
1001 (going away), waits up to 5 s for the closing handshakes and exits 0.

Like `websocat -s PORT`:  wsstream listen 127.0.0.1:PORT --once
Like `wscat -l PORT`:     wsstream listen 0.0.0.0:PORT  (wscat serves one client at a time
                          and exits when stdin ends; this takes many and keeps serving)";

/// Arguments of `wsstream listen`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct ListenArgs {
    /// Address to listen on: HOST:PORT, or a bare PORT for 127.0.0.1:PORT (port 0 picks a
    /// free one). The first line on stderr is `listening on ws://ADDR` (`wss://` with
    /// TLS). Clients may connect with any path.
    addr: String,
    /// Accept a single client, bridge it to stdin/stdout, and exit when it closes (exit
    /// status 0 on a clean close) or when stdin ends (the client is closed with 1000
    /// after the lines read so far were sent). No further clients are accepted.
    #[arg(long)]
    once: bool,
    /// Send each stdin line to every connected client instead of only the most recent
    /// one. A client whose queue (--queue) stays full for --queue-timeout is
    /// disconnected with 1008.
    #[arg(long, conflicts_with = "exec")]
    broadcast: bool,
    /// Prefix every line printed for a received message with `[ID] `, the client's
    /// number (1, 2, … in connection order, as in the `[ID] connected` lines on stderr).
    #[arg(long, conflicts_with = "exec")]
    prefix: bool,
    /// Outgoing messages queued per client (at least 1). Stdin waits while the queue of
    /// the client it goes to is full (backpressure); with --broadcast, for at most
    /// --queue-timeout, then the clients still full are disconnected (1008, "too slow").
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    queue: u32,
    /// With --broadcast: how long a stdin line waits for room in full client queues
    /// before those clients are disconnected (1008). A client that keeps up with the
    /// others is never disconnected; one that stalls holds stdin up for at most this long.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs, requires = "broadcast")]
    queue_timeout: Duration,
    /// For each connection run `sh -c CMD`: each received message is written to its
    /// stdin as a line, each line of its stdout is sent as a message, and the connection
    /// closes (1000) when its stdout ends. Its stderr is this process's stderr; its
    /// environment has WSSTREAM_CLIENT_ID, WSSTREAM_PEER (IP:PORT) and WSSTREAM_URL. When
    /// the client goes first, the command's stdin is closed, and it is killed if it has
    /// not exited within 1 s. Lines are sent as the command writes them: most programs
    /// buffer their output to a pipe (use `stdbuf -oL CMD`, or a shell loop).
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Serve TLS (`wss://`) with this certificate chain (PEM: the server's certificate
    /// first, then intermediates). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Send each input line (stdin, or the --exec command's stdout) as a binary message
    /// (raw bytes, or decoded with --hex or --base64) instead of text.
    #[arg(long)]
    binary: bool,
    /// Binary data is hex in both directions: --binary input lines are hex-decoded;
    /// received binary messages are printed as hex (the default output anyway).
    #[arg(long, conflicts_with = "base64")]
    hex: bool,
    /// Binary data is base64 in both directions: --binary input lines are
    /// base64-decoded; received binary messages are printed as base64 instead of hex.
    #[arg(long)]
    base64: bool,
}

/// How input lines become messages and messages become output lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Encoding {
    /// Input lines are binary (`Some`, with how they are written) or text (`None`).
    input: Option<BinaryText>,
    /// Received binary messages are printed as base64 instead of hex.
    base64: bool,
}

/// How binary input lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinaryText {
    Raw,
    Hex,
    Base64,
}

impl Encoding {
    fn of(args: &ListenArgs) -> Self {
        let input = if !args.binary {
            None
        } else if args.hex {
            Some(BinaryText::Hex)
        } else if args.base64 {
            Some(BinaryText::Base64)
        } else {
            Some(BinaryText::Raw)
        };
        Self {
            input,
            base64: args.base64,
        }
    }

    /// One input line (without its line ending) as a message.
    fn to_message(self, line: &[u8]) -> Result<Message, String> {
        let text = || std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"));
        Ok(match self.input {
            None => Message::from(text()?),
            Some(BinaryText::Raw) => Message::from(line),
            Some(BinaryText::Hex) => Message::from(hex_decode(text()?)?),
            Some(BinaryText::Base64) => Message::from(base64_decode(text()?)?),
        })
    }

    /// A received message as text (binary as hex or base64), without a line ending.
    fn to_text(self, message: &Message) -> String {
        match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(bytes) if self.base64 => base64_encode(bytes),
            Message::Binary(bytes) => hex_encode(bytes),
        }
    }
}

/// Strips one trailing `\n` or `\r\n`.
fn chomp(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

fn parse_secs(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {value:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {value:?}: {e}"))
}

/// `PORT` alone means `127.0.0.1:PORT`.
fn listen_addr(addr: &str) -> String {
    if addr.parse::<u16>().is_ok() {
        format!("127.0.0.1:{addr}")
    } else {
        addr.to_owned()
    }
}

/// Reads the PEM files of --tls-cert and --tls-key into an acceptor.
fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    TlsAcceptor::from_pem(&read(cert)?, &read(key)?).map_err(|e| {
        format!(
            "cannot use {} and {} for TLS: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// The close info of a shutdown: 1001 going away.
fn going_away() -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(1001),
        reason: "server shutting down".to_owned(),
    }
}

/// The close info of the normal end of a connection: 1000.
fn normal_close() -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(1000),
        reason: String::new(),
    }
}

/// A connected client, as the stdin side sees it.
struct Client {
    /// The client's queue of outgoing messages; `None` once no more will be queued (its
    /// writer then closes the connection with 1000 after the queue is sent).
    queue: Option<mpsc::Sender<Message>>,
    wss: WebSocketStream,
}

/// The connected clients, shared by the main loop, the client tasks and the stdin task.
struct Registry {
    clients: Mutex<BTreeMap<u64, Client>>,
    /// The number of connected clients.
    count: watch::Sender<usize>,
}

impl Registry {
    fn new() -> Self {
        Self {
            clients: Mutex::new(BTreeMap::new()),
            count: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Client>> {
        // A panic elsewhere does not make the map inconsistent.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, id: u64, client: Client) {
        let mut clients = self.lock();
        clients.insert(id, client);
        self.count.send_replace(clients.len());
    }

    fn remove(&self, id: u64) {
        let mut clients = self.lock();
        clients.remove(&id);
        self.count.send_replace(clients.len());
    }

    /// Waits until at least one client is connected.
    async fn wait_for_a_client(&self) {
        let mut count = self.count.subscribe();
        let _ = count.wait_for(|n| *n > 0).await;
    }

    /// The queue of the most recently connected client that still takes messages.
    fn latest(&self) -> Option<(u64, mpsc::Sender<Message>)> {
        self.lock()
            .iter()
            .rev()
            .find_map(|(id, client)| Some((*id, client.queue.clone()?)))
    }

    /// The queues of every client that still takes messages.
    fn queues(&self) -> Vec<(u64, mpsc::Sender<Message>)> {
        self.lock()
            .iter()
            .filter_map(|(id, client)| Some((*id, client.queue.clone()?)))
            .collect()
    }

    /// Disconnects client `id` (1008, "too slow"), whose queue stayed full.
    fn disconnect_slow(&self, id: u64, queue: usize, waited: Duration) {
        let mut clients = self.lock();
        let Some(client) = clients.get_mut(&id) else {
            return;
        };
        eprintln!(
            "[{id}] too slow (queue of {queue} still full after {waited:?}): disconnecting (1008)"
        );
        let _ = client.wss.close(WebSocketCloseInfo {
            close_code: Some(1008),
            reason: "too slow".to_owned(),
        });
        client.queue = None;
    }

    /// Queues nothing more: every client is closed with 1000 once its queue is sent.
    fn finish_queues(&self) {
        for client in self.lock().values_mut() {
            client.queue = None;
        }
    }

    /// Starts closing every client with `info`.
    fn close_all(&self, info: &WebSocketCloseInfo) {
        for client in self.lock().values_mut() {
            // Closed first, so the writer, seeing its queue end, cannot close with 1000.
            let _ = client.wss.close(info.clone());
            client.queue = None;
        }
    }
}

/// What the tasks tell the main loop.
enum Event {
    /// Client `id` is gone; `clean` when its connection closed cleanly.
    Ended { clean: bool },
    /// Stdin ended.
    StdinEnded,
    /// Writing stdout failed.
    StdoutFailed(io::Error),
}

/// Received messages to stdout, one line each (and a line per line of a multi-line text
/// message), written and flushed before the client's next message is read.
#[derive(Clone)]
struct Output {
    stdout: Arc<tokio::sync::Mutex<Stdout>>,
    prefix: bool,
    encoding: Encoding,
}

impl Output {
    async fn message(&self, id: u64, message: &Message) -> io::Result<()> {
        let text = self.encoding.to_text(message);
        let mut out = String::with_capacity(text.len() + 8);
        for line in text.split('\n') {
            if self.prefix {
                out.push_str(&format!("[{id}] "));
            }
            out.push_str(line);
            out.push('\n');
        }
        let mut stdout = self.stdout.lock().await;
        stdout.write_all(out.as_bytes()).await?;
        stdout.flush().await
    }
}

/// Runs `wsstream listen`.
pub(crate) async fn run(args: ListenArgs) -> ExitCode {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match load_tls(cert, key) {
            Ok(tls) => Some(tls),
            Err(e) => return report::fail(e),
        },
        _ => None,
    };
    let addr = listen_addr(&args.addr);
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => return report::fail(format_args!("cannot listen on {addr}: {e}")),
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => return report::fail(format_args!("cannot read the listening address: {e}")),
    };
    let mut signals = Signals::new();
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    eprintln!("listening on {scheme}://{local}");

    let encoding = Encoding::of(&args);
    let queue = usize::try_from(args.queue).unwrap_or(usize::MAX);
    let registry = Arc::new(Registry::new());
    let (accepted_tx, mut accepted) = mpsc::channel(16);
    let mut acceptor = tokio::spawn(accept_loop(listener, tls, accepted_tx));
    let (event_tx, mut events) = mpsc::channel(64);
    let stdin = match args.exec {
        Some(_) => None,
        None => Some(tokio::spawn(stdin_loop(
            registry.clone(),
            args.broadcast.then_some(args.queue_timeout),
            encoding,
            event_tx.clone(),
        ))),
    };
    let output = Output {
        stdout: Arc::new(tokio::sync::Mutex::new(tokio::io::stdout())),
        prefix: args.prefix,
        encoding,
    };
    let exec = args.exec.map(Arc::<str>::from);
    let mut clients = JoinSet::new();
    let mut next_id = 1u64;
    let shutdown = signals.recv();
    tokio::pin!(shutdown);

    // The exit status, and whether the clients still have to be closed (1001).
    let (status, close_clients) = loop {
        tokio::select! {
            Some((wss, peer)) = accepted.recv() => {
                if args.once && next_id > 1 {
                    // Upgraded just before the listener stopped.
                    eprintln!("{peer}: refused (--once): closing with 1013");
                    let _ = wss.close(WebSocketCloseInfo {
                        close_code: Some(1013),
                        reason: "only one client".to_owned(),
                    });
                    continue;
                }
                let id = next_id;
                next_id += 1;
                let (tx, rx) = mpsc::channel(queue);
                registry.add(id, Client { queue: Some(tx), wss: wss.clone() });
                // Logged once stdin lines can reach it (tests wait for this line).
                eprintln!("[{id}] connected from {peer}: {}", wss.url());
                let client = ClientTask {
                    id,
                    wss,
                    registry: registry.clone(),
                    events: event_tx.clone(),
                };
                match &exec {
                    Some(cmd) => clients.spawn(client.exec(cmd.clone(), peer, encoding)),
                    None => clients.spawn(client.bridge(rx, output.clone())),
                };
                if args.once {
                    // One client only: stop listening (handshakes in progress are dropped).
                    acceptor.abort();
                }
            }
            () = &mut shutdown => {
                eprintln!("shutting down: closing the clients with 1001");
                break (ExitCode::SUCCESS, true);
            }
            Some(event) = events.recv() => match event {
                Event::Ended { clean } if args.once => {
                    break (if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }, false);
                }
                Event::Ended { .. } => {}
                Event::StdinEnded if args.once => registry.finish_queues(),
                Event::StdinEnded => {}
                Event::StdoutFailed(e) => {
                    break (report::fail(format_args!("cannot write to stdout: {e}")), true);
                }
            },
            // The listener failed for good (the accept loop only ends on errors it
            // cannot retry).
            _ = &mut acceptor, if !args.once => {
                break (report::fail("the listener stopped"), true);
            }
        }
    };
    acceptor.abort();
    if let Some(stdin) = stdin {
        stdin.abort();
    }
    if close_clients {
        registry.close_all(&going_away());
        let all_done = async { while clients.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_WAIT, all_done).await.is_err() {
            eprintln!("some clients did not finish closing within {SHUTDOWN_WAIT:?}");
        }
    }
    // Dropping the set aborts what is left (and kills --exec commands).
    drop(clients);
    status
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM, caught from creation on (not from the first
/// poll): a signal sent as soon as the address is printed is not lost.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Self {
                    unix: Some((int, term)),
                },
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("wsstream: warning: cannot handle SIGINT and SIGTERM: {e}");
                    Self { unix: None }
                }
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves at the first signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        match &mut self.unix {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Accepts TCP connections and runs each upgrade (TLS handshake first when `tls` is
/// given) on a task of its own; the streams of the successful ones go to `accepted`.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    accepted: mpsc::Sender<(WebSocketStream, SocketAddr)>,
) {
    // Owned here: aborting this task drops the handshakes in progress.
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            conn = listener.accept() => match conn {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let tls = tls.clone();
                    let accepted = accepted.clone();
                    handshakes.spawn(async move {
                        let options = ServerOptions::default();
                        let upgraded = match &tls {
                            Some(tls) => server::accept_tls(tcp, tls, options).await,
                            None => server::accept(tcp, options).await,
                        };
                        match upgraded {
                            Ok(wss) => {
                                let _ = accepted.send((wss, peer)).await;
                            }
                            Err(e) => eprintln!("{peer}: upgrade failed: {e}"),
                        }
                    });
                }
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = handshakes.join_next() => {}
        }
    }
}

/// Reads stdin lines (only while a client is connected) and queues each as a message for
/// the most recent client, or for all with `broadcast` (`Some(how long a full queue is
/// waited for)`).
async fn stdin_loop(
    registry: Arc<Registry>,
    broadcast: Option<Duration>,
    encoding: Encoding,
    events: mpsc::Sender<Event>,
) {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        registry.wait_for_a_client().await;
        line.clear();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("wsstream: error: reading stdin failed: {e}");
                break;
            }
        }
        number += 1;
        chomp(&mut line);
        let mut message = match encoding.to_message(&line) {
            Ok(message) => message,
            Err(e) => {
                eprintln!("wsstream: warning: stdin line {number} skipped: {e}");
                continue;
            }
        };
        // Deliver it, waiting for a client if the last one just left.
        loop {
            if let Some(wait) = broadcast {
                if send_to_all(&registry, &message, wait).await {
                    break;
                }
            } else if let Some((_, queue)) = registry.latest() {
                match queue.send(message).await {
                    Ok(()) => break,
                    // That client is gone: the next most recent one gets it.
                    Err(mpsc::error::SendError(back)) => {
                        message = back;
                        continue;
                    }
                }
            }
            registry.wait_for_a_client().await;
            // A client that connected and is leaving may still be counted: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = events.send(Event::StdinEnded).await;
}

/// Queues `message` for every client. The clients whose queue is full are waited for,
/// all together at most `wait`; those still full then are disconnected (1008). Returns
/// whether any client took the message.
async fn send_to_all(registry: &Registry, message: &Message, wait: Duration) -> bool {
    let mut sent = false;
    let mut full = Vec::new();
    for (id, queue) in registry.queues() {
        match queue.try_send(message.clone()) {
            Ok(()) => sent = true,
            Err(mpsc::error::TrySendError::Full(_)) => full.push((id, queue)),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    for (id, queue) in full {
        // Each send is tried at least once, even past the deadline.
        match tokio::time::timeout_at(deadline, queue.send(message.clone())).await {
            Ok(Ok(())) => sent = true,
            Ok(Err(_)) => {} // gone meanwhile
            Err(_) => registry.disconnect_slow(id, queue.max_capacity(), wait),
        }
    }
    sent
}

/// One client's connection, on a task of its own.
struct ClientTask {
    id: u64,
    wss: WebSocketStream,
    registry: Arc<Registry>,
    events: mpsc::Sender<Event>,
}

impl ClientTask {
    /// Sends the queued messages and prints the received ones until the connection
    /// closes. When the queue ends (no more stdin for it), closes with 1000.
    async fn bridge(self, mut queue: mpsc::Receiver<Message>, output: Output) {
        let id = self.id;
        if let Ok(info) = self.wss.opened().await {
            let (Ok(mut reader), Ok(mut writer)) =
                (info.readable.get_reader(), info.writable.get_writer())
            else {
                return self.finish().await;
            };
            let send = async {
                while let Some(message) = queue.recv().await {
                    if writer.write(message).await.is_err() {
                        return;
                    }
                }
                let _ = writer.flush().await;
                let _ = self.wss.close(normal_close());
            };
            let receive = async {
                while let Ok(Some(message)) = reader.read().await {
                    if let Err(e) = output.message(id, &message).await {
                        let _ = self.events.send(Event::StdoutFailed(e)).await;
                        return;
                    }
                }
            };
            tokio::pin!(send, receive);
            tokio::select! {
                () = &mut receive => {}
                () = &mut send => receive.await,
            }
        }
        // No more stdin lines for it: out of the registry first, so that a line waiting
        // for room in this queue goes to the next most recent client instead.
        self.registry.remove(id);
        drop(queue);
        self.finish().await;
    }

    /// Runs `sh -c CMD` for this connection (see `--exec`).
    async fn exec(self, cmd: Arc<str>, peer: SocketAddr, encoding: Encoding) {
        let id = self.id;
        let spawned = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&*cmd)
            .env("WSSTREAM_CLIENT_ID", id.to_string())
            .env("WSSTREAM_PEER", peer.to_string())
            .env("WSSTREAM_URL", self.wss.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("[{id}] cannot run sh -c {cmd:?}: {e}; closing (1011)");
                let _ = self.wss.close(WebSocketCloseInfo {
                    close_code: Some(1011),
                    reason: "cannot run the command".to_owned(),
                });
                return self.finish().await;
            }
        };
        let (Some(mut child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take())
        else {
            return self.finish().await;
        };
        if let Ok(info) = self.wss.opened().await {
            let (Ok(mut reader), Ok(mut writer)) =
                (info.readable.get_reader(), info.writable.get_writer())
            else {
                return self.finish().await;
            };
            // Client → command: a line per message, then EOF when the client is done.
            let to_command = async {
                let mut open = true;
                while let Ok(Some(message)) = reader.read().await {
                    if !open {
                        continue; // the command closed its stdin: discard
                    }
                    let mut line = encoding.to_text(&message);
                    line.push('\n');
                    let written = async {
                        child_in.write_all(line.as_bytes()).await?;
                        child_in.flush().await
                    };
                    open = written.await.is_ok();
                }
                drop(child_in);
            };
            // Command → client: a message per line, then a clean close at its EOF.
            let from_command = async {
                let mut lines = BufReader::new(child_out);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match lines.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    chomp(&mut line);
                    match encoding.to_message(&line) {
                        Ok(message) => {
                            if writer.write(message).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => eprintln!("[{id}] command output line skipped: {e}"),
                    }
                }
                let _ = writer.flush().await;
                let _ = self.wss.close(normal_close());
            };
            tokio::pin!(to_command, from_command);
            tokio::select! {
                // The client went first: the command gets EOF and a moment to exit.
                () = &mut to_command => {}
                // The command is done: the close was sent; read until the client's.
                () = &mut from_command => to_command.await,
            }
        }
        match tokio::time::timeout(EXEC_GRACE, child.wait()).await {
            Ok(Ok(status)) if !status.success() => eprintln!("[{id}] command exited: {status}"),
            Ok(_) => {}
            Err(_) => {
                eprintln!("[{id}] command still running after the client left: killed");
                let _ = child.kill().await;
            }
        }
        self.finish().await;
    }

    /// Unregisters the client, waits for the close and logs it.
    async fn finish(self) {
        let id = self.id;
        self.registry.remove(id);
        let clean = match self.wss.closed().await {
            Ok(info) => {
                eprintln!(
                    "[{id}] closed: code {}, reason {:?}",
                    info.close_code.unwrap_or(1005),
                    info.reason
                );
                true
            }
            Err(e) => {
                eprintln!(
                    "[{id}] closed uncleanly: {}",
                    report::connection_error(&e).replace('\n', " ")
                );
                false
            }
        };
        let _ = self.events.send(Event::Ended { clean }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_port_listens_on_loopback() {
        assert_eq!(listen_addr("8080"), "127.0.0.1:8080");
        assert_eq!(listen_addr("0.0.0.0:9"), "0.0.0.0:9");
        assert_eq!(listen_addr("[::1]:0"), "[::1]:0");
    }

    #[test]
    fn lines_and_messages() {
        let text = Encoding {
            input: None,
            base64: false,
        };
        assert_eq!(text.to_message(b"hi").unwrap(), Message::from("hi"));
        assert!(text.to_message(b"\xff").is_err());
        assert_eq!(text.to_text(&Message::from(vec![1u8, 255])), "01ff");
        let b64 = Encoding {
            input: Some(BinaryText::Base64),
            base64: true,
        };
        assert_eq!(
            b64.to_message(b"AQI=").unwrap(),
            Message::from(vec![1u8, 2])
        );
        assert_eq!(b64.to_text(&Message::from(vec![1u8, 2])), "AQI=");
        let mut line = b"a\r\n".to_vec();
        chomp(&mut line);
        assert_eq!(line, b"a");
    }
}
