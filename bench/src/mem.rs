//! Resident memory of this process or of another one (the server child).

use crate::BoxError;

/// `VmRSS` of `/proc/self/status`, in KiB.
pub(crate) fn rss_kib() -> Result<u64, BoxError> {
    rss_kib_in("/proc/self/status")
}

/// `VmRSS` of the process `pid` (`/proc/<pid>/status`), in KiB.
pub(crate) fn rss_kib_of(pid: u32) -> Result<u64, BoxError> {
    rss_kib_in(&format!("/proc/{pid}/status"))
}

fn rss_kib_in(path: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in {path}").into())
}
