//! `wsstream demo`: MDN's WebSocketStream ping/pong client, through the public API, against
//! an embedded server (or any server with `--url`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;
use wsstream::{
    AbortSignal, Message, WebSocketCloseInfo, WebSocketError, WebSocketStream,
    WebSocketStreamOptions,
};

use crate::encoding::hex_encode;
use crate::report;
use crate::serve::Server;

/// How long the opening handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for each reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `wsstream demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Number of pings to send.
    #[arg(long, default_value_t = 3, value_name = "N")]
    rounds: u32,
    /// Pause between a pong and the next ping, in milliseconds.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    interval: u64,
    /// Run against this server instead of the embedded one (it should answer `ping`
    /// with `pong`, like `wsstream serve`'s `/pingpong`).
    #[arg(long)]
    url: Option<String>,
    /// Close code sent at the end (1000 or 3000–4999).
    #[arg(long, default_value_t = 1000, value_name = "CODE")]
    close_code: u16,
    /// Close reason sent at the end (at most 123 bytes of UTF-8).
    #[arg(long, default_value = "demo finished", value_name = "REASON")]
    close_reason: String,
}

/// Runs the demo; exits 0 once the connection closed cleanly.
pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    let close_info = WebSocketCloseInfo {
        close_code: Some(args.close_code),
        reason: args.close_reason.clone(),
    };
    // The same checks as close(), before connecting.
    if let Err(e) = WebSocketError::new("", close_info.clone()) {
        return report::usage(format_args!("invalid --close-code/--close-reason: {e}"));
    }
    let url = match args.url {
        Some(url) => url,
        None => match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => match listener.local_addr() {
                Ok(addr) => {
                    tokio::spawn(Server { log: false }.run(listener));
                    format!("ws://{addr}/pingpong")
                }
                Err(e) => return report::fail(format_args!("embedded server: {e}")),
            },
            Err(e) => return report::fail(format_args!("cannot start the embedded server: {e}")),
        },
    };
    let options =
        WebSocketStreamOptions::default().signal(Some(AbortSignal::timeout(CONNECT_TIMEOUT)));
    let wss = match WebSocketStream::new(&url, options) {
        Ok(wss) => wss,
        Err(e) => return report::usage(format_args!("invalid --url {url:?}: {e}")),
    };
    let info = match wss.opened().await {
        Ok(info) => info,
        Err(e) => {
            return report::fail(format_args!(
                "could not connect to {url}: {}",
                report::connection_error(&e)
            ));
        }
    };
    println!("CONNECTED");
    let (mut reader, mut writer) = match (info.readable.get_reader(), info.writable.get_writer()) {
        (Ok(reader), Ok(writer)) => (reader, writer),
        (Err(e), _) | (_, Err(e)) => return report::fail(e),
    };
    for round in 1..=args.rounds {
        if let Err(e) = writer.write("ping").await {
            return report::fail(format_args!("sending ping failed: {e}"));
        }
        println!("SENT: ping");
        match tokio::time::timeout(REPLY_TIMEOUT, reader.read()).await {
            Ok(Ok(Some(Message::Text(text)))) => println!("RECEIVED: {text}"),
            Ok(Ok(Some(Message::Binary(bytes)))) => {
                println!("RECEIVED: {} (binary)", hex_encode(&bytes));
            }
            Ok(Ok(None)) => {
                eprintln!("the server closed the connection after {} pings", round);
                break;
            }
            Ok(Err(e)) => {
                return report::fail(format_args!(
                    "{e}{}",
                    report::causes(&e as &(dyn std::error::Error + 'static))
                ));
            }
            Err(_) => {
                return report::fail(format_args!(
                    "no reply within {} s",
                    REPLY_TIMEOUT.as_secs()
                ));
            }
        }
        if round < args.rounds {
            tokio::time::sleep(Duration::from_millis(args.interval)).await;
        }
    }
    drop((reader, writer));
    if let Err(e) = wss.close(close_info) {
        return report::fail(e);
    }
    match wss.closed().await {
        Ok(closed) => {
            println!(
                "DISCONNECTED: code {}, reason {:?}",
                closed.close_code.unwrap_or(1005),
                closed.reason
            );
            ExitCode::SUCCESS
        }
        Err(e) => report::fail(format_args!(
            "the connection did not close cleanly: {}",
            report::connection_error(&e)
        )),
    }
}
