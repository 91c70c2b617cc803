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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tollgate_auth::Principal;
use tollgate_mqtt::{QoS, SubscriptionOptions, Will};

use crate::memory::{MemoryBudget, Overload, Pressure};
use crate::message::Message;
use crate::subscriptions::Subscriber;
use crate::wake::SessionWake;

/// A message waiting to be sent to one session, with what the subscription made of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// QoS for this recipient: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// Retain flag as this recipient sees it.
    pub retain: bool,
    /// Identifiers of every subscription that matched (5.0).
    pub subscription_ids: Vec<u32>,
}

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingState {
    /// QoS 1 sent, waiting for PUBACK.
    AwaitingPubAck,
    /// QoS 2 sent, waiting for PUBREC.
    AwaitingPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitingPubComp,
}

/// A message in the outgoing in-flight window.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Packet identifier it was sent with.
    pub packet_id: u16,
    /// The delivery.
    pub delivery: Delivery,
    /// Its state.
    pub state: OutgoingState,
}

/// A subscription as the session records it (the trie holds the routing copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSubscription {
    /// Options subscribed with.
    pub options: SubscriptionOptions,
    /// 5.0 subscription identifier.
    pub identifier: Option<u32>,
}

/// A will waiting for its delay to pass (or for the session to end).
#[derive(Debug, Clone)]
struct PendingWill {
    /// The will.
    will: Will,
    /// The connection generation that left it; a newer connection cancels it.
    generation: u64,
}

/// What [`Session::enqueue`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Queued for sending.
    Queued,
    /// Not queued: QoS 0 for an offline session that does not keep QoS 0.
    Skipped,
    /// Queued, and the oldest queued QoS 0 message dropped to make room.
    QueuedDroppingQos0,
    /// Dropped because the queue was full (messages or bytes).
    Dropped,
    /// A QoS 0 delivery not queued because the broker's memory budget is under pressure.
    Shed,
}

/// A session's queue bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most deliveries waiting in the queue (beyond the in-flight window).
    pub max_messages: usize,
    /// Most bytes queued and in flight together (messages' footprints and bookkeeping).
    pub max_bytes: usize,
    /// Whether QoS 0 messages are queued while no connection is attached.
    pub queue_qos0_offline: bool,
}

impl QueueLimits {
    /// Bounds for tests: `max_messages`, no byte bound, no offline QoS 0.
    pub fn messages(max_messages: usize) -> QueueLimits {
        QueueLimits {
            max_messages,
            max_bytes: usize::MAX,
            queue_qos0_offline: false,
        }
    }
}

/// What one delivery costs besides its message: the queue slot or in-flight record, and its
/// subscription identifiers.
fn delivery_overhead(delivery: &Delivery) -> usize {
    std::mem::size_of::<InFlight>() + delivery.subscription_ids.capacity() * 4
}

/// What a delivery counts against its session's byte bound.
fn delivery_bytes(delivery: &Delivery) -> usize {
    delivery.message.footprint() + delivery_overhead(delivery)
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
    /// Wakes the connection attached now; replaced when another connection attaches.
    wake: Arc<SessionWake>,
    budget: Arc<MemoryBudget>,
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
    fn new(expiry_interval: u32, budget: Arc<MemoryBudget>) -> SessionState {
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
            wake: Arc::new(SessionWake::default()),
            budget,
        }
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
    pub fn end(&mut self) -> (Vec<String>, Option<Will>) {
        if self.attached {
            let _ = self.attach();
        }
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
                self.pending_will = Some(Box::new(PendingWill { will, generation }));
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
            Qos2Arrival::New
        }
    }

    /// Forgets an incoming QoS 2 packet identifier (PUBREL came, or the message was refused).
    pub fn release_qos2(&mut self, packet_id: u16) {
        self.incoming_qos2.remove(&packet_id);
    }

    /// The subscriptions, by full filter.
    pub fn subscriptions(&self) -> &HashMap<String, SessionSubscription> {
        &self.subscriptions
    }

    /// Bytes the subscriptions' filters hold.
    pub fn subscription_bytes(&self) -> usize {
        self.subscription_bytes
    }

    /// Records a subscription (replacing one to the same filter); its bytes are charged to
    /// the memory budget (twice: the session's copy and the trie's).
    pub fn add_subscription(&mut self, filter: &str, subscription: SessionSubscription) {
        if self
            .subscriptions
            .insert(filter.to_owned(), subscription)
            .is_none()
        {
            self.subscription_bytes += filter.len();
            self.budget.charge(subscription_cost(filter));
        }
    }

    /// Forgets a subscription. Returns whether it existed.
    pub fn remove_subscription(&mut self, filter: &str) -> bool {
        let existed = self.subscriptions.remove(filter).is_some();
        if existed {
            self.subscription_bytes -= filter.len();
            self.budget.release(subscription_cost(filter));
        }
        existed
    }

    /// Takes every subscription's filter (the session ends).
    pub fn take_subscriptions(&mut self) -> Vec<String> {
        let filters: Vec<String> = self.subscriptions.drain().map(|(f, _)| f).collect();
        for filter in &filters {
            self.budget.release(subscription_cost(filter));
        }
        self.subscription_bytes = 0;
        filters
    }

    /// Wakes the attached connection, if any (its rules changed, say).
    pub fn notify_attached(&self) {
        if self.attached {
            self.wake.notify();
        }
    }

    /// How many deliveries wait in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// How many messages are in flight.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Bytes the queue and the in-flight window hold.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The in-flight messages, oldest first.
    pub fn inflight(&self) -> impl Iterator<Item = &InFlight> {
        self.inflight.iter()
    }

    /// The QoS of the next queued delivery.
    pub fn next_qos(&self) -> Option<QoS> {
        self.queue.front().map(|d| d.qos)
    }

    /// Takes the next queued delivery off the queue.
    pub fn pop_queued(&mut self) -> Option<Delivery> {
        let delivery = self.queue.pop_front()?;
        self.uncount(&delivery);
        Some(delivery)
    }

    /// The next queued delivery, left in the queue.
    pub fn next_queued(&self) -> Option<&Delivery> {
        self.queue.front()
    }

    /// Moves the next queued delivery into the in-flight window, sent with `packet_id` and
    /// waiting in `state`. Its bytes and charge stay as they are: both count the queue and
    /// the window together.
    pub fn send_next_queued(&mut self, packet_id: u16, state: OutgoingState) {
        if let Some(delivery) = self.queue.pop_front() {
            self.inflight.push_back(InFlight {
                packet_id,
                delivery,
                state,
            });
        }
    }

    /// Records a message sent and not yet acknowledged.
    pub fn push_inflight(&mut self, flight: InFlight) {
        self.count(&flight.delivery);
        self.inflight.push_back(flight);
    }

    /// The in-flight message with `packet_id`, if any.
    pub fn inflight_mut(&mut self, packet_id: u16) -> Option<&mut InFlight> {
        let index = self.inflight_index(packet_id)?;
        self.inflight.get_mut(index)
    }

    /// Where the in-flight message with `packet_id` is: acknowledgements mostly come in the
    /// order the messages were sent, so the oldest is looked at first.
    fn inflight_index(&self, packet_id: u16) -> Option<usize> {
        match self.inflight.front() {
            Some(oldest) if oldest.packet_id == packet_id => Some(0),
            _ => self.inflight.iter().position(|f| f.packet_id == packet_id),
        }
    }

    /// Removes the in-flight message with `packet_id`, if there is one (in any state).
    pub fn remove_inflight(&mut self, packet_id: u16) -> Option<InFlight> {
        let index = self.inflight_index(packet_id)?;
        let flight = self.inflight.remove(index)?;
        self.uncount(&flight.delivery);
        Some(flight)
    }

    /// Keeps only the in-flight messages for which `keep` says so.
    pub fn retain_inflight(&mut self, mut keep: impl FnMut(&InFlight) -> bool) {
        let mut dropped = 0;
        self.inflight.retain(|f| {
            let kept = keep(f);
            if !kept {
                dropped += delivery_bytes(&f.delivery);
                self.budget.release(delivery_overhead(&f.delivery));
            }
            kept
        });
        self.held_bytes -= dropped;
    }

    /// Forgets every queued and in-flight message (the session ended).
    pub fn clear_messages(&mut self) {
        for d in &self.queue {
            self.budget.release(delivery_overhead(d));
        }
        for f in &self.inflight {
            self.budget.release(delivery_overhead(&f.delivery));
        }
        self.queue.clear();
        self.inflight.clear();
        self.held_bytes = 0;
    }

    fn count(&mut self, delivery: &Delivery) {
        self.held_bytes += delivery_bytes(delivery);
        self.budget.charge(delivery_overhead(delivery));
    }

    fn uncount(&mut self, delivery: &Delivery) {
        self.held_bytes -= delivery_bytes(delivery);
        self.budget.release(delivery_overhead(delivery));
    }

    /// The next free packet identifier for an outgoing message.
    ///
    /// Identifiers are handed out in sequence, so all in flight lie between the oldest one and
    /// the last one given; only when that range spans every identifier does it search.
    pub fn next_packet_id(&mut self) -> u16 {
        let mut candidate = self.last_packet_id;
        loop {
            candidate = if candidate == u16::MAX {
                1
            } else {
                candidate + 1
            };
            let in_use = match self.inflight.front() {
                None => false,
                Some(oldest) => {
                    let span = self.last_packet_id.wrapping_sub(oldest.packet_id);
                    span >= u16::MAX - 2 && self.inflight.iter().any(|f| f.packet_id == candidate)
                }
            };
            if !in_use {
                self.last_packet_id = candidate;
                return candidate;
            }
        }
    }
}

impl Drop for SessionState {
    fn drop(&mut self) {
        self.clear_messages();
        self.take_subscriptions();
    }
}

/// What one subscription costs in memory: its filter twice (the session's record and the
/// trie's entry) and their bookkeeping.
fn subscription_cost(filter: &str) -> usize {
    2 * filter.len() + 128
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
    ) -> Self {
        Session {
            id,
            client_id,
            state: Mutex::new(SessionState::new(expiry_interval, budget)),
            online: AtomicBool::new(false),
            limits,
        }
    }

    /// Marks the session as having (or not having) a connection attached.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    /// Appends a delivery to the queue, dropping by the queue's bounds: when the queue is full
    /// (in messages or bytes) a new QoS 0 message is dropped; a new QoS 1/2 message evicts the
    /// oldest queued QoS 0 messages, or is dropped itself if that does not make room. QoS 0
    /// deliveries are shed while the memory budget is under pressure.
    pub fn enqueue(&self, delivery: Delivery) -> EnqueueOutcome {
        let mut state = self.state.lock();
        if state.ended {
            return EnqueueOutcome::Skipped;
        }
        let qos0 = delivery.qos == QoS::AtMostOnce;
        if !state.attached && qos0 && !self.limits.queue_qos0_offline {
            return EnqueueOutcome::Skipped;
        }
        if qos0 && state.budget.pressure() >= Pressure::ShedQos0 {
            state.budget.record(Overload::ShedQos0);
            return EnqueueOutcome::Shed;
        }
        let bytes = delivery_bytes(&delivery);
        let fits = |state: &SessionState| {
            state.queue.len() < self.limits.max_messages
                && state.held_bytes + bytes <= self.limits.max_bytes
        };
        let mut outcome = EnqueueOutcome::Queued;
        if !fits(&state) {
            if qos0 {
                return EnqueueOutcome::Dropped;
            }
            // Make room by dropping queued QoS 0 messages, oldest first, if that is enough.
            let mut freeable_bytes = 0;
            let mut freeable = 0;
            for d in state.queue.iter().filter(|d| d.qos == QoS::AtMostOnce) {
                freeable += 1;
                freeable_bytes += delivery_bytes(d);
                if state.queue.len() - freeable < self.limits.max_messages
                    && state.held_bytes - freeable_bytes + bytes <= self.limits.max_bytes
                {
                    break;
                }
            }
            let room = state.queue.len() - freeable < self.limits.max_messages
                && state.held_bytes - freeable_bytes + bytes <= self.limits.max_bytes;
            if !room {
                return EnqueueOutcome::Dropped;
            }
            let mut to_drop = freeable;
            let budget = Arc::clone(&state.budget);
            let mut released = 0;
            state.queue.retain(|d| {
                if to_drop > 0 && d.qos == QoS::AtMostOnce {
                    to_drop -= 1;
                    released += delivery_bytes(d);
                    budget.release(delivery_overhead(d));
                    false
                } else {
                    true
                }
            });
            state.held_bytes -= released;
            outcome = EnqueueOutcome::QueuedDroppingQos0;
        }
        state.count(&delivery);
        state.queue.push_back(delivery);
        let wake = state.attached.then(|| Arc::clone(&state.wake));
        drop(state);
        if let Some(wake) = wake {
            wake.notify();
        }
        outcome
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
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;
    use tollgate_mqtt::Publish;

    fn delivery(qos: QoS, payload: &str) -> Delivery {
        let publish = Publish {
            topic: "t".into(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            ..Publish::default()
        };
        Delivery {
            message: Message::new(publish, 0, Instant::now()),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
        }
    }

    fn payloads(session: &Session) -> Vec<Bytes> {
        session
            .state
            .lock()
            .queue
            .iter()
            .map(|d| d.message.publish.payload.clone())
            .collect()
    }

    fn session(limits: QueueLimits) -> Session {
        let session = Session::new(1, "c".into(), 0, limits, MemoryBudget::new(0));
        let _ = session.state.lock().open(None);
        session
    }

    #[test]
    fn full_queue_drops_qos0_first_then_new_messages() {
        let session = session(QueueLimits::messages(2));
        assert_eq!(
            session.enqueue(delivery(QoS::AtMostOnce, "a")),
            EnqueueOutcome::Queued
        );
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, "b")),
            EnqueueOutcome::Queued
        );
        assert_eq!(
            session.enqueue(delivery(QoS::AtMostOnce, "c")),
            EnqueueOutcome::Dropped
        );
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, "d")),
            EnqueueOutcome::QueuedDroppingQos0
        );
        assert_eq!(
            payloads(&session),
            vec![Bytes::from_static(b"b"), Bytes::from_static(b"d")]
        );
        assert_eq!(
            session.enqueue(delivery(QoS::ExactlyOnce, "e")),
            EnqueueOutcome::Dropped
        );
        assert_eq!(
            payloads(&session),
            vec![Bytes::from_static(b"b"), Bytes::from_static(b"d")]
        );
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_across_queue_and_in_flight_window() {
        let big = "x".repeat(1000);
        let one = delivery_bytes(&delivery(QoS::AtLeastOnce, &big));
        let session = session(QueueLimits {
            max_messages: 100,
            max_bytes: 3 * one,
            queue_qos0_offline: false,
        });
        for _ in 0..3 {
            assert_eq!(
                session.enqueue(delivery(QoS::AtLeastOnce, &big)),
                EnqueueOutcome::Queued
            );
        }
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, &big)),
            EnqueueOutcome::Dropped,
            "a fourth would pass the byte bound"
        );
        {
            // Sent but not acknowledged still counts.
            let mut state = session.state.lock();
            let sent = state.pop_queued().unwrap();
            state.push_inflight(InFlight {
                packet_id: 1,
                delivery: sent,
                state: OutgoingState::AwaitingPubAck,
            });
            assert_eq!(state.held_bytes(), 3 * one);
        }
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, &big)),
            EnqueueOutcome::Dropped
        );
        session.state.lock().remove_inflight(1);
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, &big)),
            EnqueueOutcome::Queued,
            "an acknowledgement makes room"
        );
    }

    #[test]
    fn a_large_qos1_message_evicts_as_many_qos0_messages_as_it_needs() {
        let small = delivery_bytes(&delivery(QoS::AtMostOnce, "a"));
        let session = session(QueueLimits {
            max_messages: 100,
            max_bytes: 3 * small + 10,
            queue_qos0_offline: false,
        });
        for _ in 0..3 {
            session.enqueue(delivery(QoS::AtMostOnce, "a"));
        }
        let wide = "b".repeat(small + 5);
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, &wide)),
            EnqueueOutcome::QueuedDroppingQos0
        );
        let left = payloads(&session);
        assert_eq!(left.len(), 2, "two QoS 0 messages had to go: {left:?}");
        assert!(session.state.lock().held_bytes() <= 3 * small + 10);
    }

    #[test]
    fn qos0_is_shed_under_memory_pressure_and_overhead_is_charged() {
        let budget = MemoryBudget::new(1000);
        let session = Session::new(
            1,
            "c".into(),
            0,
            QueueLimits::messages(10),
            Arc::clone(&budget),
        );
        let _ = session.state.lock().open(None);
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, "a")),
            EnqueueOutcome::Queued
        );
        let overhead = budget.used();
        assert!(overhead > 0, "a queued delivery is charged");
        budget.charge(700);
        assert_eq!(
            session.enqueue(delivery(QoS::AtMostOnce, "b")),
            EnqueueOutcome::Shed
        );
        assert_eq!(budget.count(Overload::ShedQos0), 1);
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, "c")),
            EnqueueOutcome::Queued,
            "QoS 1 still goes"
        );
        session.state.lock().clear_messages();
        assert_eq!(budget.used(), 700);
    }

    #[test]
    fn offline_session_skips_qos0_unless_configured() {
        let budget = MemoryBudget::new(0);
        let session = Session::new(1, "c".into(), 0, QueueLimits::messages(10), budget.clone());
        assert_eq!(
            session.enqueue(delivery(QoS::AtMostOnce, "a")),
            EnqueueOutcome::Skipped
        );
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, "b")),
            EnqueueOutcome::Queued
        );
        let keeping = Session::new(
            2,
            "d".into(),
            0,
            QueueLimits {
                queue_qos0_offline: true,
                ..QueueLimits::messages(10)
            },
            budget,
        );
        assert_eq!(
            keeping.enqueue(delivery(QoS::AtMostOnce, "a")),
            EnqueueOutcome::Queued
        );
    }

    #[test]
    fn a_new_connection_gets_its_own_wake_and_the_old_one_is_woken() {
        let session = session(QueueLimits::messages(10));
        let (first, old) = session.state.lock().attach();
        let (second, new) = session.state.lock().attach();
        assert!(second > first);
        assert!(!Arc::ptr_eq(&old, &new));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(
            old.poll_notified(&mut cx).is_ready(),
            "the old connection is told"
        );
        assert!(new.poll_notified(&mut cx).is_pending());
        session.enqueue(delivery(QoS::AtLeastOnce, "m"));
        assert!(
            new.poll_notified(&mut cx).is_ready(),
            "deliveries wake the new one"
        );
        assert!(
            old.poll_notified(&mut cx).is_pending(),
            "and not the old one"
        );
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut state = SessionState::new(0, MemoryBudget::new(0));
        state.last_packet_id = u16::MAX - 1;
        assert_eq!(state.next_packet_id(), u16::MAX);
        assert_eq!(state.next_packet_id(), 1);
        // Fill the window so that it spans every identifier but 3.
        state.last_packet_id = 1;
        for id in (4..=u16::MAX).chain(1..=2) {
            state.push_inflight(InFlight {
                packet_id: id,
                delivery: delivery(QoS::AtLeastOnce, "x"),
                state: OutgoingState::AwaitingPubAck,
            });
        }
        state.last_packet_id = 2;
        assert_eq!(state.next_packet_id(), 3);
    }
}
