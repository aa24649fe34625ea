//! A settle-once value that any number of futures can await: the `opened` and `closed`
//! promises.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A value set once and observed by any number of awaiters.
#[derive(Debug)]
pub(crate) struct Promise<T> {
    state: Mutex<PromiseState<T>>,
}

#[derive(Debug)]
struct PromiseState<T> {
    value: Option<T>,
    wakers: Vec<Waker>,
}

impl<T: Clone> Promise<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(PromiseState {
                value: None,
                wakers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PromiseState<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Settles the promise; later calls are ignored. Returns whether this call settled it.
    pub(crate) fn settle(&self, value: T) -> bool {
        let wakers = {
            let mut state = self.lock();
            if state.value.is_some() {
                return false;
            }
            state.value = Some(value);
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
        true
    }

    /// The value, if settled.
    pub(crate) fn get(&self) -> Option<T> {
        self.lock().value.clone()
    }

    pub(crate) fn poll_get(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.lock();
        if let Some(value) = &state.value {
            return Poll::Ready(value.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A future over a shared [`Promise`].
pub(crate) struct Wait<T> {
    pub(crate) promise: Arc<Promise<T>>,
}

impl<T: Clone> Future for Wait<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.promise.poll_get(cx)
    }
}
