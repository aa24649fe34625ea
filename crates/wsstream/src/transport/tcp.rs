//! The TCP connection of a client: to the URL's host directly or, with the `proxy`
//! feature, through the proxy the options select.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use url::{Host, Url};

use super::Transport;
use crate::client::ConnectError;
use crate::options::WebSocketStreamOptions;

/// The TCP connection of a client: to the URL's host directly, or a tunnel through the
/// proxy the options select for it (`proxy` feature). TLS with the target (for `wss://`)
/// and the opening handshake run over the returned stream.
pub(crate) async fn connect(
    target: &Url,
    options: &WebSocketStreamOptions,
) -> Result<Transport, ConnectError> {
    let host = target.host().ok_or_else(|| {
        ConnectError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "URL without host",
        ))
    })?;
    let port = target.port_or_known_default().unwrap_or(80);
    #[cfg(feature = "proxy")]
    if let Some(proxy) = crate::proxy::select(target, options)? {
        return proxy.tunnel(target, host, port, options).await;
    }
    Ok(Transport::Tcp(
        connect_direct(host, port, options.tcp_keepalive)
            .await
            .map_err(ConnectError::Io)?,
    ))
}

/// Resolves `host` and connects to each address in turn (tokio tries every resolved
/// address, IPv6 and IPv4, until one accepts), then sets `TCP_NODELAY` and, if asked,
/// `SO_KEEPALIVE` with `keepalive` as the idle time before the first probe.
pub(crate) async fn connect_direct(
    host: Host<&str>,
    port: u16,
    keepalive: Option<Duration>,
) -> io::Result<TcpStream> {
    let tcp = match host {
        Host::Domain(domain) => TcpStream::connect((domain, port)).await,
        Host::Ipv4(ip) => TcpStream::connect((ip, port)).await,
        Host::Ipv6(ip) => TcpStream::connect((ip, port)).await,
    }?;
    tcp.set_nodelay(true)?;
    if let Some(time) = keepalive {
        socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(time))?;
    }
    Ok(tcp)
}
