//! Broker-wide counters, published under `$SYS/broker/...`.
//!
//! Connections count in local variables and add to these in batches, so the hot path does not
//! write a shared cache line per packet.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by all connections.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Clients connected now.
    pub clients_connected: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
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
    pub messages_received: u32,
    /// PUBLISH packets sent.
    pub messages_sent: u32,
}

impl LocalCounts {
    /// Adds these counts to the broker's and resets them.
    pub fn flush(&mut self, stats: &BrokerStats) {
        BrokerStats::add(&stats.messages_received, self.messages_received.into());
        BrokerStats::add(&stats.messages_sent, self.messages_sent.into());
        BrokerStats::add(&stats.bytes_received, self.bytes_received);
        BrokerStats::add(&stats.bytes_sent, self.bytes_sent);
        *self = LocalCounts::default();
    }
}
