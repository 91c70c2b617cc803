//! A message as the broker holds it between receiving and delivering it.

use std::sync::Arc;

use tokio::time::Instant;
use tollgate_mqtt::Publish;

/// An application message, shared by every session it is delivered to.
#[derive(Debug)]
pub struct Message {
    /// The PUBLISH as received (topic resolved from any alias, alias removed).
    pub publish: Publish,
    /// When the broker received it; message expiry counts from here.
    pub received_at: Instant,
    /// The session that published it (for no-local), 0 for broker-made messages.
    pub origin: u64,
}

impl Message {
    /// Wraps a received PUBLISH.
    pub fn new(publish: Publish, origin: u64, received_at: Instant) -> Arc<Message> {
        Arc::new(Message {
            publish,
            received_at,
            origin,
        })
    }

    /// Seconds of life left at `now`: `Some(None)` when it never expires, `None` when expired.
    pub fn remaining_expiry(&self, now: Instant) -> Option<Option<u32>> {
        match self.publish.properties.message_expiry_interval {
            None => Some(None),
            Some(interval) => {
                let elapsed = now.saturating_duration_since(self.received_at).as_secs();
                let elapsed = u32::try_from(elapsed).unwrap_or(u32::MAX);
                if elapsed >= interval {
                    None
                } else {
                    Some(Some(interval - elapsed))
                }
            }
        }
    }
}
