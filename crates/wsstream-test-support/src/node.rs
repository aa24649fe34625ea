//! Node.js as an independent peer: the scripts in this crate's `node/` directory, run with
//! the `node` binary (Node.js 18 or later; its built-in modules only, no npm install).

use std::path::PathBuf;
use std::process::Command;

/// The WebSocket-over-HTTP/2 client (RFC 8441) on Node's built-in `http2` module:
/// `node <script> https://HOST:PORT/echo` (TLS, certificate not checked) or
/// `http://HOST:PORT/echo` (cleartext HTTP/2 with prior knowledge). It opens three
/// extended CONNECT streams on one connection (`/echo?n=1`, `?n=2`, `?n=3`), echoes on
/// each, closes the first with a WebSocket Close (1000 "bye"; the server must answer
/// Close and END_STREAM), resets the second (RST_STREAM INTERNAL_ERROR), echoes on the
/// third and closes it (1000 "done"); prints `ok` and exits 0, or prints `FAIL: …` to
/// stderr and exits 1. With a second argument `goaway` it opens two streams, echoes on
/// both, then ends the connection with a GOAWAY carrying INTERNAL_ERROR.
pub fn h2_websocket_client() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/node/h2_websocket_client.mjs"
    ))
}

/// Whether `node` can run. When it cannot: under `CI=true` this panics (CI must install
/// Node.js), elsewhere it prints why the calling test is skipped and returns `false`.
pub fn available(test: &str) -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: `node` (Node.js 18 or later) is required on CI"
    );
    eprintln!("{test}: skipped, `node` is not installed (Node.js 18 or later runs it)");
    false
}
