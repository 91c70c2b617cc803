//! The messages a session holds for its client: deliveries waiting in the queue and the
//! outgoing QoS 1/2 messages in flight, bounded in messages and bytes and charged to the
//! memory budget (see the module above for the rest of a session).

use std::sync::Arc;

use tollgate_mqtt::QoS;

use super::{Session, SessionState};
use crate::memory::{Overload, Pressure};
use crate::message::Message;
use crate::store::{records, Space};

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
    /// Its sequence number in the store (0: not stored). A stored delivery's packet
    /// identifier follows from it, so it is the same after a restart.
    pub(crate) stored: u64,
    /// The store commit it waits for (0: none; QoS 2 deliveries only): it is not sent before
    /// that commit is durable, so a crash cannot make the broker send a QoS 2 message it then
    /// forgets and takes again from its publisher.
    pub(crate) ready_at: u64,
}

impl Delivery {
    /// A delivery of `message` at `qos`, not stored.
    pub fn new(message: Arc<Message>, qos: QoS, retain: bool, subscription_ids: Vec<u32>) -> Self {
        Delivery {
            message,
            qos,
            retain,
            subscription_ids,
            stored: 0,
            ready_at: 0,
        }
    }
}

/// The packet identifier of the stored delivery with sequence number `seq` (1 to 65 535, in
/// turn).
pub(crate) fn stored_packet_id(seq: u64) -> u16 {
    ((seq.wrapping_sub(1)) % u64::from(u16::MAX)) as u16 + 1
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
pub(super) fn delivery_bytes(delivery: &Delivery) -> usize {
    delivery.message.footprint() + delivery_overhead(delivery)
}

impl SessionState {
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
        self.forget_stored(&delivery, false);
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
            if delivery.stored > 0 {
                self.stored_inflight += 1;
            }
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
        if flight.delivery.stored > 0 {
            self.stored_inflight += 1;
        }
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
        self.forget_inflight(&flight);
        Some(flight)
    }

    /// Keeps only the in-flight messages for which `keep` says so.
    pub fn retain_inflight(&mut self, mut keep: impl FnMut(&InFlight) -> bool) {
        let mut dropped = Vec::new();
        self.inflight.retain(|f| {
            let kept = keep(f);
            if !kept {
                dropped.push(f.clone());
            }
            kept
        });
        for flight in dropped {
            self.uncount(&flight.delivery);
            self.forget_inflight(&flight);
        }
    }

    /// Records that the client answered PUBREC for the QoS 2 message in flight with
    /// `packet_id`: PUBREL is what goes out again, after a reconnect or a restart.
    pub fn mark_released(&mut self, packet_id: u16) {
        let Some(index) = self.inflight_index(packet_id) else {
            return;
        };
        let flight = &mut self.inflight[index];
        flight.state = OutgoingState::AwaitingPubComp;
        let seq = flight.delivery.stored;
        if let (true, Some(store)) = (seq > 0, &self.store) {
            store.put(
                Space::Released,
                records::delivery_key(self.uid, seq),
                Vec::new(),
            );
        }
    }

    /// The store forgets a delivery that is no longer held (`released`: its PUBREC marker too).
    fn forget_stored(&self, delivery: &Delivery, released: bool) {
        if let (true, Some(store)) = (delivery.stored > 0, &self.store) {
            let key = records::delivery_key(self.uid, delivery.stored);
            if released {
                store.delete(Space::Released, key.clone());
            }
            store.delete(Space::Deliveries, key);
        }
    }

    fn forget_inflight(&mut self, flight: &InFlight) {
        if flight.delivery.stored > 0 {
            self.stored_inflight -= 1;
        }
        self.forget_stored(
            &flight.delivery,
            flight.state == OutgoingState::AwaitingPubComp,
        );
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
        self.stored_inflight = 0;
    }

    /// Writes a QoS 1/2 delivery of a persistent session to the store, if there is one.
    fn store_delivery(&mut self, delivery: &mut Delivery) {
        let Some(store) = &self.store else {
            return;
        };
        if delivery.qos == QoS::AtMostOnce || !self.is_persistent() {
            return;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let message = &delivery.message;
        let value = records::encode_delivery(
            delivery.qos,
            delivery.retain,
            &delivery.subscription_ids,
            message.received_unix_ms(),
            &message.stored_encoding(),
        );
        let ticket = store.insert_new(
            Space::Deliveries,
            records::delivery_key(self.uid, seq),
            value,
        );
        // A QoS 2 delivery goes out only once its record is durable: were it sent before and
        // the broker crashed, the publisher (whose PUBREC waited for that commit) would send
        // it again and the subscriber would get it twice. A QoS 1 delivery may go out at
        // once: after such a crash the subscriber gets it again, which QoS 1 allows, and
        // acknowledged before its commit, its record is never written at all.
        if delivery.qos == QoS::ExactlyOnce {
            delivery.ready_at = ticket;
        }
        delivery.stored = seq;
    }

    pub(super) fn count(&mut self, delivery: &Delivery) {
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
        if self.stored_inflight > 0 {
            // Stored deliveries take their identifiers from their sequence numbers: look
            // through the window rather than trust the sequence.
            let mut candidate = self.last_packet_id;
            loop {
                candidate = if candidate == u16::MAX {
                    1
                } else {
                    candidate + 1
                };
                if !self.inflight.iter().any(|f| f.packet_id == candidate) {
                    self.last_packet_id = candidate;
                    return candidate;
                }
            }
        }
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

    /// The packet identifier for the next queued delivery, or `None` when it must wait: a
    /// stored delivery's identifier follows from its sequence number, and waits while an
    /// older delivery holding the same identifier is still in flight.
    pub fn packet_id_for_next(&mut self) -> Option<u16> {
        let seq = self.queue.front().map_or(0, |d| d.stored);
        if seq == 0 {
            return Some(self.next_packet_id());
        }
        let oldest = self
            .inflight
            .iter()
            .map(|f| f.delivery.stored)
            .find(|&s| s > 0);
        let id = stored_packet_id(seq);
        let wraps = oldest.is_some_and(|oldest| seq - oldest >= u64::from(u16::MAX));
        // Deliveries that are not stored (the session was not persistent when they were
        // queued) took identifiers in sequence: one may hold this one.
        let taken = self.inflight.len() > self.stored_inflight
            && self.inflight.iter().any(|f| f.packet_id == id);
        (!wraps && !taken).then_some(id)
    }
}

impl Session {
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
        let mut delivery = delivery;
        state.store_delivery(&mut delivery);
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
