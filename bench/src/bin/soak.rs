//! Soak: an echo run at a steady message rate for a long time (default 600 s). Checks every
//! echo byte for byte, samples the resident memory, and fails unless the RSS at the end
//! is within 10 % of the RSS after the warm-up, no error occurred and every connection
//! closes cleanly.
//!
//! ```text
//! scripts/soak.sh                                    # DURATION=600 by default
//! cargo run --release -p wsstream-bench --bin soak -- --duration 600 --rate 2000
//! ```
//!
//! Options: `--duration S` (600), `--warmup S` (60), `--rate MSGS_PER_S` (2000, over all
//! connections), `--connections N` (16), `--sample S` (10), `--max-size BYTES` (16384; one
//! message in 200 is 16 times larger, so buffers grow and shrink all along).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;
use wsstream::server::{self, ServerOptions};
use wsstream::{Message, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    duration: u64,
    warmup: u64,
    rate: u64,
    connections: u64,
    sample: u64,
    max_size: usize,
    large_every: u64,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        duration: 600,
        warmup: 60,
        rate: 2000,
        connections: 16,
        sample: 10,
        max_size: 16 * 1024,
        large_every: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => args.duration = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--rate" => args.rate = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--sample" => args.sample = value()?.parse()?,
            "--max-size" => args.max_size = value()?.parse()?,
            "--large-every" => args.large_every = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.warmup >= args.duration {
        args.warmup = args.duration / 2;
    }
    Ok(args)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// splitmix64, seeded per connection.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Message `seq` of a connection: text or binary, its size drawn from the connection's
/// generator, its first bytes the sequence number (so a reordering is caught too).
fn message(rng: &mut Rng, seq: u64, (max_size, large_every): (usize, u64)) -> Message {
    let r = rng.next();
    let mut size = (r % (max_size as u64 + 1)) as usize;
    if large_every > 0 && (r >> 32).is_multiple_of(large_every) {
        size *= 16;
    }
    let mut body = format!("{seq:016x}").into_bytes();
    let fill = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while body.len() < size.max(16) {
        body.push(fill[(body.len() + seq as usize) % fill.len()]);
    }
    if r & 1 == 0 {
        Message::from(String::from_utf8(body).unwrap_or_default())
    } else {
        Message::from(body)
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    echoed: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    max_latency_us: AtomicU64,
}

async fn echo_server(listener: TcpListener, unclean: Arc<AtomicU64>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let unclean = unclean.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
                unclean.fetch_add(1, Ordering::AcqRel);
                return;
            };
            if let Ok(info) = wss.opened().await
                && let (Ok(mut reader), Ok(mut writer)) =
                    (info.readable.get_reader(), info.writable.get_writer())
            {
                while let Ok(Some(m)) = reader.read().await {
                    if writer.write(m).await.is_err() {
                        break;
                    }
                }
            }
            if wss.closed().await.is_err() {
                unclean.fetch_add(1, Ordering::AcqRel);
            }
        });
    }
}

/// One client: sends at `rate` messages/s until `stop`, checks every echo, then closes.
async fn client(
    url: String,
    id: u64,
    rate: f64,
    sizes: (usize, u64),
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<(), Error> {
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    let info = wss.opened().await?;
    let mut reader = info.readable.get_reader()?;
    let mut writer = info.writable.get_writer()?;
    let mut send_rng = Rng(id);
    let mut check_rng = Rng(id);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let checker = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            while let Some(sent_at) = rx.recv().await {
                let expected = message(&mut check_rng, seq, sizes);
                match reader.read().await {
                    Ok(Some(got)) if got == expected => {
                        counters.echoed.fetch_add(1, Ordering::AcqRel);
                        counters.bytes.fetch_add(got.len() as u64, Ordering::AcqRel);
                        let us = sent_at.elapsed().as_micros() as u64;
                        counters.max_latency_us.fetch_max(us, Ordering::AcqRel);
                    }
                    other => {
                        counters.errors.fetch_add(1, Ordering::AcqRel);
                        return Err::<_, Error>(format!("echo {seq}: {other:?}").into());
                    }
                }
                seq += 1;
            }
            Ok(reader)
        })
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let m = message(&mut send_rng, seq, sizes);
        if let Err(e) = writer.write(m).await {
            counters.errors.fetch_add(1, Ordering::AcqRel);
            return Err(e.into());
        }
        let _ = tx.send(Instant::now());
        counters.sent.fetch_add(1, Ordering::AcqRel);
        seq += 1;
    }
    drop(tx);
    let mut reader = checker.await??;
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: "soak done".into(),
    })?;
    let closed = wss.closed().await?;
    if reader.read().await?.is_some() || closed.close_code != Some(1000) {
        counters.errors.fetch_add(1, Ordering::AcqRel);
        return Err(format!("unexpected close {closed:?}").into());
    }
    Ok(())
}

async fn run(args: Args) -> Result<bool, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/soak", listener.local_addr()?);
    let unclean_server = Arc::new(AtomicU64::new(0));
    tokio::spawn(echo_server(listener, unclean_server.clone()));
    println!(
        "soak: {} s ({} s warm-up), {} msg/s over {} connections, sizes up to {} B \
         (x16 for 1 in {}), {url}",
        args.duration, args.warmup, args.rate, args.connections, args.max_size, args.large_every
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let per_conn = args.rate as f64 / args.connections as f64;
    let mut clients = Vec::new();
    for id in 0..args.connections {
        clients.push(tokio::spawn(client(
            url.clone(),
            id + 1,
            per_conn,
            (args.max_size, args.large_every),
            stop.clone(),
            counters.clone(),
        )));
    }
    let started = Instant::now();
    let mut warm_rss = None;
    let mut max_rss = 0;
    let mut last_echoed = 0;
    let mut next_sample = Duration::from_secs(args.sample);
    while started.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if counters.errors.load(Ordering::Acquire) > 0 {
            break;
        }
        let t = started.elapsed();
        if t >= next_sample {
            next_sample += Duration::from_secs(args.sample);
            let rss = rss_kib();
            let echoed = counters.echoed.load(Ordering::Acquire);
            if warm_rss.is_none() && t >= Duration::from_secs(args.warmup) {
                warm_rss = Some(rss);
                println!("  -- warm-up over: RSS {rss} KiB is the reference");
            }
            if warm_rss.is_some() {
                max_rss = max_rss.max(rss);
            }
            println!(
                "  t={:>4}s  RSS {rss:>7} KiB  echoed {echoed:>9} ({:>6.0}/s)  {:.1} MiB  max latency {} ms",
                t.as_secs(),
                (echoed - last_echoed) as f64 / args.sample as f64,
                counters.bytes.load(Ordering::Acquire) as f64 / (1 << 20) as f64,
                counters.max_latency_us.load(Ordering::Acquire) / 1000,
            );
            last_echoed = echoed;
        }
    }
    let end_rss = rss_kib();
    stop.store(true, Ordering::Release);
    let mut client_errors = Vec::new();
    for c in clients {
        if let Err(e) = c.await? {
            client_errors.push(e.to_string());
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let elapsed = started.elapsed();
    let sent = counters.sent.load(Ordering::Acquire);
    let echoed = counters.echoed.load(Ordering::Acquire);
    let errors = counters.errors.load(Ordering::Acquire);
    let unclean = unclean_server.load(Ordering::Acquire);
    let warm = warm_rss.unwrap_or(end_rss);
    let drift = (end_rss as f64 - warm as f64) / warm.max(1) as f64 * 100.0;
    println!(
        "soak: {elapsed:.1?}, {sent} sent, {echoed} echoed byte-exact ({:.0} msg/s, {:.1} MiB), \
         {errors} errors, {} client errors, {unclean} unclean server closes",
        echoed as f64 / elapsed.as_secs_f64(),
        counters.bytes.load(Ordering::Acquire) as f64 / (1 << 20) as f64,
        client_errors.len()
    );
    println!(
        "RSS after warm-up {warm} KiB, at the end {end_rss} KiB ({drift:+.1} %), max after warm-up {max_rss} KiB"
    );
    for e in client_errors.iter().take(5) {
        println!("  error: {e}");
    }
    let ok = errors == 0
        && client_errors.is_empty()
        && unclean == 0
        && sent == echoed
        && drift.abs() <= 10.0;
    println!("soak: {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if !runtime.block_on(run(args))? {
        std::process::exit(1);
    }
    Ok(())
}
