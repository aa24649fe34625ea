//! The connect flow of a client stream: URL → TCP → opening handshake → driver.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use url::Url;
use wsstream_proto::handshake::{ClientHandshake, ClientRequest, HandshakeError};
use wsstream_proto::{Connection, Role};

use crate::driver::Driver;
use crate::error::{AbortReason, ConnectionError, WebSocketError};
use crate::options::WebSocketStreamOptions;
use crate::shared::{OpenState, Phase, Shared};
use crate::transport::{AsyncIo, Transport};

/// Why the opening handshake failed: the `source()` of the WebSocketErrors that `opened`
/// and `closed` fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// DNS, TCP or another I/O failure.
    Io(io::Error),
    /// The server's response was not a valid WebSocket handshake (RFC 6455 §4.1), e.g. a
    /// non-101 status.
    Handshake(HandshakeError),
    /// `wss://` needs TLS, which this build does not include yet.
    TlsUnsupported,
    /// The server closed the connection before completing the handshake.
    ClosedDuringHandshake,
    /// `close()` was called, or every handle dropped, during the handshake (B23).
    Closed,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(_) => f.write_str("connection failed"),
            Self::Handshake(_) => f.write_str("handshake failed"),
            Self::TlsUnsupported => f.write_str("wss:// is not supported by this build"),
            Self::ClosedDuringHandshake => {
                f.write_str("the server closed the connection during the handshake")
            }
            Self::Closed => f.write_str("closed during the opening handshake"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

struct Established {
    io: Transport,
    leftover: BytesMut,
    protocol: String,
    extensions: String,
}

/// Runs a client connection: the handshake (racing the abort signal and `close()`), then
/// the driver.
pub(crate) async fn run(
    shared: Arc<Shared>,
    url: Url,
    options: WebSocketStreamOptions,
    stream: Option<Box<dyn AsyncIo>>,
) {
    let signal = options.signal.clone();
    let aborted = async {
        match &signal {
            Some(signal) => signal.wait().await,
            None => std::future::pending().await,
        }
    };
    let interrupted = async {
        loop {
            let notified = shared.interrupt.notified();
            if shared.lock().interrupted {
                return;
            }
            notified.await;
        }
    };
    let result = tokio::select! {
        result = connect(&url, &options, stream) => result,
        reason = aborted => return abort(&shared, reason),
        () = interrupted => Err(ConnectError::Closed),
    };
    // The decision to open is atomic with the checks of the signal and close() (G6).
    let established = {
        let mut inner = shared.lock();
        if let Some(reason) = signal.as_ref().and_then(crate::AbortSignal::reason) {
            drop(inner);
            return abort(&shared, reason);
        }
        match result {
            Ok(established) if !inner.interrupted => {
                let conn = match Connection::new(Role::Client, options.proto_config()) {
                    Ok(conn) => conn,
                    Err(e) => {
                        drop(inner);
                        return fail(
                            &shared,
                            Arc::new(io::Error::new(io::ErrorKind::InvalidInput, e)),
                        );
                    }
                };
                inner.conn = Some(conn);
                inner.phase = Phase::Open;
                established
            }
            Ok(_) => {
                drop(inner);
                return fail(&shared, Arc::new(ConnectError::Closed));
            }
            Err(e) => {
                drop(inner);
                return fail(&shared, Arc::new(e));
            }
        }
    };
    shared.opened.settle(Ok(OpenState {
        protocol: established.protocol,
        extensions: established.extensions,
    }));
    Driver::new(
        shared,
        established.io,
        established.leftover,
        Role::Client,
        options.close_timeout,
    )
    .await;
}

/// B15: the signal fired before the connection was established.
fn abort(shared: &Shared, reason: AbortReason) {
    shared.lock().phase = Phase::Closed;
    shared
        .opened
        .settle(Err(ConnectionError::Aborted(reason.clone())));
    shared.closed.settle(Err(ConnectionError::Aborted(reason)));
}

/// B21: the connection closed before it was established: `opened` fails with a
/// WebSocketError without code, `closed` with a different one with code 1006.
fn fail(shared: &Shared, cause: AbortReason) {
    shared.lock().phase = Phase::Closed;
    let opened = WebSocketError::from_connection(
        "WebSocket closed before handshake complete",
        None,
        String::new(),
        Some(cause.clone()),
    );
    let closed = WebSocketError::from_connection(
        "WebSocket was not cleanly closed",
        Some(1006),
        String::new(),
        Some(cause),
    );
    shared
        .opened
        .settle(Err(ConnectionError::WebSocket(Arc::new(opened))));
    shared
        .closed
        .settle(Err(ConnectionError::WebSocket(Arc::new(closed))));
}

async fn connect(
    url: &Url,
    options: &WebSocketStreamOptions,
    stream: Option<Box<dyn AsyncIo>>,
) -> Result<Established, ConnectError> {
    if url.scheme() == "wss" {
        return Err(ConnectError::TlsUnsupported);
    }
    let mut io = match stream {
        Some(stream) => Transport::Other(stream),
        None => Transport::Tcp(connect_tcp(url).await?),
    };
    let resource = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let handshake = ClientHandshake::new(&ClientRequest {
        host: url.host_str().unwrap_or_default(),
        port: url.port(),
        resource: &resource,
        protocols: &options.protocols,
        extensions: None,
        headers: &options.headers,
    })
    .map_err(ConnectError::Handshake)?;
    io.write_all(handshake.request())
        .await
        .map_err(ConnectError::Io)?;
    let (response, leftover) = read_response(&mut io, &handshake).await?;
    Ok(Established {
        io,
        leftover,
        protocol: response.protocol.unwrap_or_default(),
        extensions: wsstream_proto::handshake::ExtensionOffer::to_header_value(
            &response.extensions,
        ),
    })
}

/// Resolves the host and connects to each address in turn (tokio tries every resolved
/// address, IPv6 and IPv4, until one accepts), with `TCP_NODELAY`.
async fn connect_tcp(url: &Url) -> Result<TcpStream, ConnectError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = match url.host() {
        Some(url::Host::Domain(domain)) => TcpStream::connect((domain, port)).await,
        Some(url::Host::Ipv4(ip)) => TcpStream::connect((ip, port)).await,
        Some(url::Host::Ipv6(ip)) => TcpStream::connect((ip, port)).await,
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "URL without host",
        )),
    }
    .map_err(ConnectError::Io)?;
    tcp.set_nodelay(true).map_err(ConnectError::Io)?;
    Ok(tcp)
}

async fn read_response(
    io: &mut Transport,
    handshake: &ClientHandshake,
) -> Result<(wsstream_proto::handshake::HandshakeResponse, BytesMut), ConnectError> {
    use tokio::io::AsyncReadExt;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut buf).await.map_err(ConnectError::Io)? == 0 {
            return Err(ConnectError::ClosedDuringHandshake);
        }
        if let Some((response, head)) = handshake
            .parse_response(&buf)
            .map_err(ConnectError::Handshake)?
        {
            let _ = buf.split_to(head);
            return Ok((response, buf));
        }
    }
}
