//! A line-based chat client: what you type is sent, what arrives is printed. The reader
//! and the writer live on two tasks, so a message can arrive while you type.
//!
//! ```sh
//! cargo run -p wsstream --example echo_server &
//! cargo run -p wsstream --example chat_client                  # ws://127.0.0.1:9001/
//! cargo run -p wsstream --example chat_client -- wss://chat.example.com/room/42
//! ```
//!
//! End with Ctrl-D (end of input): the client closes with 1000 and waits for the closing
//! handshake to finish before exiting.

use tokio::sync::mpsc;
use wsstream::{Message, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    let info = wss.opened().await?;
    println!("connected to {url}; type a line to send it, Ctrl-D to leave");
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;

    // Standard input is read on a plain thread (reading it blocks) and handed over a small
    // channel; its sender is dropped at end of input, which ends `lines.recv()`. A plain
    // thread, not `spawn_blocking`: the runtime would wait for it at exit.
    let (lines_tx, mut lines) = mpsc::channel::<String>(8);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break; // the connection is gone
            }
        }
    });

    // Task 1: stdin → the writer. Awaiting each write keeps at most one line in flight
    // beyond the send buffer (backpressure, if the server stops reading).
    let mut sending = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            writer.write(line).await?;
        }
        Ok::<_, Error>(())
    });
    // Task 2: the reader → stdout, until the server closes.
    let mut printing = tokio::spawn(async move {
        while let Some(message) = reader.read().await? {
            match message {
                Message::Text(text) => println!("< {text}"),
                Message::Binary(bytes) => println!("< ({} bytes of binary)", bytes.len()),
            }
        }
        Ok::<_, Error>(())
    });

    // Whichever ends first: end of input (we close), or the server closing on us.
    tokio::select! {
        sent = &mut sending => {
            if let Ok(Err(e)) = sent {
                eprintln!("send failed: {e}");
            }
            // Every line written before this is still sent, then the Close frame.
            wss.close(WebSocketCloseInfo { close_code: Some(1000), reason: "bye".into() })?;
            // Messages that crossed our Close are still printed by task 2, which ends
            // when the closing handshake is done.
            let _ = printing.await;
        }
        printed = &mut printing => {
            if let Ok(Err(e)) = printed {
                eprintln!("receive failed: {e}");
            }
            sending.abort();
        }
    }
    // `closed()` settles once the closing handshake is over (and TCP is closed): the code
    // and reason of the Close frame we received, or the error of an unclean close.
    match wss.closed().await {
        Ok(closed) => println!("closed: {:?} {:?}", closed.close_code, closed.reason),
        Err(e) => println!("closed uncleanly: {e}"),
    }
    Ok(())
}
