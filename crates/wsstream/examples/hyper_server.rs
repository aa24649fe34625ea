//! A hyper 1.x server with a page at `/` and a WebSocket echo at `/echo`, on one port
//! (feature `hyper`):
//!
//! ```sh
//! cargo run -p wsstream --features hyper --example hyper_server -- 127.0.0.1:8080
//! echo hi | cargo run -p wsstream-cli -- connect ws://127.0.0.1:8080/echo
//! ```

use std::convert::Infallible;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use wsstream::WebSocketStream;
use wsstream::http::HeaderMap;
use wsstream::server::ServerOptions;
use wsstream::server::hyper::{Body, HyperUpgrade, error_response};

async fn service(mut request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    match request.uri().path() {
        "/" => Ok(Response::new(Body::from("<p>WebSocket echo at /echo</p>"))),
        "/echo" => {
            let upgrade = match HyperUpgrade::from_request(&mut request) {
                Ok(upgrade) => upgrade,
                Err(e) => return Ok(error_response(&e)), // 400, or 426 for a wrong version
            };
            let options = ServerOptions::default();
            let Ok((response, upgrading)) = upgrade.accept(None, &HeaderMap::new(), options) else {
                unreachable!("no protocol and no extra header: nothing to refuse");
            };
            tokio::spawn(async move {
                if let Ok(wss) = upgrading.await {
                    echo(wss).await;
                }
            });
            Ok(response)
        }
        _ => {
            let mut response = Response::new(Body::from("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            Ok(response)
        }
    }
}

async fn echo(wss: WebSocketStream) {
    let Ok(info) = wss.opened().await else { return };
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10)) // slow clients are cut off
                .serve_connection(TokioIo::new(tcp), service_fn(service))
                .with_upgrades()
                .await;
        });
    }
}
