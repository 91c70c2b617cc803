//! The protocol state machine of one client connection, without I/O.
//!
//! Packets go in ([`Connection::handle`]), bytes to send accumulate in [`Connection::out`],
//! and time is passed in by the caller: the driver in `driver/` owns the socket and the
//! clock, this module owns the protocol. Every way a connection can end is a [`Close`], which
//! says what to tell the client and whether the will goes out.
//!
//! This file holds the state and the dispatch of a decoded packet; each packet family has a
//! file of its own: `connect` (CONNECT and its decision), `reauth` (AUTH and re-checks),
//! `publish`, `deliver` (messages to the client), `acks` (the QoS 1 and 2 flows),
//! `subscribe`, `verdict` (permissions and revocation), `answers` (what each protocol version
//! answers where they differ), `ending` (timers, DISCONNECT,
//! shutdown, the session detached), `aliases` (topic aliases both ways), `timers` (the
//! table of what the connection times) and `commits` (acknowledgements that wait for the
//! store).
//!
//! The connection's [`Phase`] holds what exists only in that phase: the CONNECT being
//! decided, then the attached session and the principal. What CONNECT negotiated (versions,
//! the client's limits, keep alive, the will) sits beside it with the defaults that hold before.

mod acks;
mod aliases;
mod answers;
mod commits;
mod connect;
mod deliver;
mod device_grant;
mod ending;
mod exchange;
mod publish;
mod reauth;
mod subscribe;
mod timers;
mod token_request;
mod verdict;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use std::time::Instant;
use tollgate_auth::audit::{
    Action, AuditEvent, ConnectRefusal, DisconnectCause, Outcome as AuditOutcome, ReauthRefusal,
};
use tollgate_auth::authentication::{AuthenticatedBy, ChainDecision, ConnectRequest, DenyReason};
use tollgate_auth::log::Escaped;
use tollgate_auth::permissions::{CompiledPermissions, Decision};
use tollgate_auth::{CertificateInfo, Principal, Secret};
use tollgate_mqtt::{
    encode, encode_publish_with, publish_encoded_len, Ack, AckProperties, ConnAck,
    ConnAckProperties, Connect, ConnectReturnCode, DecodeError, Decoder, Disconnect,
    DisconnectProperties, Packet, ProtocolVersion, Publish, PublishOverrides, PublishProperties,
    QoS, ReasonCode, RetainHandling, Role, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will,
};

use crate::admission::{self, Admitted, Candidate, Permissions, Refusal};
use crate::broker::SessionOwnedByAnother;
use crate::broker::{Broker, ClosingWill, RouteTarget, NEVER_EXPIRES};
use crate::decision_counts::{DecidedAction, LocalDecisions};
use crate::events::Event;
use crate::listener::Listener;
use crate::memory::{Overload, Pressure};
use crate::message::Message;
use crate::operator::bans::Ban;
use crate::session::{
    AttachedConnection, ConnectionTraffic, Delivery, EnqueueOutcome, OutgoingState, Qos2Arrival,
    Session,
};
use crate::shared::Shared;
use crate::stats::{BrokerStats, LocalCounts};
use crate::wake::SessionWake;
use aliases::TopicAliases;
use answers::DeniedPublishAnswer;
pub use device_grant::{GrantResult, GrantWork};
use timers::{deadline_of, later, Timer, Timers};

/// Above this many bytes waiting to be written, the connection stops taking messages from its
/// session's queue (they wait there, under the queue's bound) until the socket drains.
pub const OUT_HIGH_WATER: usize = 64 * 1024;

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// Why (5.0 reason code; also the log's reason).
    pub reason: ReasonCode,
    /// Whether the will is published.
    pub publish_will: bool,
    /// Whether the client ended the connection with DISCONNECT (nothing more will come from it).
    pub by_client: bool,
}

impl Close {
    /// The client sent DISCONNECT: the will goes out only for reason 0x04.
    fn by_client(reason: ReasonCode) -> Close {
        Close {
            reason,
            publish_will: reason == ReasonCode::DISCONNECT_WITH_WILL,
            by_client: true,
        }
    }

    /// An error or an abrupt end: the will goes out.
    pub fn abnormal(reason: ReasonCode) -> Close {
        Close {
            reason,
            publish_will: true,
            by_client: false,
        }
    }
}

/// A CONNECT waiting for the authentication chain.
struct PendingConnect {
    connect: Box<Connect>,
    client_id: String,
    assigned: bool,
    request: Option<ConnectRequest>,
    /// A copy of the request, kept when the chain may check the connection again.
    kept: Option<ConnectRequest>,
    /// A copy of the first request, kept when it names an MQTT 5 authentication method: an
    /// exchange in several steps continues from it.
    first: Option<ConnectRequest>,
    /// An exchange in several steps waiting for the client's AUTH 0x18: the request its
    /// answer goes into (carrying the authenticator's state).
    challenged: Option<ConnectRequest>,
    /// Challenges sent so far.
    challenges: u8,
}

/// Where a connection is in its life, each phase with what exists only in it.
enum Phase {
    /// Waiting for CONNECT (the connect timer runs).
    AwaitingConnect,
    /// CONNECT received, the authentication chain deciding.
    Authenticating(Box<PendingConnect>),
    /// CONNECT accepted: a session attached, the principal known (inline: every idle
    /// connection is in this phase, and a box would be one more allocation each).
    Connected(Attached),
    /// Ended (or ending: a CONNECT refused).
    Closed,
}

/// What a connected connection has: its session and who it is.
struct Attached {
    session: Arc<Session>,
    /// Wakes this connection when its session has messages for it or is taken over.
    wake: Arc<SessionWake>,
    /// The session's generation this connection attached at (a later one took it over).
    generation: u64,
    principal: Arc<Principal>,
    /// A re-authentication or re-check being decided.
    deciding: Option<Deciding>,
    /// The token issuer its listener offered at CONNECT.
    token_issuer: Option<Arc<crate::token_issuer::TokenIssuer>>,
    /// The device grant its listener offered at CONNECT.
    device_grant: Option<Arc<crate::device_grant::DeviceGrant>>,
}

/// A connected client's credentials put to the chain again.
struct Deciding {
    /// The request, until the driver takes it to the chain.
    request: Option<Box<ConnectRequest>>,
    /// A periodic re-check (or else an AUTH re-authentication).
    recheck: bool,
    /// A re-authentication in several steps: its first request, which the answers to the
    /// broker's challenges continue from.
    first: Option<Box<ConnectRequest>>,
    /// A challenge waiting for the client's AUTH 0x18: the request its answer goes into.
    challenged: Option<Box<ConnectRequest>>,
    /// Challenges sent so far.
    challenges: u8,
}

/// One connection's protocol state, over the shared state `S` (the broker, or a test's fake).
pub struct Connection<S: Shared = Broker> {
    broker: Arc<S>,
    listener: Arc<Listener>,
    peer: SocketAddr,
    certificate: Option<Box<CertificateInfo>>,
    /// The TLS exporter value for `ace`, until CONNECT takes it.
    tls_exporter: Option<Box<Secret>>,
    phase: Phase,
    version: ProtocolVersion,
    /// Encoded packets waiting to be written to the socket.
    pub out: BytesMut,
    /// What the connection times (connect timeout, keep alive, expiry, re-check).
    timers: Timers,
    /// The keep alive granted, in seconds (0: none); the client is given one and a half of
    /// it between packets.
    keep_alive: u16,
    will: Option<Box<Will>>,
    session_expiry: u32,
    client_receive_maximum: u16,
    client_maximum_packet_size: u32,
    client_topic_alias_maximum: u16,
    /// Topic aliases in both directions, allocated for the clients that use them.
    aliases: Option<Box<TopicAliases>>,
    /// The principal's compiled permissions (allow-all until compiled, and when no authorizer
    /// is configured).
    permissions: Arc<CompiledPermissions>,
    /// Whether no authorizer applies (checks are skipped).
    unrestricted: bool,
    /// The decisions of `permissions` not yet added to the broker's counts (none while
    /// unrestricted).
    decisions: Option<Box<LocalDecisions>>,
    /// The broker's policy generation the permissions were compiled at.
    permissions_generation: u64,
    /// What re-authentication needs, for a client that authenticated with an MQTT 5
    /// authentication method (boxed: most connections have none).
    reauth_basis: Option<Box<ReauthBasis>>,
    /// The credentials to check again and how often, for a client whose authenticator
    /// re-checks (boxed: most connections have none); when next is [`Timer::Recheck`].
    recheck: Option<Box<Recheck>>,
    /// A packet did not fit the client's Maximum Packet Size: the connection closes.
    oversized: bool,
    /// Acknowledgements waiting for the store (boxed: only with persistence, and briefly).
    commit_wait: Option<Box<commits::CommitWait>>,
    /// Packet and byte counts not yet added to the broker's.
    pub counts: LocalCounts,
    /// This connection's own counts, once CONNECT is accepted (the admin API reads them).
    traffic: Option<Arc<ConnectionTraffic>>,
    /// A device authorization grant under way (boxed: most connections have none).
    grant_flow: Option<Box<device_grant::GrantFlow>>,
    /// A token request waiting for the provider's token to be renewed.
    token_refresh: Option<Box<token_request::TokenRefresh>>,
}

/// A connection's periodic re-check: its credentials and how often.
#[derive(Debug)]
struct Recheck {
    request: ConnectRequest,
    interval: Duration,
}

/// The method and user name a client authenticated with, which its re-authentication uses.
#[derive(Debug)]
struct ReauthBasis {
    method: String,
    username: Option<String>,
}

thread_local! {
    /// Routing's scratch space, one per thread rather than one per connection.
    static ROUTE_SCRATCH: std::cell::RefCell<Vec<RouteTarget>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl<S: Shared> Connection<S> {
    /// A connection accepted at `now` from `peer` on `listener`, with the client certificate
    /// the TLS layer verified, if any.
    pub fn new(
        broker: Arc<S>,
        listener: Arc<Listener>,
        peer: SocketAddr,
        certificate: Option<CertificateInfo>,
        now: Instant,
    ) -> Connection<S> {
        let broker_allow_all = Arc::clone(broker.allow_all());
        let mut timers = Timers::default();
        timers.set(
            Timer::Connect,
            Some(now + broker.config().limits.connect_timeout()),
        );
        Connection {
            broker,
            listener,
            peer,
            certificate: certificate.map(Box::new),
            tls_exporter: None,
            phase: Phase::AwaitingConnect,
            version: ProtocolVersion::V3_1_1,
            out: BytesMut::new(),
            timers,
            keep_alive: 0,
            will: None,
            session_expiry: 0,
            client_receive_maximum: u16::MAX,
            client_maximum_packet_size: u32::MAX,
            client_topic_alias_maximum: 0,
            aliases: None,
            permissions: Arc::clone(&broker_allow_all),
            unrestricted: true,
            decisions: None,
            permissions_generation: 0,
            reauth_basis: None,
            recheck: None,
            oversized: false,
            commit_wait: None,
            counts: LocalCounts::default(),
            traffic: None,
            grant_flow: None,
            token_refresh: None,
        }
    }

    /// The broker this connection belongs to.
    pub fn broker(&self) -> &Arc<S> {
        &self.broker
    }

    /// How long the client may stay silent: one and a half keep-alive periods (MQTT-3.1.2-22),
    /// once connected with a keep alive.
    fn keep_alive_allowance(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| Duration::from_millis(u64::from(self.keep_alive) * 1500))
    }

    /// Adds this connection's packet and byte counts to the broker's.
    pub fn flush_counts(&mut self) {
        if let Some(traffic) = &self.traffic {
            traffic.add(&self.counts);
        }
        self.counts.flush(self.broker.stats());
        if let Some(decisions) = &mut self.decisions {
            decisions.flush();
        }
    }

    /// The listener it came in on.
    pub fn listener(&self) -> &Arc<Listener> {
        &self.listener
    }

    /// Records the client certificate the TLS handshake verified (before CONNECT is read).
    pub fn set_certificate(&mut self, certificate: CertificateInfo) {
        self.certificate = Some(Box::new(certificate));
    }

    /// Records the TLS session's exporter value for RFC 9431's proof of possession (before
    /// CONNECT is read; CONNECT's request takes it).
    pub fn set_tls_exporter(&mut self, exporter: Secret) {
        self.tls_exporter = Some(Box::new(exporter));
    }

    /// The decoder for the next packet from this client.
    pub fn decoder(&self) -> Decoder {
        Decoder {
            role: Role::Server,
            version: self.version,
            maximum_packet_size: self.broker.config().limits.max_packet_size,
        }
    }

    /// Before CONNECT, refuses at its first byte a packet that is not CONNECT (MQTT-3.1.0-1),
    /// so its body is never waited for or buffered.
    pub fn check_first_packet(&mut self, buf: &[u8]) -> Result<(), Close> {
        match (&self.phase, buf.first()) {
            (Phase::AwaitingConnect, Some(&first)) if first >> 4 != 1 => {
                tracing::debug!(peer = %self.peer, first, "first packet is not CONNECT");
                Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR))
            }
            _ => Ok(()),
        }
    }

    /// The session and principal, once CONNECT has been accepted.
    fn attached(&self) -> Option<&Attached> {
        match &self.phase {
            Phase::Connected(attached) => Some(attached),
            _ => None,
        }
    }

    fn attached_mut(&mut self) -> Option<&mut Attached> {
        match &mut self.phase {
            Phase::Connected(attached) => Some(attached),
            _ => None,
        }
    }

    /// The session, once CONNECT has been accepted.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.attached().map(|a| &a.session)
    }

    /// The wake-up this connection waits on for deliveries, once connected.
    pub fn wake(&self) -> Option<&SessionWake> {
        self.attached().map(|a| &*a.wake)
    }

    /// Whether CONNECT has been accepted and the connection not yet closed.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected(_))
    }

    /// The principal, once connected.
    fn principal(&self) -> Option<&Arc<Principal>> {
        self.attached().map(|a| &a.principal)
    }

    /// The client identifier, once connected.
    pub fn client_id(&self) -> Option<&str> {
        self.principal().map(|p| p.client_id.as_str())
    }

    /// Bytes this connection holds besides its buffers: the topics of its topic aliases.
    pub fn held_bytes(&self) -> usize {
        self.aliases.as_ref().map_or(0, |a| a.bytes)
    }

    /// The memory budget refused what the client is sending: 5.0 clients are told 0x97.
    pub fn overloaded(&mut self) -> Close {
        self.protocol_error(ReasonCode::QUOTA_EXCEEDED)
    }

    /// Whether the connection should take more messages from its session now.
    pub fn wants_deliveries(&self) -> bool {
        self.is_connected() && self.out.len() < OUT_HIGH_WATER
    }

    /// Writes a packet, unless it is larger than the client's Maximum Packet Size (5.0): then
    /// nothing is written and the connection is marked to close (MQTT-3.1.2-24; PUBLISH
    /// goes through `encode_delivery`, which drops an oversized message instead).
    fn send(&mut self, packet: &Packet) {
        if self.version.is_v5() && self.client_maximum_packet_size < u32::MAX {
            match tollgate_mqtt::encoded_len(packet, self.version) {
                Ok(len) if len as u64 > u64::from(self.client_maximum_packet_size) => {
                    tracing::debug!(
                        len,
                        max = self.client_maximum_packet_size,
                        "packet larger than the client's maximum packet size: not sent, closing"
                    );
                    self.oversized = true;
                    return;
                }
                _ => {}
            }
        }
        if let Err(e) = encode(packet, self.version, &mut self.out) {
            tracing::error!(error = %e, "failed to encode a packet for {}", self.peer);
        }
    }

    /// Closes the connection when a packet it had to send did not fit the client's Maximum
    /// Packet Size (5.0: DISCONNECT 0x95, if that fits).
    fn check_oversized(&mut self, step: Result<(), Close>) -> Result<(), Close> {
        if !self.oversized {
            return step;
        }
        step?;
        self.oversized = false;
        self.send_disconnect(ReasonCode::PACKET_TOO_LARGE);
        Err(Close::abnormal(ReasonCode::PACKET_TOO_LARGE))
    }

    /// Handles a packet that could not be decoded: the reason code for the client (5.0
    /// DISCONNECT or, before CONNECT, CONNACK) and the close.
    pub fn decode_failed(&mut self, error: &DecodeError) -> Close {
        tracing::debug!(peer = %self.peer, error = %error, "malformed packet");
        match self.phase {
            Phase::AwaitingConnect => {
                if let DecodeError::UnsupportedProtocolVersion(_) = error {
                    // The client's version is unknown: answer in the 3.x form, which every
                    // version's client can read (5.0 clients see 0x01 as a refusal too).
                    self.version = ProtocolVersion::V3_1_1;
                    self.send(&Packet::ConnAck(ConnAck {
                        reason_code: ConnectReturnCode::UNACCEPTABLE_PROTOCOL_VERSION,
                        ..ConnAck::default()
                    }));
                }
                Close::abnormal(error.reason_code())
            }
            _ => self.protocol_error(error.reason_code()),
        }
    }

    /// Closes for a protocol violation: 5.0 clients are told why with DISCONNECT.
    fn protocol_error(&mut self, reason: ReasonCode) -> Close {
        self.send_disconnect(reason);
        Close::abnormal(reason)
    }

    /// Writes a server DISCONNECT for 5.0 clients (3.x has none: the connection just closes).
    fn send_disconnect(&mut self, reason: ReasonCode) {
        if answers::server_disconnect(self.version) && self.is_connected() {
            self.send(&Packet::Disconnect(Disconnect {
                reason_code: reason,
                properties: DisconnectProperties::default(),
            }));
        }
    }

    /// Handles one decoded packet. At trace level each packet is logged as it is handled
    /// (its type, and a PUBLISH's topic escaped), which shows the order in which packets of
    /// different connections were taken.
    pub fn handle(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        if tracing::enabled!(tracing::Level::TRACE) {
            let topic = match &packet {
                Packet::Publish(p) => Some(Escaped(&p.topic).to_string()),
                _ => None,
            };
            tracing::trace!(peer = %self.peer, client_id = ?self.client_id(), packet_type = packet.packet_type(), topic = ?topic, "packet handled");
        }
        // Store writes made before this packet are not its acknowledgement's to wait for.
        let _ = self.broker.take_store_ticket();
        let step = self.handle_packet(packet, now);
        self.check_oversized(step)
    }

    fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        let session = match &self.phase {
            Phase::AwaitingConnect => {
                return match packet {
                    Packet::Connect(connect) => {
                        self.timers.set(Timer::Connect, None);
                        self.handle_connect(*connect, now)
                    }
                    _ => Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR)),
                };
            }
            Phase::Authenticating(pending) if pending.challenged.is_some() => {
                return self.handle_challenge_answer(packet);
            }
            Phase::Authenticating(_) | Phase::Closed => {
                return Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR));
            }
            Phase::Connected(attached) => Arc::clone(&attached.session),
        };
        if let Some(allowed) = self.keep_alive_allowance() {
            self.timers.set(Timer::KeepAlive, Some(now + allowed));
        }
        let session = &session;
        match packet {
            Packet::Connect(_) => Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR)),
            Packet::Publish(publish) => self.handle_publish(session, publish, now),
            Packet::PubAck(ack) => self.handle_puback(session, ack, now),
            Packet::PubRec(ack) => self.handle_pubrec(session, ack),
            Packet::PubRel(ack) => self.handle_pubrel(session, ack),
            Packet::PubComp(ack) => self.handle_pubcomp(session, ack, now),
            Packet::Subscribe(subscribe) => self.handle_subscribe(session, subscribe, now),
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(session, unsubscribe),
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => Err(self.handle_disconnect(disconnect)),
            Packet::Auth(auth) => self.handle_auth(auth),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR))
            }
        }
    }
}

/// How many levels a topic name or filter has.
fn topic_levels(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count() + 1
}
