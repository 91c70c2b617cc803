//! How a session wakes the connection attached to it: a pending flag and one waker slot.
//!
//! It does what `tokio::sync::Notify::notify_one` did here (a notification with nobody waiting
//! is kept for the next wait) but waiting needs no future: the connection's task registers
//! its waker while it polls, so an idle connection's task carries no waiter node for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// A one-slot wake-up with a kept notification.
#[derive(Debug, Default)]
pub struct SessionWake {
    pending: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl SessionWake {
    /// Notifies: wakes the registered task, or keeps the notification for the next poll.
    pub fn notify(&self) {
        self.pending.store(true, Ordering::Release);
        let waker = self.waker.lock().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready (and the notification consumed) if one is pending; otherwise registers the
    /// task's waker.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut slot = self.waker.lock();
            match slot.as_ref() {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // A notification between the first check and the registration found no waker.
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_notification_is_kept_until_polled_and_a_registered_task_is_woken() {
        let wake = SessionWake::default();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        wake.notify();
        assert!(
            wake.poll_notified(&mut cx).is_ready(),
            "kept for the next poll"
        );
        assert!(wake.poll_notified(&mut cx).is_pending(), "consumed");
        wake.notify();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "the registered task is woken"
        );
        assert!(wake.poll_notified(&mut cx).is_ready());
        wake.notify();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "woken once per registration"
        );
    }
}
