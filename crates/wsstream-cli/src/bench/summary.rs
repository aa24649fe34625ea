//! The end of a run: per-connection outcomes summed into a table or one JSON object.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::encoding::json_string;

/// How one connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The opening handshake failed.
    Failed(String),
    /// Closed by us after the run, cleanly, with the server's code.
    Clean(Option<u16>),
    /// The server closed it (cleanly) before the run was over.
    ClosedByServer(Option<u16>, String),
    /// Closed uncleanly (no closing handshake: a reset, an abrupt end, a protocol error).
    Unclean(String),
}

impl Default for End {
    fn default() -> Self {
        Self::Failed(String::new())
    }
}

/// What one connection did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) handshake: Option<Duration>,
    /// Opened over HTTP/2 (RFC 8441), not HTTP/1.1.
    pub(crate) http2: bool,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) replies: u64,
    pub(crate) mismatched: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) receive_done: Option<Instant>,
    pub(crate) end: End,
}

impl Outcome {
    pub(crate) fn failed(message: String) -> Self {
        Self {
            end: End::Failed(message),
            ..Self::default()
        }
    }
}

/// The run's parameters, as given.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) url: String,
    pub(crate) connections: u32,
    pub(crate) size: usize,
    pub(crate) binary: bool,
    pub(crate) compression: bool,
    pub(crate) pipeline: Option<u32>,
    pub(crate) rate: Option<f64>,
    pub(crate) duration: Option<Duration>,
    pub(crate) messages: Option<u64>,
}

/// Percentiles of a histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        Some(Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        })
    }
}

/// Everything the summary shows.
#[derive(Debug)]
pub(crate) struct Summary {
    setup: Setup,
    opened: u64,
    /// Of `opened`, those over HTTP/2.
    opened_http2: u64,
    failed: u64,
    handshake_p50: Option<Duration>,
    handshake_max: Option<Duration>,
    clean: u64,
    /// Close codes of the clean closes other than 1000.
    odd_codes: Vec<Option<u16>>,
    unclean: u64,
    closed_by_server: u64,
    sent: u64,
    received: u64,
    mismatched: u64,
    unanswered: u64,
    bytes_sent: u64,
    bytes_received: u64,
    /// From the start of the message phase to the last connection's last echo.
    elapsed: Duration,
    rtt: Option<Percentiles>,
    latency: Option<Percentiles>,
    /// Distinct problems, most frequent first: (count, message).
    errors: Vec<(u64, String)>,
}

/// Distinct error messages listed at most.
const MAX_ERRORS: usize = 5;

/// The value at quantile `q` of sorted `values` (nearest rank).
fn nearest_rank(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

impl Summary {
    pub(crate) fn new(
        setup: Setup,
        outcomes: &[Outcome],
        phase_start: Instant,
        rtt: &Histogram<u64>,
        latency: Option<&Histogram<u64>>,
    ) -> Self {
        let mut handshakes: Vec<Duration> = outcomes.iter().filter_map(|o| o.handshake).collect();
        handshakes.sort_unstable();
        let mut errors: HashMap<String, u64> = HashMap::new();
        let mut summary = Self {
            setup,
            opened: handshakes.len() as u64,
            opened_http2: outcomes
                .iter()
                .filter(|o| o.handshake.is_some() && o.http2)
                .count() as u64,
            failed: 0,
            handshake_p50: nearest_rank(&handshakes, 0.5),
            handshake_max: handshakes.last().copied(),
            clean: 0,
            odd_codes: Vec::new(),
            unclean: 0,
            closed_by_server: 0,
            sent: 0,
            received: 0,
            mismatched: 0,
            unanswered: 0,
            bytes_sent: 0,
            bytes_received: 0,
            elapsed: Duration::ZERO,
            rtt: Percentiles::of(rtt),
            latency: latency.and_then(Percentiles::of),
            errors: Vec::new(),
        };
        for o in outcomes {
            summary.sent += o.sent;
            summary.received += o.received;
            summary.mismatched += o.mismatched;
            summary.unanswered += o.sent.saturating_sub(o.replies);
            summary.bytes_sent += o.bytes_sent;
            summary.bytes_received += o.bytes_received;
            if let Some(done) = o.receive_done {
                summary.elapsed = summary
                    .elapsed
                    .max(done.saturating_duration_since(phase_start));
            }
            let problem = match &o.end {
                End::Failed(e) => {
                    summary.failed += 1;
                    format!("could not connect: {e}")
                }
                End::Clean(code) => {
                    summary.clean += 1;
                    if *code != Some(1000) && !summary.odd_codes.contains(code) {
                        summary.odd_codes.push(*code);
                    }
                    continue;
                }
                End::ClosedByServer(code, reason) => {
                    summary.closed_by_server += 1;
                    format!(
                        "closed by the server during the run: code {}, reason {reason:?}",
                        code.unwrap_or(1005)
                    )
                }
                End::Unclean(e) => {
                    summary.unclean += 1;
                    format!("closed uncleanly: {e}")
                }
            };
            *errors.entry(problem).or_default() += 1;
        }
        let mut errors: Vec<(u64, String)> = errors.into_iter().map(|(m, n)| (n, m)).collect();
        errors.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        summary.errors = errors;
        summary
    }

    fn per_second(&self, n: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        if secs > 0.0 { n / secs } else { 0.0 }
    }

    /// What went wrong, for stderr and the exit status; `None` if nothing did.
    pub(crate) fn problems(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.failed > 0 {
            parts.push(format!(
                "{} of {} connections failed to open",
                self.failed, self.setup.connections
            ));
        }
        if self.unclean > 0 {
            parts.push(format!("{} closed uncleanly", self.unclean));
        }
        if self.closed_by_server > 0 {
            parts.push(format!(
                "{} were closed by the server during the run",
                self.closed_by_server
            ));
        }
        if self.mismatched > 0 {
            parts.push(format!("{} echoes did not match", self.mismatched));
        }
        if self.unanswered > 0 {
            parts.push(format!("{} messages were never echoed", self.unanswered));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn describe_run(&self) -> String {
        let s = &self.setup;
        let mut line = format!(
            "{} connection{}, {} B {} messages, ",
            s.connections,
            if s.connections == 1 { "" } else { "s" },
            s.size,
            if s.binary { "binary" } else { "text" },
        );
        match (s.rate, s.pipeline) {
            (Some(rate), _) => line.push_str(&format!("rate {} msg/s, ", trim_float(rate))),
            (None, Some(k)) => line.push_str(&format!("pipeline {k}, ")),
            (None, None) => {}
        }
        line.push_str(if s.compression {
            "compression on"
        } else {
            "compression off"
        });
        match (s.duration, s.messages) {
            (Some(d), Some(m)) => line.push_str(&format!(", {} or {m} messages", secs(d))),
            (Some(d), None) => line.push_str(&format!(", {}", secs(d))),
            (None, Some(m)) => line.push_str(&format!(", {m} messages")),
            (None, None) => {}
        }
        line
    }

    /// The human-readable summary.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "wsstream bench {}", self.setup.url);
        let _ = writeln!(out, "  {}", self.describe_run());
        let _ = writeln!(out);
        let handshake = match (self.handshake_p50, self.handshake_max) {
            (Some(p50), Some(max)) => format!(
                "handshake p50 {}, max {}",
                ns(duration_ns(p50)),
                ns(duration_ns(max))
            ),
            _ => "no handshake completed".to_owned(),
        };
        let over = match self.opened_http2 {
            0 => String::new(),
            n if n == self.opened => " (over HTTP/2)".to_owned(),
            n => format!(" ({n} over HTTP/2)"),
        };
        let _ = writeln!(
            out,
            "connections  {} opened{over}, {} failed; {handshake}",
            self.opened, self.failed
        );
        let mut closes = format!(
            "closes       {} clean, {} unclean, {} closed by the server",
            self.clean, self.unclean, self.closed_by_server
        );
        if !self.odd_codes.is_empty() {
            let codes: Vec<String> = self
                .odd_codes
                .iter()
                .map(|c| c.map_or_else(|| "none".to_owned(), |c| c.to_string()))
                .collect();
            closes.push_str(&format!(
                " (clean close codes other than 1000: {})",
                codes.join(", ")
            ));
        }
        let _ = writeln!(out, "{closes}");
        let _ = writeln!(
            out,
            "messages     sent {}, received {}, mismatched {}, unanswered {}",
            thousands(self.sent),
            thousands(self.received),
            thousands(self.mismatched),
            thousands(self.unanswered)
        );
        let _ = writeln!(out, "elapsed      {}", secs(self.elapsed));
        for (what, n, bytes) in [
            ("sent    ", self.sent, self.bytes_sent),
            ("received", self.received, self.bytes_received),
        ] {
            let _ = writeln!(
                out,
                "{what}     {} msg/s, {:.2} MB/s",
                rate(self.per_second(n)),
                self.per_second(bytes) / 1e6
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<14}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
            "", "p50", "p90", "p99", "p99.9", "max", "mean", "samples"
        );
        let rows = [("round trip", self.rtt), ("latency (*)", self.latency)];
        for (name, p) in rows {
            if name.starts_with("latency") && self.setup.rate.is_none() {
                continue;
            }
            match p {
                Some(p) => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let mean = p.mean as u64;
                    let _ = writeln!(
                        out,
                        "{name:<14}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
                        ns(p.p50),
                        ns(p.p90),
                        ns(p.p99),
                        ns(p.p999),
                        ns(p.max),
                        ns(mean),
                        thousands(p.count)
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<14}no echoes");
                }
            }
        }
        if self.setup.rate.is_some() {
            let _ = writeln!(
                out,
                "(*) from each message's intended send time on the fixed schedule \
                 (coordinated omission corrected); round trip: from the actual send"
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out);
            for (count, message) in self.errors.iter().take(MAX_ERRORS) {
                let _ = writeln!(out, "error        {count} × {message}");
            }
            if self.errors.len() > MAX_ERRORS {
                let _ = writeln!(
                    out,
                    "error        … and {} other kinds",
                    self.errors.len() - MAX_ERRORS
                );
            }
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// The summary as one JSON object (durations in the unit their key names; null for
    /// what does not apply).
    pub(crate) fn json(&self) -> String {
        let s = &self.setup;
        let opt_u64 = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
        let percentiles = |p: Option<Percentiles>| match p {
            None => "null".to_owned(),
            Some(p) => format!(
                r#"{{"count":{},"p50":{},"p90":{},"p99":{},"p99_9":{},"max":{},"mean":{}}}"#,
                p.count,
                us(p.p50),
                us(p.p90),
                us(p.p99),
                us(p.p999),
                us(p.max),
                num(p.mean / 1e3)
            ),
        };
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(count, message)| {
                format!(r#"{{"count":{count},"message":{}}}"#, json_string(message))
            })
            .collect();
        let mut fields = vec![
            format!(r#""url":{}"#, json_string(&s.url)),
            format!(r#""connections":{}"#, s.connections),
            format!(r#""size":{}"#, s.size),
            format!(r#""binary":{}"#, s.binary),
            format!(r#""compression":{}"#, s.compression),
            format!(r#""pipeline":{}"#, opt_u64(s.pipeline.map(u64::from))),
            format!(
                r#""rate":{}"#,
                s.rate.map_or_else(|| "null".to_owned(), num)
            ),
            format!(
                r#""duration_s":{}"#,
                s.duration
                    .map_or_else(|| "null".to_owned(), |d| num(d.as_secs_f64()))
            ),
            format!(r#""messages":{}"#, opt_u64(s.messages)),
            format!(r#""elapsed_s":{}"#, num(self.elapsed.as_secs_f64())),
            format!(r#""opened":{}"#, self.opened),
            format!(r#""opened_http2":{}"#, self.opened_http2),
            format!(r#""failed":{}"#, self.failed),
            format!(
                r#""handshake_ms":{{"p50":{},"max":{}}}"#,
                self.handshake_p50
                    .map_or_else(|| "null".to_owned(), |d| num(d.as_secs_f64() * 1e3)),
                self.handshake_max
                    .map_or_else(|| "null".to_owned(), |d| num(d.as_secs_f64() * 1e3))
            ),
            format!(r#""clean_closes":{}"#, self.clean),
            format!(r#""unclean_closes":{}"#, self.unclean),
            format!(r#""closed_by_server":{}"#, self.closed_by_server),
            format!(r#""sent":{}"#, self.sent),
            format!(r#""received":{}"#, self.received),
            format!(r#""mismatched":{}"#, self.mismatched),
            format!(r#""unanswered":{}"#, self.unanswered),
            format!(r#""bytes_sent":{}"#, self.bytes_sent),
            format!(r#""bytes_received":{}"#, self.bytes_received),
            format!(r#""sent_per_s":{}"#, num(self.per_second(self.sent))),
            format!(
                r#""received_per_s":{}"#,
                num(self.per_second(self.received))
            ),
            format!(
                r#""sent_mb_per_s":{}"#,
                num(self.per_second(self.bytes_sent) / 1e6)
            ),
            format!(
                r#""received_mb_per_s":{}"#,
                num(self.per_second(self.bytes_received) / 1e6)
            ),
            format!(r#""rtt_us":{}"#, percentiles(self.rtt)),
            format!(r#""latency_us":{}"#, percentiles(self.latency)),
            format!(r#""errors":[{}]"#, errors.join(",")),
        ];
        fields.push(format!(r#""ok":{}"#, self.problems().is_none()));
        format!("{{{}}}", fields.join(","))
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A JSON number (finite; three decimals at most).
fn num(value: f64) -> String {
    if !value.is_finite() {
        return "null".to_owned();
    }
    trim_float((value * 1e3).round() / 1e3)
}

/// Nanoseconds as microseconds, for JSON.
#[allow(clippy::cast_precision_loss)]
fn us(nanos: u64) -> String {
    num(nanos as f64 / 1e3)
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A duration in nanoseconds, with a unit that keeps 3–4 significant digits.
#[allow(clippy::cast_precision_loss)]
fn ns(nanos: u64) -> String {
    let n = nanos as f64;
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 1_000_000 {
        format!("{:.1} µs", n / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.2} ms", n / 1e6)
    } else {
        format!("{:.2} s", n / 1e9)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A rate with k/M suffixes.
fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1} k", per_second / 1e3)
    } else {
        format!("{per_second:.1}")
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            url: "ws://127.0.0.1:1/echo".into(),
            connections: 2,
            size: 32,
            binary: false,
            compression: false,
            pipeline: Some(1),
            rate: None,
            duration: Some(Duration::from_secs(1)),
            messages: None,
        }
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(ns(512), "512 ns");
        assert_eq!(ns(51_234), "51.2 µs");
        assert_eq!(ns(1_500_000), "1.50 ms");
        assert_eq!(rate(18_720.0), "18.7 k");
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(f64::NAN), "null");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let d = |ms| Duration::from_millis(ms);
        let sorted = [d(1), d(2), d(3), d(4)];
        assert_eq!(nearest_rank(&sorted, 0.5), Some(d(2)));
        assert_eq!(nearest_rank(&sorted, 1.0), Some(d(4)));
        assert_eq!(nearest_rank(&[d(7)], 0.5), Some(d(7)));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn sums_outcomes_and_reports_problems() {
        let start = Instant::now();
        let mut rtt = Histogram::<u64>::new(3).unwrap();
        rtt.record(50_000).unwrap();
        let outcomes = [
            Outcome {
                handshake: Some(Duration::from_millis(1)),
                sent: 10,
                received: 10,
                replies: 10,
                bytes_sent: 320,
                bytes_received: 320,
                receive_done: Some(start + Duration::from_secs(1)),
                end: End::Clean(Some(1000)),
                ..Outcome::default()
            },
            Outcome {
                handshake: Some(Duration::from_millis(3)),
                sent: 5,
                received: 3,
                replies: 4,
                mismatched: 1,
                receive_done: Some(start + Duration::from_millis(500)),
                end: End::Unclean("reset".into()),
                ..Outcome::default()
            },
        ];
        let summary = Summary::new(setup(), &outcomes, start, &rtt, None);
        assert_eq!(summary.opened, 2);
        assert_eq!(summary.sent, 15);
        assert_eq!(summary.received, 13);
        assert_eq!(summary.unanswered, 1);
        assert_eq!(summary.unclean, 1);
        assert_eq!(summary.elapsed, Duration::from_secs(1));
        assert_eq!(summary.handshake_p50, Some(Duration::from_millis(1)));
        let problems = summary.problems().unwrap();
        assert!(problems.contains("1 closed uncleanly"), "{problems}");
        assert!(
            problems.contains("1 messages were never echoed"),
            "{problems}"
        );
        let json = summary.json();
        assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
        assert!(json.contains(r#""sent":15"#), "{json}");
        assert!(json.contains(r#""ok":false"#), "{json}");
        assert!(json.contains(r#""latency_us":null"#), "{json}");
        let table = summary.table();
        assert!(table.contains("closed uncleanly: reset"), "{table}");
    }
}
