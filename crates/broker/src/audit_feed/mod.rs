//! The audit feed: every audited decision and every connect and disconnect as a JSON object,
//! for the admin API's event stream (`GET /api/v1/events`) and the `[audit] file`.
//!
//! Events go into one bounded broadcast channel ([`FEED_CAPACITY`] events). Nothing is built
//! while nobody listens (no stream open, no file): an event then costs one atomic load. A
//! listener that falls behind loses the oldest events and is told how many (`lagged`); the
//! broker never waits for one. The JSON holds what the audit line holds (texts a client chose
//! are data in JSON strings, so they cannot forge a line), never a password or token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;
use tollgate_auth::audit::{AuditEvent, AuditObserver};

pub mod file;
pub mod json;

/// The kind of the event [`AuditFeed::close`] sends: listeners end at it.
const CLOSING: &str = "closing";

/// Events a listener may fall behind by before it loses the oldest.
pub const FEED_CAPACITY: usize = 4096;

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// Its type (`authentication`, `connected`, `denied`, ...), for filters.
    pub kind: &'static str,
    /// The client it concerns, if one.
    pub client_id: Option<String>,
    /// The whole event, a JSON object on one line.
    pub json: String,
}

/// The feed every connection writes to.
#[derive(Debug)]
pub struct AuditFeed {
    sender: broadcast::Sender<Arc<FeedEvent>>,
    /// Open streams and files: events are built only when this is above 0. Listeners hold
    /// this, not the feed: when the feed goes, they are told it closed.
    listeners: Arc<AtomicUsize>,
}

impl Default for AuditFeed {
    fn default() -> Self {
        AuditFeed {
            sender: broadcast::channel(FEED_CAPACITY).0,
            listeners: Arc::default(),
        }
    }
}

impl AuditFeed {
    /// Whether anyone listens (an event need not be built otherwise).
    pub fn wanted(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Sends an event to every listener (never waits).
    pub fn publish(&self, event: FeedEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Tells every listener that nothing more comes (the broker stops): each ends once it has
    /// taken what was sent before.
    pub fn close(&self) {
        self.publish(FeedEvent {
            kind: CLOSING,
            client_id: None,
            json: String::new(),
        });
    }

    /// A new listener, from now on; dropping it stops its share of the work.
    pub fn listen(&self) -> FeedListener {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        FeedListener {
            receiver: self.sender.subscribe(),
            listeners: Arc::clone(&self.listeners),
        }
    }
}

impl AuditObserver for AuditFeed {
    fn observe(&self, event: &AuditEvent<'_>) {
        if self.wanted() {
            self.publish(json::audit_event(event));
        }
    }
}

/// What a listener gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An event.
    Event(Arc<FeedEvent>),
    /// This many events were lost because the listener fell behind.
    Lagged(u64),
    /// The feed is closed or gone (the broker stopped).
    Closed,
}

/// One listener of the feed.
#[derive(Debug)]
pub struct FeedListener {
    receiver: broadcast::Receiver<Arc<FeedEvent>>,
    listeners: Arc<AtomicUsize>,
}

impl FeedListener {
    /// The next event (waits for one).
    pub async fn next(&mut self) -> Received {
        received(self.receiver.recv().await)
    }

    /// The next event, from a thread that is not the runtime's (the audit file's writer).
    pub fn next_blocking(&mut self) -> Received {
        received(self.receiver.blocking_recv())
    }
}

/// What a receive from the channel means to a listener.
fn received(result: Result<Arc<FeedEvent>, broadcast::error::RecvError>) -> Received {
    match result {
        Ok(event) if event.kind == CLOSING => Received::Closed,
        Ok(event) => Received::Event(event),
        Err(broadcast::error::RecvError::Lagged(lost)) => Received::Lagged(lost),
        Err(broadcast::error::RecvError::Closed) => Received::Closed,
    }
}

impl Drop for FeedListener {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> FeedEvent {
        FeedEvent {
            kind: "test",
            client_id: None,
            json: format!("{{\"n\":{n}}}"),
        }
    }

    #[tokio::test]
    async fn a_listener_gets_what_follows_it_and_a_slow_one_is_told_what_it_lost() {
        let feed = AuditFeed::default();
        assert!(!feed.wanted());
        let mut listener = feed.listen();
        assert!(feed.wanted());
        feed.publish(event(1));
        assert_eq!(listener.next().await, Received::Event(Arc::new(event(1))));
        for n in 0..FEED_CAPACITY + 3 {
            feed.publish(event(n));
        }
        assert_eq!(listener.next().await, Received::Lagged(3));
        assert_eq!(listener.next().await, Received::Event(Arc::new(event(3))));
        drop(listener);
        assert!(!feed.wanted());
    }

    #[tokio::test]
    async fn a_listener_is_told_when_the_feed_goes() {
        let feed = AuditFeed::default();
        let mut listener = feed.listen();
        drop(feed);
        assert_eq!(listener.next().await, Received::Closed);
        let feed = AuditFeed::default();
        let mut listener = feed.listen();
        feed.publish(event(7));
        feed.close();
        assert_eq!(listener.next().await, Received::Event(Arc::new(event(7))));
        assert_eq!(listener.next().await, Received::Closed);
    }
}
