//! Broker-wide counters, published under `$SYS/broker/...`.
//!
//! Connections count in local variables and add to these in batches, so the hot path does not
//! write a shared cache line per packet.

use std::sync::atomic::{AtomicU64, Ordering};

use tollgate_mqtt::QoS;

use crate::decision_counts::DecisionCounts;

/// PUBLISH packets and their payload bytes, by QoS (0, 1, 2), shared by all connections.
#[derive(Debug, Default)]
pub struct PublishCounts {
    /// PUBLISH packets, by QoS.
    pub messages: [AtomicU64; 3],
    /// Their payload bytes, by QoS.
    pub payload_bytes: [AtomicU64; 3],
}

impl PublishCounts {
    /// PUBLISH packets of every QoS.
    pub fn messages_total(&self) -> u64 {
        self.messages.iter().map(BrokerStats::get).sum()
    }

    fn add(&self, local: &LocalPublishCounts) {
        for qos in 0..3 {
            BrokerStats::add(&self.messages[qos], local.messages[qos].into());
            BrokerStats::add(&self.payload_bytes[qos], local.payload_bytes[qos].into());
        }
    }
}

/// Counters shared by all connections.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Clients connected now.
    pub clients_connected: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// PUBLISH packets received from clients, by QoS.
    pub received: PublishCounts,
    /// PUBLISH packets sent to clients, by QoS.
    pub sent: PublishCounts,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
    /// Bytes written to clients.
    pub bytes_sent: AtomicU64,
    /// Messages dropped because a session's queue was full.
    pub messages_dropped: AtomicU64,
    /// Retained messages stored now.
    pub retained_messages: AtomicU64,
    /// Bytes the retained messages hold now.
    pub retained_bytes: AtomicU64,
    /// Subscriptions now.
    pub subscriptions: AtomicU64,
    /// Authorization decisions, by authorizer.
    pub decisions: DecisionCounts,
}

impl BrokerStats {
    /// Adds `n` to `counter` (relaxed: these are statistics, not synchronisation).
    pub fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Subtracts `n` from `counter`.
    pub fn sub(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// PUBLISH packets and payload bytes of one connection, by QoS, not yet added to the broker's.
/// 32 bits each, as every idle connection carries them: a wake-up handles far fewer than 2³²
/// packets, and payload bytes that would not fit are added to the broker's at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalPublishCounts {
    /// PUBLISH packets, by QoS.
    pub messages: [u32; 3],
    /// Their payload bytes, by QoS.
    pub payload_bytes: [u32; 3],
}

impl LocalPublishCounts {
    /// Counts one PUBLISH of `qos` carrying `payload` bytes (`shared`: the broker's counts of
    /// the same direction, for bytes that would overflow).
    pub fn count(&mut self, qos: QoS, payload: usize, shared: &PublishCounts) {
        let qos = qos as usize;
        self.messages[qos] = self.messages[qos].saturating_add(1);
        let held = &mut self.payload_bytes[qos];
        match u32::try_from(payload)
            .ok()
            .and_then(|p| held.checked_add(p))
        {
            Some(sum) => *held = sum,
            None => {
                BrokerStats::add(
                    &shared.payload_bytes[qos],
                    u64::from(*held) + payload as u64,
                );
                *held = 0;
            }
        }
    }

    /// PUBLISH packets of every QoS.
    pub fn messages_total(&self) -> u64 {
        self.messages.iter().map(|&n| u64::from(n)).sum()
    }
}

/// Per-connection counts, flushed into [`BrokerStats`] after every wake-up of the connection
/// (so the packet counts, at most what one wake-up handles, fit 32 bits; they are kept small
/// because every idle connection carries them).
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalCounts {
    /// Bytes read.
    pub bytes_received: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// PUBLISH packets received.
    pub received: LocalPublishCounts,
    /// PUBLISH packets sent.
    pub sent: LocalPublishCounts,
}

impl LocalCounts {
    /// Adds these counts to the broker's and resets them.
    pub fn flush(&mut self, stats: &BrokerStats) {
        stats.received.add(&self.received);
        stats.sent.add(&self.sent);
        BrokerStats::add(&stats.bytes_received, self.bytes_received);
        BrokerStats::add(&stats.bytes_sent, self.bytes_sent);
        *self = LocalCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_counts_are_kept_by_qos_and_payload_bytes_past_32_bits_are_not_lost() {
        let stats = BrokerStats::default();
        let mut local = LocalCounts::default();
        local.received.count(QoS::AtLeastOnce, 10, &stats.received);
        local.received.count(QoS::AtLeastOnce, 5, &stats.received);
        local.sent.count(QoS::ExactlyOnce, 7, &stats.sent);
        // Three packets of 2³¹ bytes each (more than one round could ever carry): the sum
        // passes 32 bits and what does not fit goes to the broker's counts at once.
        let big = 1usize << 31;
        for _ in 0..3 {
            local.received.count(QoS::AtMostOnce, big, &stats.received);
        }
        local.flush(&stats);
        let get = |c: &AtomicU64| BrokerStats::get(c);
        assert_eq!(get(&stats.received.messages[1]), 2);
        assert_eq!(get(&stats.received.payload_bytes[1]), 15);
        assert_eq!(get(&stats.received.messages[0]), 3);
        assert_eq!(get(&stats.received.payload_bytes[0]), 3 * (1u64 << 31));
        assert_eq!(get(&stats.sent.messages[2]), 1);
        assert_eq!(get(&stats.sent.payload_bytes[2]), 7);
        assert_eq!(stats.received.messages_total(), 5);
        assert_eq!(stats.sent.messages_total(), 1);
        assert_eq!(local.received.messages_total(), 0, "flushed");
    }
}
