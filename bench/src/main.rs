//! `wsstream-bench`: see the library docs.

fn main() -> std::process::ExitCode {
    wsstream_bench::run_cli(None)
}
