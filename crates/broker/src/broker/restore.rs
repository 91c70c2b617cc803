//! A new broker filled from its store at start: retained messages, then persistent sessions
//! with their subscriptions, queued and in-flight deliveries and QoS 2 state, then the bans
//! and revocations operators made.
//!
//! Time passed while the broker was down: a session whose expiry ran out since its client
//! left is ended (and its will, if one waited, published); a will whose delay ran out is
//! published; what is left is scheduled for what remains. A session whose client was
//! connected when the broker stopped counts as left at the restart. Messages whose expiry
//! interval passed are dropped. What comes back is checked again at delivery, as every
//! delivery is, against the principal that connects: nothing restored bypasses authorization.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tollgate_mqtt::Will;

use super::{Broker, NEVER_EXPIRES};
use crate::message::Message;
use crate::retained::RetainedLimits;
use crate::session::{unix_now, Delivery, QueueLimits, Session, SessionSubscription};
use crate::stats::BrokerStats;
use crate::store::recovery::{self, Recovered};
use crate::subscriptions::SubscriptionEntry;

impl Broker {
    /// Loads what the broker's store holds (nothing without a store). Must run inside the
    /// runtime (deadlines are scheduled), before any client connects.
    pub fn restore(self: &Arc<Self>) -> Recovered {
        let Some(store) = self.store.clone() else {
            return Recovered::default();
        };
        let started = Instant::now();
        let stored = recovery::read(&store);
        let mut found = Recovered {
            damaged: stored.damaged,
            journal_bytes_cut: store.opened().journal_bytes_cut,
            moved_aside: store.opened().moved_aside.clone(),
            ..Recovered::default()
        };
        let now = crate::clock::now();
        let now_unix = unix_now();
        let now_ms = unix_ms();
        let received_at = |ms: u64| now - Duration::from_millis(now_ms.saturating_sub(ms));

        let limits = &self.config.limits;
        let bounds = RetainedLimits {
            max_messages: limits.max_retained_messages,
            max_bytes: limits.max_retained_bytes,
        };
        {
            let mut retained = self.retained.write();
            for record in stored.retained {
                let message = Message::received(
                    record.publish,
                    0,
                    received_at(record.received_at_ms),
                    &self.memory,
                );
                if message.remaining_expiry(now).is_none() {
                    found.dropped += 1;
                    store.delete(
                        crate::store::Space::Retained,
                        crate::store::records::retained_key(&message.publish.topic),
                    );
                    continue;
                }
                match retained.set(message, bounds) {
                    Ok(()) => found.retained += 1,
                    Err(_) => found.dropped += 1,
                }
            }
            self.count_retained(&retained);
        }

        let queue_limits = QueueLimits {
            max_messages: limits.max_queued_messages,
            max_bytes: limits.max_queued_bytes,
            queue_qos0_offline: limits.queue_qos0_offline,
        };
        let mut by_uid: HashMap<u64, Arc<Session>> = HashMap::new();
        let mut deadlines: Vec<(Arc<Session>, Option<Instant>, Option<Instant>)> = Vec::new();
        let mut wills_due: Vec<Will> = Vec::new();
        let mut max_uid = 0;
        {
            let mut sessions = self.sessions.lock();
            for (client_id, record) in stored.sessions {
                max_uid = max_uid.max(record.uid);
                let session = Arc::new(Session::new(
                    record.uid,
                    client_id.as_str().into(),
                    record.expiry_interval,
                    queue_limits,
                    Arc::clone(&self.memory),
                    Some(Arc::clone(&store)),
                ));
                let left_at = record.disconnected_at.unwrap_or(now_unix).min(now_unix);
                let expired = record.expiry_interval != NEVER_EXPIRES
                    && left_at.saturating_add(u64::from(record.expiry_interval)) <= now_unix;
                {
                    let mut state = session.state.lock();
                    let _ = state.open(record.owner.clone());
                    state.restore_detached(record.will.clone());
                    if expired {
                        let (_, will) = state.end(&client_id);
                        wills_due.extend(will);
                        found.expired += 1;
                        continue;
                    }
                }
                let after = |seconds: u64| now.checked_add(Duration::from_secs(seconds));
                let expiry_at = (record.expiry_interval != NEVER_EXPIRES)
                    .then(|| {
                        after(
                            left_at
                                .saturating_add(u64::from(record.expiry_interval))
                                .saturating_sub(now_unix),
                        )
                    })
                    .flatten();
                let will_at = match record.will {
                    Some((will, due)) if due <= now_unix => {
                        let mut state = session.state.lock();
                        let generation = state.generation();
                        state.take_will(generation);
                        drop(state);
                        wills_due.push(will);
                        None
                    }
                    Some((_, due)) => after(due - now_unix),
                    None => None,
                };
                if will_at.is_some() || expiry_at.is_some() {
                    deadlines.push((Arc::clone(&session), will_at, expiry_at));
                }
                sessions.insert(session.client_id.clone(), Arc::clone(&session));
                by_uid.insert(record.uid, session);
                found.sessions += 1;
            }
        }
        {
            let mut trie = self.subscriptions.write();
            for (uid, filter, options, identifier) in stored.subscriptions {
                let Some(session) = by_uid.get(&uid) else {
                    found.dropped += 1;
                    store.delete(
                        crate::store::Space::Subscriptions,
                        crate::store::records::subscription_key(uid, &filter),
                    );
                    continue;
                };
                session.state.lock().restore_subscription(
                    &filter,
                    SessionSubscription {
                        options,
                        identifier,
                    },
                );
                if !trie.insert(
                    &filter,
                    SubscriptionEntry {
                        subscriber: Arc::clone(session),
                        options,
                        identifier,
                    },
                ) {
                    BrokerStats::add(&self.stats.subscriptions, 1);
                }
                found.subscriptions += 1;
            }
        }
        for (uid, seq, record) in stored.deliveries {
            let key = crate::store::records::delivery_key(uid, seq);
            let Some(session) = by_uid.get(&uid) else {
                found.dropped += 1;
                store.delete(crate::store::Space::Deliveries, key.clone());
                store.delete(crate::store::Space::Released, key);
                continue;
            };
            let message = Message::received(
                record.publish,
                0,
                received_at(record.received_at_ms),
                &self.memory,
            );
            let released = stored.released.contains(&(uid, seq));
            if !released && message.remaining_expiry(now).is_none() {
                found.dropped += 1;
                store.delete(crate::store::Space::Deliveries, key);
                continue;
            }
            let delivery =
                Delivery::new(message, record.qos, record.retain, record.subscription_ids);
            session
                .state
                .lock()
                .restore_delivery(delivery, seq, released);
            found.deliveries += 1;
        }
        for (uid, packet_id) in stored.incoming_qos2 {
            match by_uid.get(&uid) {
                Some(session) => session.state.lock().restore_incoming_qos2(packet_id),
                None => {
                    found.dropped += 1;
                    store.delete(
                        crate::store::Space::IncomingQos2,
                        crate::store::records::qos2_key(uid, packet_id),
                    );
                }
            }
        }
        self.next_session_id
            .fetch_max(max_uid + 1, Ordering::Relaxed);
        for (session, will_at, expiry_at) in deadlines {
            let generation = session.state.lock().generation();
            self.deadlines
                .schedule(&session, generation, will_at, expiry_at);
        }
        for will in wills_due {
            self.publish_will(will, 0);
            found.wills_published += 1;
        }
        (found.bans, found.revocations) = self.restore_operator(stored.operator);
        found.elapsed = started.elapsed();
        found
    }
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
