//! Autobahn|TestSuite client: echoes every message of every fuzzingserver case.
//!
//! A binary of the unpublished `wsstream-bench` crate. The usual way to run it builds it,
//! starts the fuzzingserver and judges the report:
//!
//! ```sh
//! scripts/autobahn.sh            # cases 1.* to 11.*, reports in target/autobahn-reports
//! ```
//!
//! By hand, against a `wstest -m fuzzingserver` already listening:
//!
//! ```sh
//! AUTOBAHN_URL=ws://127.0.0.1:9001 AUTOBAHN_AGENT=wsstream \
//!     cargo run --release -p wsstream-bench --bin autobahn_client
//! ```
//!
//! Protocol: `/getCaseCount` sends the number N of cases as text and closes; each
//! `/runCase?case=i&agent=AGENT` (i in 1..=N) is echoed message by message until the server
//! closes; `/updateReports?agent=AGENT` makes the server write its reports. A case that fails
//! the connection (the protocol errors under test) is logged and the run goes on. The exit
//! status is non-zero only when the case count cannot be read.

use std::error::Error;
use std::process::ExitCode;

use wsstream::{Message, WebSocketOpenInfo, WebSocketStream, WebSocketStreamOptions};

type BoxError = Box<dyn Error + Send + Sync>;

fn connect(url: &str) -> Result<WebSocketStream, BoxError> {
    // Case 9.* sends messages of up to 16 MiB.
    let options = WebSocketStreamOptions::default().max_message_size(64 << 20);
    Ok(WebSocketStream::new(url, options)?)
}

/// Reads the case count, the only message of `/getCaseCount`.
async fn case_count(url: &str) -> Result<u32, BoxError> {
    let wss = connect(&format!("{url}/getCaseCount"))?;
    let WebSocketOpenInfo { readable, .. } = wss.opened().await?;
    let mut reader = readable.get_reader()?;
    let first = reader.read().await?;
    while let Ok(Some(_)) = reader.read().await {}
    let _ = wss.closed().await;
    match first {
        Some(Message::Text(text)) => Ok(text.trim().parse()?),
        _ => Err("the first message of /getCaseCount is not a text message".into()),
    }
}

/// Echoes every message back until the server closes or the connection fails.
async fn echo(url: &str) -> Result<(), BoxError> {
    let wss = connect(url)?;
    let WebSocketOpenInfo {
        readable, writable, ..
    } = wss.opened().await?;
    let mut reader = readable.get_reader()?;
    let mut writer = writable.get_writer()?;
    let echoed = async {
        while let Some(msg) = reader.read().await? {
            writer.write(msg).await?;
        }
        Ok::<_, BoxError>(())
    }
    .await;
    // Clean close or failed connection: let it settle before the next case connects.
    let _ = wss.closed().await;
    echoed
}

/// Logs an error with the causes its message does not already spell out.
fn log_error(what: &str, err: &(dyn Error + 'static)) {
    let mut msg = format!("autobahn_client: {what}: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_msg = cause.to_string();
        if !msg.contains(&cause_msg) {
            msg = format!("{msg}: {cause_msg}");
        }
        source = cause.source();
    }
    eprintln!("{msg}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("AUTOBAHN_URL").unwrap_or_else(|_| "ws://127.0.0.1:9001".into());
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "wsstream".into());

    let count = match case_count(&url).await {
        Ok(count) => count,
        Err(err) => {
            log_error(&format!("reading the case count from {url}"), &*err);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("autobahn_client: running {count} cases against {url} as agent {agent}");
    for case in 1..=count {
        if let Err(err) = echo(&format!("{url}/runCase?case={case}&agent={agent}")).await {
            log_error(&format!("case {case}"), &*err);
        }
    }
    if let Err(err) = echo(&format!("{url}/updateReports?agent={agent}")).await {
        log_error("updateReports", &*err);
    }
    ExitCode::SUCCESS
}
