//! The echo servers of the server-role scenarios, one per library, each built on that
//! library's own server API as its users would write it: one task spawned per accepted
//! connection, which reads a message and writes it back until the client closes. No
//! permessage-deflate anywhere: every server declines the offer.
//!
//! * wsstream: `server::accept` with `().compression(None)`, then
//!   `opened()`, `reader.read()` → `writer.write(message)`, and `closed()` at the end.
//! * tokio-tungstenite: `accept_async` (default config: 128 KiB buffers), `next()` →
//!   `send()` of every text or binary message.
//! * fastwebsockets: the hand-written handshake of [`wire::server_handshake`], then
//!   `WebSocket::after_handshake(.., Role::Server)` in a `FragmentCollector` (its hyper
//!   `upgrade` path needs the `upgrade` feature and hyper); `read_frame` → `write_frame`,
//!   with the crate's automatic Close reply.
//! * tokio-websockets: `ServerBuilder::new().accept(tcp)` with its default config, `next()`
//!   → `send()` of every text or binary message (its `echo_server` example, without the
//!   `unconstrained` wrapper and the raised limits).
//! * raw: the limit. The hand-written handshake, then a task that holds no buffer while it
//!   waits: on readiness it reads into a buffer of its worker thread, unmasks and rewrites
//!   the frames in place as replies (the server's header is 4 bytes shorter than the
//!   client's, so a reply never overtakes its request), and writes them back, all without
//!   yielding; only a partial frame (carried to the next read) or a reply the socket did
//!   not take at once gets a buffer of its own.
//!
//! `wsstream-bench serve-echo <library> <workers>` runs one of them in its own process on a
//! current-thread runtime (`1`) or a multi-thread runtime with two workers (`2`, what
//! `#[tokio::main]` gives on this machine), and prints `LISTEN <addr>`. The accept loop runs
//! in the runtime's `block_on` future; the connection tasks go wherever the runtime puts
//! them. Every accepted socket gets `TCP_NODELAY`.

use std::cell::RefCell;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::BoxError;
use crate::clients::Client;
use crate::wire::{self, OP_CLOSE, OP_PING, OP_PONG};

/// Runs `wsstream-bench serve-echo <library> <workers>` (`args` without the command).
pub(crate) fn run(args: &[String]) -> Result<(), BoxError> {
    let usage = "usage: wsstream-bench serve-echo <library> <1|2 workers>";
    let library = args.first().ok_or(usage)?;
    let library = Client::find(library)
        .filter(|c| c.supports(crate::scenario::Kind::ServerIdle { conns: 1 }))
        .ok_or_else(|| format!("no echo server for {library:?}"))?;
    let workers: usize = match args.get(1).map(String::as_str) {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(other) => return Err(format!("{usage} (got {other:?} workers)").into()),
    };
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
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    println!("LISTEN {}", listener.local_addr()?);
    io::stdout().flush()?;
    crate::exit_with_parent();
    // One accept loop per library, so that each task holds only its own library's future
    // (a task holding an enum of all five would be as large as the largest one, and the
    // idle memory per connection would include it).
    let name = library.name();
    match library {
        Client::Wsstream => rt.block_on(accept_loop(listener, name, wsstream_echo)),
        Client::TokioTungstenite => rt.block_on(accept_loop(listener, name, tungstenite_echo)),
        Client::Fastwebsockets => rt.block_on(accept_loop(listener, name, fastws_echo)),
        Client::TokioWebsockets => rt.block_on(accept_loop(listener, name, tokiows_echo)),
        Client::Raw => rt.block_on(accept_loop(listener, name, raw_echo)),
        Client::Yawc => return Err("no yawc echo server".into()),
    }
    Ok(())
}

/// Accepts connections forever, one task each running `serve` (the echo server of the
/// library `name`).
async fn accept_loop<F, Fut, E>(listener: TcpListener, name: &'static str, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let mut reported = false;
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // E.g. EMFILE: say it once, back off, and keep serving the others.
                if !reported {
                    eprintln!("serve-echo {name}: accept: {e}");
                    reported = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = serve(tcp);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("serve-echo {name}: {e}");
            }
        });
    }
}

/// wsstream: accept without compression, then read → write until the client's Close, and
/// wait for the closing handshake to finish.
async fn wsstream_echo(tcp: TcpStream) -> Result<(), BoxError> {
    use wsstream::server::{ServerOptions, accept};
    let options = ServerOptions::default().compression(None);
    let wss = accept(tcp, options).await?;
    let info = wss.opened().await?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    while let Some(message) = reader.read().await? {
        writer.write(message).await?;
    }
    wss.closed().await?;
    Ok(())
}

/// tokio-tungstenite: `accept_async`, then `next()` → `send()` until the stream ends (after
/// its automatic Close reply).
async fn tungstenite_echo(tcp: TcpStream) -> Result<(), BoxError> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_binary() || message.is_text() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// fastwebsockets: hand-written handshake, `after_handshake` in the server role behind a
/// `FragmentCollector`; `read_frame` → `write_frame` until Close (answered by the crate).
async fn fastws_echo(mut tcp: TcpStream) -> Result<(), BoxError> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    wire::server_handshake(&mut tcp).await?;
    let mut ws = FragmentCollector::new(WebSocket::after_handshake(tcp, Role::Server));
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// tokio-websockets: `ServerBuilder::accept`, then `next()` → `send()` until the stream
/// ends (after its automatic Close reply).
async fn tokiows_echo(tcp: TcpStream) -> Result<(), BoxError> {
    let (_request, mut ws) = tokio_websockets::ServerBuilder::new().accept(tcp).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_binary() || message.is_text() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// Size of each worker thread's read buffer in the raw echo server.
const RAW_BUF: usize = 64 * 1024;

thread_local! {
    /// The raw echo server's read buffer, shared by the connections of one worker thread
    /// (borrowed only between two awaits).
    static RAW_READ: RefCell<Vec<u8>> = RefCell::new(vec![0; RAW_BUF]);
}

/// What one read of the raw echo server led to.
enum Step {
    /// Keep serving.
    More,
    /// The stream ended, or the Close reply is out: drop the connection.
    Done,
}

/// raw: the hand-written handshake, then echo (see the module docs). Ping gets Pong, Close
/// gets its Close echoed, after which the connection is dropped (the server closes TCP).
async fn raw_echo(mut tcp: TcpStream) -> io::Result<()> {
    wire::server_handshake(&mut tcp).await?;
    // The bytes of an incomplete frame, kept until the next read (usually none).
    let mut carry: Vec<u8> = Vec::new();
    // Replies the socket did not take at once (usually none).
    let mut unsent: Vec<u8> = Vec::new();
    loop {
        let step = std::future::poll_fn(|cx| {
            RAW_READ.with_borrow_mut(|buf| raw_poll(cx, &mut tcp, buf, &mut carry, &mut unsent))
        })
        .await?;
        if !unsent.is_empty() {
            tcp.write_all(&unsent).await?;
            unsent = Vec::new();
        }
        if let Step::Done = step {
            return Ok(());
        }
    }
}

/// One read of the raw echo server into `buf` (after the `carry` of the previous one),
/// with the replies written in place and sent as far as the socket takes them. It reads
/// through `poll_read`, which, after a read shorter than the buffer, waits for the next
/// readiness event instead of trying the socket again (as the load client does).
fn raw_poll(
    cx: &mut Context<'_>,
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    carry: &mut Vec<u8>,
    unsent: &mut Vec<u8>,
) -> Poll<io::Result<Step>> {
    let kept = carry.len();
    if buf.len() < kept + RAW_BUF / 2 {
        // A frame larger than the buffer: grow this thread's buffer.
        buf.resize(kept + RAW_BUF, 0);
    }
    let mut read = ReadBuf::new(&mut buf[kept..]);
    match Pin::new(&mut *tcp).poll_read(cx, &mut read) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        Poll::Ready(Ok(())) => {}
    }
    let k = read.filled().len();
    if k == 0 {
        return Poll::Ready(Ok(Step::Done));
    }
    buf[..kept].copy_from_slice(carry);
    let end = kept + k;
    let (mut r, mut w) = (0, 0);
    let mut step = Step::More;
    while let Some(h) = wire::parse_header(&buf[r..end]) {
        let total = h.size + h.len as usize;
        if end - r < total {
            break;
        }
        let Some(mask) = h.mask else {
            return Poll::Ready(Err(io::Error::other("unmasked client frame")));
        };
        let body = r + h.size..r + total;
        wire::apply_mask(&mut buf[body.clone()], mask);
        let opcode = match h.opcode {
            OP_PONG => {
                r += total;
                continue;
            }
            OP_PING => OP_PONG,
            op => op,
        };
        // The reply's header, then its body moved down (w <= r: the unmasked header is
        // 4 bytes shorter, so neither overwrites bytes not yet read).
        let (header, size) = reply_header(h.fin, opcode, h.len);
        buf[w..w + size].copy_from_slice(&header[..size]);
        buf.copy_within(body, w + size);
        w += size + h.len as usize;
        r += total;
        if h.opcode == OP_CLOSE {
            step = Step::Done;
            break;
        }
    }
    carry.clear();
    if let Step::More = step {
        carry.extend_from_slice(&buf[r..end]);
    }
    let mut sent = 0;
    while sent < w {
        match tcp.try_write(&buf[sent..w]) {
            Ok(k) => sent += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    unsent.extend_from_slice(&buf[sent..w]);
    Poll::Ready(Ok(step))
}

/// An unmasked frame header (`size` bytes of the array) for a payload of `len` bytes.
fn reply_header(fin: bool, opcode: u8, len: u64) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = (u8::from(fin) << 7) | opcode;
    let size = if len < 126 {
        header[1] = len as u8;
        2
    } else if len <= 0xffff {
        header[1] = 126;
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    (header, size)
}
