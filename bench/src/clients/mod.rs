//! The measured clients, one module each. Every client but yawc has the same four entry
//! points (receive, send, echo, idle); wsstream, yawc and raw also have the two deflate
//! ones. [`Client::supports`] tells which scenarios a client runs.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use crate::scenario::{
    DEFLATE_SEND_DISTINCT, Kind, Outcome, deflate_message, json_messages, json_payload,
};
use crate::{BoxError, HeapProbe};

mod fastws;
mod raw;
mod tokiows;
mod tungstenite;
mod wsstream;
mod yawcws;

/// A client under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    Wsstream,
    TokioTungstenite,
    Fastwebsockets,
    TokioWebsockets,
    Yawc,
    Raw,
}

/// Every client, in the order of the table.
pub(crate) const CLIENTS: &[Client] = &[
    Client::Wsstream,
    Client::TokioTungstenite,
    Client::Fastwebsockets,
    Client::TokioWebsockets,
    Client::Yawc,
    Client::Raw,
];

impl Client {
    /// The name used on the command line and in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Wsstream => "wsstream",
            Self::TokioTungstenite => "tokio-tungstenite",
            Self::Fastwebsockets => "fastwebsockets",
            Self::TokioWebsockets => "tokio-websockets",
            Self::Yawc => "yawc",
            Self::Raw => "raw",
        }
    }

    /// Looks a client up by name.
    pub(crate) fn find(name: &str) -> Option<Self> {
        CLIENTS.iter().copied().find(|c| c.name() == name)
    }

    /// Whether this is one of the peer crates (not wsstream, not raw).
    pub(crate) fn is_peer(self) -> bool {
        !matches!(self, Self::Wsstream | Self::Raw)
    }

    /// Whether this client runs `kind`: tokio-tungstenite, fastwebsockets and
    /// tokio-websockets have no permessage-deflate, and yawc is measured only in the
    /// deflate scenarios. In the server scenarios (`kind.is_server()`) the participant is
    /// the library's echo server ([`serve`](crate::serve)); yawc has none there.
    pub(crate) fn supports(self, kind: Kind) -> bool {
        match self {
            // wsstream on both sides (its client against a hyper server with HyperUpgrade).
            _ if kind.is_streams() => self == Self::Wsstream,
            Self::Wsstream | Self::Raw => true,
            Self::Yawc => kind.is_deflate(),
            Self::TokioTungstenite | Self::Fastwebsockets | Self::TokioWebsockets => {
                !kind.is_deflate()
            }
        }
    }

    /// Runs `kind` against the server at `addr` and checks the result.
    pub(crate) async fn run(
        self,
        addr: &str,
        kind: Kind,
        heap: Option<HeapProbe>,
    ) -> Result<Outcome, BoxError> {
        let unsupported =
            || -> BoxError { format!("{} does not run this scenario", self.name()).into() };
        if !self.supports(kind) {
            return Err(unsupported());
        }
        match kind {
            Kind::Recv { n, size, text } => {
                let path = format!("/send?n={n}&size={size}&text={}", u8::from(text));
                let (received, span) = match self {
                    Self::Wsstream => wsstream::recv(addr, &path, text).await?,
                    Self::TokioTungstenite => tungstenite::recv(addr, &path, text).await?,
                    Self::Fastwebsockets => fastws::recv(addr, &path, text).await?,
                    Self::TokioWebsockets => tokiows::recv(addr, &path, text).await?,
                    Self::Raw => raw::recv(addr, &path, n, size, text).await?,
                    Self::Yawc => return Err(unsupported()),
                };
                received.verify(n, size, Some((1000, "done")))?;
                Ok(Outcome::throughput(n, size, span))
            }
            Kind::Send { n, size } => {
                let (close, span) = match self {
                    Self::Wsstream => wsstream::send(addr, n, size).await?,
                    Self::TokioTungstenite => tungstenite::send(addr, n, size).await?,
                    Self::Fastwebsockets => fastws::send(addr, n, size).await?,
                    Self::TokioWebsockets => tokiows::send(addr, n, size).await?,
                    Self::Raw => raw::send(addr, n, size).await?,
                    Self::Yawc => return Err(unsupported()),
                };
                crate::scenario::verify_count(close, n, size)?;
                Ok(Outcome::throughput(n, size, span))
            }
            Kind::Echo { n, size } => {
                let (rtts, span) = match self {
                    Self::Wsstream => wsstream::echo(addr, n, size).await?,
                    Self::TokioTungstenite => tungstenite::echo(addr, n, size).await?,
                    Self::Fastwebsockets => fastws::echo(addr, n, size).await?,
                    Self::TokioWebsockets => tokiows::echo(addr, n, size).await?,
                    Self::Raw => raw::echo(addr, n, size).await?,
                    Self::Yawc => return Err(unsupported()),
                };
                if rtts.len() as u64 != n {
                    return Err(format!("{} round trips, expected {n}", rtts.len()).into());
                }
                Ok(Outcome::latency(rtts, size, span))
            }
            Kind::Idle { conns } => match self {
                Self::Wsstream => idle(conns, heap, || wsstream::idle(addr)).await,
                Self::TokioTungstenite => idle(conns, heap, || tungstenite::idle(addr)).await,
                Self::Fastwebsockets => idle(conns, heap, || fastws::idle(addr)).await,
                Self::TokioWebsockets => idle(conns, heap, || tokiows::idle(addr)).await,
                Self::Raw => idle(conns, heap, || raw::idle(addr)).await,
                Self::Yawc => Err(unsupported()),
            },
            Kind::RecvDeflate { n, size } => {
                let path = format!("/send?n={n}&size={size}&text=1&deflate=1");
                let data = json_payload(size);
                let (received, span) = match self {
                    Self::Wsstream => wsstream::recv_deflate(addr, &path, &data).await?,
                    Self::Yawc => yawcws::recv_deflate(addr, &path, &data).await?,
                    Self::Raw => raw::recv_deflate(addr, &path, n, &data).await?,
                    _ => return Err(unsupported()),
                };
                received.verify_payload(n, &data, Some((1000, "done")))?;
                Ok(Outcome {
                    // The server sends `data` compressed once with a 15-bit window (no
                    // client here asks for a smaller one).
                    wire_ratio: deflate_message(&data, 15).len() as f64 / size as f64,
                    ..Outcome::throughput(n, size, span)
                })
            }
            Kind::SendDeflate { n, size } => {
                let path = "/count?deflate=1";
                let messages = json_messages(size, DEFLATE_SEND_DISTINCT);
                let (close, span) = match self {
                    Self::Wsstream => wsstream::send_deflate(addr, path, n, &messages).await?,
                    Self::Yawc => yawcws::send_deflate(addr, path, n, &messages).await?,
                    // The physical limit: one message compressed once, its frame repeated.
                    Self::Raw => raw::send_deflate(addr, path, n, &messages[0]).await?,
                    _ => return Err(unsupported()),
                };
                let wire = crate::scenario::verify_deflate_count(close, n, size)?;
                Ok(Outcome {
                    wire_ratio: wire as f64 / (n * size as u64) as f64,
                    ..Outcome::throughput(n, size, span)
                })
            }
            // The participant is the server there; the load client is `load`'s. The
            // streams scenarios have their own runner (`streams`).
            Kind::ServerEcho { .. } | Kind::ServerIdle { .. } | Kind::Streams { .. } => {
                Err(unsupported())
            }
        }
    }
}

/// What an idle client keeps per connection (the connection itself usually lives in a
/// task waiting for the next message).
pub(crate) type Held = Box<dyn Any + Send>;

/// Opens `conns` connections with `open` and measures the growth of the process's resident
/// memory (VmRSS) and, when `heap` is given, of its live heap bytes.
async fn idle<F, Fut>(conns: u64, heap: Option<HeapProbe>, open: F) -> Result<Outcome, BoxError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Held, BoxError>>,
{
    // Warm up whatever the first connection initialises lazily.
    drop(open().await?);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut held: Vec<Held> = Vec::with_capacity(conns as usize);
    let rss0 = crate::mem::rss_kib()?;
    let heap0 = heap.map(|h| h());
    for _ in 0..conns {
        held.push(open().await?);
    }
    // Let every connection task reach its idle wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss1 = crate::mem::rss_kib()?;
    let heap1 = heap.map(|h| h());
    let per = |a: f64, b: f64| (b - a) / conns as f64;
    let outcome = Outcome {
        rss_kib: per(rss0 as f64, rss1 as f64),
        heap_kib: match (heap0, heap1) {
            (Some(a), Some(b)) => per(a as f64, b as f64) / 1024.0,
            _ => -1.0,
        },
        ..Outcome::default()
    };
    drop(held);
    Ok(outcome)
}

/// Drops a future's output after polling it on the current runtime: keeps one idle
/// connection alive in its own task, as an application waiting for the next message does.
pub(crate) fn park<F>(wait: F) -> Held
where
    F: Future + Send + 'static,
{
    Box::new(tokio::spawn(async move {
        let _ = wait.await;
    }))
}
