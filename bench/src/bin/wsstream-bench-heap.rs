//! `wsstream-bench` with a counting global allocator, for heap bytes per idle connection.

use std::alloc::System;

use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn allocated() -> usize {
    ALLOCATOR.allocated()
}

fn main() -> std::process::ExitCode {
    wsstream_bench::run_cli(Some(allocated))
}
