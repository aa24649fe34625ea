//! One producer fanned out to every connected client: a tick every 100 ms, sent to all.
//! Shows per-client backpressure with a bounded memory footprint, whatever the clients do.
//!
//! ```sh
//! cargo run -p wsstream --example broadcast_server             # ws://127.0.0.1:9002/
//! cargo run -p wsstream-cli -- connect ws://127.0.0.1:9002/     # in as many terminals as you like
//! ```
//!
//! Why memory stays bounded when a client stops reading:
//!
//! * Each client has its own task, whose `writer.write(..).await` completes only once the
//!   message fits in that connection's send buffer (64 KiB by default, bounded). A client
//!   that stops reading fills its TCP window, then the send buffer, and its task waits in
//!   `write`: the backpressure stops at that one task, and nobody else waits.
//! * The producer never waits for anyone: `tokio::sync::broadcast` is a ring of
//!   `CAPACITY` messages shared by all receivers (each message stored once; `Message`
//!   clones share their bytes). When a slow client falls more than `CAPACITY` messages
//!   behind, the oldest are overwritten for it: its next `recv()` reports
//!   `Lagged(n)`, and it skips ahead. We count those skips per client.
//!
//! So a stuck client costs at most its send buffer, the kernel's socket buffers and its
//! share of the ring, never a queue that grows. (The other policy, a bounded `mpsc` per
//! client with `try_send` dropping on full, bounds memory the same way.)

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use wsstream::Message;
use wsstream::server::{self, ServerOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How many messages a client may fall behind before it starts skipping.
const CAPACITY: usize = 64;

/// Forwards the feed to one client until it leaves, counting the messages it skipped.
async fn client(
    tcp: TcpStream,
    feed: &mut broadcast::Receiver<Message>,
    skipped: &mut u64,
) -> Result<(), Error> {
    let wss = server::accept(tcp, ServerOptions::default()).await?;
    let info = wss.opened().await?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    loop {
        tokio::select! {
            next = feed.recv() => match next {
                // Waits while this client's send buffer is full: backpressure.
                Ok(message) => writer.write(message).await?,
                Err(RecvError::Lagged(n)) => *skipped += n,
                Err(RecvError::Closed) => break, // the producer is gone
            },
            // Reading is also how the client's Close is noticed (`None`). Anything the
            // client sends is ignored here. Dropping a pending `read()` loses nothing.
            incoming = reader.read() => if incoming?.is_none() {
                break;
            },
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("broadcasting on ws://{}/", listener.local_addr()?);

    // The producer: one message every 100 ms. `send` fails only when nobody listens.
    let (feed, _) = broadcast::channel::<Message>(CAPACITY);
    let producer = feed.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        for tick in 0u64.. {
            interval.tick().await;
            let _ = producer.send(Message::from(format!("tick {tick}")));
        }
    });

    loop {
        let (tcp, peer) = listener.accept().await?;
        // Subscribe now: the client gets the ticks sent from this point on.
        let mut receiver = feed.subscribe();
        tokio::spawn(async move {
            let mut skipped = 0;
            let outcome = client(tcp, &mut receiver, &mut skipped).await;
            // A client that left while stuck in `write` has not seen its lag yet.
            if let Err(TryRecvError::Lagged(n)) = receiver.try_recv() {
                skipped += n;
            }
            let how = outcome.err().map_or("left".into(), |e| e.to_string());
            println!("{peer}: {how}; skipped {skipped} messages");
        });
    }
}
