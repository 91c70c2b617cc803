//! The signal that tells every connection of a server to close.
//!
//! A flag and a wake-up rather than a `watch` channel: a waiting connection carries one
//! `Notified` (64 bytes) instead of a `changed()` future (120 bytes) and a receiver, and every
//! idle connection's task pays for what it carries.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Set once, when the server stops (or is dropped); never cleared.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    /// Tells every connection to close: those waiting now are woken, and those that look
    /// later see the flag.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// A wake-up for a stop that comes after this call. Take it before [`Self::is_stopped`]:
    /// a stop between the two is then seen by one or the other.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Whether the server has stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[test]
    fn a_stop_after_the_wake_up_was_taken_wakes_it() {
        let signal = StopSignal::default();
        let mut woken = pin!(signal.notified());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(!signal.is_stopped());
        assert!(woken.as_mut().poll(&mut cx).is_pending());
        signal.stop();
        assert!(signal.is_stopped());
        assert_eq!(woken.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_stop_before_the_first_poll_is_not_missed() {
        let signal = StopSignal::default();
        let mut woken = pin!(signal.notified());
        signal.stop();
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(woken.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_stop_before_the_wake_up_was_taken_shows_in_the_flag() {
        let signal = StopSignal::default();
        signal.stop();
        let mut woken = pin!(signal.notified());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(woken.as_mut().poll(&mut cx).is_pending());
        assert!(signal.is_stopped());
    }
}
