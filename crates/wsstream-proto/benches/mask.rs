//! Masking throughput: `wire::mask::mask` (word-at-a-time) against `mask_bytewise`, then
//! `mask_into` (the copy into the send buffer fused with the masking) against a plain copy
//! followed by an in-place `mask` over the whole payload.
//!
//! `cargo bench -p wsstream-proto --bench mask`. No framework: each case runs a few hundred
//! iterations or more (enough to move at least 128 MiB), best of five rounds, and prints
//! GB/s (10^9 bytes per second) of each implementation and the ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use wsstream_proto::wire::mask::{mask, mask_bytewise, mask_into};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [(usize, &str); 4] = [
    (16, "16 B"),
    (1 << 10, "1 KiB"),
    (64 << 10, "64 KiB"),
    (1 << 20, "1 MiB"),
];
const BYTES_PER_ROUND: usize = 128 << 20;
const MIN_ITERATIONS: usize = 300;
const ROUNDS: usize = 5;

/// Best time of [`ROUNDS`] rounds of `iterations` calls of `f`.
fn best_of(iterations: usize, mut f: impl FnMut()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn gbps(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64().max(1e-12) / 1e9
}

fn main() {
    println!(
        "{:>8}  {:>12}  {:>14}  {:>7}",
        "size", "mask GB/s", "bytewise GB/s", "ratio"
    );
    for (size, label) in SIZES {
        let iterations = (BYTES_PER_ROUND / size).max(MIN_ITERATIONS);
        // Offset by one byte from the allocation so the fast path also sees unaligned data.
        let mut storage = vec![0xA5u8; size + 1];
        let buf = &mut storage[1..];
        let fast = best_of(iterations, || {
            mask(black_box(&mut *buf), black_box(KEY), black_box(0))
        });
        let slow = best_of(iterations, || {
            mask_bytewise(black_box(&mut *buf), black_box(KEY), black_box(0))
        });
        let total = size * iterations;
        let (fast, slow) = (gbps(total, fast), gbps(total, slow));
        println!(
            "{label:>8}  {fast:>12.2}  {slow:>14.2}  {:>6.1}x",
            fast / slow
        );
    }

    println!();
    println!(
        "{:>8}  {:>15}  {:>19}  {:>7}",
        "size", "mask_into GB/s", "copy then mask GB/s", "ratio"
    );
    for (size, label) in SIZES {
        let iterations = (BYTES_PER_ROUND / size).max(MIN_ITERATIONS);
        let src = vec![0xA5u8; size];
        let mut out = BytesMut::with_capacity(size + 14);
        let fused = best_of(iterations, || {
            out.clear();
            mask_into(black_box(&mut out), black_box(&src), black_box(KEY));
            black_box(&out);
        });
        let split = best_of(iterations, || {
            out.clear();
            out.extend_from_slice(black_box(&src));
            mask(black_box(&mut out[..]), black_box(KEY), 0);
            black_box(&out);
        });
        let total = size * iterations;
        let (fused, split) = (gbps(total, fused), gbps(total, split));
        println!(
            "{label:>8}  {fused:>15.2}  {split:>19.2}  {:>6.2}x",
            fused / split
        );
    }
}
