//! `AbortController` and `AbortSignal`, as on the web: a signal aborts the opening
//! handshake (an already aborted one prevents the connection attempt altogether) and
//! does nothing once the connection is open (WPT `abort.any.js`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{AbortReason, DomException, DomExceptionName};

/// Creates [`AbortSignal`]s and aborts them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use wsstream::{AbortController, DomException, DomExceptionName, WebSocketStream, WebSocketStreamOptions};
///
/// // A server that accepts the TCP connection but never answers the upgrade.
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let url = format!("ws://{}/", listener.local_addr()?);
/// tokio::spawn(async move {
///     let _held = listener.accept().await;
///     std::future::pending::<()>().await;
/// });
///
/// let controller = AbortController::new();
/// let mut options = WebSocketStreamOptions::default();
/// options.signal = Some(controller.signal());
/// let wss = WebSocketStream::new(&url, options)?;
///
/// tokio::time::sleep(Duration::from_millis(50)).await;
/// controller.abort(); // the handshake is still pending
///
/// let error = wss.opened().await.unwrap_err();
/// let reason = error.as_abort_reason().expect("the signal's reason");
/// let dom = reason.downcast_ref::<DomException>().expect("an AbortError");
/// assert_eq!(dom.name(), DomExceptionName::AbortError);
/// assert!(wss.closed().await.is_err()); // closed fails with the same reason
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct AbortController {
    signal: AbortSignal,
}

impl AbortController {
    /// A controller with a fresh, not yet aborted signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal to pass in [`WebSocketStreamOptions`](crate::WebSocketStreamOptions).
    pub fn signal(&self) -> AbortSignal {
        self.signal.clone()
    }

    /// Aborts with an `AbortError` DOMException as the reason.
    pub fn abort(&self) {
        self.signal.fire(Arc::new(DomException::abort_error()));
    }

    /// Aborts with the given reason; the same `Arc` is what `opened` and `closed` fail
    /// with (identity preserved, `Arc::ptr_eq`).
    pub fn abort_with(&self, reason: AbortReason) {
        self.signal.fire(reason);
    }
}

/// A signal that can abort the opening handshake. Cheap to clone; all clones observe the
/// same state.
#[derive(Clone, Debug, Default)]
pub struct AbortSignal {
    inner: Arc<SignalInner>,
}

#[derive(Debug, Default)]
struct SignalInner {
    reason: Mutex<Option<AbortReason>>,
    deadline: Option<Instant>,
    notify: Notify,
}

impl AbortSignal {
    /// A signal that is already aborted with an `AbortError` (JS `AbortSignal.abort()`).
    pub fn abort() -> Self {
        let signal = Self::default();
        signal.fire(Arc::new(DomException::abort_error()));
        signal
    }

    /// A signal that is already aborted with `reason`.
    pub fn abort_with(reason: AbortReason) -> Self {
        let signal = Self::default();
        signal.fire(reason);
        signal
    }

    /// A signal that aborts with a `TimeoutError` DOMException after `duration`
    /// (JS `AbortSignal.timeout()`). The clock starts now; it is the tokio clock, so it
    /// must be created inside a tokio runtime (or with a paused clock in tests).
    pub fn timeout(duration: Duration) -> Self {
        Self {
            inner: Arc::new(SignalInner {
                reason: Mutex::new(None),
                deadline: Some(Instant::now() + duration),
                notify: Notify::new(),
            }),
        }
    }

    /// Whether the signal has been aborted.
    pub fn aborted(&self) -> bool {
        self.reason().is_some()
    }

    /// The abort reason, once aborted.
    pub fn reason(&self) -> Option<AbortReason> {
        if let Some(deadline) = self.inner.deadline {
            if Instant::now() >= deadline {
                self.fire(Arc::new(DomException::new(
                    DomExceptionName::TimeoutError,
                    "signal timed out",
                )));
            }
        }
        lock(&self.inner.reason).clone()
    }

    fn fire(&self, reason: AbortReason) {
        let mut slot = lock(&self.inner.reason);
        if slot.is_none() {
            *slot = Some(reason);
            drop(slot);
            self.inner.notify.notify_waiters();
        }
    }

    /// Waits until the signal is aborted and returns the reason.
    pub async fn wait(&self) -> AbortReason {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.reason() {
                return reason;
            }
            match self.inner.deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_keeps_the_first_reason() {
        let controller = AbortController::new();
        let signal = controller.signal();
        assert!(!signal.aborted());
        let reason: AbortReason = Arc::new(DomException::abort_error());
        controller.abort_with(reason.clone());
        controller.abort();
        assert!(Arc::ptr_eq(&signal.reason().unwrap(), &reason));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_fires_with_timeout_error() {
        let signal = AbortSignal::timeout(Duration::from_secs(5));
        assert!(!signal.aborted());
        let reason = signal.wait().await;
        let dom = reason.downcast_ref::<DomException>().unwrap();
        assert_eq!(dom.name(), DomExceptionName::TimeoutError);
        assert!(Arc::ptr_eq(&reason, &signal.reason().unwrap()));
    }
}
