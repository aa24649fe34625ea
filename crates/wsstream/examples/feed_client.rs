//! A market-data style feed client: connect, subscribe, print every message, and when the
//! connection drops, reconnect with exponential backoff and jitter, forever.
//!
//! ```sh
//! cargo run -p wsstream --example echo_server &          # echoes the subscription back
//! cargo run -p wsstream --example feed_client            # ws://127.0.0.1:9001/ by default
//! cargo run -p wsstream --example feed_client -- wss://feed.example.com/v1
//! ```
//!
//! Stop the echo server and start it again to watch the backoff: 0.5 s, 1 s, 2 s, …
//! capped at 30 s, each randomized, and back to 0.5 s once a connection opens.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use wsstream::{DomException, Message, WebSocketStream, WebSocketStreamOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

const SUBSCRIBE: &str = r#"{"op":"subscribe","channel":"ticker"}"#;
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// One connection, from connecting to the end of the feed. `backoff` is reset as soon as
/// the connection opens, so only consecutive failures make the delay grow.
async fn session(url: &str, backoff: &mut Duration) -> Result<(), Error> {
    let options = WebSocketStreamOptions::default()
        // A server that accepts TCP and then says nothing must not hang us forever.
        .handshake_timeout(Some(Duration::from_secs(10)))
        // Keepalive: a feed can be quiet; a Ping every 15 s notices a dead peer (no answer
        // within `ping_timeout`, 20 s by default: the connection fails, we reconnect).
        .ping_interval(Some(Duration::from_secs(15)));

    let wss = WebSocketStream::new(url, options)?; // only fails for a malformed URL
    let info = wss.opened().await?;
    *backoff = FIRST_DELAY;
    println!("connected to {url}");

    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    writer.write(SUBSCRIBE).await?;

    while let Some(message) = reader.read().await? {
        match message {
            Message::Text(text) => println!("{text}"),
            Message::Binary(bytes) => println!("<{} bytes of binary>", bytes.len()),
        }
    }
    // The server closed cleanly (e.g. a deploy sent 1001 going away): reconnect too.
    let closed = wss.closed().await?;
    println!("server closed: {:?} {:?}", closed.close_code, closed.reason);
    Ok(())
}

/// `delay` scaled by a random factor in [0.5, 1.0) ("equal jitter"), so that clients
/// disconnected together do not all come back at the same instant. The randomness comes
/// from std: each `RandomState` is seeded differently.
fn jittered(delay: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    let factor = 0.5 + (random % 1000) as f64 / 2000.0;
    delay.mul_f64(factor)
}

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let mut backoff = FIRST_DELAY;
    loop {
        match session(&url, &mut backoff).await {
            Ok(()) => {}
            // A malformed URL (a SyntaxError from `new`) will not get better by retrying.
            Err(e) if e.is::<DomException>() => {
                eprintln!("{url}: {e}");
                std::process::exit(2);
            }
            // The WebSocketError says how it ended; its source() says why (connection
            // refused, TLS, a timeout, …).
            Err(e) => match e.source() {
                Some(cause) => eprintln!("disconnected: {e}: {cause}"),
                None => eprintln!("disconnected: {e}"),
            },
        }
        let delay = jittered(backoff);
        eprintln!("reconnecting in {delay:.1?}");
        tokio::time::sleep(delay).await;
        backoff = (backoff * 2).min(MAX_DELAY);
    }
}
