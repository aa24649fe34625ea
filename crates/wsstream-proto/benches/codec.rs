//! Codec throughput through [`Connection`]: encoding (client role, masked), decoding (client
//! role, unmasked server frames) and UTF-8 validation.
//!
//! `cargo bench -p wsstream-proto --bench codec`. No framework: each case moves at least
//! 64 MiB (and a few hundred messages), best of five rounds; prints messages/s and GB/s
//! (10^9 bytes of payload per second).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use wsstream_proto::message::Utf8Validator;
use wsstream_proto::{Config, Connection, Event, Message, Role};

const SIZES: [(usize, &str); 3] = [(16, "16 B"), (1 << 10, "1 KiB"), (64 << 10, "64 KiB")];
const BYTES_PER_ROUND: usize = 64 << 20;
const MIN_MESSAGES: usize = 300;
const ROUNDS: usize = 5;

fn messages_for(size: usize) -> usize {
    (BYTES_PER_ROUND / size.max(1)).max(MIN_MESSAGES)
}

fn report(what: &str, label: &str, messages: usize, payload: usize, time: Duration) {
    let secs = time.as_secs_f64().max(1e-12);
    println!(
        "{what:<28} {label:>7}  {:>12.0} msg/s  {:>7.2} GB/s",
        messages as f64 / secs,
        (messages * payload) as f64 / secs / 1e9
    );
}

fn min_time(rounds: impl Iterator<Item = Duration>) -> Duration {
    rounds.min().unwrap_or_default()
}

/// A client sends `count` binary messages of `size` bytes; the transmit buffer is drained
/// after each one (as a runtime writing to a socket does).
fn encode(size: usize, count: usize) -> Duration {
    let message = Message::from(vec![0x42u8; size]);
    min_time((0..ROUNDS).map(|_| {
        let Ok(mut client) = Connection::new(Role::Client, Config::default()) else {
            return Duration::MAX;
        };
        let start = Instant::now();
        for _ in 0..count {
            if client.send(black_box(message.clone())).is_err() {
                return Duration::MAX;
            }
            while let Some(out) = client.take_transmit() {
                black_box(out);
            }
        }
        start.elapsed()
    }))
}

/// A client decodes `count` unmasked binary messages of `size` bytes from one buffer,
/// with the full decoder (`poll_event`) or the fast path first (`poll_message`, as the
/// runtime's reader does).
fn decode(size: usize, count: usize, fast: bool) -> Duration {
    let Ok(mut server) = Connection::new(Role::Server, Config::default()) else {
        return Duration::MAX;
    };
    let message = Message::from(vec![0x42u8; size]);
    let mut wire = BytesMut::new();
    for _ in 0..count {
        if server.send(message.clone()).is_err() {
            return Duration::MAX;
        }
        while let Some(out) = server.take_transmit() {
            wire.extend_from_slice(&out);
        }
    }
    min_time((0..ROUNDS).map(|_| {
        let Ok(mut client) = Connection::new(Role::Client, Config::default()) else {
            return Duration::MAX;
        };
        let mut input = wire.clone();
        let mut received = 0;
        let start = Instant::now();
        loop {
            if fast {
                if let Some(message) = client.poll_message(&mut input) {
                    received += 1;
                    black_box(message);
                    continue;
                }
            }
            let Some(event) = client.poll_event(&mut input) else {
                break;
            };
            if matches!(event, Event::Message(_)) {
                received += 1;
            }
            black_box(event);
        }
        let elapsed = start.elapsed();
        if received == count {
            elapsed
        } else {
            Duration::MAX
        }
    }))
}

/// Validates `text` `count` times with the incremental validator (one feed per message).
fn validate(text: &[u8], count: usize) -> Duration {
    min_time((0..ROUNDS).map(|_| {
        let start = Instant::now();
        for _ in 0..count {
            let mut validator = Utf8Validator::new();
            let ok = validator.feed(black_box(text)).is_ok() && validator.finish().is_ok();
            black_box(ok);
        }
        start.elapsed()
    }))
}

/// Validates `text` fed in `piece`-byte chunks (a frame arriving over several reads).
fn validate_chunked(text: &[u8], piece: usize, count: usize) -> Duration {
    min_time((0..ROUNDS).map(|_| {
        let start = Instant::now();
        for _ in 0..count {
            let mut validator = Utf8Validator::new();
            let mut ok = true;
            for chunk in text.chunks(piece) {
                ok &= validator.feed(black_box(chunk)).is_ok();
            }
            black_box(ok && validator.finish().is_ok());
        }
        start.elapsed()
    }))
}

fn main() {
    for (size, label) in SIZES {
        let count = messages_for(size);
        report(
            "encode (client, masked)",
            label,
            count,
            size,
            encode(size, count),
        );
    }
    for (size, label) in SIZES {
        let count = messages_for(size);
        report(
            "decode (client, unmasked)",
            label,
            count,
            size,
            decode(size, count, false),
        );
        report(
            "decode fast path (poll_message)",
            label,
            count,
            size,
            decode(size, count, true),
        );
    }
    let ascii: Vec<u8> = (0..64 << 10).map(|i| b'a' + (i % 26) as u8).collect();
    let mixed: Vec<u8> = "héllo wörld ロボット 𝄞 "
        .repeat(3000)
        .into_bytes()
        .into_iter()
        .take(64 << 10)
        .collect();
    // Cut at a char boundary so the sample is valid UTF-8.
    let mixed_len = std::str::from_utf8(&mixed).map_or_else(|e| e.valid_up_to(), str::len);
    let mixed = &mixed[..mixed_len];
    for (text, what) in [(&ascii[..], "utf8 ascii"), (mixed, "utf8 mixed")] {
        for size in [16usize, 1 << 10, text.len()] {
            let count = messages_for(size);
            let label = if size >= 1 << 10 {
                format!("{} KiB", size >> 10)
            } else {
                format!("{size} B")
            };
            report(
                what,
                &label,
                count,
                size,
                validate(&text[..size.min(text.len())], count),
            );
        }
    }
    let count = messages_for(mixed.len());
    report(
        "utf8 mixed, 1500 B reads",
        "64 KiB",
        count,
        mixed.len(),
        validate_chunked(mixed, 1500, count),
    );
}
