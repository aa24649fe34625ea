//! The smallest useful server: a plain `ws://` echo server. Every TCP connection is
//! upgraded with `server::accept` and each message is written back as it was received
//! (text stays text, binary stays binary).
//!
//! ```sh
//! cargo run -p wsstream --example echo_server                  # listens on 127.0.0.1:9001
//! cargo run -p wsstream --example echo_server -- 0.0.0.0:8080
//! echo hi | cargo run -p wsstream-cli -- connect ws://127.0.0.1:9001/
//! ```

use tokio::net::{TcpListener, TcpStream};
use wsstream::server::{self, ServerOptions};

/// Serves one connection: upgrade, then echo until the client closes.
async fn echo(tcp: TcpStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Reads the HTTP upgrade request and answers 101 (any path, no subprotocol). A client
    // that sends nothing within 10 s (`ServerOptions::handshake_timeout`) is dropped.
    let wss = server::accept(tcp, ServerOptions::default()).await?;
    let info = wss.opened().await?; // already resolved on the server side
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;

    // `read()` yields `None` once the client's Close is received and answered. Awaiting
    // each write before the next read is the backpressure: a client that does not read
    // its echoes fills our send buffer, the write waits, and we stop reading from it.
    while let Some(message) = reader.read().await? {
        writer.write(message).await?;
    }
    // How the connection ended: the client's close code and reason.
    let closed = wss.closed().await?;
    println!("closed: {:?} {:?}", closed.close_code, closed.reason);
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server on ws://{}/", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        // One task per connection: a slow or stuck client holds up nobody else.
        tokio::spawn(async move {
            if let Err(e) = echo(tcp).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}
