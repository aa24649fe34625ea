//! `wsstream`: a WebSocket command-line client, server and demo, built on the
//! [`wsstream`] crate's `WebSocketStream` API.
//!
//! * `wsstream demo`: MDN's ping/pong client against an embedded server.
//! * `wsstream serve`: `/echo`, `/pingpong`, `/protocol`, `/headers` and the demo page
//!   (over TLS with `--tls-cert FILE --tls-key FILE`).
//! * `wsstream connect URL`: stdin lines to messages, messages to stdout (`wss://` with
//!   the system's roots, plus `--ca FILE`); at a terminal, an interactive prompt with
//!   `/ping`, `/close`, `/binary` (wscat's).
//! * `wsstream listen ADDR`: accept clients, bridged to stdin/stdout (`--once`,
//!   `--broadcast`) or to a command per connection (`--exec`), over TLS with `--tls-cert`.
//! * `wsstream bench URL`: a load generator against a WebSocket echo server.
#![forbid(unsafe_code)]

mod bench;
mod connect;
mod demo;
mod encoding;
mod http_version;
mod listen;
mod report;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "wsstream",
    version,
    about = "WebSocket client, server and demo on the WebSocketStream API"
)]
struct Cli {
    /// Log what the connections do on stderr (the wsstream crate's tracing events: the
    /// handshake, closes with code, reason and cause, protocol violations, keepalive
    /// timeouts): -v for INFO, -vv for DEBUG, -vvv for TRACE.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the MDN ping/pong client against an embedded server (or --url).
    Demo(demo::DemoArgs),
    /// Serve /echo, /pingpong, /protocol, /headers and the demo page at /, over HTTP/1.1
    /// and HTTP/2 (WebSockets over HTTP/2: RFC 8441).
    Serve(serve::ServeArgs),
    /// Connect to URL: stdin lines become messages, received messages go to stdout (at a
    /// terminal: an interactive prompt, like `wscat -c URL`).
    Connect(Box<connect::ConnectArgs>),
    /// Accept WebSocket clients on ADDR: bridge them to stdin/stdout (--once: a single
    /// client), or run a command per connection (--exec).
    Listen(Box<listen::ListenArgs>),
    /// Load-test a WebSocket echo server: round-trip latency, messages/s, errors.
    Bench(Box<bench::BenchArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.verbose > 0 {
        let level = match cli.verbose {
            1 => tracing::Level::INFO,
            2 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        };
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report::fail(format_args!("cannot start the tokio runtime: {e}")),
    };
    let status = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(*args).await,
            Command::Listen(args) => listen::run(*args).await,
            Command::Bench(args) => bench::run(*args).await,
        }
    });
    // Do not wait for a blocking stdin read that may never return.
    runtime.shutdown_background();
    status
}
