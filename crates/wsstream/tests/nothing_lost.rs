//! Nothing written is lost: N messages of random sizes (text and binary, 0 to 200 KiB,
//! seeded) are written, then the writer is closed (`writer.close()`); the other side
//! receives all N, in order, byte for byte, then the clean close (1005: `writer.close()`
//! sends a Close frame without a code), with and without a slow reader.
//!
//! The cases are a matrix of [`Transport`] (ws://, wss://) × [`Variant`] × [`Reader`] ×
//! direction: a new transport or options variant is one more enum value, the scenario
//! itself does not change. The default options on both ends negotiate permessage-deflate,
//! so every `Plain` case is compressed (messages of 1 KiB and more).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{Message, TlsOptions, WebSocketStream, WebSocketStreamOptions};
use wsstream_test_support::certs::Ca;

/// How the two ends are connected.
#[derive(Clone, Copy, Debug)]
enum Transport {
    /// `ws://` over loopback TCP.
    Ws,
    /// `wss://` over loopback TCP: a throwaway CA (rcgen) signs the server's
    /// certificate, the server runs `accept_tls`, the client trusts the CA as its only
    /// root.
    Wss,
}

/// Options on both ends.
#[derive(Clone, Copy, Debug)]
enum Variant {
    /// The defaults.
    Plain,
    /// A small send buffer and message limit just above the largest message: many
    /// writes wait for the socket, and the limit is exercised but never hit.
    SmallBuffers,
    // Deflate: permessage-deflate negotiated (to add with compression).
}

/// How the receiving application reads.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// As fast as it can.
    Fast,
    /// Sleeps between reads: the writer is held back by backpressure all along, and
    /// `writer.close()` is called with most messages still queued.
    Slow,
}

/// Which end writes.
#[derive(Clone, Copy, Debug)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

const MAX_SIZE: usize = 200 * 1024;

impl Variant {
    fn client_options(self) -> WebSocketStreamOptions {
        match self {
            Self::Plain => WebSocketStreamOptions::default(),
            Self::SmallBuffers => WebSocketStreamOptions::default()
                .send_buffer_size(1024)
                .max_message_size(MAX_SIZE * 4),
        }
    }

    fn server_options(self) -> ServerOptions {
        match self {
            Self::Plain => ServerOptions::default(),
            Self::SmallBuffers => ServerOptions::default()
                .send_buffer_size(1024)
                .max_message_size(MAX_SIZE * 4),
        }
    }
}

/// splitmix64: seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The messages: a third tiny (0–125 bytes: the 7-bit length), a third medium (up to
/// 64 KiB: the 16-bit length), a third large (up to 200 KiB: 64-bit lengths, several
/// frames); text (with multi-byte characters, cut anywhere by fragmentation) or binary.
fn messages(seed: u64, n: usize) -> Vec<Message> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let size = match rng.below(3) {
                0 => rng.below(126),
                1 => 126 + rng.below(65_536 - 126 + 1),
                _ => rng.below(MAX_SIZE + 1),
            };
            if rng.below(2) == 0 {
                const CHARS: [char; 5] = ['a', 'ß', '€', '😀', '\n'];
                let mut s = String::with_capacity(size + 4);
                while s.len() < size {
                    s.push(CHARS[rng.below(CHARS.len())]);
                }
                Message::from(s)
            } else {
                let mut bytes = vec![0u8; size];
                for chunk in bytes.chunks_mut(8) {
                    let r = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&r[..chunk.len()]);
                }
                Message::from(bytes)
            }
        })
        .collect()
}

/// FNV-1a over a message's kind and bytes, for a compact failure report.
fn digest(m: &Message) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ u64::from(m.is_text());
    for &b in m.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Writes `sent`, then `writer.close()`; returns what `close` and `closed` settled with.
async fn write_all_then_close(wss: &WebSocketStream, sent: Vec<Message>) -> Option<u16> {
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    for m in sent {
        writer.write(m).await.unwrap();
    }
    writer.close().await.unwrap();
    wss.closed().await.unwrap().close_code
}

/// Reads everything until the readable closes; returns the messages and the close code.
async fn read_all(wss: &WebSocketStream, reader_kind: Reader) -> (Vec<Message>, Option<u16>) {
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut got = Vec::new();
    while let Some(m) = reader.read().await.unwrap() {
        got.push(m);
        if let Reader::Slow = reader_kind {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    (got, wss.closed().await.unwrap().close_code)
}

/// A listener, the URL to connect to, the server's TLS acceptor (wss://) and the TLS
/// options the client needs.
struct Endpoint {
    listener: TcpListener,
    url: String,
    tls: Option<(TlsAcceptor, TlsOptions)>,
}

async fn listen(transport: Transport) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match transport {
        Transport::Ws => Endpoint {
            listener,
            url: format!("ws://{addr}/nothing-lost"),
            tls: None,
        },
        Transport::Wss => {
            let ca = Ca::new("wsstream nothing-lost CA");
            let acceptor = ca.server(&["127.0.0.1"]).acceptor();
            let mut client = TlsOptions::default();
            client.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
            Endpoint {
                listener,
                url: format!("wss://{addr}/nothing-lost"),
                tls: Some((acceptor, client)),
            }
        }
    }
}

async fn run(transport: Transport, variant: Variant, reader: Reader, direction: Direction) {
    let seed = 0x5EED_0000
        + (transport as u64) * 1000
        + (variant as u64) * 100
        + (reader as u64) * 10
        + (direction as u64);
    let n = 150;
    let sent = messages(seed, n);
    let total: usize = sent.iter().map(Message::len).sum();
    let Endpoint { listener, url, tls } = listen(transport).await;
    let (acceptor, client_tls) = tls.unzip();
    let server = tokio::spawn({
        let sent = sent.clone();
        async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let wss = match &acceptor {
                None => server::accept(tcp, variant.server_options()).await,
                Some(acceptor) => server::accept_tls(tcp, acceptor, variant.server_options()).await,
            }
            .unwrap();
            assert!(wss.url().starts_with(if acceptor.is_some() {
                "wss://"
            } else {
                "ws://"
            }));
            match direction {
                Direction::ClientToServer => {
                    let (got, code) = read_all(&wss, reader).await;
                    (Some(got), code)
                }
                Direction::ServerToClient => (None, write_all_then_close(&wss, sent).await),
            }
        }
    });
    let mut options = variant.client_options();
    if let Some(tls) = client_tls {
        options.tls = tls;
    }
    let wss = WebSocketStream::new(&url, options).unwrap();
    let started = Instant::now();
    let (client_got, client_code) = match direction {
        Direction::ClientToServer => (None, write_all_then_close(&wss, sent.clone()).await),
        Direction::ServerToClient => {
            let (got, code) = read_all(&wss, reader).await;
            (Some(got), code)
        }
    };
    let (server_got, server_code) = server.await.unwrap();
    let got = client_got.or(server_got).unwrap();
    let what = format!("{transport:?}/{variant:?}/{reader:?}/{direction:?} (seed {seed:#x})");
    assert_eq!(got.len(), sent.len(), "{what}: message count");
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert!(
            g == s,
            "{what}: message {i} differs: got {} bytes ({}, digest {:016x}), sent {} bytes \
             ({}, digest {:016x})",
            g.len(),
            if g.is_text() { "text" } else { "binary" },
            digest(g),
            s.len(),
            if s.is_text() { "text" } else { "binary" },
            digest(s),
        );
    }
    assert_eq!(client_code, Some(1005), "{what}: client close code");
    assert_eq!(server_code, Some(1005), "{what}: server close code");
    eprintln!(
        "{what}: {n} messages, {} KiB, byte-exact, in {:?}",
        total / 1024,
        started.elapsed()
    );
}

macro_rules! cases {
    ($($name:ident: $transport:ident, $variant:ident, $reader:ident, $direction:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let case = run(
                Transport::$transport,
                Variant::$variant,
                Reader::$reader,
                Direction::$direction,
            );
            tokio::time::timeout(Duration::from_secs(120), case)
                .await
                .expect("hung");
        }
    )*};
}

cases! {
    ws_client_to_server_fast_reader: Ws, Plain, Fast, ClientToServer;
    ws_client_to_server_slow_reader: Ws, Plain, Slow, ClientToServer;
    ws_server_to_client_fast_reader: Ws, Plain, Fast, ServerToClient;
    ws_server_to_client_slow_reader: Ws, Plain, Slow, ServerToClient;
    ws_small_buffers_client_to_server_fast_reader: Ws, SmallBuffers, Fast, ClientToServer;
    ws_small_buffers_client_to_server_slow_reader: Ws, SmallBuffers, Slow, ClientToServer;
    wss_client_to_server_fast_reader: Wss, Plain, Fast, ClientToServer;
    wss_client_to_server_slow_reader: Wss, Plain, Slow, ClientToServer;
    wss_server_to_client_fast_reader: Wss, Plain, Fast, ServerToClient;
    wss_server_to_client_slow_reader: Wss, Plain, Slow, ServerToClient;
    wss_small_buffers_client_to_server_slow_reader: Wss, SmallBuffers, Slow, ClientToServer;
    wss_small_buffers_server_to_client_slow_reader: Wss, SmallBuffers, Slow, ServerToClient;
}
