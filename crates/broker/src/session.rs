//! A session: what the broker keeps for a client identifier, across connections.
//!
//! A session holds the client's subscriptions, the messages waiting for it (a bounded queue),
//! the QoS 1/2 messages sent but not yet acknowledged (the in-flight window), the QoS 2
//! messages received but not yet released, and its will while the will delay runs. It is
//! shared: publishers on other connections append to its queue under its own mutex (no lock is
//! shared between sessions) and wake the connection attached to it, if any.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tollgate_auth::Principal;
use tollgate_mqtt::{QoS, SubscriptionOptions, Will};

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
pub struct PendingWill {
    /// The will.
    pub will: Will,
    /// The connection generation that left it; a newer connection cancels it.
    pub generation: u64,
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
    /// Dropped because the queue was full.
    Dropped,
}

/// The mutable part of a session, behind its mutex.
#[derive(Debug, Default)]
pub struct SessionState {
    /// Bumped each time a connection attaches; a connection whose generation is no longer
    /// current has been taken over and must close.
    pub generation: u64,
    /// Whether a connection is attached now.
    pub attached: bool,
    /// Subscriptions by full filter (shared filters keep their `$share/group/` prefix).
    pub subscriptions: HashMap<String, SessionSubscription>,
    /// Messages waiting to be sent.
    pub queue: VecDeque<Delivery>,
    /// Outgoing QoS 1/2 messages not yet fully acknowledged, in the order sent.
    pub inflight: VecDeque<InFlight>,
    /// Incoming QoS 2 packet identifiers with PUBREC sent, waiting for PUBREL.
    pub incoming_qos2: HashSet<u16>,
    /// Last packet identifier used for an outgoing message.
    pub last_packet_id: u16,
    /// Session expiry interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// A will waiting for its delay.
    pub pending_will: Option<Box<PendingWill>>,
    /// Whether the session has ended (expired or replaced by a clean start).
    pub ended: bool,
    /// The principal that owns the session (its user name or client identity); `None` for
    /// anonymous sessions.
    pub owner: Option<String>,
    /// The principal of the connection attached now (or last attached).
    pub principal: Option<Arc<Principal>>,
}

impl SessionState {
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
    /// Wakes the attached connection: new messages queued, or it was taken over.
    pub wake: SessionWake,
    online: AtomicBool,
    max_queued: usize,
    queue_qos0_offline: bool,
}

impl Session {
    /// A new, empty session.
    pub fn new(
        id: u64,
        client_id: Arc<str>,
        expiry_interval: u32,
        max_queued: usize,
        queue_qos0_offline: bool,
    ) -> Self {
        Session {
            id,
            client_id,
            state: Mutex::new(SessionState {
                expiry_interval,
                ..SessionState::default()
            }),
            wake: SessionWake::default(),
            online: AtomicBool::new(false),
            max_queued,
            queue_qos0_offline,
        }
    }

    /// Marks the session as having (or not having) a connection attached.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    /// Appends a delivery to the queue, dropping by the queue's bound: when the queue is full a
    /// new QoS 0 message is dropped; a new QoS 1/2 message evicts the oldest queued QoS 0
    /// message, or is dropped itself if there is none.
    pub fn enqueue(&self, delivery: Delivery) -> EnqueueOutcome {
        let mut state = self.state.lock();
        if state.ended {
            return EnqueueOutcome::Skipped;
        }
        if !state.attached && delivery.qos == QoS::AtMostOnce && !self.queue_qos0_offline {
            return EnqueueOutcome::Skipped;
        }
        if state.queue.len() >= self.max_queued {
            if delivery.qos == QoS::AtMostOnce {
                return EnqueueOutcome::Dropped;
            }
            match state.queue.iter().position(|d| d.qos == QoS::AtMostOnce) {
                Some(index) => {
                    state.queue.remove(index);
                }
                None => return EnqueueOutcome::Dropped,
            }
            state.queue.push_back(delivery);
            drop(state);
            self.wake.notify();
            return EnqueueOutcome::QueuedDroppingQos0;
        }
        let attached = state.attached;
        state.queue.push_back(delivery);
        drop(state);
        if attached {
            self.wake.notify();
        }
        EnqueueOutcome::Queued
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
    use tokio::time::Instant;
    use tollgate_mqtt::Publish;

    fn delivery(qos: QoS, payload: &'static str) -> Delivery {
        let publish = Publish {
            topic: "t".into(),
            payload: Bytes::from_static(payload.as_bytes()),
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

    #[test]
    fn full_queue_drops_qos0_first_then_new_messages() {
        let session = Session::new(1, "c".into(), 0, 2, false);
        session.state.lock().attached = true;
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
    fn offline_session_skips_qos0_unless_configured() {
        let session = Session::new(1, "c".into(), 0, 10, false);
        assert_eq!(
            session.enqueue(delivery(QoS::AtMostOnce, "a")),
            EnqueueOutcome::Skipped
        );
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, "b")),
            EnqueueOutcome::Queued
        );
        let keeping = Session::new(2, "d".into(), 0, 10, true);
        assert_eq!(
            keeping.enqueue(delivery(QoS::AtMostOnce, "a")),
            EnqueueOutcome::Queued
        );
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut state = SessionState {
            last_packet_id: u16::MAX - 1,
            ..SessionState::default()
        };
        assert_eq!(state.next_packet_id(), u16::MAX);
        assert_eq!(state.next_packet_id(), 1);
        // Fill the window so that it spans every identifier but 3.
        state.inflight.clear();
        state.last_packet_id = 1;
        for id in (4..=u16::MAX).chain(1..=2) {
            state.inflight.push_back(InFlight {
                packet_id: id,
                delivery: delivery(QoS::AtLeastOnce, "x"),
                state: OutgoingState::AwaitingPubAck,
            });
        }
        state.last_packet_id = 2;
        assert_eq!(state.next_packet_id(), 3);
    }
}
