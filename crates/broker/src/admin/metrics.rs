//! `/metrics`: the broker's counters in the OpenMetrics text format (prometheus-client).
//!
//! The counters live where the broker keeps them already (`BrokerStats`, the memory budget,
//! the session registry, the counts of audited decisions in `audit_counts.rs`); a scrape reads
//! them into a registry made for that scrape, so serving metrics adds nothing to the path of
//! a message.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode as encode_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::audit_counts::Labels;
use crate::broker::Broker;
use crate::live::Live;
use crate::memory::Overload;
use crate::stats::BrokerStats;

/// The metrics of `broker` (and its listeners, in `live`) now, as OpenMetrics text.
pub fn encode(broker: &Broker, live: &Live) -> String {
    let s = &broker.stats;
    let mut registry = Registry::default();
    let mut counter = |name: &str, help: &str, unit: Option<Unit>, value: &AtomicU64| {
        let metric: Counter = Counter::default();
        metric.inc_by(BrokerStats::get(value));
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, metric),
            None => registry.register(name, help, metric),
        }
    };
    counter(
        "tollgate_connections_accepted",
        "MQTT connections accepted since the broker started",
        None,
        &s.connections_total,
    );
    counter(
        "tollgate_received",
        "Bytes read from MQTT clients",
        Some(Unit::Bytes),
        &s.bytes_received,
    );
    counter(
        "tollgate_sent",
        "Bytes written to MQTT clients",
        Some(Unit::Bytes),
        &s.bytes_sent,
    );
    counter(
        "tollgate_messages_dropped",
        "Messages dropped because a session's queue was full",
        None,
        &s.messages_dropped,
    );
    for (direction, counts) in [("received", &s.received), ("sent", &s.sent)] {
        let messages: Family<Labels, Counter> = Family::default();
        let payload: Family<Labels, Counter> = Family::default();
        for qos in 0..3 {
            let labels = vec![("qos", qos.to_string())];
            messages
                .get_or_create(&labels)
                .inc_by(BrokerStats::get(&counts.messages[qos]));
            payload
                .get_or_create(&labels)
                .inc_by(BrokerStats::get(&counts.payload_bytes[qos]));
        }
        let to_or_from = if direction == "sent" { "to" } else { "from" };
        registry.register(
            format!("tollgate_messages_{direction}"),
            format!("PUBLISH packets {direction} {to_or_from} clients, by QoS"),
            messages,
        );
        registry.register_with_unit(
            format!("tollgate_payload_{direction}"),
            format!(
                "Payload bytes of the PUBLISH packets {direction} {to_or_from} clients, by QoS"
            ),
            Unit::Bytes,
            payload,
        );
    }
    let mut gauge = |name: &str, help: &str, unit: Option<Unit>, value: u64| {
        let metric: Gauge = Gauge::default();
        metric.set(i64::try_from(value).unwrap_or(i64::MAX));
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, metric),
            None => registry.register(name, help, metric),
        }
    };
    gauge(
        "tollgate_connections",
        "MQTT clients connected now",
        None,
        BrokerStats::get(&s.clients_connected),
    );
    gauge(
        "tollgate_sessions",
        "Sessions, connected or not",
        None,
        broker.session_count() as u64,
    );
    gauge(
        "tollgate_subscriptions",
        "Subscriptions now",
        None,
        BrokerStats::get(&s.subscriptions),
    );
    gauge(
        "tollgate_retained_messages",
        "Retained messages stored now",
        None,
        BrokerStats::get(&s.retained_messages),
    );
    gauge(
        "tollgate_retained",
        "Bytes the retained messages hold",
        Some(Unit::Bytes),
        BrokerStats::get(&s.retained_bytes),
    );
    gauge(
        "tollgate_memory_used",
        "Bytes charged to the memory budget (messages, deliveries, buffers)",
        Some(Unit::Bytes),
        broker.memory.used() as u64,
    );
    gauge(
        "tollgate_uptime",
        "Seconds since the broker started",
        Some(Unit::Seconds),
        crate::clock::now()
            .saturating_duration_since(broker.started_at)
            .as_secs(),
    );
    let census = broker.session_census();
    let (queued, inflight) = (census.queued, census.inflight);
    gauge(
        "tollgate_offline_sessions",
        "Sessions with no connection attached (kept for their client)",
        None,
        census.offline,
    );
    gauge(
        "tollgate_queued_deliveries",
        "Deliveries waiting in session queues (connected or not)",
        None,
        queued,
    );
    gauge(
        "tollgate_inflight_deliveries",
        "QoS 1 and 2 deliveries sent and not yet acknowledged",
        None,
        inflight,
    );
    let by_listener: Family<Labels, Gauge> = Family::default();
    for listener in live.listeners() {
        by_listener
            .get_or_create(&vec![("listener", listener.name.to_string())])
            .set(i64::try_from(listener.connections.total()).unwrap_or(i64::MAX));
    }
    let sessions_by_listener: Family<Labels, Gauge> = Family::default();
    for listener in live.listeners() {
        sessions_by_listener
            .get_or_create(&vec![("listener", listener.name.to_string())])
            .set(0);
    }
    for (listener, n) in &census.connected_by_listener {
        sessions_by_listener
            .get_or_create(&vec![("listener", listener.to_string())])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "tollgate_listener_sessions",
        "Sessions with a connection attached, by the listener it came in on",
        sessions_by_listener,
    );
    registry.register(
        "tollgate_listener_connections",
        "Connections open now, by listener (before and after CONNECT)",
        by_listener,
    );
    let overload: Family<Labels, Counter> = Family::default();
    for kind in Overload::ALL {
        overload
            .get_or_create(&vec![("kind", kind.label().to_owned())])
            .inc_by(broker.memory.count(kind));
    }
    registry.register(
        "tollgate_overload",
        "Work refused or dropped to stay within a bound, by kind: qos0_shed, publish_refused_memory and connection_refused_memory (the memory budget), queue_full (a session's queue), retained_full, connection_limited (connection limits and rate), authentications_busy, throttled (the failed-login throttle)",
        overload,
    );
    if let Some(store) = broker.store() {
        registry.register_with_unit(
            "tollgate_store_commit",
            "Time each store commit took, its sync included",
            Unit::Seconds,
            store.commit_seconds().clone(),
        );
    }
    let counts = broker.hooks.counts();
    registry.register_with_unit(
        "tollgate_authentication",
        "Time the authentication chain took to decide, by listener and deciding authenticator (- when none decided)",
        Unit::Seconds,
        counts.authentication_seconds.clone(),
    );
    registry.register(
        "tollgate_authentications",
        "Authentications decided (CONNECT, re-authentication, re-check), by listener, authenticator (- when none decided) and outcome",
        counts.authentications.clone(),
    );
    registry.register(
        "tollgate_connections_refused",
        "Authenticated CONNECTs refused all the same (revoked, client identifier, session owned by another), by reason",
        counts.connections_refused.clone(),
    );
    let decisions: Family<Labels, Counter> = Family::default();
    s.decisions.for_each(|d| {
        decisions
            .get_or_create(&vec![
                ("action", d.action.label().to_owned()),
                (
                    "result",
                    if d.allowed { "allow" } else { "deny" }.to_owned(),
                ),
                ("authorizer", d.authorizer.to_owned()),
                (
                    "decided_by",
                    if d.by_rule { "rule" } else { "default" }.to_owned(),
                ),
            ])
            .inc_by(d.count);
    });
    registry.register(
        "tollgate_authorization_decisions",
        "Decisions of the permissions, allowing and denying: by action (publish, subscribe, receive: a message about to be sent), result, the authorizer whose rule or default decided (- when none did) and whether a rule or a default decided",
        decisions,
    );
    registry.register(
        "tollgate_authorization_denials",
        "Actions the permissions denied, by action",
        counts.denials.clone(),
    );
    registry.register(
        "tollgate_identity_disconnects",
        "Connections closed by a decision about their identity or by an operator, by cause",
        counts.disconnects.clone(),
    );
    registry.register(
        "tollgate_reauthentications",
        "MQTT 5 re-authentications that succeeded",
        counts.reauthentications.clone(),
    );
    registry.register(
        "tollgate_token_requests",
        "Token requests over MQTT, by token issuer and outcome (issued, or why refused: not_authorized, rate_limited, revoked, expired, not_authenticated, too_many_rules, no_provider_token, no_response_topic, failed)",
        counts.token_requests.clone(),
    );
    let fetched: Family<Labels, Counter> = Family::default();
    let failed: Family<Labels, Counter> = Family::default();
    for (name, fetches) in live.authenticators().key_fetches() {
        let labels = vec![("authenticator", name.to_owned())];
        fetched.get_or_create(&labels).inc_by(fetches.fetched);
        failed.get_or_create(&labels).inc_by(fetches.failed);
    }
    registry.register(
        "tollgate_jwks_fetches",
        "Fetches of a JWT authenticator's key set (discovery document and JWKS), by authenticator, since it was built",
        fetched,
    );
    registry.register(
        "tollgate_jwks_fetch_failures",
        "Of those, the fetches that failed (the previous keys stayed in force), by authenticator",
        failed,
    );
    let mut out = String::new();
    encode_text(&mut out, &registry).expect("writing to a String does not fail");
    out
}
