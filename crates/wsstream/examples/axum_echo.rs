//! An axum router with a WebSocket echo at `/echo` (subprotocol `echo` when offered) and
//! a page at `/` (feature `axum`):
//!
//! ```sh
//! cargo run -p wsstream --features axum --example axum_echo -- 127.0.0.1:8080
//! echo hi | cargo run -p wsstream-cli -- connect ws://127.0.0.1:8080/echo
//! ```

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use wsstream::WebSocketStream;
use wsstream::server::ServerOptions;
use wsstream::server::axum::WebSocketUpgrade;

/// Rejected with 400 (426 for a wrong version) before it runs if the request is not a
/// valid upgrade.
async fn echo_route(ws: WebSocketUpgrade) -> Response {
    ws.select_protocol(&["echo"])
        .on_upgrade(ServerOptions::default(), echo)
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
    let app = Router::new()
        .route("/", get(|| async { "WebSocket echo at /echo\n" }))
        .route("/echo", get(echo_route));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
