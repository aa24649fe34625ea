//! The scenarios of the matrix, the payload every side agrees on, and the checks a client
//! must pass for its figure to count.

use std::time::Duration;

/// What a scenario exercises.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// The server sends `n` messages of `size` bytes; the client reads them all.
    Recv { n: u64, size: usize, text: bool },
    /// The client sends `n` binary messages of `size` bytes; the server counts them.
    Send { n: u64, size: usize },
    /// `n` sequential round trips of one binary message of `size` bytes.
    Echo { n: u64, size: usize },
    /// `conns` open connections doing nothing.
    Idle { conns: u64 },
    /// permessage-deflate: the server sends `n` compressed text messages of `size` bytes of
    /// [`json_payload`] (one frame compressed once, sent `n` times); the client inflates
    /// and checks every one.
    RecvDeflate { n: u64, size: usize },
    /// permessage-deflate: the client sends `n` text messages of `size` bytes, cycling
    /// through [`json_messages`], with compression on; the server counts them, checks RSV1
    /// on each and sums their wire payload bytes.
    SendDeflate { n: u64, size: usize },
    /// Server role: an echo server built on the participant's library (its own process,
    /// `wsstream-bench serve-echo`); the raw load client opens `conns` connections and runs
    /// a closed loop on each (one masked `size`-byte binary message, then its exact echo),
    /// `n` round trips in all.
    ServerEcho { conns: u64, n: u64, size: usize },
    /// Server role: `conns` connections to the participant's echo server, each idle after
    /// one echo; the server process's VmRSS growth per connection.
    ServerIdle { conns: u64 },
    /// `n` WebSocketStreams (wsstream's client) to one origin of a hyper server in a child
    /// process (`wsstream-bench serve-h2`), opened `at_once` at a time (0: all at once, as
    /// a browser does), one echo each, then closed: the time to open them, the memory per
    /// stream on both sides and the TCP connections used (`src/streams.rs`).
    Streams {
        n: u64,
        http: Http,
        at_once: u64,
        /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS` (HTTP/2 only).
        max_streams: u32,
    },
}

/// How the streams of [`Kind::Streams`] reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Http {
    /// `wss://`, HTTP/2 only (RFC 8441 extended CONNECT streams of shared connections).
    H2,
    /// `wss://`, HTTP/1.1 only (one TLS connection per stream).
    H1,
    /// `ws://`, HTTP/1.1 in cleartext (the reference without TLS).
    Plain,
}

impl Http {
    /// How the tables name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::H2 => "HTTP/2, TLS",
            Self::H1 => "HTTP/1.1, TLS",
            Self::Plain => "HTTP/1.1, cleartext",
        }
    }
}

impl Kind {
    /// Whether the scenario needs permessage-deflate.
    pub(crate) fn is_deflate(self) -> bool {
        matches!(self, Self::RecvDeflate { .. } | Self::SendDeflate { .. })
    }

    /// Whether the scenario measures the participant's server (the load client is raw).
    pub(crate) fn is_server(self) -> bool {
        matches!(self, Self::ServerEcho { .. } | Self::ServerIdle { .. })
    }

    /// Whether the scenario is one of the streams-N ones (wsstream on both sides).
    pub(crate) fn is_streams(self) -> bool {
        matches!(self, Self::Streams { .. })
    }
}

/// One row group of the matrix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Run the client on a two-worker multi-thread runtime (the default of
    /// `#[tokio::main]`) instead of a current-thread one. In the server scenarios it is the
    /// server that gets the two workers (the load client is always current-thread).
    pub(crate) multi: bool,
}

/// The matrix at the counts (scale 1).
pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "recv-16-bin",
        kind: Kind::Recv {
            n: 2_000_000,
            size: 16,
            text: false,
        },
        multi: false,
    },
    Scenario {
        name: "recv-16-text",
        kind: Kind::Recv {
            n: 2_000_000,
            size: 16,
            text: true,
        },
        multi: false,
    },
    Scenario {
        name: "recv-1k",
        kind: Kind::Recv {
            n: 500_000,
            size: 1024,
            text: false,
        },
        multi: false,
    },
    Scenario {
        name: "recv-64k",
        kind: Kind::Recv {
            n: 20_000,
            size: 64 * 1024,
            text: false,
        },
        multi: false,
    },
    Scenario {
        name: "recv-1m",
        kind: Kind::Recv {
            n: 1_000,
            size: 1 << 20,
            text: false,
        },
        multi: false,
    },
    Scenario {
        name: "send-16",
        kind: Kind::Send {
            n: 1_000_000,
            size: 16,
        },
        multi: false,
    },
    Scenario {
        name: "send-64k",
        kind: Kind::Send {
            n: 20_000,
            size: 64 * 1024,
        },
        multi: false,
    },
    Scenario {
        name: "recv-1k-deflate",
        kind: Kind::RecvDeflate {
            n: 200_000,
            size: 1024,
        },
        multi: false,
    },
    Scenario {
        name: "send-1k-deflate",
        kind: Kind::SendDeflate {
            n: 200_000,
            size: 1024,
        },
        multi: false,
    },
    Scenario {
        name: "echo-32",
        kind: Kind::Echo {
            n: 100_000,
            size: 32,
        },
        multi: false,
    },
    Scenario {
        name: "idle",
        kind: Kind::Idle { conns: 10_000 },
        multi: false,
    },
    Scenario {
        name: "recv-16-bin-mt",
        kind: Kind::Recv {
            n: 2_000_000,
            size: 16,
            text: false,
        },
        multi: true,
    },
    Scenario {
        name: "recv-16-text-mt",
        kind: Kind::Recv {
            n: 2_000_000,
            size: 16,
            text: true,
        },
        multi: true,
    },
    Scenario {
        name: "send-16-mt",
        kind: Kind::Send {
            n: 1_000_000,
            size: 16,
        },
        multi: true,
    },
    Scenario {
        name: "echo-32-mt",
        kind: Kind::Echo {
            n: 100_000,
            size: 32,
        },
        multi: true,
    },
    Scenario {
        name: "server-echo-1",
        kind: Kind::ServerEcho {
            conns: 1,
            n: 10_000,
            size: 32,
        },
        multi: false,
    },
    Scenario {
        name: "server-echo-100",
        kind: Kind::ServerEcho {
            conns: 100,
            n: 50_000,
            size: 32,
        },
        multi: false,
    },
    Scenario {
        name: "server-echo-1000",
        kind: Kind::ServerEcho {
            conns: 1_000,
            n: 50_000,
            size: 32,
        },
        multi: false,
    },
    Scenario {
        name: "server-idle",
        kind: Kind::ServerIdle { conns: 10_000 },
        multi: false,
    },
    Scenario {
        name: "server-echo-1-mt",
        kind: Kind::ServerEcho {
            conns: 1,
            n: 10_000,
            size: 32,
        },
        multi: true,
    },
    Scenario {
        name: "server-echo-100-mt",
        kind: Kind::ServerEcho {
            conns: 100,
            n: 50_000,
            size: 32,
        },
        multi: true,
    },
    Scenario {
        name: "server-echo-1000-mt",
        kind: Kind::ServerEcho {
            conns: 1_000,
            n: 50_000,
            size: 32,
        },
        multi: true,
    },
    Scenario {
        name: "server-idle-mt",
        kind: Kind::ServerIdle { conns: 10_000 },
        multi: true,
    },
    Scenario {
        name: "streams-1000-h2",
        kind: Kind::Streams {
            n: 1_000,
            http: Http::H2,
            at_once: 0,
            max_streams: 1000,
        },
        multi: false,
    },
    Scenario {
        name: "streams-1000-h1",
        kind: Kind::Streams {
            n: 1_000,
            http: Http::H1,
            at_once: 0,
            max_streams: 1000,
        },
        multi: false,
    },
    Scenario {
        name: "streams-1000-ws",
        kind: Kind::Streams {
            n: 1_000,
            http: Http::Plain,
            at_once: 0,
            max_streams: 1000,
        },
        multi: false,
    },
    Scenario {
        name: "streams-1000-h2-200",
        kind: Kind::Streams {
            n: 1_000,
            http: Http::H2,
            at_once: 0,
            max_streams: 200,
        },
        multi: false,
    },
    Scenario {
        name: "streams-1000-h2-paced",
        kind: Kind::Streams {
            n: 1_000,
            http: Http::H2,
            at_once: 16,
            max_streams: 1000,
        },
        multi: false,
    },
    Scenario {
        name: "streams-1000-h1-paced",
        kind: Kind::Streams {
            n: 1_000,
            http: Http::H1,
            at_once: 16,
            max_streams: 1000,
        },
        multi: false,
    },
];

impl Scenario {
    /// Looks a scenario up by name.
    pub(crate) fn find(name: &str) -> Option<Self> {
        SCENARIOS.iter().copied().find(|s| s.name == name)
    }

    /// The scenario with its counts multiplied by `scale` (at least 1).
    pub(crate) fn scaled(self, scale: f64) -> Self {
        let s = |n: u64| ((n as f64 * scale).round() as u64).max(1);
        let kind = match self.kind {
            Kind::Recv { n, size, text } => Kind::Recv {
                n: s(n),
                size,
                text,
            },
            Kind::Send { n, size } => Kind::Send { n: s(n), size },
            Kind::Echo { n, size } => Kind::Echo { n: s(n), size },
            Kind::Idle { conns } => Kind::Idle { conns: s(conns) },
            Kind::RecvDeflate { n, size } => Kind::RecvDeflate { n: s(n), size },
            Kind::SendDeflate { n, size } => Kind::SendDeflate { n: s(n), size },
            // The connection count is the scenario; only the round trips scale.
            Kind::ServerEcho { conns, n, size } => Kind::ServerEcho {
                conns,
                n: s(n),
                size,
            },
            Kind::ServerIdle { conns } => Kind::ServerIdle { conns: s(conns) },
            // The server's stream limit is a setting, not a count: it does not scale.
            Kind::Streams {
                n,
                http,
                at_once,
                max_streams,
            } => Kind::Streams {
                n: s(n),
                http,
                at_once,
                max_streams,
            },
        };
        Self { kind, ..self }
    }
}

/// The payload of every data message: printable ASCII (valid UTF-8 for the text scenario),
/// `a..z` repeated.
pub(crate) fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The payload of the deflate scenarios: `size` bytes of compressible ASCII text, JSON-like
/// event records whose fields vary deterministically (an LCG with a fixed seed), cut at
/// `size`. Every side builds the same bytes.
pub(crate) fn json_payload(size: usize) -> Vec<u8> {
    const EVENTS: [&str; 4] = ["click", "view", "scroll", "purchase"];
    const PAGES: [&str; 5] = [
        "/",
        "/search",
        "/cart",
        "/product/item",
        "/account/settings",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut out = String::with_capacity(size + 256);
    let mut id = 1_000u64;
    while out.len() < size {
        id += 1 + next() % 7;
        let r = next();
        out.push_str(&format!(
            "{{\"id\":{id},\"ts\":{},\"user\":\"user-{}\",\"event\":\"{}\",\"page\":\"{}\",\"ok\":{}}}\n",
            1_764_000_000_000 + id * 37 + r % 1000,
            r % 5000,
            EVENTS[(r % 4) as usize],
            PAGES[(r / 7 % 5) as usize],
            r % 3 != 0,
        ));
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(size);
    bytes
}

/// How many distinct messages the deflate send scenario cycles through: 256 KiB of text,
/// eight times the largest LZ77 window, so a compressor that takes its context over finds
/// the shared structure of the records but never the whole message again (sending one
/// message over and over would measure back-references to the previous copy).
pub(crate) const DEFLATE_SEND_DISTINCT: usize = 256;

/// `count` different messages of `size` bytes: consecutive pieces of one
/// [`json_payload`] stream (ASCII, so each piece is valid UTF-8).
pub(crate) fn json_messages(size: usize, count: usize) -> Vec<Vec<u8>> {
    json_payload(size * count)
        .chunks(size)
        .map(<[u8]>::to_vec)
        .collect()
}

/// `data` compressed as one permessage-deflate message (RFC 7692 §7.2.1): raw DEFLATE with
/// an LZ77 window of `window_bits` (9 to 15), a sync flush, and the trailing `00 00 ff ff`
/// removed. Self-contained (a fresh compressor), so the same bytes can be sent as every
/// message when the server does not take its context over.
pub(crate) fn deflate_message(data: &[u8], window_bits: u8) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut z = Compress::new_with_window_bits(Compression::default(), false, window_bits);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let consumed = z.total_in() as usize;
        z.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        if z.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "sync flush tail");
    out.truncate(out.len() - 4);
    out
}

/// What a receiving client saw, to compare with what the server sent.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    /// Sum of each message's first and last byte: proves every payload was materialised.
    pub(crate) checksum: u64,
    /// Messages of the wrong type (binary for text or the reverse).
    pub(crate) wrong_type: u64,
    /// Messages whose bytes differ from the expected payload (checked by
    /// [`add_exact`](Self::add_exact) only).
    pub(crate) mismatched: u64,
    /// The Close frame's code and reason.
    pub(crate) close: Option<(u16, String)>,
}

impl Received {
    /// Records one data message.
    #[inline]
    pub(crate) fn add(&mut self, is_text: bool, expect_text: bool, data: &[u8]) {
        self.messages += 1;
        self.bytes += data.len() as u64;
        if let (Some(first), Some(last)) = (data.first(), data.last()) {
            self.checksum += u64::from(*first) + u64::from(*last);
        }
        if is_text != expect_text {
            self.wrong_type += 1;
        }
    }

    /// Records one data message and compares all its bytes with `expected`.
    #[inline]
    pub(crate) fn add_exact(
        &mut self,
        is_text: bool,
        expect_text: bool,
        data: &[u8],
        expected: &[u8],
    ) {
        if data != expected {
            self.mismatched += 1;
        }
        self.add(is_text, expect_text, data);
    }

    /// Compares with what the server sent: `n` messages of `size` bytes of [`payload`],
    /// then Close 1000 "done".
    pub(crate) fn verify(
        &self,
        n: u64,
        size: usize,
        expect_close: Option<(u16, &str)>,
    ) -> Result<(), String> {
        self.verify_payload(n, &payload(size), expect_close)
    }

    /// Compares with what the server sent: `n` messages equal to `p`, then `expect_close`.
    pub(crate) fn verify_payload(
        &self,
        n: u64,
        p: &[u8],
        expect_close: Option<(u16, &str)>,
    ) -> Result<(), String> {
        let per = match (p.first(), p.last()) {
            (Some(f), Some(l)) => u64::from(*f) + u64::from(*l),
            _ => 0,
        };
        let expected = (n, n * p.len() as u64, n * per, 0, 0);
        let got = (
            self.messages,
            self.bytes,
            self.checksum,
            self.wrong_type,
            self.mismatched,
        );
        if got != expected {
            return Err(format!(
                "received (messages, bytes, checksum, wrong type, mismatched) = {got:?}, \
                 expected {expected:?}"
            ));
        }
        if let Some((code, reason)) = expect_close {
            match &self.close {
                Some((c, r)) if *c == code && r == reason => {}
                other => return Err(format!("close {other:?}, expected {code} {reason:?}")),
            }
        }
        Ok(())
    }
}

/// Checks the server's count reply "count=N bytes=B" after a send scenario.
pub(crate) fn verify_count(
    close: Option<(u16, String)>,
    n: u64,
    size: usize,
) -> Result<(), String> {
    let expected = format!("count={n} bytes={}", n * size as u64);
    match close {
        Some((1000, reason)) if reason == expected => Ok(()),
        other => Err(format!(
            "server counted {other:?}, expected 1000 {expected:?}"
        )),
    }
}

/// Checks the server's count reply after a deflate send scenario,
/// "count=N bytes=B compressed=C": `n` messages, each with RSV1 on its first frame, whose
/// wire payload bytes are fewer than the `n * size` raw bytes. Returns `B`.
pub(crate) fn verify_deflate_count(
    close: Option<(u16, String)>,
    n: u64,
    size: usize,
) -> Result<u64, String> {
    let field = |reason: &str, name: &str| -> Option<u64> {
        reason
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    if let Some((1000, reason)) = &close
        && let (Some(count), Some(bytes), Some(compressed)) = (
            field(reason, "count"),
            field(reason, "bytes"),
            field(reason, "compressed"),
        )
    {
        if count == n && compressed == n && bytes > 0 && bytes < n * size as u64 {
            return Ok(bytes);
        }
        return Err(format!(
            "server counted {count} messages ({compressed} with RSV1) in {bytes} wire bytes, \
             expected {n} compressed messages in fewer than {} bytes",
            n * size as u64
        ));
    }
    Err(format!(
        "server counted {close:?}, expected 1000 \"count={n} bytes=.. compressed={n}\""
    ))
}

/// The figures of one run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// Messages (or round trips) per second.
    pub(crate) rate: f64,
    /// Payload megabytes (10^6) per second.
    pub(crate) mbps: f64,
    /// Round-trip latency percentiles in microseconds.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Client CPU time (user + kernel) per message or round trip, in nanoseconds.
    pub(crate) cpu_ns: f64,
    /// Idle memory per connection in KiB.
    pub(crate) rss_kib: f64,
    /// Heap per connection in KiB; negative when not measured.
    pub(crate) heap_kib: f64,
    /// Deflate scenarios: wire payload bytes / raw payload bytes (0 when not applicable).
    pub(crate) wire_ratio: f64,
    /// The server process's CPU time (user + kernel, all its threads) per message or round
    /// trip, in nanoseconds; 0 when not measured (a server given by `WSB_SERVER`). The
    /// figure of the server scenarios; in the client scenarios it only tells whether the
    /// bench server could be the cap (it is printed on the `RESULT` line, not in the
    /// tables).
    pub(crate) server_cpu_ns: f64,
    /// Streams scenarios: the time to open every stream, in milliseconds.
    pub(crate) open_ms: f64,
    /// Streams scenarios: the server process's VmRSS growth per stream, in KiB.
    pub(crate) server_rss_kib: f64,
    /// Streams scenarios: the TCP connections the server accepted for the streams.
    pub(crate) conns: f64,
    /// Streams scenarios: the server's live heap growth per stream, in KiB; negative when
    /// not measured.
    pub(crate) server_heap_kib: f64,
}

impl Outcome {
    /// A throughput outcome: `n` messages of `size` bytes in `span`.
    pub(crate) fn throughput(n: u64, size: usize, span: Span) -> Self {
        let secs = span.wall.as_secs_f64();
        Self {
            rate: n as f64 / secs,
            mbps: (n * size as u64) as f64 / secs / 1e6,
            cpu_ns: span.cpu_ns as f64 / n as f64,
            server_cpu_ns: span.server_cpu_ns as f64 / n as f64,
            heap_kib: -1.0,
            ..Self::default()
        }
    }

    /// A latency outcome from per-round-trip durations in nanoseconds.
    pub(crate) fn latency(mut rtts: Vec<u64>, size: usize, span: Span) -> Self {
        rtts.sort_unstable();
        let pct = |p: f64| {
            let i = ((rtts.len() as f64 - 1.0) * p).round() as usize;
            rtts.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        Self {
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            ..Self::throughput(rtts.len() as u64, size, span)
        }
    }

    /// The machine-readable line a single run prints.
    pub(crate) fn line(&self) -> String {
        format!(
            "RESULT rate={} mbps={} p50_us={} p99_us={} cpu_ns={} rss_kib={} heap_kib={} \
             wire_ratio={} server_cpu_ns={} open_ms={} server_rss_kib={} conns={} \
             server_heap_kib={}",
            self.rate,
            self.mbps,
            self.p50_us,
            self.p99_us,
            self.cpu_ns,
            self.rss_kib,
            self.heap_kib,
            self.wire_ratio,
            self.server_cpu_ns,
            self.open_ms,
            self.server_rss_kib,
            self.conns,
            self.server_heap_kib,
        )
    }

    /// Parses [`line`](Self::line).
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("RESULT ")?;
        let mut o = Self::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let v: f64 = v.parse().ok()?;
            match k {
                "rate" => o.rate = v,
                "mbps" => o.mbps = v,
                "p50_us" => o.p50_us = v,
                "p99_us" => o.p99_us = v,
                "cpu_ns" => o.cpu_ns = v,
                "rss_kib" => o.rss_kib = v,
                "heap_kib" => o.heap_kib = v,
                "wire_ratio" => o.wire_ratio = v,
                "server_cpu_ns" => o.server_cpu_ns = v,
                "open_ms" => o.open_ms = v,
                "server_rss_kib" => o.server_rss_kib = v,
                "conns" => o.conns = v,
                "server_heap_kib" => o.server_heap_kib = v,
                _ => {}
            }
        }
        Some(o)
    }
}

/// On-CPU time of this process so far, in nanoseconds: the sum over its threads of the
/// first field of `/proc/self/task/*/schedstat` (user and kernel time). Unlike wall-clock
/// rates, this barely moves when other work shares the machine.
pub(crate) fn cpu_ns() -> u64 {
    // The kernel brings a running thread's total up to date when it schedules: yield once
    // so this thread's figure is exact rather than up to a tick old.
    std::thread::yield_now();
    cpu_ns_of("/proc/self/task")
}

/// On-CPU time so far of the process `pid` (another one, e.g. the server child), summed
/// over `/proc/<pid>/task/*/schedstat`. A thread running on another core at the moment of
/// the read is counted up to its last scheduler update (at most a tick behind); the server
/// scenarios read it while the server is idle, where it is exact.
pub(crate) fn process_cpu_ns(pid: u32) -> u64 {
    cpu_ns_of(&format!("/proc/{pid}/task"))
}

fn cpu_ns_of(task_dir: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(task_dir) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The process id of the server child of this run, once started: [`Clock`] also reads its
/// CPU time.
static SERVER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Records the server child's process id for [`Clock`] (first call wins).
pub(crate) fn set_server_pid(pid: u32) {
    let _ = SERVER_PID.set(pid);
}

/// Wall-clock and CPU time of a measured window, of this process and of the server child
/// (when [`set_server_pid`] was called).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: std::time::Instant,
    cpu: u64,
    server_cpu: u64,
}

/// What a [`Clock`] measured.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    pub(crate) wall: Duration,
    pub(crate) cpu_ns: u64,
    /// The server child's CPU time over the window (0 without a known server).
    pub(crate) server_cpu_ns: u64,
}

impl Clock {
    /// Starts measuring.
    pub(crate) fn start() -> Self {
        Self {
            server_cpu: SERVER_PID.get().map_or(0, |&pid| process_cpu_ns(pid)),
            cpu: cpu_ns(),
            wall: std::time::Instant::now(),
        }
    }

    /// The time since [`start`](Self::start).
    pub(crate) fn stop(&self) -> Span {
        let wall = self.wall.elapsed();
        let cpu_ns = cpu_ns().saturating_sub(self.cpu);
        let server_cpu_ns = SERVER_PID.get().map_or(0, |&pid| {
            process_cpu_ns(pid).saturating_sub(self.server_cpu)
        });
        Span {
            wall,
            cpu_ns,
            server_cpu_ns,
        }
    }
}
