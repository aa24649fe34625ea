//! A client that connects through a proxy: HTTP `CONNECT` (`http://`, `https://`) or
//! SOCKS5 (`socks5://`, `socks5h://` where the proxy resolves the host name).
//!
//! ```sh
//! # The proxy from the command line (user:password@ in the URL is sent as credentials):
//! cargo run -p wsstream --example proxy_client -- wss://echo.websocket.org/ socks5h://127.0.0.1:1080
//! # Or from the environment, as curl reads it (ws_proxy/http_proxy for ws://,
//! # wss_proxy/https_proxy for wss://, all_proxy, no_proxy):
//! https_proxy=http://proxy.internal:3128 cargo run -p wsstream --example proxy_client -- wss://echo.websocket.org/
//! # All local: the echo server, through a tiny CONNECT proxy this example starts itself:
//! cargo run -p wsstream --example echo_server &
//! cargo run -p wsstream --example proxy_client -- ws://127.0.0.1:9001/ demo
//! ```
//!
//! Loopback hosts (`localhost`, `127.0.0.1`, `::1`) are never proxied from the
//! environment, as in browsers: give the proxy explicitly (`Proxy::Url`) for those.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wsstream::{Proxy, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "wss://echo.websocket.org/".into());

    // `Proxy::FromEnv` is the default; `Proxy::None` ignores the environment.
    let proxy = match args.next().as_deref() {
        None => Proxy::FromEnv,
        Some("demo") => Proxy::Url(demo_proxy().await?),
        Some(proxy) => Proxy::Url(proxy.into()),
    };
    let options = WebSocketStreamOptions::default()
        // Bounds DNS, TCP, the proxy's answer, TLS and the upgrade together.
        .handshake_timeout(Some(Duration::from_secs(10)))
        .proxy(proxy);
    println!("connecting to {url} with {:?}", options.proxy);

    let wss = WebSocketStream::new(&url, options)?;
    let info = match wss.opened().await {
        Ok(info) => info,
        Err(e) => {
            // The cause chain says which step failed: e.g. "proxy http://proxy:3128:
            // CONNECT refused with 407 Proxy Authentication Required".
            let mut cause: Option<&dyn std::error::Error> = Some(&e);
            while let Some(e) = cause {
                eprintln!("  {e}");
                cause = e.source();
            }
            std::process::exit(1);
        }
    };
    // Once open, nothing differs from a direct connection: the tunnel is just bytes.
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    writer.write("hello through the proxy").await?;
    if let Some(message) = reader.read().await? {
        println!("received {message:?}");
    }
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: "done".into(),
    })?;
    println!("closed: {:?}", wss.closed().await?);
    Ok(())
}

/// A minimal HTTP CONNECT proxy on a free loopback port, only so that this example runs
/// without a proxy installed. Returns its URL. No authentication, no limits: not for use.
async fn demo_proxy() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                // "CONNECT host:port HTTP/1.1", then headers up to an empty line.
                let mut line = String::new();
                client.read_line(&mut line).await?;
                let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
                loop {
                    line.clear();
                    if client.read_line(&mut line).await? <= 2 {
                        break;
                    }
                }
                println!("demo proxy: CONNECT {target}");
                let mut upstream = TcpStream::connect(&target).await?;
                // Nothing is buffered past the head: the client waits for our 200.
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
                Ok::<_, std::io::Error>(())
            });
        }
    });
    Ok(url)
}
