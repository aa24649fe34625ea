//! Who is woken when the socket becomes readable or writable.
//!
//! Every socket operation of a connection, whichever task performs it, passes one of two
//! wakers of this module to the transport: [`WakeHub::read_waker`] for reads and
//! [`WakeHub::write_waker`] for writes. They never name a task directly; when the
//! transport fires one, the hub decides:
//!
//! * **Readable**: the reader, if a read is waiting for a message (it then reads the
//!   socket itself, in its own task); otherwise the connection task, which reads on
//!   behalf of nobody in particular: it keeps the one-message queue filled, answers pings
//!   and sees the peer's Close while the application is busy elsewhere. A reader that was
//!   woken and has not polled again since gets no second wake-up: the next one goes to
//!   the connection task, so a read abandoned without being dropped cannot stall the
//!   connection for more than one event.
//! * **Writable**: the waiting writers (their futures write the rest themselves) and the
//!   connection task (a write whose future nobody polls is still sent). This happens only
//!   after the socket's send buffer was full, not once per message.
//!
//! The hub has its own small lock and never takes the connection's, so a transport may
//! fire a waker at any time, even synchronously from inside a read or a write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

/// The wake-up routing of one connection.
#[derive(Debug, Default)]
pub(super) struct WakeHub {
    state: Mutex<HubState>,
    /// A waiting read's waker is registered and was not woken yet (`reader_waiting` with
    /// `reader` set), readable without the lock: most messages are queued, and most reads
    /// complete, with no read registered, and the check then costs no lock.
    reader_armed: AtomicBool,
    /// Whether `state.writers` is not empty, readable without the lock (a write completes
    /// per message on the hot path, usually with nobody waiting).
    writers_waiting: AtomicBool,
}

#[derive(Debug, Default)]
struct HubState {
    /// The task of the last read that returned `Pending`.
    reader: Option<Waker>,
    /// A read returned `Pending` and has not completed or been dropped since. Its waker is
    /// in `reader` until it is woken; a read that was woken and has not come back gets no
    /// second wake-up (the next one goes to the connection task).
    reader_waiting: bool,
    /// Tasks waiting for a write to complete, for room in the send buffer, or for a
    /// flush.
    writers: Vec<Waker>,
    /// The connection task.
    driver: Option<Waker>,
    /// The connection task was woken and has not run since: no need to wake it again.
    driver_notified: bool,
}

impl WakeHub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The waker to pass to the transport's reads.
    pub(super) fn read_waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::new(ReadReady(self.clone())))
    }

    /// The waker to pass to the transport's writes, flushes and shutdown.
    pub(super) fn write_waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::new(WriteReady(self.clone())))
    }

    /// A read returned `Pending`: socket readiness and new messages go to `waker`.
    pub(super) fn reader_waits(&self, waker: &Waker) {
        let mut state = self.lock();
        state.reader_waiting = true;
        if !state.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.reader = Some(waker.clone());
        }
        self.reader_armed.store(true, Ordering::Release);
    }

    /// Takes the waiting read's waker, if it was not woken yet.
    fn take_reader(&self, state: &mut HubState) -> Option<Waker> {
        let waker = if state.reader_waiting {
            state.reader.take()
        } else {
            None
        };
        self.reader_armed.store(false, Ordering::Release);
        waker
    }

    /// A read that had waited completed: readiness goes to the connection task again. (A
    /// read that was woken needs nothing: the next readiness goes to the connection task
    /// anyway, so this takes the lock only after a poll nobody woke.)
    pub(super) fn reader_done(&self) {
        if self.reader_armed.load(Ordering::Acquire) {
            let mut state = self.lock();
            state.reader_waiting = false;
            state.reader = None;
            self.reader_armed.store(false, Ordering::Release);
        }
    }

    /// The waiting read was dropped (or its reader released): the connection task takes
    /// over the socket reads it would have made.
    pub(super) fn reader_gone(&self) {
        let mut state = self.lock();
        state.reader = None;
        self.reader_armed.store(false, Ordering::Release);
        if std::mem::take(&mut state.reader_waiting) {
            Self::wake_driver_locked(&mut state);
        }
    }

    /// Something the reader waits for happened (a message was queued, the stream ended).
    pub(super) fn wake_reader(&self) {
        if !self.reader_armed.load(Ordering::Acquire) {
            return;
        }
        let waker = {
            let mut state = self.lock();
            let waker = self.take_reader(&mut state);
            state.reader_waiting = false;
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A waiting read whose task was woken but has not polled again: that task may have
    /// stopped polling it, so the connection task should read instead.
    pub(super) fn nudge_if_reader_stale(&self) {
        let mut state = self.lock();
        if state.reader_waiting && state.reader.is_none() {
            state.reader_waiting = false;
            Self::wake_driver_locked(&mut state);
        }
    }

    /// A writer waits for its write to complete, for room, or for a flush.
    pub(super) fn writer_waits(&self, waker: &Waker) {
        let mut state = self.lock();
        if !state.writers.iter().any(|w| w.will_wake(waker)) {
            state.writers.push(waker.clone());
        }
        self.writers_waiting.store(true, Ordering::Release);
    }

    /// Something writers wait for happened: a write completed, room appeared, the
    /// writable errored.
    pub(super) fn wake_writers(&self) {
        if !self.writers_waiting.load(Ordering::Acquire) {
            return;
        }
        let writers = {
            let mut state = self.lock();
            self.writers_waiting.store(false, Ordering::Release);
            std::mem::take(&mut state.writers)
        };
        for waker in writers {
            waker.wake();
        }
    }

    /// The connection task is being polled with `waker`.
    pub(super) fn driver_polled(&self, waker: &Waker) {
        let mut state = self.lock();
        state.driver_notified = false;
        if !state.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.driver = Some(waker.clone());
        }
    }

    /// Wakes the connection task (timers to arm, work nobody else will do).
    pub(super) fn wake_driver(&self) {
        Self::wake_driver_locked(&mut self.lock());
    }

    fn wake_driver_locked(state: &mut HubState) {
        if !state.driver_notified {
            if let Some(driver) = &state.driver {
                state.driver_notified = true;
                driver.wake_by_ref();
            }
        }
    }

    /// The socket became readable.
    fn on_readable(&self) {
        let reader = {
            let mut state = self.lock();
            let reader = self.take_reader(&mut state);
            if reader.is_none() {
                state.reader_waiting = false;
                Self::wake_driver_locked(&mut state);
            }
            reader
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// The socket became writable (it was full before).
    fn on_writable(&self) {
        let writers = {
            let mut state = self.lock();
            Self::wake_driver_locked(&mut state);
            self.writers_waiting.store(false, Ordering::Release);
            std::mem::take(&mut state.writers)
        };
        for waker in writers {
            waker.wake();
        }
    }
}

/// The read-direction waker handed to the transport.
struct ReadReady(Arc<WakeHub>);

impl Wake for ReadReady {
    fn wake(self: Arc<Self>) {
        self.0.on_readable();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.on_readable();
    }
}

/// The write-direction waker handed to the transport.
struct WriteReady(Arc<WakeHub>);

impl Wake for WriteReady {
    fn wake(self: Arc<Self>) {
        self.0.on_writable();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.on_writable();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn readiness_goes_to_a_waiting_reader_then_to_the_driver() {
        let hub = Arc::new(WakeHub::default());
        let (reader, reader_waker) = counter();
        let (driver, driver_waker) = counter();
        hub.driver_polled(&driver_waker);
        let readable = hub.read_waker();
        hub.reader_waits(&reader_waker);
        readable.wake_by_ref();
        assert_eq!((wakes(&reader), wakes(&driver)), (1, 0));
        // The woken reader has not polled again: the next event goes to the driver.
        readable.wake_by_ref();
        assert_eq!((wakes(&reader), wakes(&driver)), (1, 1));
    }

    #[test]
    fn readiness_without_a_waiting_reader_goes_to_the_driver_once() {
        let hub = Arc::new(WakeHub::default());
        let (reader, reader_waker) = counter();
        let (driver, driver_waker) = counter();
        hub.driver_polled(&driver_waker);
        hub.reader_waits(&reader_waker);
        hub.reader_done();
        let readable = hub.read_waker();
        readable.wake_by_ref();
        readable.wake_by_ref();
        assert_eq!((wakes(&reader), wakes(&driver)), (0, 1));
        hub.driver_polled(&driver_waker);
        readable.wake_by_ref();
        assert_eq!(wakes(&driver), 2);
    }

    #[test]
    fn a_dropped_read_hands_over_to_the_driver() {
        let hub = Arc::new(WakeHub::default());
        let (_, reader_waker) = counter();
        let (driver, driver_waker) = counter();
        hub.driver_polled(&driver_waker);
        hub.reader_gone();
        assert_eq!(wakes(&driver), 0, "no read was waiting");
        hub.reader_waits(&reader_waker);
        hub.reader_gone();
        assert_eq!(wakes(&driver), 1);
    }

    #[test]
    fn writability_wakes_writers_and_the_driver() {
        let hub = Arc::new(WakeHub::default());
        let (writer, writer_waker) = counter();
        let (driver, driver_waker) = counter();
        hub.driver_polled(&driver_waker);
        hub.writer_waits(&writer_waker);
        hub.writer_waits(&writer_waker);
        hub.write_waker().wake();
        assert_eq!((wakes(&writer), wakes(&driver)), (1, 1));
    }

    #[test]
    fn a_stale_reader_is_replaced_by_the_driver() {
        let hub = Arc::new(WakeHub::default());
        let (_, reader_waker) = counter();
        let (driver, driver_waker) = counter();
        hub.driver_polled(&driver_waker);
        hub.reader_waits(&reader_waker);
        hub.nudge_if_reader_stale();
        assert_eq!(wakes(&driver), 0, "the reader was not woken yet");
        hub.read_waker().wake();
        hub.nudge_if_reader_stale();
        assert_eq!(wakes(&driver), 1);
    }
}
