//! The whole matrix: every scenario × client, repeated with the client order rotated, each
//! run in a fresh process; medians printed as markdown tables.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::BoxError;
use crate::clients::{CLIENTS, Client};
use crate::scenario::{Kind, Outcome, SCENARIOS, Scenario};

/// A run that takes longer than this is killed and counted as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
}

/// Runs the matrix (filtered by `WSB_SCENARIOS` and `WSB_CLIENTS`, `WSB_REPS` times) and
/// prints the tables. Fails if any run failed its checks.
pub(crate) fn run() -> Result<(), BoxError> {
    let reps: usize = std::env::var("WSB_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let scenarios: Vec<Scenario> = match env_list("WSB_SCENARIOS") {
        Some(names) => names
            .iter()
            .map(|n| Scenario::find(n).ok_or_else(|| format!("unknown scenario {n}")))
            .collect::<Result<_, _>>()?,
        None => SCENARIOS.to_vec(),
    };
    let clients: Vec<Client> = match env_list("WSB_CLIENTS") {
        Some(names) => names
            .iter()
            .map(|n| Client::find(n).ok_or_else(|| format!("unknown client {n}")))
            .collect::<Result<_, _>>()?,
        None => CLIENTS.to_vec(),
    };
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut results: BTreeMap<(usize, usize), Vec<Outcome>> = BTreeMap::new();
    let mut failures = Vec::new();
    for rep in 0..reps {
        for (si, scenario) in scenarios.iter().enumerate() {
            for k in 0..clients.len() {
                let ci = (k + rep) % clients.len();
                let client = clients[ci];
                // Peers without permessage-deflate skip the deflate scenarios (and yawc
                // runs only those): no cell, no failure.
                if !client.supports(scenario.kind) {
                    continue;
                }
                match run_one(&exe, scenario.name, client.name()) {
                    Ok(outcome) => {
                        eprintln!(
                            "[{:>5.1}s] rep {}/{reps} {:<19} {:<18} {}",
                            started.elapsed().as_secs_f64(),
                            rep + 1,
                            scenario.name,
                            client.name(),
                            brief(scenario.kind, &outcome)
                        );
                        results.entry((si, ci)).or_default().push(outcome);
                    }
                    Err(e) => {
                        eprintln!("FAILED {} {}: {e}", scenario.name, client.name());
                        failures.push(format!("{} {}: {e}", scenario.name, client.name()));
                    }
                }
            }
        }
    }
    let medians: BTreeMap<(usize, usize), Outcome> =
        results.into_iter().map(|(k, v)| (k, median(&v))).collect();
    print_tables(&scenarios, &clients, &medians, reps);
    eprintln!("matrix took {:.0} s", started.elapsed().as_secs_f64());
    if failures.is_empty() {
        Ok(())
    } else {
        println!("\n**Failed runs:**\n");
        for f in &failures {
            println!("- {f}");
        }
        Err(format!("{} run(s) failed their checks", failures.len()).into())
    }
}

fn run_one(exe: &std::path::Path, scenario: &str, client: &str) -> Result<Outcome, BoxError> {
    let mut child = Command::new(exe)
        .args([scenario, client])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("timed out".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().map_err(|_| "stdout reader panicked")?;
    if !status.success() {
        return Err(format!("exit {status}").into());
    }
    out.lines()
        .find_map(Outcome::parse)
        .ok_or_else(|| format!("no RESULT line in {out:?}").into())
}

fn brief(kind: Kind, o: &Outcome) -> String {
    match kind {
        Kind::RecvDeflate { .. } | Kind::SendDeflate { .. } => {
            format!(
                "{:>12.0} msg/s {:>9.1} MB/s {:>9.1} CPU ns/msg  wire/raw {:.3}",
                o.rate, o.mbps, o.cpu_ns, o.wire_ratio
            )
        }
        Kind::Recv { .. } | Kind::Send { .. } => {
            format!(
                "{:>12.0} msg/s {:>9.1} MB/s {:>9.1} CPU ns/msg",
                o.rate, o.mbps, o.cpu_ns
            )
        }
        Kind::Echo { .. } => format!(
            "{:>12.0} rt/s  p50 {:.1} µs p99 {:.1} µs {:.0} CPU ns/rt",
            o.rate, o.p50_us, o.p99_us, o.cpu_ns
        ),
        Kind::Idle { .. } => format!(
            "RSS {:.2} KiB/conn heap {:.2} KiB/conn",
            o.rss_kib, o.heap_kib
        ),
        Kind::ServerEcho { .. } => format!(
            "{:>12.0} rt/s  p50 {:.1} µs p99 {:.1} µs server {:.0} CPU ns/rt, load client {:.0}",
            o.rate, o.p50_us, o.p99_us, o.server_cpu_ns, o.cpu_ns
        ),
        Kind::ServerIdle { .. } => format!("server RSS {:.2} KiB/conn", o.rss_kib),
        Kind::Streams { .. } => format!(
            "open all {:.0} ms (p50 {:.1} ms p99 {:.1} ms) RSS/stream client {:.2} KiB \
             server {:.2} KiB, {:.0} TCP",
            o.open_ms,
            o.p50_us / 1e3,
            o.p99_us / 1e3,
            o.rss_kib,
            o.server_rss_kib,
            o.conns
        ),
    }
}

fn median(v: &[Outcome]) -> Outcome {
    let m = |f: fn(&Outcome) -> f64| {
        let mut xs: Vec<f64> = v.iter().map(f).collect();
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        }
    };
    Outcome {
        rate: m(|o| o.rate),
        mbps: m(|o| o.mbps),
        p50_us: m(|o| o.p50_us),
        p99_us: m(|o| o.p99_us),
        cpu_ns: m(|o| o.cpu_ns),
        rss_kib: m(|o| o.rss_kib),
        heap_kib: m(|o| o.heap_kib),
        wire_ratio: m(|o| o.wire_ratio),
        server_cpu_ns: m(|o| o.server_cpu_ns),
        open_ms: m(|o| o.open_ms),
        server_rss_kib: m(|o| o.server_rss_kib),
        conns: m(|o| o.conns),
        server_heap_kib: m(|o| o.server_heap_kib),
    }
}

/// `x / reference` as "0.93×", or "–" without a reference.
fn ratio(x: f64, reference: Option<f64>) -> String {
    match reference {
        Some(r) if r > 0.0 => format!("{:.2}×", x / r),
        _ => "–".into(),
    }
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn label(scenario: &Scenario) -> String {
    let base = label_kind(scenario.kind);
    if scenario.kind.is_server() {
        // The runtime of the server measured (the load client is always current-thread).
        let runtime = if scenario.multi {
            "2 workers"
        } else {
            "current-thread"
        };
        format!("{base}, {runtime}")
    } else if scenario.multi {
        format!("{base}, multi-thread runtime")
    } else {
        base
    }
}

fn label_kind(kind: Kind) -> String {
    let size = |s: usize| {
        if s >= 1 << 20 {
            format!("{} MiB", s >> 20)
        } else if s >= 1024 {
            format!("{} KiB", s >> 10)
        } else {
            format!("{s} B")
        }
    };
    let count = |n: u64| human(n as f64).replace(' ', "");
    match kind {
        Kind::Recv { n, size: s, text } => format!(
            "receive {} × {} {}",
            size(s),
            count(n),
            if text { "text" } else { "binary" }
        ),
        Kind::Send { n, size: s } => format!("send {} × {}", size(s), count(n)),
        Kind::Echo { n, size: s } => format!("echo {} × {} round trips", size(s), count(n)),
        Kind::Idle { conns } => format!("{} idle connections", count(conns)),
        Kind::RecvDeflate { n, size: s } => {
            format!("receive {} × {} text, deflate", size(s), count(n))
        }
        Kind::SendDeflate { n, size: s } => {
            format!("send {} × {} text, deflate", size(s), count(n))
        }
        Kind::ServerEcho { conns, n, size: s } => format!(
            "{} × {} round trips, {conns} connection{}",
            size(s),
            count(n),
            if conns == 1 { "" } else { "s" }
        ),
        Kind::ServerIdle { conns } => format!("{} idle connections", count(conns)),
        Kind::Streams {
            n,
            http,
            at_once,
            max_streams,
        } => {
            let opening = if at_once == 0 {
                "all at once".to_owned()
            } else {
                format!("{at_once} at a time")
            };
            let limit = if http == crate::scenario::Http::H2 {
                format!(
                    ", server allows {} streams per connection",
                    thousands(u64::from(max_streams))
                )
            } else {
                String::new()
            };
            format!(
                "{} streams, {}, {opening}{limit}",
                thousands(n),
                http.label()
            )
        }
    }
}

/// `n` with a comma between groups of three digits (1,000).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_tables(
    scenarios: &[Scenario],
    clients: &[Client],
    medians: &BTreeMap<(usize, usize), Outcome>,
    reps: usize,
) {
    let raw = clients.iter().position(|c| *c == Client::Raw);
    let peers: Vec<usize> = (0..clients.len())
        .filter(|&i| clients[i].is_peer())
        .collect();
    let best_peer = |si: usize, f: fn(&Outcome) -> f64, higher: bool| -> Option<f64> {
        let vals = peers.iter().filter_map(|&ci| medians.get(&(si, ci)).map(f));
        if higher {
            vals.reduce(f64::max)
        } else {
            vals.reduce(f64::min)
        }
    };
    let raw_of =
        |si: usize, f: fn(&Outcome) -> f64| raw.and_then(|ci| medians.get(&(si, ci)).map(f));
    let scale = crate::scale();
    println!(
        "\nMedians of {reps} runs per cell{}; each run in its own process, clients interleaved.\n",
        if (scale - 1.0).abs() > f64::EPSILON {
            format!(", counts scaled by {scale}")
        } else {
            String::new()
        }
    );

    // Throughput tables: plain scenarios, then the deflate ones with the wire ratio.
    for (first_column, deflate) in [("scenario", false), ("permessage-deflate", true)] {
        let rows: Vec<usize> = (0..scenarios.len())
            .filter(|&i| match scenarios[i].kind {
                Kind::Recv { .. } | Kind::Send { .. } => !deflate,
                kind => deflate && kind.is_deflate(),
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let (extra_head, extra_align) = if deflate {
            (" wire / payload bytes |", "---:|")
        } else {
            ("", "")
        };
        println!(
            "| {first_column} | client | messages/s | MB/s | × raw | × best peer | CPU ns/msg | CPU × best peer |{extra_head}"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|{extra_align}");
        for &si in &rows {
            for (ci, c) in clients.iter().enumerate() {
                let Some(o) = medians.get(&(si, ci)) else {
                    continue;
                };
                let extra = if deflate {
                    format!(" {:.3} |", o.wire_ratio)
                } else {
                    String::new()
                };
                println!(
                    "| {} | {} | {} | {:.0} | {} | {} | {:.1} | {} |{extra}",
                    label(&scenarios[si]),
                    c.name(),
                    human(o.rate),
                    o.mbps,
                    ratio(o.rate, raw_of(si, |o| o.rate)),
                    ratio(o.rate, best_peer(si, |o| o.rate, true)),
                    o.cpu_ns,
                    ratio(o.cpu_ns, best_peer(si, |o| o.cpu_ns, false)),
                );
            }
        }
        println!();
    }
    for si in (0..scenarios.len()).filter(|&i| matches!(scenarios[i].kind, Kind::Echo { .. })) {
        println!(
            "| {} | round trips/s | p50 µs | p99 µs | p50 × raw | p99 × best peer | CPU ns/rt |",
            label(&scenarios[si])
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (ci, c) in clients.iter().enumerate() {
            let Some(o) = medians.get(&(si, ci)) else {
                continue;
            };
            println!(
                "| {} | {} | {:.1} | {:.1} | {} | {} | {:.0} |",
                c.name(),
                human(o.rate),
                o.p50_us,
                o.p99_us,
                ratio(o.p50_us, raw_of(si, |o| o.p50_us)),
                ratio(o.p99_us, best_peer(si, |o| o.p99_us, false)),
                o.cpu_ns,
            );
        }
        println!();
    }
    for si in (0..scenarios.len()).filter(|&i| matches!(scenarios[i].kind, Kind::Idle { .. })) {
        println!(
            "| {} | RSS KiB/conn | heap KiB/conn | RSS × best peer |",
            label(&scenarios[si])
        );
        println!("|---|---:|---:|---:|");
        for (ci, c) in clients.iter().enumerate() {
            let Some(o) = medians.get(&(si, ci)) else {
                continue;
            };
            let heap = if o.heap_kib < 0.0 {
                "–".into()
            } else {
                format!("{:.2}", o.heap_kib)
            };
            println!(
                "| {} | {:.2} | {heap} | {} |",
                c.name(),
                o.rss_kib,
                ratio(o.rss_kib, best_peer(si, |o| o.rss_kib, false)),
            );
        }
        println!();
    }
    let targets = print_targets(scenarios, clients, medians, &raw_of, &best_peer);
    let server = scenarios.iter().any(|s| s.kind.is_server());
    if targets && server {
        // The targets table ends without a blank line (the script's own line follows it).
        println!();
    }
    print_server_tables(scenarios, clients, medians, &raw_of, &best_peer);
    if (targets || server) && scenarios.iter().any(|s| s.kind.is_streams()) {
        println!();
    }
    print_streams_table(scenarios, clients, medians);
}

/// The streams-N table: wsstream's client and a hyper server with `HyperUpgrade`, the time
/// to open N streams to one origin, the memory per stream on both sides, and the TCP
/// connections they took.
fn print_streams_table(
    scenarios: &[Scenario],
    clients: &[Client],
    medians: &BTreeMap<(usize, usize), Outcome>,
) {
    let Some(ws) = clients.iter().position(|c| *c == Client::Wsstream) else {
        return;
    };
    let rows: Vec<(usize, &Outcome)> = (0..scenarios.len())
        .filter(|&i| scenarios[i].kind.is_streams())
        .filter_map(|si| medians.get(&(si, ws)).map(|o| (si, o)))
        .collect();
    if rows.is_empty() {
        return;
    }
    // Like the targets table, the last table ends without a blank line.
    println!(
        "| streams to one origin | scenario | open all, ms | open p50, ms | open p99, ms | \
         client KiB/stream, RSS (heap) | server KiB/stream, RSS (heap) | TCP connections | \
         client CPU µs/stream | server CPU µs/stream |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let kib = |rss: f64, heap: f64| {
        if heap < 0.0 {
            format!("{rss:.2}")
        } else {
            format!("{rss:.2} ({heap:.2})")
        }
    };
    for (si, o) in rows {
        println!(
            "| {} | `{}` | {:.0} | {:.1} | {:.1} | {} | {} | {:.0} | {:.0} | {:.0} |",
            label(&scenarios[si]),
            scenarios[si].name,
            o.open_ms,
            o.p50_us / 1e3,
            o.p99_us / 1e3,
            kib(o.rss_kib, o.heap_kib),
            kib(o.server_rss_kib, o.server_heap_kib),
            o.conns,
            o.cpu_ns / 1e3,
            o.server_cpu_ns / 1e3,
        );
    }
}

/// The server-role tables: the echo loops (rates, latency, the server's CPU time per round
/// trip with its ratios, and how busy the server and the load client were), then idle
/// memory. The participants are the libraries' echo servers; the load client is the same
/// raw one for all.
fn print_server_tables(
    scenarios: &[Scenario],
    clients: &[Client],
    medians: &BTreeMap<(usize, usize), Outcome>,
    raw_of: &Pick<'_>,
    best_peer: &Best<'_>,
) {
    let rows = |f: fn(Kind) -> bool| -> Vec<usize> {
        (0..scenarios.len())
            .filter(|&i| f(scenarios[i].kind))
            .collect()
    };
    let echo = rows(|k| matches!(k, Kind::ServerEcho { .. }));
    if !echo.is_empty() {
        println!(
            "| server echo | server | round trips/s | × raw | × best peer | p50 µs | p99 µs | \
             server CPU ns/rt | CPU × raw | CPU × best peer | CPU % server / load client |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &si in &echo {
            for (ci, c) in clients.iter().enumerate() {
                let Some(o) = medians.get(&(si, ci)) else {
                    continue;
                };
                // Share of one core over the measured window.
                let busy = |ns_per_rt: f64| ns_per_rt * o.rate / 1e7;
                println!(
                    "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {} | {} | {:.0} / {:.0} |",
                    label(&scenarios[si]),
                    c.name(),
                    human(o.rate),
                    ratio(o.rate, raw_of(si, |o| o.rate)),
                    ratio(o.rate, best_peer(si, |o| o.rate, true)),
                    o.p50_us,
                    o.p99_us,
                    o.server_cpu_ns,
                    ratio(o.server_cpu_ns, raw_of(si, |o| o.server_cpu_ns)),
                    ratio(o.server_cpu_ns, best_peer(si, |o| o.server_cpu_ns, false)),
                    busy(o.server_cpu_ns),
                    busy(o.cpu_ns),
                );
            }
        }
    }
    let idle = rows(|k| matches!(k, Kind::ServerIdle { .. }));
    if !idle.is_empty() {
        // Like the targets table, the last table ends without a blank line.
        if !echo.is_empty() {
            println!();
        }
        println!("| server idle | server | RSS KiB/conn | × raw | × best peer |");
        println!("|---|---|---:|---:|---:|");
        for &si in &idle {
            for (ci, c) in clients.iter().enumerate() {
                let Some(o) = medians.get(&(si, ci)) else {
                    continue;
                };
                println!(
                    "| {} | {} | {:.2} | {} | {} |",
                    label(&scenarios[si]),
                    c.name(),
                    o.rss_kib,
                    ratio(o.rss_kib, raw_of(si, |o| o.rss_kib)),
                    ratio(o.rss_kib, best_peer(si, |o| o.rss_kib, false)),
                );
            }
        }
    }
}

type Pick<'a> = dyn Fn(usize, fn(&Outcome) -> f64) -> Option<f64> + 'a;
type Best<'a> = dyn Fn(usize, fn(&Outcome) -> f64, bool) -> Option<f64> + 'a;

/// The targets for wsstream, met or not; returns whether it printed the table.
fn print_targets(
    scenarios: &[Scenario],
    clients: &[Client],
    medians: &BTreeMap<(usize, usize), Outcome>,
    raw_of: &Pick<'_>,
    best_peer: &Best<'_>,
) -> bool {
    let Some(ws) = clients.iter().position(|c| *c == Client::Wsstream) else {
        return false;
    };
    // Targets exist for the client scenarios without deflate (the runtime issue's table:
    // both runtimes for 16 B and echo).
    if !scenarios
        .iter()
        .any(|s| !s.kind.is_deflate() && !s.kind.is_server() && !s.kind.is_streams())
    {
        return false;
    }
    println!("| wsstream target | figure | target | met | CPU ns/msg (best peer) |");
    println!("|---|---:|---:|---|---:|");
    for (si, s) in scenarios.iter().enumerate() {
        let Some(o) = medians.get(&(si, ws)) else {
            continue;
        };
        let cpu = best_peer(si, |o| o.cpu_ns, false).map_or_else(
            || format!("{:.1}", o.cpu_ns),
            |b| format!("{:.1} ({b:.1})", o.cpu_ns),
        );
        let row = |what: String, figure: Option<f64>, target: f64, higher: bool| {
            let (fig, met) = match figure {
                Some(f) => (
                    format!("{f:.2}"),
                    if (higher && f >= target) || (!higher && f <= target) {
                        "yes"
                    } else {
                        "no"
                    },
                ),
                None => ("–".into(), "–"),
            };
            let cmp = if higher { "≥" } else { "≤" };
            println!("| {what} | {fig} | {cmp} {target} | {met} | {cpu} |");
        };
        let vs_peer =
            |f: fn(&Outcome) -> f64, higher: bool| best_peer(si, f, higher).map(|b| f(o) / b);
        let vs_raw = |f: fn(&Outcome) -> f64| raw_of(si, f).map(|r| f(o) / r);
        match s.kind {
            Kind::Recv { size: 16, .. } | Kind::Send { size: 16, .. } => {
                row(
                    format!("{} × best peer msg/s", s.name),
                    vs_peer(|o| o.rate, true),
                    1.5,
                    true,
                );
            }
            // Throughput of large messages: the single-thread runtime only.
            Kind::Recv { .. } | Kind::Send { .. } if s.multi => {}
            Kind::Recv { size: 1024, .. } => {
                row(format!("{} × raw", s.name), vs_raw(|o| o.rate), 0.9, true)
            }
            Kind::Recv { .. } => row(format!("{} × raw", s.name), vs_raw(|o| o.rate), 0.95, true),
            // A masking client makes one more pass over the bytes than the raw one.
            Kind::Send { .. } => row(format!("{} × raw", s.name), vs_raw(|o| o.rate), 0.65, true),
            Kind::Echo { .. } => {
                row(
                    format!("{} p50 × raw", s.name),
                    vs_raw(|o| o.p50_us),
                    1.05,
                    false,
                );
                row(
                    format!("{} p99 × best peer", s.name),
                    vs_peer(|o| o.p99_us, false),
                    1.0,
                    false,
                );
            }
            Kind::Idle { .. } if !s.multi => {
                row("idle RSS KiB/conn".into(), Some(o.rss_kib), 2.5, false)
            }
            Kind::Idle { .. } => {}
            // No target in the issue for permessage-deflate or the server role.
            Kind::RecvDeflate { .. }
            | Kind::SendDeflate { .. }
            | Kind::ServerEcho { .. }
            | Kind::ServerIdle { .. }
            | Kind::Streams { .. } => {}
        }
    }
    true
}
