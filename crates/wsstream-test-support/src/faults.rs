//! Hostile transports: wrappers over any `AsyncRead + AsyncWrite` that behave like the
//! worst networks and kernels a WebSocket endpoint may meet, while staying correct
//! byte streams (until a reset or a stall is asked for).
//!
//! * [`Faults::one_byte_reads`] / [`Faults::read_chunk`]: every read returns at most
//!   this many bytes, so every frame header, length and payload is split at every offset.
//! * [`Faults::short_writes`] / [`Faults::write_chunk`]: every write accepts at most this
//!   many bytes (vectored writes too), so every encoded frame is written in pieces.
//! * [`Faults::spurious_pending`]: every other poll (read, write, flush, shutdown) returns
//!   `Pending` after waking the task at once, as a spurious wake-up would: a driver that
//!   forgets to re-poll, or that loses state across `Pending`, hangs or corrupts data.
//! * [`Faults::reset_after_read`] / [`Faults::reset_after_write`]: once this many bytes
//!   have crossed in that direction, the connection is reset: every later operation fails
//!   with `ConnectionReset`, and the inner stream is dropped so the peer sees the end.
//! * [`Faults::stall_after_read`] / [`Faults::stall_after_write`]: once this many bytes
//!   have crossed in that direction, that direction returns `Pending` forever without ever
//!   waking the task (a dead path: only a timeout can end it). A write stall also stalls
//!   flush and shutdown.
//!
//! ```
//! use wsstream_test_support::faults::Faults;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let (a, mut b) = tokio::io::duplex(64);
//! let mut a = Faults::new().one_byte_reads().spurious_pending().wrap(a);
//! let stats = a.stats();
//! b.write_all(b"hello").await.unwrap();
//! let mut got = [0u8; 5];
//! a.read_exact(&mut got).await.unwrap();
//! assert_eq!(&got, b"hello");
//! assert_eq!(stats.reads(), 5);
//! assert!(stats.pendings() > 0);
//! # }
//! ```

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which faults a [`Faulty`] transport injects. Built with the chainable setters; every
/// fault is off by default, so `Faults::new().wrap(io)` is a transparent wrapper.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    read_chunk: Option<usize>,
    write_chunk: Option<usize>,
    spurious_pending: bool,
    reset_after_read: Option<u64>,
    reset_after_write: Option<u64>,
    stall_after_read: Option<u64>,
    stall_after_write: Option<u64>,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every read returns at most one byte.
    #[must_use]
    pub fn one_byte_reads(self) -> Self {
        self.read_chunk(1)
    }

    /// Every read returns at most `n` bytes (`n` ≥ 1).
    #[must_use]
    pub fn read_chunk(mut self, n: usize) -> Self {
        self.read_chunk = Some(n.max(1));
        self
    }

    /// Every write accepts at most one byte.
    #[must_use]
    pub fn short_writes(self) -> Self {
        self.write_chunk(1)
    }

    /// Every write accepts at most `n` bytes (`n` ≥ 1).
    #[must_use]
    pub fn write_chunk(mut self, n: usize) -> Self {
        self.write_chunk = Some(n.max(1));
        self
    }

    /// Every other poll returns `Pending` after waking the task immediately.
    #[must_use]
    pub fn spurious_pending(mut self) -> Self {
        self.spurious_pending = true;
        self
    }

    /// After `n` bytes have been read, the connection is reset (`ConnectionReset`).
    #[must_use]
    pub fn reset_after_read(mut self, n: u64) -> Self {
        self.reset_after_read = Some(n);
        self
    }

    /// After `n` bytes have been written, the connection is reset (`ConnectionReset`).
    #[must_use]
    pub fn reset_after_write(mut self, n: u64) -> Self {
        self.reset_after_write = Some(n);
        self
    }

    /// After `n` bytes have been read, reads never complete (and never wake the task).
    #[must_use]
    pub fn stall_after_read(mut self, n: u64) -> Self {
        self.stall_after_read = Some(n);
        self
    }

    /// After `n` bytes have been written, writes, flushes and shutdown never complete.
    #[must_use]
    pub fn stall_after_write(mut self, n: u64) -> Self {
        self.stall_after_write = Some(n);
        self
    }

    /// Wraps `io`.
    pub fn wrap<S>(self, io: S) -> Faulty<S> {
        Faulty {
            inner: Some(io),
            faults: self,
            stats: FaultStats::default(),
            read_flip: false,
            write_flip: false,
            scratch: Vec::new(),
        }
    }

    /// The smallest read or write chunk in force, if any: how hard the faults slow a
    /// connection down (scenarios scale their data by it).
    pub fn min_chunk(&self) -> Option<usize> {
        match (self.read_chunk, self.write_chunk) {
            (Some(r), Some(w)) => Some(r.min(w)),
            (r, w) => r.or(w),
        }
    }

    /// A short label for test names and messages, e.g. `"1-byte reads + spurious Pending"`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.read_chunk {
            parts.push(format!("{n}-byte reads"));
        }
        if let Some(n) = self.write_chunk {
            parts.push(format!("{n}-byte writes"));
        }
        if self.spurious_pending {
            parts.push("spurious Pending".to_owned());
        }
        if let Some(n) = self.reset_after_read {
            parts.push(format!("reset after {n} bytes read"));
        }
        if let Some(n) = self.reset_after_write {
            parts.push(format!("reset after {n} bytes written"));
        }
        if let Some(n) = self.stall_after_read {
            parts.push(format!("read stall after {n} bytes"));
        }
        if let Some(n) = self.stall_after_write {
            parts.push(format!("write stall after {n} bytes"));
        }
        if parts.is_empty() {
            "no faults".to_owned()
        } else {
            parts.join(" + ")
        }
    }

    /// The fault sets that keep the byte stream intact: each one alone, then all at once.
    /// Every scenario must give the same result over each of them.
    pub fn benign_matrix() -> Vec<Self> {
        vec![
            Self::new(),
            Self::new().one_byte_reads(),
            Self::new().short_writes(),
            Self::new().spurious_pending(),
            Self::new().read_chunk(3).write_chunk(5),
            Self::new()
                .one_byte_reads()
                .short_writes()
                .spurious_pending(),
        ]
    }
}

/// Counters of a [`Faulty`] transport, shared with the test (clone it before the transport
/// moves into a connection).
#[derive(Clone, Debug, Default)]
pub struct FaultStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    reads: AtomicU64,
    writes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    pendings: AtomicU64,
    reset: AtomicBool,
    read_stalled: AtomicBool,
    write_stalled: AtomicBool,
    dropped: AtomicBool,
}

impl FaultStats {
    /// Reads that returned data.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Acquire)
    }
    /// Writes that accepted data.
    pub fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Acquire)
    }
    /// Bytes read through the wrapper.
    pub fn bytes_read(&self) -> u64 {
        self.inner.bytes_read.load(Ordering::Acquire)
    }
    /// Bytes written through the wrapper.
    pub fn bytes_written(&self) -> u64 {
        self.inner.bytes_written.load(Ordering::Acquire)
    }
    /// Spurious `Pending`s returned.
    pub fn pendings(&self) -> u64 {
        self.inner.pendings.load(Ordering::Acquire)
    }
    /// Whether the reset fault fired.
    pub fn was_reset(&self) -> bool {
        self.inner.reset.load(Ordering::Acquire)
    }
    /// Whether a read hit the stall.
    pub fn read_stalled(&self) -> bool {
        self.inner.read_stalled.load(Ordering::Acquire)
    }
    /// Whether a write, flush or shutdown hit the stall.
    pub fn write_stalled(&self) -> bool {
        self.inner.write_stalled.load(Ordering::Acquire)
    }
    /// Whether the wrapper has been dropped (the connection released its transport).
    pub fn dropped(&self) -> bool {
        self.inner.dropped.load(Ordering::Acquire)
    }
}

/// A transport with faults injected; see the [module docs](self).
#[derive(Debug)]
pub struct Faulty<S> {
    /// `None` once reset: the peer sees the connection end.
    inner: Option<S>,
    faults: Faults,
    stats: FaultStats,
    read_flip: bool,
    write_flip: bool,
    scratch: Vec<u8>,
}

impl<S> Drop for Faulty<S> {
    fn drop(&mut self) {
        self.stats.inner.dropped.store(true, Ordering::Release);
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset (injected fault)",
    )
}

impl<S> Faulty<S> {
    /// The counters, shared: clone before moving the transport away.
    pub fn stats(&self) -> FaultStats {
        self.stats.clone()
    }

    /// The faults in force.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    fn reset(&mut self) -> io::Error {
        self.inner = None;
        self.stats.inner.reset.store(true, Ordering::Release);
        reset_error()
    }

    /// `Some(Pending)` when this poll is a spurious one.
    fn spurious(flip: &mut bool, stats: &FaultStats, cx: &Context<'_>, enabled: bool) -> bool {
        if !enabled {
            return false;
        }
        *flip = !*flip;
        if *flip {
            stats.inner.pendings.fetch_add(1, Ordering::AcqRel);
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }

    /// How many bytes the next write may take, or the fault to report instead.
    fn write_budget(&mut self, want: usize) -> Result<usize, Poll<io::Error>> {
        let written = self.stats.bytes_written();
        if let Some(n) = self.faults.reset_after_write {
            if written >= n {
                return Err(Poll::Ready(self.reset()));
            }
        }
        if let Some(n) = self.faults.stall_after_write {
            if written >= n {
                self.stats
                    .inner
                    .write_stalled
                    .store(true, Ordering::Release);
                return Err(Poll::Pending);
            }
        }
        let mut budget = want;
        if let Some(chunk) = self.faults.write_chunk {
            budget = budget.min(chunk);
        }
        for limit in [self.faults.reset_after_write, self.faults.stall_after_write]
            .into_iter()
            .flatten()
        {
            budget = budget.min(usize::try_from(limit - written).unwrap_or(usize::MAX));
        }
        Ok(budget)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Faulty<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inner.is_none() {
            return Poll::Ready(Err(reset_error()));
        }
        if Self::spurious(
            &mut this.read_flip,
            &this.stats,
            cx,
            this.faults.spurious_pending,
        ) {
            return Poll::Pending;
        }
        let read = this.stats.bytes_read();
        if let Some(n) = this.faults.reset_after_read {
            if read >= n {
                return Poll::Ready(Err(this.reset()));
            }
        }
        if let Some(n) = this.faults.stall_after_read {
            if read >= n {
                this.stats.inner.read_stalled.store(true, Ordering::Release);
                return Poll::Pending;
            }
        }
        let mut budget = buf.remaining();
        if let Some(chunk) = this.faults.read_chunk {
            budget = budget.min(chunk);
        }
        for limit in [this.faults.reset_after_read, this.faults.stall_after_read]
            .into_iter()
            .flatten()
        {
            budget = budget.min(usize::try_from(limit - read).unwrap_or(usize::MAX));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(reset_error()));
        };
        if budget == 0 {
            // The caller offered no room: nothing to limit.
            return Pin::new(inner).poll_read(cx, buf);
        }
        let n = if budget == buf.remaining() {
            let before = buf.filled().len();
            match Pin::new(inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => buf.filled().len() - before,
                other => return other,
            }
        } else {
            this.scratch.resize(budget, 0);
            let mut limited = ReadBuf::new(&mut this.scratch);
            match Pin::new(inner).poll_read(cx, &mut limited) {
                Poll::Ready(Ok(())) => {
                    let got = limited.filled();
                    buf.put_slice(got);
                    got.len()
                }
                other => return other,
            }
        };
        if n > 0 {
            this.stats.inner.reads.fetch_add(1, Ordering::AcqRel);
            this.stats
                .inner
                .bytes_read
                .fetch_add(n as u64, Ordering::AcqRel);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Faulty<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.inner.is_none() {
            return Poll::Ready(Err(reset_error()));
        }
        if Self::spurious(
            &mut this.write_flip,
            &this.stats,
            cx,
            this.faults.spurious_pending,
        ) {
            return Poll::Pending;
        }
        let budget = match this.write_budget(buf.len()) {
            Ok(budget) => budget,
            Err(Poll::Ready(e)) => return Poll::Ready(Err(e)),
            Err(Poll::Pending) => return Poll::Pending,
        };
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(reset_error()));
        };
        match Pin::new(inner).poll_write(cx, &buf[..budget.min(buf.len())]) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.stats.inner.writes.fetch_add(1, Ordering::AcqRel);
                    this.stats
                        .inner
                        .bytes_written
                        .fetch_add(n as u64, Ordering::AcqRel);
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Always through poll_write: the first non-empty slice, cut to the budget.
        let buf = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if Self::spurious(
            &mut this.write_flip,
            &this.stats,
            cx,
            this.faults.spurious_pending,
        ) {
            return Poll::Pending;
        }
        if this
            .faults
            .stall_after_write
            .is_some_and(|n| this.stats.bytes_written() >= n)
        {
            this.stats
                .inner
                .write_stalled
                .store(true, Ordering::Release);
            return Poll::Pending;
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Err(reset_error())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if Self::spurious(
            &mut this.write_flip,
            &this.stats,
            cx,
            this.faults.spurious_pending,
        ) {
            return Poll::Pending;
        }
        if this
            .faults
            .stall_after_write
            .is_some_and(|n| this.stats.bytes_written() >= n)
        {
            this.stats
                .inner
                .write_stalled
                .store(true, Ordering::Release);
            return Poll::Pending;
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Err(reset_error())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn one_byte_reads_and_short_writes_keep_the_stream_intact() {
        let (a, b) = tokio::io::duplex(16);
        let mut a = Faults::new()
            .one_byte_reads()
            .short_writes()
            .spurious_pending()
            .wrap(a);
        let stats = a.stats();
        let mut b = b;
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            b.write_all(&data).await.unwrap();
            let mut echo = vec![0u8; 1000];
            b.read_exact(&mut echo).await.unwrap();
            echo
        });
        let mut got = vec![0u8; 1000];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
        a.write_all(&got).await.unwrap();
        assert_eq!(writer.await.unwrap(), expected);
        assert_eq!((stats.reads(), stats.writes()), (1000, 1000));
        assert!(stats.pendings() >= 1000);
    }

    #[tokio::test]
    async fn reset_after_read_cuts_at_the_byte_and_ends_the_peer() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Faults::new().reset_after_read(3).wrap(a);
        b.write_all(b"hello").await.unwrap();
        let mut got = Vec::new();
        let err = a.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(got, b"hel");
        assert!(a.stats().was_reset());
        // The inner stream is gone: the peer reads EOF.
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert!(a.write(b"x").await.is_err());
    }

    #[tokio::test]
    async fn reset_after_write_cuts_at_the_byte() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Faults::new().reset_after_write(4).wrap(a);
        let err = a.write_all(b"abcdefgh").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abcd");
    }

    #[tokio::test]
    async fn stalls_never_complete() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Faults::new()
            .stall_after_read(2)
            .stall_after_write(1)
            .wrap(a);
        b.write_all(b"xyz").await.unwrap();
        let mut two = [0u8; 2];
        a.read_exact(&mut two).await.unwrap();
        let wait = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, a.read_u8()).await.is_err());
        assert!(a.stats().read_stalled());
        assert_eq!(a.write(b"pq").await.unwrap(), 1);
        assert!(tokio::time::timeout(wait, a.write(b"q")).await.is_err());
        assert!(tokio::time::timeout(wait, a.shutdown()).await.is_err());
        assert!(a.stats().write_stalled());
    }
}
