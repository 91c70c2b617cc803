//! The `[limits]` table: protocol limits, in-flight windows, queue and memory bounds (each
//! documented in docs/configuration.md and docs/limits.md).

use std::time::Duration;

use serde::Deserialize;

/// Protocol limits, in-flight windows and queue bounds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted from a client, in bytes (advertised to 5.0 clients).
    pub max_packet_size: u32,
    /// Seconds a new connection has to send CONNECT.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub connect_timeout: Duration,
    /// Largest keep alive the broker accepts; a 5.0 client asking for more (or for 0) is told
    /// this value as the server keep alive.
    pub max_keep_alive: u16,
    /// How many QoS 1/2 messages the broker sends a client before it waits for
    /// acknowledgements (a 5.0 client's own receive maximum lowers it).
    pub max_inflight_messages: u16,
    /// How many QoS 2 publishes a client may have in flight to the broker (the receive
    /// maximum advertised to 5.0 clients; exceeding it is DISCONNECT 0x93).
    pub receive_maximum: u16,
    /// How many messages wait per session (offline, or beyond the in-flight window) before
    /// new ones are dropped; QoS 0 messages are dropped first.
    pub max_queued_messages: usize,
    /// How many bytes one session's waiting and in-flight messages may hold together (each
    /// counts its topic, payload, properties and bookkeeping); beyond it new ones are
    /// dropped as for `max_queued_messages` (a 5.0 publisher is told 0x97).
    pub max_queued_bytes: usize,
    /// Whether QoS 0 messages are queued for offline clients with a persistent session.
    pub queue_qos0_offline: bool,
    /// Highest QoS the broker supports (0, 1 or 2).
    pub max_qos: u8,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// How many topic aliases a 5.0 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// Largest session expiry interval granted, in seconds.
    pub max_session_expiry: u32,
    /// Largest client identifier accepted from 3.1.1 and 5.0 clients, in bytes
    /// (3.1 clients are held to the protocol's 23).
    pub max_client_id_len: usize,
    /// Most levels a topic name or filter may have (`a/b/c` has 3).
    pub max_topic_levels: usize,
    /// Most subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Most bytes of topic filters one session's subscriptions may hold together; a new
    /// subscription beyond it is refused (5.0: 0x97, 3.1.1: 0x80).
    pub max_subscription_bytes: usize,
    /// Most topics with a retained message, broker-wide; a new retained topic beyond it is
    /// refused (replacing or clearing an existing one is always allowed).
    pub max_retained_messages: usize,
    /// Most bytes the retained messages may hold together; a retained message that would
    /// pass it is refused (5.0: 0x97), clearing is always allowed.
    pub max_retained_bytes: usize,
    /// The broker-wide memory budget in bytes: messages, queued and in-flight deliveries and
    /// connection buffers are charged to it. At 70 % QoS 0 deliveries are shed, at 85 %
    /// publishes are refused (5.0: 0x97; 3.x: the connection is closed), at 100 % new
    /// connections are refused (CONNACK 0x97 / 3). 0 turns the budget off.
    pub max_memory: usize,
    /// Most topic filters one SUBSCRIBE may carry; more closes the connection (5.0:
    /// DISCONNECT 0x97). A filter repeated within one SUBSCRIBE is handled once.
    pub max_filters_per_subscribe: usize,
    /// Most bytes of output a connection may have waiting in all its layers (MQTT, TLS,
    /// WebSocket frames and control frames) before the broker stops reading from it.
    pub max_connection_output_bytes: usize,
    /// Seconds a connection may keep output waiting without the client taking any of it;
    /// then it is closed.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_keep_alive: 65535,
            max_inflight_messages: 1024,
            receive_maximum: 1024,
            max_queued_messages: 10_000,
            queue_qos0_offline: false,
            max_qos: 2,
            retain_available: true,
            topic_alias_maximum: 64,
            max_session_expiry: u32::MAX,
            max_client_id_len: 256,
            max_topic_levels: 128,
            max_subscriptions_per_session: 10_000,
            max_subscription_bytes: 1024 * 1024,
            max_retained_messages: 1_000_000,
            max_retained_bytes: 64 * 1024 * 1024,
            max_queued_bytes: 16 * 1024 * 1024,
            max_memory: 128 * 1024 * 1024,
            max_filters_per_subscribe: 256,
            max_connection_output_bytes: 256 * 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.max(Duration::from_secs(1))
    }
}
