//! A message as the broker holds it between receiving and delivering it.
//!
//! A received PUBLISH's payload is a slice of the connection's read buffer; kept as it is, a
//! small stored message would keep the whole buffer alive. [`Message::received`] copies
//! everything it keeps into allocations of its own, measures what it holds, and charges that
//! to the broker's memory budget for as long as the message lives (shared by however many
//! sessions hold it, it is charged once).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tollgate_mqtt::Publish;

use crate::memory::{Charge, MemoryBudget};

/// An application message, shared by every session it is delivered to.
#[derive(Debug)]
pub struct Message {
    /// The PUBLISH as received (topic resolved from any alias, alias removed).
    pub publish: Publish,
    /// When the broker received it; message expiry counts from here.
    pub received_at: Instant,
    /// The session that published it (for no-local), 0 for broker-made messages.
    pub origin: u64,
    /// Bytes it holds, allocation included.
    footprint: usize,
    /// Its charge to the memory budget, if it is charged.
    _charge: Option<Charge>,
}

impl Message {
    /// Wraps a PUBLISH without charging any budget (tests, tools).
    pub fn new(publish: Publish, origin: u64, received_at: Instant) -> Arc<Message> {
        let footprint = footprint(&publish);
        Arc::new(Message {
            publish,
            received_at,
            origin,
            footprint,
            _charge: None,
        })
    }

    /// A message kept by the broker: its bytes copied out of any shared buffer, and charged
    /// to `budget` until the last holder lets it go.
    pub fn received(
        mut publish: Publish,
        origin: u64,
        received_at: Instant,
        budget: &Arc<MemoryBudget>,
    ) -> Arc<Message> {
        own_bytes(&mut publish);
        let footprint = footprint(&publish);
        Arc::new(Message {
            publish,
            received_at,
            origin,
            footprint,
            _charge: Some(Charge::new(budget, footprint)),
        })
    }

    /// Bytes the message holds (what the queue and retained bounds count).
    pub fn footprint(&self) -> usize {
        self.footprint
    }

    /// When the broker received it, in Unix milliseconds (as the store keeps it).
    pub fn received_unix_ms(&self) -> u64 {
        let age = crate::clock::now().saturating_duration_since(self.received_at);
        let received = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        received
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// The message as the store keeps it ([`crate::store::records::encode_publish`]). Made
    /// for each record, not kept: a copy held for the message's life would double what a
    /// retained message costs.
    pub fn stored_encoding(&self) -> Vec<u8> {
        crate::store::records::encode_publish(&self.publish)
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

/// Copies the byte fields of `publish` that may share a read buffer into their own.
pub fn own_bytes(publish: &mut Publish) {
    publish.payload = Bytes::copy_from_slice(&publish.payload);
    if let Some(data) = publish.properties.correlation_data.as_mut() {
        *data = Bytes::copy_from_slice(data);
    }
    publish.topic.shrink_to_fit();
}

/// What a message costs in memory: its fields, the shared allocation around it, and every
/// variable-length part.
fn footprint(publish: &Publish) -> usize {
    let p = &publish.properties;
    std::mem::size_of::<Message>()
        + 2 * std::mem::size_of::<usize>()
        + publish.topic.capacity()
        + publish.payload.len()
        + p.response_topic.as_ref().map_or(0, String::capacity)
        + p.correlation_data.as_ref().map_or(0, Bytes::len)
        + p.content_type.as_ref().map_or(0, String::capacity)
        + p.user_properties
            .iter()
            .map(|u| std::mem::size_of_val(u) + u.0.capacity() + u.1.capacity())
            .sum::<usize>()
        + p.subscription_identifiers.capacity() * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_message_owns_its_payload_and_is_charged_while_it_lives() {
        let buffer = Bytes::from(vec![7u8; 64 * 1024]);
        let publish = Publish {
            topic: "t".into(),
            payload: buffer.slice(0..10),
            ..Publish::default()
        };
        let budget = MemoryBudget::new(0);
        let message = Message::received(publish, 1, Instant::now(), &budget);
        assert_eq!(&message.publish.payload[..], &[7u8; 10]);
        assert_ne!(
            message.publish.payload.as_ptr(),
            buffer.as_ptr(),
            "the payload is a copy, not a view of the read buffer"
        );
        assert!(message.footprint() >= 10 && message.footprint() < 1024);
        assert_eq!(budget.used(), message.footprint());
        let shared = Arc::clone(&message);
        drop(message);
        assert_eq!(
            budget.used(),
            shared.footprint(),
            "charged once, not per holder"
        );
        drop(shared);
        assert_eq!(budget.used(), 0);
    }
}
