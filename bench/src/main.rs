//! Benchmark harness.
fn main() {}
