//! A `wss://` echo server: the echo server of `echo_server.rs` behind TLS, from a
//! certificate chain and a private key in PEM files.
//!
//! ```sh
//! # A self-signed certificate for localhost, valid 30 days (any CA-issued one works too;
//! # CA:FALSE because rustls refuses a CA certificate as a server's own):
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!     -addext basicConstraints=critical,CA:FALSE -keyout key.pem -out cert.pem
//! cargo run -p wsstream --example tls_server -- cert.pem key.pem         # 127.0.0.1:9443
//! # The client must trust that certificate: --ca adds it as a root.
//! echo hi | cargo run -p wsstream-cli -- connect --ca cert.pem wss://localhost:9443/
//! ```

use tokio::net::{TcpListener, TcpStream};
use wsstream::server::{self, ServerOptions, TlsAcceptor};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves one connection: TLS handshake, upgrade, then echo until the client closes.
async fn echo(tcp: TcpStream, tls: &TlsAcceptor) -> Result<(), Error> {
    // The TLS handshake and the upgrade request, both within
    // `ServerOptions::handshake_timeout` (10 s): a client that stalls is dropped.
    let wss = server::accept_tls(tcp, tls, ServerOptions::default()).await?;
    let info = wss.opened().await?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    while let Some(message) = reader.read().await? {
        writer.write(message).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(cert), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: tls_server CERT.pem KEY.pem [ADDR]");
        std::process::exit(2);
    };
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());

    // The chain (server certificate first, then intermediates) and its key (PKCS#8,
    // PKCS#1 or SEC1). Built once and shared: rustls, ring, TLS 1.2 and 1.3, ALPN
    // http/1.1. For client certificates or other settings, build a
    // `rustls::ServerConfig` yourself and use `TlsAcceptor::new`.
    let tls = TlsAcceptor::from_pem(&std::fs::read(&cert)?, &std::fs::read(&key)?)
        .map_err(|e| format!("cannot use {cert} and {key}: {e}"))?;

    let listener = TcpListener::bind(&addr).await?;
    println!("TLS echo server on wss://{}/", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let tls = tls.clone(); // cheap: the configuration is shared
        tokio::spawn(async move {
            if let Err(e) = echo(tcp, &tls).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}
