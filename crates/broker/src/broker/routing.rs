//! Subscriptions, retained messages and routing: what happens to a message between the
//! connection that received it and the sessions that want it.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tollgate_mqtt::{Publish, PublishProperties, QoS, SubscriptionOptions, Will};

use super::Broker;
use crate::memory::Overload;
use crate::message::Message;
use crate::retained::{RetainRefused, RetainedLimits, RetainedStore};
use crate::session::{Delivery, EnqueueOutcome, Session, SessionSubscription};
use crate::stats::BrokerStats;
use crate::store::{records, Space};
use crate::subscriptions::SubscriptionEntry;

/// One recipient of a message being routed, after overlapping subscriptions are merged.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    session: Arc<Session>,
    qos: QoS,
    retain: bool,
    identifier: Option<u32>,
}

/// What became of a routed message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteOutcome {
    /// Sessions the message was given to.
    pub delivered: usize,
    /// Sessions whose full queue dropped it (or dropped a QoS 0 message for it).
    pub dropped: usize,
}

impl Broker {
    /// Adds or replaces a subscription of `session`. Returns whether it existed before.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> bool {
        session.state.lock().add_subscription(
            filter,
            SessionSubscription {
                options,
                identifier,
            },
        );
        let existed = self.subscriptions.write().insert(
            filter,
            SubscriptionEntry {
                subscriber: Arc::clone(session),
                options,
                identifier,
            },
        );
        if !existed {
            BrokerStats::add(&self.stats.subscriptions, 1);
        }
        existed
    }

    /// Removes a subscription of `session`. Returns whether it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> bool {
        session.state.lock().remove_subscription(filter);
        let existed = self.subscriptions.write().remove(filter, session.id);
        if existed {
            BrokerStats::sub(&self.stats.subscriptions, 1);
        }
        existed
    }

    /// Calls `f` with each retained message matching `filter`, until it breaks.
    pub fn for_each_retained(
        &self,
        filter: &str,
        f: impl FnMut(&Arc<Message>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.retained.read().for_each_match(filter, f)
    }

    /// Stores (or clears) a retained message. Fails when a new retained topic, or the bytes
    /// it adds, would take the store past its bounds (counted and logged once per interval).
    pub fn retain(&self, message: Arc<Message>) -> Result<(), RetainRefused> {
        let limits = &self.config.limits;
        let bounds = RetainedLimits {
            max_messages: limits.max_retained_messages,
            max_bytes: limits.max_retained_bytes,
        };
        let mut retained = self.retained.write();
        let persist = self
            .store
            .as_ref()
            .filter(|_| !tollgate_mqtt::topic::is_sys(&message.publish.topic))
            .map(|store| (Arc::clone(store), Arc::clone(&message)));
        let stored = retained.set(message, bounds);
        // Written under the lock, so the store sees the changes of one topic in their order.
        if let (Ok(()), Some((store, message))) = (&stored, persist) {
            let key = records::retained_key(&message.publish.topic);
            if message.publish.payload.is_empty() {
                store.delete(Space::Retained, key);
            } else {
                store.put(
                    Space::Retained,
                    key,
                    records::encode_retained(
                        message.received_unix_ms(),
                        &message.stored_encoding(),
                    ),
                );
            }
        }
        self.count_retained(&retained);
        drop(retained);
        if stored.is_err() {
            self.memory.record(Overload::RetainedFull);
        }
        stored
    }

    /// Removes the retained message of `topic` (an operator's delete); whether there was one.
    pub fn clear_retained(&self, topic: &str) -> bool {
        let mut retained = self.retained.write();
        if !retained.contains(topic) {
            return false;
        }
        retained.clear(topic);
        if let Some(store) = self.store.as_ref() {
            if !tollgate_mqtt::topic::is_sys(topic) {
                store.delete(Space::Retained, records::retained_key(topic));
            }
        }
        self.count_retained(&retained);
        true
    }

    /// Publishes the retained store's size to the `$SYS` and metrics counters.
    pub(super) fn count_retained(&self, retained: &RetainedStore) {
        self.stats
            .retained_messages
            .store(retained.len() as u64, Ordering::Relaxed);
        self.stats
            .retained_bytes
            .store(retained.bytes() as u64, Ordering::Relaxed);
    }

    /// Routes `message` to every session subscribed to its topic: one delivery per session,
    /// at the highest QoS of its matching subscriptions, with all their identifiers.
    /// `scratch` is a buffer the caller keeps so routing does not allocate per message.
    pub fn route(&self, message: &Arc<Message>, scratch: &mut Vec<RouteTarget>) -> RouteOutcome {
        scratch.clear();
        let publish = &message.publish;
        {
            let trie = self.subscriptions.read();
            trie.for_each_match(&publish.topic, |entry| {
                if entry.options.no_local && entry.subscriber.id == message.origin {
                    return;
                }
                scratch.push(RouteTarget {
                    session: Arc::clone(&entry.subscriber),
                    qos: entry.options.qos.min(publish.qos),
                    retain: entry.options.retain_as_published && publish.retain,
                    identifier: entry.identifier,
                });
            });
        }
        if scratch.len() > 1 {
            scratch.sort_unstable_by_key(|t| t.session.id);
        }
        let mut outcome = RouteOutcome::default();
        let mut i = 0;
        while i < scratch.len() {
            let first = &scratch[i];
            let mut qos = first.qos;
            let mut retain = first.retain;
            let mut ids: Vec<u32> = first.identifier.into_iter().collect();
            let mut j = i + 1;
            while j < scratch.len() && scratch[j].session.id == first.session.id {
                qos = qos.max(scratch[j].qos);
                retain |= scratch[j].retain;
                ids.extend(scratch[j].identifier);
                j += 1;
            }
            let delivery = Delivery::new(Arc::clone(message), qos, retain, ids);
            match first.session.enqueue(delivery) {
                EnqueueOutcome::Queued => outcome.delivered += 1,
                EnqueueOutcome::Skipped => {}
                EnqueueOutcome::Shed => outcome.dropped += 1,
                EnqueueOutcome::QueuedDroppingQos0 => {
                    outcome.delivered += 1;
                    outcome.dropped += 1;
                    self.memory.record(Overload::QueueFull);
                }
                EnqueueOutcome::Dropped => {
                    outcome.dropped += 1;
                    self.memory.record(Overload::QueueFull);
                }
            }
            i = j;
        }
        scratch.clear();
        if outcome.dropped > 0 {
            BrokerStats::add(&self.stats.messages_dropped, outcome.dropped as u64);
        }
        outcome
    }

    /// Publishes a message made by the broker (a will, a `$SYS` update): stored if retained,
    /// then routed.
    pub fn publish_internal(&self, publish: Publish, origin: u64) -> RouteOutcome {
        let message = Message::received(publish, origin, crate::clock::now(), &self.memory);
        if message.publish.retain && self.config.limits.retain_available {
            let _ = self.retain(Arc::clone(&message));
        }
        self.route(&message, &mut Vec::new())
    }

    /// Publishes a will message.
    pub fn publish_will(&self, will: Will, origin: u64) {
        tracing::debug!(topic = ?will.topic, "publishing will");
        let props = will.properties;
        let publish = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            packet_id: None,
            properties: PublishProperties {
                payload_format_indicator: props.payload_format_indicator,
                message_expiry_interval: props.message_expiry_interval,
                topic_alias: None,
                response_topic: props.response_topic,
                correlation_data: props.correlation_data,
                user_properties: props.user_properties,
                subscription_identifiers: Vec::new(),
                content_type: props.content_type,
            },
            payload: will.payload,
        };
        self.publish_internal(publish, origin);
    }

    /// Sets a retained `$SYS` topic's value.
    pub fn publish_sys(&self, topic: &str, value: String) {
        let publish = Publish {
            qos: QoS::AtMostOnce,
            retain: true,
            topic: topic.to_owned(),
            payload: Bytes::from(value),
            ..Publish::default()
        };
        self.publish_internal(publish, 0);
    }
}
