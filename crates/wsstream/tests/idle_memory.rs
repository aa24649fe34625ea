//! What an idle connection costs: the heap held per open, idle connection pair (our client
//! and our server in one process), measured with a counting allocator. Guards the issue-6
//! work: no read buffer while the socket has nothing to read, no deflate state unless
//! negotiated, nothing allocated per connection that an idle one does not need.
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use cap::Cap;
use tokio::net::TcpListener;
use wsstream::server::{self, ServerOptions};
use wsstream::{WebSocketStream, WebSocketStreamOptions};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Connections opened for the measurement.
const CONNECTIONS: usize = 200;

/// Heap held per idle client + server connection pair, in bytes. Measured: 3,290 bytes
/// (2026-11-22); 3,822 bytes with the runtime that does the I/O in the caller's task (the
/// wake hub and its two socket wakers, 2026-12-06); 4,298 bytes once each connection keeps
/// its 101 response head for `WebSocketOpenInfo::response()` (parsed on demand; 5,314 when
/// the info held a parsed `http::Response`, a header map per side); with a 4 KiB read
/// buffer held per side while idle: 11,943 bytes.
const BOUND_PER_PAIR: usize = 8 << 10;

#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_pair_holds_no_read_buffers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let (tcp, _) = listener.accept().await.unwrap();
            let options = ServerOptions::default().compression(None);
            let wss = server::accept(tcp, options).await.unwrap();
            let info = wss.opened().await.unwrap();
            held.push((wss, info));
        }
        held
    });
    // Warm up the runtime, the allocator and the timer wheel with one connection.
    let warm = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let warm_info = warm.opened().await.unwrap();
    let before = ALLOC.allocated();
    let mut clients = Vec::new();
    for _ in 1..CONNECTIONS {
        let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
        let info = wss.opened().await.unwrap();
        clients.push((wss, info));
    }
    let servers = server.await.unwrap();
    // Let every connection task reach its idle wait: after the application's first turn
    // (which lasts until its first move, or one to two ticks of 50 ms), a connection
    // nobody uses reads the socket, finds nothing, and frees its timer.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let per_pair = ALLOC.allocated().saturating_sub(before) / (CONNECTIONS - 1);
    eprintln!("heap per idle connection pair (client + server): {per_pair} bytes");
    assert!(
        per_pair < BOUND_PER_PAIR,
        "{per_pair} bytes per idle connection pair"
    );
    drop((clients, servers, warm, warm_info));
}
