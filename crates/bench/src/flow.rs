//! End-to-end flow control between a publisher and the subscribers of its messages, and the
//! phases of a run.
//!
//! A publisher may have at most `window` messages not yet delivered to its average subscriber
//! (sent × subscribers − deliveries < window × subscribers). That keeps every broker's queues
//! short and equal, so QoS 0 is measured without the broker dropping at its queue bound, and a
//! faster broker shows up as a higher rate rather than a longer queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The phases of a run, in order. Connections watch them through a `tokio::sync::watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connecting and subscribing.
    Setup,
    /// Publishing, not yet measured.
    Warmup,
    /// Publishing, measured.
    Measure,
    /// Publishers stop and wait for their acknowledgements; subscribers keep counting.
    Drain,
    /// Everyone stops.
    Done,
}

/// Shared between one publisher and every subscriber that receives its messages.
#[derive(Debug)]
pub struct PublisherFlow {
    /// Deliveries expected per message: the subscribers of the publisher's topic.
    subscribers: u64,
    /// In-flight allowance per subscriber, in messages.
    window: u64,
    /// Messages the publisher has written.
    sent: AtomicU64,
    /// Deliveries of its messages counted by any subscriber.
    delivered: AtomicU64,
    /// The delivered count that wakes the blocked publisher (`u64::MAX`: not waiting).
    wake_at: AtomicU64,
    room: Notify,
    finished: AtomicBool,
}

impl PublisherFlow {
    /// A flow for a publisher whose topic has `subscribers` subscribers, allowing `window`
    /// undelivered messages per subscriber.
    pub fn new(subscribers: u64, window: u64) -> PublisherFlow {
        PublisherFlow {
            subscribers,
            window: window.max(1),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            room: Notify::new(),
            finished: AtomicBool::new(false),
        }
    }

    /// Deliveries expected per message.
    pub fn subscribers(&self) -> u64 {
        self.subscribers
    }

    /// Whether message number `seq` (the next to send) fits in the window.
    pub fn has_room(&self, seq: u64) -> bool {
        let delivered = self.delivered.load(Ordering::SeqCst);
        room(seq, delivered, self.subscribers, self.window)
    }

    /// Waits until the window has drained to half, so that message `seq` and the next
    /// ones fit. Returns at once if they already do; may return early (callers re-check).
    pub async fn wait_for_room(&self, seq: u64) {
        let half = self.window / 2;
        // Deliveries needed so that `seq` and `half` more fit: (seq + 1) × S − delivered ≤
        // (window − half) × S.
        let target = (seq + 1)
            .saturating_sub(self.window - half)
            .saturating_mul(self.subscribers);
        self.wake_at.store(target, Ordering::SeqCst);
        if self.delivered.load(Ordering::SeqCst) >= target {
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            return;
        }
        self.room.notified().await;
    }

    /// Records that the publisher has written `sent` messages in all.
    pub fn set_sent(&self, sent: u64) {
        self.sent.store(sent, Ordering::SeqCst);
    }

    /// Messages the publisher has written.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Records one delivery of one of this publisher's messages, waking the publisher if it
    /// waits for exactly that.
    pub fn record_delivery(&self) {
        let delivered = self.delivered.fetch_add(1, Ordering::SeqCst) + 1;
        if delivered >= self.wake_at.load(Ordering::SeqCst)
            && self.wake_at.swap(u64::MAX, Ordering::SeqCst) != u64::MAX
        {
            self.room.notify_one();
        }
    }

    /// Deliveries counted so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }

    /// Marks the publisher as done: it will send nothing more.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    /// Whether the publisher is done.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Whether every message sent has reached every subscriber (counting duplicates).
    pub fn is_drained(&self) -> bool {
        self.delivered() >= self.sent().saturating_mul(self.subscribers)
    }
}

/// Whether message `seq` may be sent with `delivered` deliveries counted.
fn room(seq: u64, delivered: u64, subscribers: u64, window: u64) -> bool {
    if subscribers == 0 {
        return true;
    }
    // Undelivered deliveries after sending `seq`: (seq + 1) × S − delivered ≤ window × S.
    (seq + 1).saturating_mul(subscribers) <= delivered + window.saturating_mul(subscribers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_deliveries_per_subscriber() {
        // One subscriber, window 4: messages 0..4 fit with nothing delivered, the fifth does not.
        assert!(room(3, 0, 1, 4));
        assert!(!room(4, 0, 1, 4));
        assert!(room(4, 1, 1, 4));
        // Ten subscribers: each message needs ten deliveries to free its slot.
        assert!(!room(4, 9, 10, 4));
        assert!(room(4, 10, 10, 4));
        // Nobody listens: no limit.
        assert!(room(1_000_000, 0, 0, 1));
    }

    #[test]
    fn deliveries_open_the_window() {
        let flow = PublisherFlow::new(2, 1);
        assert!(flow.has_room(0));
        flow.set_sent(1);
        assert!(!flow.has_room(1));
        flow.record_delivery();
        assert!(!flow.has_room(1));
        flow.record_delivery();
        assert!(flow.has_room(1));
        assert!(flow.is_drained());
    }
}
