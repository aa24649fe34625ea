//! permessage-deflate through [`Connection`]: memory held by the DEFLATE state, then
//! compression (client role: compress, frame, mask) and decompression (client role:
//! inflate, UTF-8 check) throughput of JSON-like text messages of 1 KiB and 64 KiB.
//!
//! `cargo bench -p wsstream-proto --bench deflate`. No framework: each case moves at least
//! 16 MiB of payload (and a few hundred messages), best of three rounds; prints messages/s,
//! MB/s of uncompressed payload (10^6 bytes per second) and the compression ratio.
//! Messages are successive slices of a pseudo-random JSON-like corpus, so context takeover
//! helps as it does on a real feed, not as it would on one message repeated.

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cap::Cap;
use wsstream_proto::ext::deflate::{Compressor, Decompressor, DeflateConfig, DeflateParams};
use wsstream_proto::{Config, Connection, Event, Message, ProtocolError, Role};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const BYTES_PER_ROUND: usize = 16 << 20;
const MIN_MESSAGES: usize = 300;
const ROUNDS: usize = 3;

/// A pseudo-random JSON-like corpus of at least `len` bytes (an xorshift stream, so every
/// run measures the same bytes).
fn corpus(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const NAMES: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    const TAGS: [&str; 6] = ["news", "sport", "tech", "music", "travel", "food"];
    let mut out = String::with_capacity(len + 256);
    while out.len() < len {
        let r = next();
        out.push_str(&format!(
            r#"{{"id":{},"user":"{}{}","active":{},"score":{}.{:02},"tags":["{}","{}"],"ts":"2026-0{}-{:02}T{:02}:{:02}:{:02}Z"}},"#,
            r % 1_000_000,
            NAMES[(r >> 20) as usize % NAMES.len()],
            (r >> 24) % 1000,
            (r >> 34) % 2 == 0,
            (r >> 35) % 1000,
            (r >> 45) % 100,
            TAGS[(r >> 52) as usize % TAGS.len()],
            TAGS[(r >> 56) as usize % TAGS.len()],
            1 + (r >> 40) % 9,
            1 + (r >> 44) % 28,
            (r >> 48) % 24,
            (r >> 50) % 60,
            (r >> 54) % 60,
        ));
    }
    out
}

/// `count` messages of `size` bytes, successive slices of the corpus (cut on char
/// boundaries: the corpus is ASCII).
fn messages(corpus: &str, size: usize, count: usize) -> Vec<Message> {
    let span = corpus.len() - size;
    (0..count)
        .map(|i| {
            let at = (i * size) % span;
            Message::from(&corpus[at..at + size])
        })
        .collect()
}

fn config(level: u32, no_context_takeover: bool) -> Config {
    let params = DeflateParams {
        client_no_context_takeover: no_context_takeover,
        server_no_context_takeover: no_context_takeover,
        ..DeflateParams::default()
    };
    let deflate = DeflateConfig::default().compression_level(level);
    Config::default().deflate(Some((params, deflate)))
}

fn report(what: &str, size: usize, count: usize, time: Duration, wire: usize) {
    let secs = time.as_secs_f64().max(1e-12);
    let payload = size * count;
    println!(
        "{what:<34} {:>6}  {:>10.0} msg/s  {:>8.1} MB/s  ratio {:>5.1}%",
        if size >= 1024 {
            format!("{} KiB", size >> 10)
        } else {
            format!("{size} B")
        },
        count as f64 / secs,
        payload as f64 / secs / 1e6,
        100.0 * wire as f64 / payload as f64,
    )
}

/// A client sends every message (compressed unless `config` has no deflate), draining the
/// transmit buffer after each; returns the best time and the bytes put on the wire.
fn encode(config: &Config, messages: &[Message]) -> (Duration, usize) {
    let mut best = (Duration::MAX, 0);
    for _ in 0..ROUNDS {
        let Ok(mut client) = Connection::new(Role::Client, config.clone()) else {
            return best;
        };
        let mut wire = 0;
        let start = Instant::now();
        for message in messages {
            if client.send(message.clone()).is_err() {
                return best;
            }
            while let Some(out) = client.take_transmit() {
                wire += out.len();
                black_box(out);
            }
        }
        let elapsed = start.elapsed();
        if elapsed < best.0 {
            best = (elapsed, wire);
        }
    }
    best
}

/// What a server sends for `messages` (unmasked), as one buffer.
fn server_wire(config: &Config, messages: &[Message]) -> Vec<u8> {
    let mut wire = Vec::new();
    let Ok(mut server) = Connection::new(Role::Server, config.clone()) else {
        return wire;
    };
    for message in messages {
        if server.send(message.clone()).is_err() {
            return wire;
        }
        while let Some(out) = server.take_transmit() {
            wire.extend_from_slice(&out);
        }
    }
    wire
}

/// A client decodes (and inflates) everything in `wire`.
fn decode(config: &Config, wire: &[u8], count: usize) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let Ok(mut client) = Connection::new(Role::Client, config.clone()) else {
                return Duration::MAX;
            };
            let mut input = BytesMut::from(wire);
            let start = Instant::now();
            let mut got = 0;
            while let Some(event) = client.poll_event(&mut input) {
                match event {
                    Event::Message(m) => {
                        got += 1;
                        black_box(m);
                    }
                    _ => return Duration::MAX,
                }
            }
            let elapsed = start.elapsed();
            if got == count { elapsed } else { Duration::MAX }
        })
        .min()
        .unwrap_or_default()
}

/// Heap bytes held by a compressor and a decompressor with `bits` at `level`: after a
/// first small message (the DEFLATE state as allocated), and after a 64 KiB message (every
/// buffer touched). The message buffers are allocated before measuring.
fn memory(bits: u8, level: u32, text: &str) -> [usize; 4] {
    const SMALL: &[u8] = br#"{"hello":"world"}"#;
    let data = &text.as_bytes()[..64 << 10];
    let mut small = Vec::with_capacity(1 << 10);
    let mut big = Vec::with_capacity(128 << 10);
    let mut out = Vec::with_capacity(128 << 10);
    let ok = |_: &[u8]| Ok::<(), ProtocolError>(());

    let base = ALLOC.allocated();
    let mut c = Compressor::new(bits, false, level);
    c.compress(SMALL, &mut small);
    let c_first = ALLOC.allocated() - base;
    c.compress(data, &mut big);
    let c_steady = ALLOC.allocated() - base;

    let base = ALLOC.allocated();
    let mut d = Decompressor::new(bits, false);
    let _ = d.inflate(&small, &mut out, usize::MAX, ok);
    let _ = d.finish(false, &mut out, usize::MAX, ok);
    let d_first = ALLOC.allocated() - base;
    out.clear();
    let _ = d.inflate(&big, &mut out, usize::MAX, ok);
    let _ = d.finish(false, &mut out, usize::MAX, ok);
    let d_steady = ALLOC.allocated() - base;
    assert_eq!(out, data, "round trip");
    black_box((&c, &d));
    [c_first, c_steady, d_first, d_steady]
}

/// Heap bytes of a client and a server [`Connection`] with deflate negotiated: idle, and
/// after one 64 KiB compressed message each way (all four DEFLATE states allocated).
fn connection_memory(bits: u8, text: &str) -> (usize, usize) {
    let params = DeflateParams {
        client_max_window_bits: bits,
        server_max_window_bits: bits,
        ..DeflateParams::default()
    };
    let config = Config::default().deflate(Some((params, DeflateConfig::default())));
    let message = Message::from(&text[..64 << 10]);
    let base = ALLOC.allocated();
    let (Ok(mut client), Ok(mut server)) = (
        Connection::new(Role::Client, config.clone()),
        Connection::new(Role::Server, config),
    ) else {
        return (0, 0);
    };
    let idle = ALLOC.allocated() - base;
    if !exchange(&mut client, &mut server, &message)
        || !exchange(&mut server, &mut client, &message)
    {
        return (0, 0);
    }
    let used = ALLOC.allocated() - base;
    black_box((&client, &server));
    (idle, used)
}

/// `from` sends `message` and `to` receives it.
fn exchange(from: &mut Connection, to: &mut Connection, message: &Message) -> bool {
    if from.send(message.clone()).is_err() {
        return false;
    }
    let mut input = BytesMut::new();
    while let Some(out) = from.take_transmit() {
        input.extend_from_slice(&out);
    }
    let mut got = false;
    while let Some(event) = to.poll_event(&mut input) {
        got |= matches!(event, Event::Message(_));
    }
    got
}

fn main() {
    let text = corpus(8 << 20);
    println!("== memory: heap bytes of the DEFLATE state (counting allocator)");
    println!("window  level  compressor  decompressor   (after the first small message)");
    for bits in [15u8, 12, 10, 9] {
        for level in [1u32, 6] {
            let [c_first, c_steady, d_first, d_steady] = memory(bits, level, &text);
            println!(
                "{bits:>6}  {level:>5}  {c_steady:>10}  {d_steady:>12}   ({c_first} / {d_first})"
            );
        }
    }
    println!("\nclient + server Connection, deflate negotiated: idle / after 64 KiB each way");
    for bits in [15u8, 12, 9] {
        let (idle, used) = connection_memory(bits, &text);
        println!("{bits:>6}  {idle:>8} B / {used:>8} B");
    }

    println!("\n== throughput");
    for (size, count) in [(1usize << 10, 0usize), (64 << 10, 0)] {
        let count = if count == 0 {
            (BYTES_PER_ROUND / size).max(MIN_MESSAGES)
        } else {
            count
        };
        let batch = messages(&text, size, count);
        let plain = Config::default();
        let (t, wire) = encode(&plain, &batch);
        report("send, uncompressed", size, count, t, wire);
        for (level, nct) in [(1u32, false), (6, false), (1, true)] {
            let config = config(level, nct);
            let (t, wire) = encode(&config, &batch);
            let label = format!(
                "deflate level {level}{}",
                if nct { ", no takeover" } else { "" }
            );
            report(&label, size, count, t, wire);
        }
        let wire = server_wire(&plain, &batch);
        report(
            "receive, uncompressed",
            size,
            count,
            decode(&plain, &wire, count),
            wire.len(),
        );
        for (level, nct) in [(1u32, false), (6, false), (1, true)] {
            let config = config(level, nct);
            let wire = server_wire(&config, &batch);
            let label = format!(
                "inflate (sent at level {level}{})",
                if nct { ", no takeover" } else { "" }
            );
            report(
                &label,
                size,
                count,
                decode(&config, &wire, count),
                wire.len(),
            );
        }
    }
}
