//! Reading a store back at start: every record decoded, the damaged ones counted and deleted.
//! What the broker makes of it (sessions registered, deadlines scheduled, expired sessions
//! ended) is `broker/restore.rs`.

use std::collections::HashSet;
use std::time::Duration;

use super::records::{self, DeliveryRecord, RetainedRecord, SessionRecord};
use super::{Space, Store};
use crate::operator::records::{self as operator, OperatorRecord};
use tollgate_mqtt::SubscriptionOptions;

/// Everything a store holds, decoded.
#[derive(Debug, Default)]
pub struct StoredState {
    /// Sessions and their client identifiers.
    pub sessions: Vec<(String, SessionRecord)>,
    /// Subscriptions: session number, filter, options, identifier.
    pub subscriptions: Vec<(u64, String, SubscriptionOptions, Option<u32>)>,
    /// Deliveries: session number, sequence number, the delivery; in that order.
    pub deliveries: Vec<(u64, u64, DeliveryRecord)>,
    /// Deliveries whose PUBREC came: session number and sequence number.
    pub released: HashSet<(u64, u64)>,
    /// Incoming QoS 2 packet identifiers: session number and identifier.
    pub incoming_qos2: Vec<(u64, u16)>,
    /// Retained messages.
    pub retained: Vec<RetainedRecord>,
    /// Bans and revocations operators made.
    pub operator: Vec<OperatorRecord>,
    /// Records that did not decode (deleted from the store).
    pub damaged: usize,
}

/// What a restart found and did, for its log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Sessions restored.
    pub sessions: usize,
    /// Sessions that expired while the broker was down (ended at start).
    pub expired: usize,
    /// Subscriptions restored.
    pub subscriptions: usize,
    /// Queued and in-flight deliveries restored.
    pub deliveries: usize,
    /// Retained messages restored.
    pub retained: usize,
    /// Bans made through the admin API and still in force.
    pub bans: usize,
    /// Revocations made through the admin API and still in force.
    pub revocations: usize,
    /// Wills whose delay passed while the broker was down, published at start.
    pub wills_published: usize,
    /// Records that did not decode, and were dropped.
    pub damaged: usize,
    /// Records that belonged to no session, or did not fit a bound, and were dropped.
    pub dropped: usize,
    /// Bytes cut off the end of the store's journal (a torn or corrupt write).
    pub journal_bytes_cut: u64,
    /// Where a store that could not be opened was moved (the broker started empty).
    pub moved_aside: Option<std::path::PathBuf>,
    /// How long recovery took.
    pub elapsed: Duration,
}

/// Reads every record of `store`. A record that cannot be read (an I/O error past what the
/// store's own recovery repaired) or decoded is counted, logged and deleted.
pub fn read(store: &Store) -> StoredState {
    let mut state = StoredState::default();
    for (key, value) in records_of(store, Space::Sessions, &mut state.damaged) {
        let decoded = String::from_utf8(key.to_vec())
            .ok()
            .zip(records::decode_session(&value).ok());
        match decoded {
            Some(session) => state.sessions.push(session),
            None => damaged(store, Space::Sessions, &key, &mut state.damaged),
        }
    }
    for (key, value) in records_of(store, Space::Subscriptions, &mut state.damaged) {
        let decoded = records::split_child_key(&key).and_then(|(uid, filter)| {
            let filter = String::from_utf8(filter.to_vec()).ok()?;
            let (options, id) = records::decode_subscription(&value).ok()?;
            Some((uid, filter, options, id))
        });
        match decoded {
            Some(subscription) => state.subscriptions.push(subscription),
            None => damaged(store, Space::Subscriptions, &key, &mut state.damaged),
        }
    }
    for (key, value) in records_of(store, Space::Deliveries, &mut state.damaged) {
        let decoded = seq_key(&key).and_then(|(uid, seq)| {
            records::decode_delivery(&value)
                .ok()
                .map(|delivery| (uid, seq, delivery))
        });
        match decoded {
            Some(delivery) => state.deliveries.push(delivery),
            None => damaged(store, Space::Deliveries, &key, &mut state.damaged),
        }
    }
    for (key, _) in records_of(store, Space::Released, &mut state.damaged) {
        match seq_key(&key) {
            Some(at) => {
                state.released.insert(at);
            }
            None => damaged(store, Space::Released, &key, &mut state.damaged),
        }
    }
    for (key, _) in records_of(store, Space::IncomingQos2, &mut state.damaged) {
        let decoded = records::split_child_key(&key).and_then(|(uid, rest)| {
            let id: [u8; 2] = rest.try_into().ok()?;
            Some((uid, u16::from_be_bytes(id)))
        });
        match decoded {
            Some(held) => state.incoming_qos2.push(held),
            None => damaged(store, Space::IncomingQos2, &key, &mut state.damaged),
        }
    }
    for (key, value) in records_of(store, Space::Retained, &mut state.damaged) {
        match records::decode_retained(&value) {
            Ok(retained) if retained.publish.topic.as_bytes() == &key[..] => {
                state.retained.push(retained)
            }
            _ => damaged(store, Space::Retained, &key, &mut state.damaged),
        }
    }
    for (key, value) in records_of(store, Space::Operator, &mut state.damaged) {
        match operator::decode(&value) {
            Some(record) => state.operator.push(record),
            None => damaged(store, Space::Operator, &key, &mut state.damaged),
        }
    }
    state
}

/// The records of `space` up to the first that cannot be read (a damaged table: what
/// follows it in key order is not reached, and counted as one damaged record).
fn records_of(store: &Store, space: Space, damaged: &mut usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in store.scan(space) {
        match entry {
            Ok((key, value)) => found.push((key.to_vec(), value.to_vec())),
            Err(e) => {
                *damaged += 1;
                tracing::error!(space = space.name(), records_read = found.len(), error = %e, "the store's {} cannot be read past this point: the rest is lost", space.name());
                break;
            }
        }
    }
    found
}

/// A session number and sequence number key.
fn seq_key(key: &[u8]) -> Option<(u64, u64)> {
    let (uid, rest) = records::split_child_key(key)?;
    let seq: [u8; 8] = rest.try_into().ok()?;
    Some((uid, u64::from_be_bytes(seq)))
}

fn damaged(store: &Store, space: Space, key: &[u8], count: &mut usize) {
    *count += 1;
    tracing::warn!(
        space = space.name(),
        "a record of the store does not decode: dropped"
    );
    store.delete(space, key.to_vec());
}
