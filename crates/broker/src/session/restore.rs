//! A session rebuilt from the store at start: what it held comes back without being written
//! again.

use tollgate_mqtt::Will;

use super::messages::{stored_packet_id, Delivery, InFlight, OutgoingState};
use super::{PendingWill, SessionState, SessionSubscription};

impl SessionState {
    /// Marks a session read from the store (and opened): its record exists there, no
    /// connection is attached, and a will with a delay still to run waits in it, left by the
    /// generation it is at.
    pub(crate) fn restore_detached(&mut self, will: Option<(Will, u64)>) {
        self.in_store = true;
        self.attached = false;
        let generation = self.generation;
        self.pending_will = will.map(|(will, due_unix)| {
            Box::new(PendingWill {
                will,
                generation,
                due_unix,
            })
        });
    }

    /// A subscription read from the store (the trie's copy is the broker's to add).
    pub(crate) fn restore_subscription(&mut self, filter: &str, subscription: SessionSubscription) {
        let store = self.store.take();
        self.add_subscription(filter, subscription);
        self.store = store;
    }

    /// A delivery read from the store, with its sequence number: queued, or in flight
    /// waiting for PUBCOMP when its PUBREC had come (`released`).
    pub(crate) fn restore_delivery(&mut self, mut delivery: Delivery, seq: u64, released: bool) {
        delivery.stored = seq;
        delivery.ready_at = 0;
        self.next_seq = self.next_seq.max(seq);
        if released {
            self.push_inflight(InFlight {
                packet_id: stored_packet_id(seq),
                delivery,
                state: OutgoingState::AwaitingPubComp,
            });
        } else {
            self.count(&delivery);
            self.queue.push_back(delivery);
        }
    }

    /// An incoming QoS 2 packet identifier read from the store (PUBREC was sent).
    pub(crate) fn restore_incoming_qos2(&mut self, packet_id: u16) {
        self.incoming_qos2.insert(packet_id);
    }
}
