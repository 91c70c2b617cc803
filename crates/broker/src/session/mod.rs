//! A session: what the broker keeps for a client identifier, across connections.
//!
//! A session holds the client's subscriptions, the messages waiting for it (a bounded queue),
//! the QoS 1/2 messages sent but not yet acknowledged (the in-flight window), the QoS 2
//! messages received but not yet released, and its will while the will delay runs. It is
//! shared: publishers on other connections append to its queue under its own mutex (no lock is
//! shared between sessions) and wake the connection attached to it, if any.
//!
//! The queue and the in-flight window are bounded in messages and in bytes (each delivery
//! counts its message's footprint and its own bookkeeping); what they hold is also charged to
//! the broker's memory budget, and QoS 0 deliveries are shed when the budget is under
//! pressure. Each attached connection has a wake-up of its own, so a connection taking the
//! session over never shares (or steals) the old one's.
//!
//! This file holds the session and its life (open, resume, attach, detach, will, end, QoS 2
//! receipts); `messages.rs` holds what it keeps for its client (the queue, the in-flight
//! window, packet identifiers), `subscriptions.rs` its subscriptions and `restore.rs` how it
//! is rebuilt from the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tollgate_auth::Principal;
use tollgate_mqtt::Will;

use crate::memory::MemoryBudget;
use crate::store::{records, Space, Store};
use crate::subscriptions::Subscriber;
use crate::wake::SessionWake;

mod attachment;
mod messages;
mod restore;
mod subscriptions;

pub use attachment::{AttachedConnection, ConnectionTraffic, TrafficCounts};
pub use messages::{Delivery, EnqueueOutcome, InFlight, OutgoingState, QueueLimits};
pub use subscriptions::SessionSubscription;

/// A will waiting for its delay to pass (or for the session to end).
#[derive(Debug, Clone)]
struct PendingWill {
    /// The will.
    will: Will,
    /// The connection generation that left it; a newer connection cancels it.
    generation: u64,
    /// The Unix second it is due (as the store keeps it).
    due_unix: u64,
}

/// The mutable part of a session, behind its mutex. Its fields are private: the broker and
/// the connection change a session only through the operations named below (open, resume,
/// attach, detach, enqueue, acknowledge, expire, end), which are also what a store has to
/// record.
#[derive(Debug)]
pub struct SessionState {
    /// Bumped each time a connection attaches; a connection whose generation is no longer
    /// current has been taken over and must close.
    generation: u64,
    /// Whether a connection is attached now.
    attached: bool,
    /// Subscriptions by full filter (shared filters keep their `$share/group/` prefix).
    subscriptions: HashMap<String, SessionSubscription>,
    /// Bytes of the subscriptions' filters.
    subscription_bytes: usize,
    /// Messages waiting to be sent.
    queue: VecDeque<Delivery>,
    /// Outgoing QoS 1/2 messages not yet fully acknowledged, in the order sent.
    inflight: VecDeque<InFlight>,
    /// Bytes the queue and the in-flight window hold (see `delivery_bytes`).
    held_bytes: usize,
    /// Incoming QoS 2 packet identifiers with PUBREC sent, waiting for PUBREL.
    incoming_qos2: HashSet<u16>,
    /// Last packet identifier used for an outgoing message.
    last_packet_id: u16,
    /// Session expiry interval in seconds (`u32::MAX`: never).
    expiry_interval: u32,
    /// A will waiting for its delay.
    pending_will: Option<Box<PendingWill>>,
    /// Whether the session has ended (expired or replaced by a clean start).
    ended: bool,
    /// The principal that owns the session; `None` for anonymous sessions.
    owner: Option<tollgate_auth::Owner>,
    /// The principal of the connection attached now (or last attached).
    principal: Option<Arc<Principal>>,
    /// Where the connection attached now (or last attached) came from.
    connection: Option<Arc<AttachedConnection>>,
    /// The generation of a connection an operator asked to close, and who asked.
    kick: Option<(u64, Arc<str>)>,
    /// Wakes the connection attached now; replaced when another connection attaches.
    wake: Arc<SessionWake>,
    budget: Arc<MemoryBudget>,
    /// The store, when the broker has one: a persistent session writes what it must keep.
    store: Option<Arc<Store>>,
    /// The session's number (its records' key prefix in the store).
    uid: u64,
    /// The sequence number of the last delivery written to the store.
    next_seq: u64,
    /// How many in-flight deliveries are stored (their packet identifiers follow from their
    /// sequence numbers).
    stored_inflight: usize,
    /// Whether the store holds a record of this session (it was persistent at some point).
    in_store: bool,
}

/// What an incoming QoS 2 PUBLISH is to its session (see [`SessionState::receive_qos2`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos2Arrival {
    /// A new message: its packet identifier is now held until PUBREL.
    New,
    /// A resend of a message already taken (PUBREC was sent, no PUBREL yet).
    Duplicate,
    /// More QoS 2 messages wait for PUBREL than the receive maximum allows.
    TooMany,
}

/// What [`SessionState::detach`] found.
#[derive(Debug)]
pub enum Detached {
    /// The connection was no longer the session's (taken over, or the session ended):
    /// nothing changed, and the will is handed back.
    Stale {
        /// Whether the session has ended.
        ended: bool,
        /// The will given to `detach`, with its delay.
        will: Option<(Will, u32)>,
    },
    /// The connection is detached; the session lives on for `expiry` seconds (0: it ends
    /// now). A will with a delay is held by the session (see [`SessionState::take_will`]).
    Detached {
        /// The session expiry interval.
        expiry: u32,
        /// The will's delay, capped by the expiry (0 when there is no will).
        will_delay: u32,
        /// The will to publish now, if it is due at once.
        will_now: Option<Will>,
    },
}

impl SessionState {
    fn new(
        uid: u64,
        expiry_interval: u32,
        budget: Arc<MemoryBudget>,
        store: Option<Arc<Store>>,
    ) -> SessionState {
        SessionState {
            generation: 0,
            attached: false,
            subscriptions: HashMap::new(),
            subscription_bytes: 0,
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            held_bytes: 0,
            incoming_qos2: HashSet::new(),
            last_packet_id: 0,
            expiry_interval,
            pending_will: None,
            ended: false,
            owner: None,
            principal: None,
            connection: None,
            kick: None,
            wake: Arc::new(SessionWake::default()),
            budget,
            store,
            uid,
            next_seq: 0,
            stored_inflight: 0,
            in_store: false,
        }
    }

    /// Writes the session's record (expiry, owner, whether a connection is attached, a will
    /// waiting for its delay) to the store, if it is persistent and there is a store; forgets
    /// it if the session is no longer persistent.
    pub fn write_record(&mut self, client_id: &str) {
        if !self.is_persistent() {
            // Resumed with expiry 0: it ends with this connection, and a restart must not
            // bring it back.
            self.forget_record(client_id);
            return;
        }
        let Some(store) = self.persisting() else {
            return;
        };
        let record = records::SessionRecord {
            uid: self.uid,
            expiry_interval: self.expiry_interval,
            owner: self.owner.clone(),
            disconnected_at: (!self.attached).then(unix_now),
            will: self
                .pending_will
                .as_ref()
                .map(|p| (p.will.clone(), p.due_unix)),
        };
        store.put(
            Space::Sessions,
            records::session_key(client_id),
            records::encode_session(&record),
        );
        self.in_store = true;
    }

    /// The store forgets the session and everything it held.
    fn forget_record(&mut self, client_id: &str) {
        let Some(store) = self.store.as_deref().filter(|_| self.in_store) else {
            return;
        };
        store.delete(Space::Sessions, records::session_key(client_id));
        for space in [
            Space::Subscriptions,
            Space::Deliveries,
            Space::Released,
            Space::IncomingQos2,
        ] {
            store.delete_prefix(space, records::session_prefix(self.uid));
        }
        self.in_store = false;
    }

    /// The store, if this session writes to one now (it is persistent and has not ended).
    fn persisting(&self) -> Option<&Store> {
        self.store
            .as_deref()
            .filter(|_| self.is_persistent() && !self.ended)
    }

    /// Attaches a new connection: the generation moves on, the connection attached until now
    /// (if any) is woken to find it gone, and the new one gets a wake-up of its own. Returns
    /// the new generation and wake-up.
    pub fn attach(&mut self) -> (u64, Arc<SessionWake>) {
        self.generation += 1;
        self.attached = true;
        let old = std::mem::replace(&mut self.wake, Arc::new(SessionWake::default()));
        old.notify();
        (self.generation, Arc::clone(&self.wake))
    }

    /// The generation of the connection attached last.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a connection is attached now.
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Whether the session has ended (expired, or replaced by a clean start).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Whether it outlives its connection (expiry interval above 0).
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// The principal that owns the session (`None`: anonymous).
    pub fn owner(&self) -> Option<&tollgate_auth::Owner> {
        self.owner.as_ref()
    }

    /// The principal of the connection attached now, if one is.
    pub fn attached_principal(&self) -> Option<Arc<Principal>> {
        self.attached.then(|| self.principal.clone()).flatten()
    }

    /// Records the principal of the connection attached now (at CONNECT and after a
    /// re-authentication).
    pub fn set_principal(&mut self, principal: Arc<Principal>) {
        self.principal = Some(principal);
    }

    /// Gives the session to another owner: a connection whose principal a device grant
    /// replaced in place (an anonymous device that became its user). Recorded with the
    /// session's next record (written when it outlives its connection).
    pub fn reown(&mut self, owner: Option<tollgate_auth::Owner>) {
        self.owner = owner;
    }

    /// Sets the session expiry interval (CONNECT, or a DISCONNECT that changes it).
    pub fn set_expiry_interval(&mut self, seconds: u32) {
        self.expiry_interval = seconds;
    }

    /// Opens a new session for `owner`: the first connection attaches.
    pub fn open(&mut self, owner: Option<tollgate_auth::Owner>) -> (u64, Arc<SessionWake>) {
        self.owner = owner;
        self.attach()
    }

    /// Resumes the session for a new connection: a will waiting for its delay is cancelled
    /// (MQTT-3.1.2-8), the connection attached until now (if any) is taken over, and the new
    /// connection's expiry interval applies from now on.
    pub fn resume(&mut self, expiry_interval: u32) -> (u64, Arc<SessionWake>) {
        self.pending_will = None;
        self.expiry_interval = expiry_interval;
        self.attach()
    }

    /// Ends the session (replaced, or expired): a connection still attached is woken to find
    /// it gone, every message is forgotten, and the subscriptions (to take out of the trie)
    /// and a will still waiting are returned.
    pub fn end(&mut self, client_id: &str) -> (Vec<String>, Option<Will>) {
        if self.attached {
            let _ = self.attach();
        }
        self.forget_record(client_id);
        self.attached = false;
        self.ended = true;
        self.clear_messages();
        let filters = self.take_subscriptions();
        (filters, self.pending_will.take().map(|p| p.will))
    }

    /// Detaches the connection of `generation` as it closes, with `will` if its ending calls
    /// for one: a will due at once is handed back, one with a delay (capped by the session's
    /// expiry) waits in the session.
    pub fn detach(&mut self, generation: u64, will: Option<(Will, u32)>) -> Detached {
        if self.generation != generation || self.ended {
            return Detached::Stale {
                ended: self.ended,
                will,
            };
        }
        self.attached = false;
        let expiry = self.expiry_interval;
        let will_delay = will.as_ref().map_or(0, |(_, delay)| (*delay).min(expiry));
        let will_now = match will {
            Some((will, _)) if will_delay == 0 => Some(will),
            Some((will, _)) => {
                self.pending_will = Some(Box::new(PendingWill {
                    will,
                    generation,
                    due_unix: unix_now().saturating_add(u64::from(will_delay)),
                }));
                None
            }
            None => None,
        };
        Detached::Detached {
            expiry,
            will_delay,
            will_now,
        }
    }

    /// The will left by the connection of `generation`, if it still waits (no connection
    /// has come since): its delay has passed.
    pub fn take_will(&mut self, generation: u64) -> Option<Will> {
        match &self.pending_will {
            Some(p) if p.generation == generation => self.pending_will.take().map(|p| p.will),
            _ => None,
        }
    }

    /// Whether the session has stayed without a connection since the one of `generation`
    /// left: its expiry, counted from then, ends it.
    pub fn idle_since(&self, generation: u64) -> bool {
        self.generation == generation && !self.attached && !self.ended
    }

    /// Records an incoming QoS 2 PUBLISH with `packet_id`, held until PUBREL, unless it is a
    /// resend or more than `receive_maximum` are held.
    pub fn receive_qos2(&mut self, packet_id: u16, receive_maximum: u16) -> Qos2Arrival {
        if self.incoming_qos2.contains(&packet_id) {
            Qos2Arrival::Duplicate
        } else if self.incoming_qos2.len() >= usize::from(receive_maximum) {
            Qos2Arrival::TooMany
        } else {
            self.incoming_qos2.insert(packet_id);
            if let Some(store) = self.persisting() {
                store.put(
                    Space::IncomingQos2,
                    records::qos2_key(self.uid, packet_id),
                    Vec::new(),
                );
            }
            Qos2Arrival::New
        }
    }

    /// Forgets an incoming QoS 2 packet identifier (PUBREL came, or the message was refused).
    pub fn release_qos2(&mut self, packet_id: u16) {
        if self.incoming_qos2.remove(&packet_id) {
            if let Some(store) = &self.store {
                store.delete(Space::IncomingQos2, records::qos2_key(self.uid, packet_id));
            }
        }
    }

    /// Wakes the attached connection, if any (its rules changed, say).
    pub fn notify_attached(&self) {
        if self.attached {
            self.wake.notify();
        }
    }
}

impl Drop for SessionState {
    fn drop(&mut self) {
        self.clear_messages();
        self.take_subscriptions();
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A session, shared between the connection attached to it and every publisher that delivers
/// to it.
#[derive(Debug)]
pub struct Session {
    /// Broker-unique identity (client identifiers can be reused by later sessions).
    pub id: u64,
    /// The client identifier.
    pub client_id: Arc<str>,
    /// The mutable state.
    pub state: Mutex<SessionState>,
    online: AtomicBool,
    limits: QueueLimits,
}

impl Session {
    /// A new, empty session whose queue is bounded by `limits` and charged to `budget`.
    pub fn new(
        id: u64,
        client_id: Arc<str>,
        expiry_interval: u32,
        limits: QueueLimits,
        budget: Arc<MemoryBudget>,
        store: Option<Arc<Store>>,
    ) -> Self {
        Session {
            id,
            client_id,
            state: Mutex::new(SessionState::new(id, expiry_interval, budget, store)),
            online: AtomicBool::new(false),
            limits,
        }
    }

    /// Marks the session as having (or not having) a connection attached.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }
}

impl Subscriber for Arc<Session> {
    fn subscriber_id(&self) -> u64 {
        self.id
    }

    fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
