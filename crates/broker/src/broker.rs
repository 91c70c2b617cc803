//! The state every connection shares: sessions by client identifier, the subscription trie,
//! the retained messages and the counters; and what happens to a message between the
//! connection that received it and the sessions that want it.
//!
//! Locks: the session registry is taken only to open and close sessions; the trie is read
//! (shared) on publish and written on (un)subscribe; each session has its own mutex. A thread
//! never holds a session's mutex while it takes the registry or the trie.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::time::Instant;
use tollgate_auth::permissions::CompiledPermissions;
use tollgate_auth::revocation::RevocationList;
use tollgate_auth::{Owner, Principal};
use tollgate_mqtt::{Publish, PublishProperties, QoS, SubscriptionOptions, Will};

use crate::config::BrokerConfig;
use crate::deadlines::{Due, OnDue, SessionDeadlines};
use crate::memory::{MemoryBudget, Overload};
use crate::message::Message;
use crate::retained::{RetainRefused, RetainedLimits, RetainedStore};
use crate::session::{
    Delivery, Detached, EnqueueOutcome, QueueLimits, Session, SessionSubscription,
};
use crate::stats::BrokerStats;
use crate::subscriptions::{SubscriptionEntry, SubscriptionTrie};
use crate::wake::SessionWake;

/// A session expiry interval meaning "never".
pub const NEVER_EXPIRES: u32 = u32::MAX;

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

/// A connection's will as it closes: the will, and the delay it is due after (the will delay
/// interval, at most the session's expiry).
#[derive(Debug, Clone)]
pub struct ClosingWill {
    /// The will.
    pub will: Will,
    /// Seconds until it is due; 0: at once.
    pub delay: u32,
}

/// Refusal to open a session: it exists and belongs to another principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOwnedByAnother;

/// A session handed to a connection at CONNECT.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The session.
    pub session: Arc<Session>,
    /// The connection's generation: the session is the connection's while this is current.
    pub generation: u64,
    /// Whether an existing session was resumed (CONNACK's session present flag).
    pub present: bool,
    /// Wakes this connection when messages are queued for it, or when it is taken over.
    pub wake: Arc<SessionWake>,
}

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    /// The configuration it runs with.
    pub config: BrokerConfig,
    /// Counters for `$SYS`.
    pub stats: BrokerStats,
    /// When the broker started.
    pub started_at: Instant,
    /// Permissions that allow everything, shared by connections no authorizer applies to.
    pub allow_all: Arc<CompiledPermissions>,
    /// What every message, delivery and connection buffer is charged to.
    pub memory: Arc<MemoryBudget>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    subscriptions: RwLock<SubscriptionTrie<Arc<Session>>>,
    retained: RwLock<RetainedStore>,
    next_session_id: AtomicU64,
    assigned_ids: AtomicU64,
    policy_generation: AtomicU64,
    revocations: RwLock<Arc<RevocationList>>,
    /// Will delays and expiries of sessions without a connection.
    deadlines: Arc<SessionDeadlines>,
}

/// What `broker`'s deadline queue does with a deadline that came due.
fn session_deadlines_of(broker: Weak<Broker>) -> OnDue {
    Box::new(move |session, generation, due| {
        if let Some(broker) = broker.upgrade() {
            broker.session_deadline_due(&session, generation, due);
        }
    })
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.deadlines.close();
    }
}

impl Broker {
    /// A broker with no sessions, subscriptions or retained messages.
    pub fn new(config: BrokerConfig) -> Arc<Broker> {
        let memory = MemoryBudget::new(config.limits.max_memory);
        Arc::new_cyclic(|broker: &Weak<Broker>| Broker {
            deadlines: Arc::new(SessionDeadlines::new(session_deadlines_of(broker.clone()))),
            config,
            stats: BrokerStats::default(),
            started_at: crate::clock::now(),
            allow_all: Arc::new(CompiledPermissions::allow_all()),
            memory,
            sessions: Mutex::new(HashMap::new()),
            subscriptions: RwLock::new(SubscriptionTrie::new()),
            retained: RwLock::new(RetainedStore::new()),
            next_session_id: AtomicU64::new(1),
            assigned_ids: AtomicU64::new(0),
            policy_generation: AtomicU64::new(0),
            revocations: RwLock::new(Arc::default()),
        })
    }

    /// A client identifier for a client that sent an empty one.
    pub fn assign_client_id(&self) -> String {
        let n = self.assigned_ids.fetch_add(1, Ordering::Relaxed);
        let start = self.started_at.elapsed().as_nanos() as u64;
        format!(
            "tollgate-{:x}{:08x}",
            n,
            (start ^ (std::process::id() as u64)) as u32
        )
    }

    /// Opens the session of `client_id` for a new connection: resumes the existing one unless
    /// `clean_start`, takes it over from a connection still attached to it (that connection is
    /// woken and finds its generation gone), or creates a new one. An existing session whose
    /// owner is not `owner` is neither resumed nor replaced: it belongs to another principal.
    ///
    /// A session that was not persistent (expiry 0: it lives only as long as its connection)
    /// ends when it is taken over, whatever `clean_start` says: there is nothing to resume
    /// (session present 0), and the old connection's will goes out as it closes. A will
    /// waiting for its delay is cancelled by the new connection, with clean start or not
    /// (MQTT-3.1.2-8).
    pub fn open_session(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        owner: Option<&Owner>,
    ) -> Result<OpenedSession, SessionOwnedByAnother> {
        let mut sessions = self.sessions.lock();
        if let Some(existing) = sessions.get(client_id).cloned() {
            let mut state = existing.state.lock();
            if state.owner() != owner {
                return Err(SessionOwnedByAnother);
            }
            if !clean_start && state.is_persistent() {
                let (generation, wake) = state.resume(expiry_interval);
                drop(state);
                self.deadlines.cancel(existing.id);
                existing.set_online(true);
                return Ok(OpenedSession {
                    session: existing,
                    generation,
                    present: true,
                    wake,
                });
            }
            // The old session ends here; a connection still attached to it is woken and
            // closes (its will, if due at once, goes out then). A will waiting for its delay
            // is cancelled by the new connection.
            let (filters, _cancelled_will) = state.end();
            drop(state);
            self.deadlines.cancel(existing.id);
            existing.set_online(false);
            sessions.remove(client_id);
            self.remove_filters(&existing, &filters);
        }
        let id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let limits = &self.config.limits;
        let session = Arc::new(Session::new(
            id,
            client_id.into(),
            expiry_interval,
            QueueLimits {
                max_messages: limits.max_queued_messages,
                max_bytes: limits.max_queued_bytes,
                queue_qos0_offline: limits.queue_qos0_offline,
            },
            Arc::clone(&self.memory),
        ));
        let (generation, wake) = session.state.lock().open(owner.cloned());
        session.set_online(true);
        sessions.insert(session.client_id.clone(), session.clone());
        Ok(OpenedSession {
            session,
            generation,
            present: false,
            wake,
        })
    }

    /// Detaches a closing connection from its session. `will` is the will to publish (the
    /// connection decided whether its ending calls for it): published now, or after its delay
    /// unless a new connection resumes the session first. A session with expiry 0 ends now; a
    /// finite one ends when its interval has passed without a new connection. A connection
    /// that was taken over publishes its will only if the takeover ended its session (clean
    /// start, or a session that was not persistent) and the will is due at once: a device
    /// that comes back to its persistent session has not gone away, and a new connection
    /// cancels a delayed will (MQTT-3.1.2-8), as Mosquitto does.
    pub fn close_session(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        will: Option<ClosingWill>,
    ) {
        let detached = session
            .state
            .lock()
            .detach(generation, will.map(|w| (w.will, w.delay)));
        let (expiry, delay) = match detached {
            Detached::Stale { ended, will } => {
                // Taken over: its will goes out only if the takeover ended the session and
                // the will is due at once.
                if let (true, Some((will, 0))) = (ended, will) {
                    self.publish_will(will, session.id);
                }
                return;
            }
            Detached::Detached {
                expiry,
                will_delay,
                will_now,
            } => {
                session.set_online(false);
                if let Some(will) = will_now {
                    self.publish_will(will, session.id);
                }
                (expiry, will_delay)
            }
        };
        if expiry == 0 {
            self.end_session(session);
            return;
        }
        let now = crate::clock::now();
        let after = |seconds: u32| now.checked_add(Duration::from_secs(u64::from(seconds)));
        let will_at = (delay > 0).then(|| after(delay)).flatten();
        let expiry_at = (expiry != NEVER_EXPIRES).then(|| after(expiry)).flatten();
        self.deadlines
            .schedule(session, generation, will_at, expiry_at);
    }

    /// A deadline the connection of `generation` left on `session` has come: its will goes
    /// out, or the session ends, unless a connection has come since.
    fn session_deadline_due(&self, session: &Arc<Session>, generation: u64, due: Due) {
        match due {
            Due::Will => {
                let will = session.state.lock().take_will(generation);
                if let Some(will) = will {
                    self.publish_will(will, session.id);
                }
            }
            Due::Expiry => {
                let idle = session.state.lock().idle_since(generation);
                if idle {
                    self.end_session(session);
                }
            }
        }
    }

    /// How many sessions have a will delay or an expiry pending.
    pub fn pending_session_deadlines(&self) -> usize {
        self.deadlines.len()
    }

    /// Ends a session: removes it from the registry (if it is still the one registered under
    /// its client identifier) and the trie, and publishes a will still waiting on it.
    pub fn end_session(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock();
        let (filters, pending_will) = {
            let mut state = session.state.lock();
            if state.has_ended() || state.is_attached() {
                return;
            }
            state.end()
        };
        self.deadlines.cancel(session.id);
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
        drop(sessions);
        self.remove_filters(session, &filters);
        if let Some(will) = pending_will {
            self.publish_will(will, session.id);
        }
    }

    fn remove_filters(&self, session: &Arc<Session>, filters: &[String]) {
        if filters.is_empty() {
            return;
        }
        let mut trie = self.subscriptions.write();
        let mut removed = 0;
        for filter in filters {
            if trie.remove(filter, session.id) {
                removed += 1;
            }
        }
        BrokerStats::sub(&self.stats.subscriptions, removed);
    }

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
        let stored = retained.set(message, bounds);
        self.stats
            .retained_messages
            .store(retained.len() as u64, Ordering::Relaxed);
        self.stats
            .retained_bytes
            .store(retained.bytes() as u64, Ordering::Relaxed);
        drop(retained);
        if stored.is_err() {
            self.memory.record(Overload::RetainedFull);
        }
        stored
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
            let delivery = Delivery {
                message: Arc::clone(message),
                qos,
                retain,
                subscription_ids: ids,
            };
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

    /// The principal connected with `client_id`, if a connection is attached to that session.
    pub fn connected_principal(&self, client_id: &str) -> Option<Arc<Principal>> {
        let session = self.sessions.lock().get(client_id).cloned()?;
        let principal = session.state.lock().attached_principal();
        principal
    }

    /// The revocation list in force now.
    pub fn revocation_list(&self) -> Arc<RevocationList> {
        Arc::clone(&self.revocations.read())
    }

    /// Why `principal` is revoked, if the revocation list says it is.
    pub fn revoked(&self, principal: &Principal) -> Option<String> {
        self.revocations.read().revoked(principal)
    }

    /// Replaces the revocation list. Connected clients check it when told
    /// ([`Broker::permissions_changed`]).
    pub fn set_revocations(&self, list: Arc<RevocationList>) {
        *self.revocations.write() = list;
    }

    /// Bumped whenever authorization rules change; connections compare it with the one
    /// their permissions were compiled at.
    pub fn policy_generation(&self) -> u64 {
        self.policy_generation.load(Ordering::Acquire)
    }

    /// Authorization rules changed: every connected client compiles its permissions again
    /// (woken now, so subscriptions no longer allowed stop at once).
    pub fn permissions_changed(&self) {
        self.policy_generation.fetch_add(1, Ordering::AcqRel);
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            session.state.lock().notify_attached();
        }
    }

    /// How many sessions exist (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }
}
