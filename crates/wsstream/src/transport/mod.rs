//! The byte stream under a connection: TCP, TLS over TCP, or any boxed
//! `AsyncRead + AsyncWrite`. Nothing WebSocket-specific.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) mod tcp;
#[cfg(feature = "tls")]
pub(crate) mod tls;

/// A client-side TLS stream over TCP.
#[cfg(feature = "tls")]
pub(crate) type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// Any bidirectional byte stream usable as a transport.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {}

/// The transport of one connection.
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (`wss://`), boxed: the rustls state is large and TCP stays small.
    #[cfg(feature = "tls")]
    Tls(Box<ClientTls>),
    /// Anything else (in-memory pipes, Unix sockets, tunnels).
    Other(Box<dyn AsyncIo>),
    /// Any other stream whose peer address the caller knows: a stream of an HTTP/2
    /// connection, or an upgraded HTTP connection over TLS.
    Addressed(Box<dyn AsyncIo>, std::net::SocketAddr),
}

impl Transport {
    /// Wraps any stream. A plain `TcpStream` keeps the TCP variant, so it gets the
    /// readiness-aware reads of [`poll_read_ready`](Self::poll_read_ready).
    pub(crate) fn from_io<S: AsyncIo>(io: S) -> Self {
        let mut slot = Some(io);
        if let Some(tcp) = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<TcpStream>>()
            .and_then(Option::take)
        {
            return Self::Tcp(tcp);
        }
        match slot {
            Some(io) => Self::Other(Box::new(io)),
            None => unreachable!("the stream is taken above only when it is a TcpStream"),
        }
    }

    /// Whether bytes may be available to read. For TCP this is the socket's readiness,
    /// so an idle connection can wait without holding a read buffer; the other transports
    /// (TLS may hold decrypted bytes already) always answer yes.
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx),
            #[cfg(feature = "tls")]
            Self::Tls(_) => Poll::Ready(Ok(())),
            Self::Other(_) => Poll::Ready(Ok(())),
            Self::Addressed(..) => Poll::Ready(Ok(())),
        }
    }
}

impl Transport {
    /// `self` with `peer` as its peer address when it has none of its own (the caller
    /// knows the address of the connection the stream runs on).
    pub(crate) fn with_peer(self, peer: Option<std::net::SocketAddr>) -> Self {
        match (self, peer) {
            (Self::Other(io), Some(peer)) => Self::Addressed(io, peer),
            (transport, _) => transport,
        }
    }

    /// The peer's address: for TCP, TLS over TCP, and the streams given one with
    /// [`with_peer`](Self::with_peer).
    pub(crate) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.get_ref().0.peer_addr().ok(),
            Self::Other(_) => None,
            Self::Addressed(_, peer) => Some(*peer),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Other(s) => Pin::new(s).poll_read(cx, buf),
            Self::Addressed(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Other(s) => Pin::new(s).poll_write(cx, buf),
            Self::Addressed(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Other(s) => Pin::new(s).poll_flush(cx),
            Self::Addressed(s, _) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Other(s) => Pin::new(s).poll_shutdown(cx),
            Self::Addressed(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
