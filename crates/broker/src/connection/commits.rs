//! Acknowledgements and deliveries that wait for the store: what is acknowledged is kept.
//!
//! A packet whose handling wrote to the store (a message for a persistent session, a retained
//! message, a subscription, QoS 2 state) is acknowledged only once the commit holding those
//! writes is durable. Acknowledgements leave in the order they were made: one made after a
//! held one waits behind it. A stored delivery is not sent before its commit is durable
//! either, so a crash cannot make the broker deliver a message it then forgets (and deliver
//! again, with another packet identifier, once its publisher sends it again). Without a
//! store, nothing waits.

use std::collections::VecDeque;

use super::*;

/// What waits for the store.
#[derive(Debug, Default)]
pub(super) struct CommitWait {
    /// Acknowledgements and the commit each waits for, in the order they were made.
    held: VecDeque<(u64, Packet)>,
    /// The highest commit a wake-up is asked for.
    registered: u64,
}

impl<S: Shared> Connection<S> {
    /// Sends an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) once the
    /// writes made for the packet it answers are durable, and after every acknowledgement
    /// held before it.
    pub(super) fn acknowledge(&mut self, packet: Packet) {
        let ticket = self.broker.take_store_ticket();
        let behind = self
            .commit_wait
            .as_ref()
            .and_then(|w| w.held.back())
            .map(|(t, _)| *t);
        let wait_for = match (ticket, behind) {
            (Some(t), Some(b)) => Some(t.max(b)),
            (t, b) => t.or(b),
        };
        match wait_for {
            Some(t) if t > self.broker.durable() => {
                self.commit_wait
                    .get_or_insert_with(Box::default)
                    .held
                    .push_back((t, packet));
                self.wake_at_commit(t);
            }
            _ => {
                self.release_committed();
                self.send(&packet);
            }
        }
    }

    /// Sends the held acknowledgements whose commits are durable, in order.
    pub(super) fn release_committed(&mut self) {
        let Some(wait) = self.commit_wait.as_mut() else {
            return;
        };
        let durable = self.broker.durable();
        let mut ready = Vec::new();
        while let Some((ticket, _)) = wait.held.front() {
            if *ticket > durable {
                break;
            }
            ready.extend(wait.held.pop_front().map(|(_, packet)| packet));
        }
        if wait.held.is_empty() {
            self.commit_wait = None;
        }
        for packet in ready {
            self.send(&packet);
        }
    }

    /// Asks to be woken (through the session's wake-up, as for deliveries) once commit
    /// `ticket` is durable.
    pub(super) fn wake_at_commit(&mut self, ticket: u64) {
        let Some(wake) = self.attached().map(|a| Arc::clone(&a.wake)) else {
            return;
        };
        let wait = self.commit_wait.get_or_insert_with(Box::default);
        if ticket > wait.registered {
            wait.registered = ticket;
            self.broker.wake_when_durable(ticket, &wake);
        }
    }

    /// How many acknowledgements wait for the store.
    pub fn held_acknowledgements(&self) -> usize {
        self.commit_wait.as_ref().map_or(0, |w| w.held.len())
    }

    /// Whether a SUBACK waits for the store: the retained messages it brings wait behind it.
    pub(super) fn suback_held(&self) -> bool {
        self.commit_wait
            .as_ref()
            .is_some_and(|w| w.held.iter().any(|(_, p)| matches!(p, Packet::SubAck(_))))
    }
}
