//! The `$SYS/broker/...` topics: the broker's counters, published as retained messages at a
//! fixed interval so that a subscriber gets the current values at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::Broker;
use crate::stats::BrokerStats;

/// The broker's version, as `$SYS/broker/version` reports it.
pub const VERSION: &str = concat!("tollgate ", env!("CARGO_PKG_VERSION"));

/// Publishes the `$SYS` topics every `interval` until shutdown, the first time one interval
/// from now (the server publishes them once as it starts).
pub async fn run_sys_publisher(
    broker: Arc<Broker>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => publish_counters(&broker),
        }
    }
}

/// Publishes the current value of every counter.
pub fn publish_counters(broker: &Broker) {
    let s = &broker.stats;
    let uptime = broker.started_at.elapsed().as_secs();
    let values = [
        ("$SYS/broker/version", VERSION.to_owned()),
        ("$SYS/broker/uptime", format!("{uptime} seconds")),
        (
            "$SYS/broker/clients/connected",
            BrokerStats::get(&s.clients_connected).to_string(),
        ),
        (
            "$SYS/broker/clients/total",
            broker.session_count().to_string(),
        ),
        (
            "$SYS/broker/connections/total",
            BrokerStats::get(&s.connections_total).to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            s.received.messages_total().to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            s.sent.messages_total().to_string(),
        ),
        (
            "$SYS/broker/messages/dropped",
            BrokerStats::get(&s.messages_dropped).to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            BrokerStats::get(&s.bytes_received).to_string(),
        ),
        (
            "$SYS/broker/bytes/sent",
            BrokerStats::get(&s.bytes_sent).to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            BrokerStats::get(&s.retained_messages).to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count",
            BrokerStats::get(&s.subscriptions).to_string(),
        ),
    ];
    for (topic, value) in values {
        broker.publish_sys(topic, value);
    }
}
