//! The protocol state machine of one client connection, without I/O.
//!
//! Packets go in ([`Connection::handle`]), bytes to send accumulate in [`Connection::out`],
//! and time is passed in by the caller: the driver in `driver.rs` owns the socket and the
//! clock, this file owns the protocol. Every way a connection can end is a [`Close`], which
//! says what to tell the client and whether the will goes out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tollgate_auth::authentication::{ChainDecision, ConnectRequest, DenyReason, Identity};
use tollgate_auth::log::Escaped;
use tollgate_auth::permissions::{compile_granted_only, CompiledPermissions, Decision};
use tollgate_auth::{CertificateInfo, Principal, Secret};
use tollgate_mqtt::{
    encode, encode_publish_with, publish_encoded_len, Ack, AckProperties, ConnAck,
    ConnAckProperties, Connect, ConnectReturnCode, DecodeError, Decoder, Disconnect,
    DisconnectProperties, Packet, ProtocolVersion, Publish, PublishOverrides, QoS, ReasonCode,
    RetainHandling, Role, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

use crate::broker::SessionOwnedByAnother;
use crate::broker::{Broker, ClosingWill, RouteTarget, NEVER_EXPIRES};
use crate::config::{DeniedPublish, DeniedSubscribeCode};
use crate::listener::Listener;
use crate::memory::{Overload, Pressure};
use crate::message::Message;
use crate::session::{Delivery, EnqueueOutcome, InFlight, OutgoingState, Session};
use crate::stats::{BrokerStats, LocalCounts};
use crate::wake::SessionWake;

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

/// The topic aliases of one connection (MQTT 5).
#[derive(Default)]
struct TopicAliases {
    /// Aliases the client set for topics it publishes to.
    incoming: HashMap<u16, String>,
    /// Aliases the broker set for topics it delivers.
    outgoing: HashMap<String, u16>,
}

/// A CONNECT waiting for the authentication chain.
struct PendingConnect {
    connect: Box<Connect>,
    client_id: String,
    assigned: bool,
    request: Option<ConnectRequest>,
    /// A copy of the request, kept when the chain may check the connection again.
    kept: Option<ConnectRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingConnect,
    Authenticating,
    Connected,
    Closed,
}

/// One connection's protocol state.
pub struct Connection {
    broker: Arc<Broker>,
    listener: Arc<Listener>,
    peer: SocketAddr,
    certificate: Option<Box<CertificateInfo>>,
    pending: Option<Box<PendingConnect>>,
    phase: Phase,
    version: ProtocolVersion,
    /// Encoded packets waiting to be written to the socket.
    pub out: BytesMut,
    session: Option<Arc<Session>>,
    /// Wakes this connection when its session has messages for it or is taken over.
    wake: Option<Arc<SessionWake>>,
    generation: u64,
    principal: Option<Arc<Principal>>,
    /// When the last packet arrived (when the connection opened, before the first).
    last_received: Instant,
    keep_alive: Option<Duration>,
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
    /// The broker's policy generation the permissions were compiled at.
    permissions_generation: u64,
    /// When the principal's credentials expire (a token's `exp`): the connection ends then.
    expires_at: Option<Instant>,
    /// What re-authentication needs, for a client that authenticated with an MQTT 5
    /// authentication method (boxed: most connections have none).
    reauth_basis: Option<Box<ReauthBasis>>,
    /// A re-authentication (AUTH 0x19) or a re-check waiting for the chain.
    reauth: Option<Box<ConnectRequest>>,
    /// The credentials to check again and when, for a client whose authenticator re-checks
    /// (boxed: most connections have none).
    recheck: Option<Box<Recheck>>,
    /// Whether a re-authentication is under way (no packet is handled until it is decided).
    reauthenticating: bool,
    /// A packet did not fit the client's Maximum Packet Size: the connection closes.
    oversized: bool,
    /// Packet and byte counts not yet added to the broker's.
    pub counts: LocalCounts,
}

/// A connection's periodic re-check: its credentials, how often, when next, and whether the
/// chain is deciding one now.
#[derive(Debug)]
struct Recheck {
    request: ConnectRequest,
    interval: Duration,
    at: Instant,
    running: bool,
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

impl Connection {
    /// A connection accepted at `now` from `peer` on `listener`, with the client certificate
    /// the TLS layer verified, if any.
    pub fn new(
        broker: Arc<Broker>,
        listener: Arc<Listener>,
        peer: SocketAddr,
        certificate: Option<CertificateInfo>,
        now: Instant,
    ) -> Connection {
        let broker_allow_all = Arc::clone(&broker.allow_all);
        Connection {
            broker,
            listener,
            peer,
            certificate: certificate.map(Box::new),
            pending: None,
            phase: Phase::AwaitingConnect,
            version: ProtocolVersion::V3_1_1,
            out: BytesMut::new(),
            session: None,
            wake: None,
            generation: 0,
            principal: None,
            last_received: now,
            keep_alive: None,
            will: None,
            session_expiry: 0,
            client_receive_maximum: u16::MAX,
            client_maximum_packet_size: u32::MAX,
            client_topic_alias_maximum: 0,
            aliases: None,
            permissions: Arc::clone(&broker_allow_all),
            unrestricted: true,
            permissions_generation: 0,
            expires_at: None,
            reauth_basis: None,
            recheck: None,
            reauth: None,
            reauthenticating: false,
            oversized: false,
            counts: LocalCounts::default(),
        }
    }

    /// The broker this connection belongs to.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Adds this connection's packet and byte counts to the broker's.
    pub fn flush_counts(&mut self) {
        self.counts.flush(&self.broker.stats);
    }

    /// The listener it came in on.
    pub fn listener(&self) -> &Arc<Listener> {
        &self.listener
    }

    /// Records the client certificate the TLS handshake verified (before CONNECT is read).
    pub fn set_certificate(&mut self, certificate: CertificateInfo) {
        self.certificate = Some(Box::new(certificate));
    }

    /// The decoder for the next packet from this client.
    pub fn decoder(&self) -> Decoder {
        Decoder {
            role: Role::Server,
            version: self.version,
            maximum_packet_size: self.broker.config.limits.max_packet_size,
        }
    }

    /// Before CONNECT, refuses at its first byte a packet that is not CONNECT (MQTT-3.1.0-1),
    /// so its body is never waited for or buffered.
    pub fn check_first_packet(&mut self, buf: &[u8]) -> Result<(), Close> {
        match (self.phase, buf.first()) {
            (Phase::AwaitingConnect, Some(&first)) if first >> 4 != 1 => {
                tracing::debug!(peer = %self.peer, first, "first packet is not CONNECT");
                Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR))
            }
            _ => Ok(()),
        }
    }

    /// The session, once CONNECT has been accepted.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }

    /// The wake-up this connection waits on for deliveries, once connected.
    pub fn wake(&self) -> Option<&SessionWake> {
        self.wake.as_deref()
    }

    /// Whether CONNECT has been accepted and the connection not yet closed.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The client identifier, once connected.
    pub fn client_id(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.client_id.as_str())
    }

    /// Bytes this connection holds besides its buffers: the topics of its topic aliases.
    pub fn held_bytes(&self) -> usize {
        self.aliases.as_ref().map_or(0, |a| {
            a.incoming
                .values()
                .map(|t| t.capacity() + 32)
                .sum::<usize>()
                + a.outgoing.keys().map(|t| t.capacity() + 32).sum::<usize>()
        })
    }

    /// The memory budget refused what the client is sending: 5.0 clients are told 0x97.
    pub fn overloaded(&mut self) -> Close {
        self.protocol_error(ReasonCode::QUOTA_EXCEEDED)
    }

    /// Whether the connection should take more messages from its session now.
    pub fn wants_deliveries(&self) -> bool {
        self.phase == Phase::Connected && self.out.len() < OUT_HIGH_WATER
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
        if self.version.is_v5() && self.phase == Phase::Connected {
            self.send(&Packet::Disconnect(Disconnect {
                reason_code: reason,
                properties: DisconnectProperties::default(),
            }));
        }
    }

    /// Handles one decoded packet.
    pub fn handle(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        let step = self.handle_packet(packet, now);
        self.check_oversized(step)
    }

    fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        self.last_received = now;
        match (self.phase, packet) {
            (Phase::AwaitingConnect, Packet::Connect(connect)) => {
                self.handle_connect(*connect, now)
            }
            (Phase::AwaitingConnect, _) => Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR)),
            (Phase::Authenticating | Phase::Closed, _) => {
                Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR))
            }
            (Phase::Connected, packet) => match packet {
                Packet::Connect(_) => Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR)),
                Packet::Publish(publish) => self.handle_publish(publish, now),
                Packet::PubAck(ack) => self.handle_puback(ack, now),
                Packet::PubRec(ack) => self.handle_pubrec(ack),
                Packet::PubRel(ack) => self.handle_pubrel(ack),
                Packet::PubComp(ack) => self.handle_pubcomp(ack, now),
                Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe, now),
                Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(unsubscribe),
                Packet::PingReq => {
                    self.send(&Packet::PingResp);
                    Ok(())
                }
                Packet::Disconnect(disconnect) => Err(self.handle_disconnect(disconnect)),
                Packet::Auth(auth) => self.handle_auth(auth),
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                    Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR))
                }
            },
        }
    }

    /// Refuses CONNECT with `reason` (a 5.0 reason, converted for 3.x clients) and closes.
    fn refuse(&mut self, reason: ReasonCode) -> Close {
        let code = if self.version.is_v5() {
            reason
        } else {
            ConnectReturnCode::from_v5(reason)
        };
        self.send(&Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: code,
            properties: ConnAckProperties::default(),
        }));
        tracing::info!(peer = %self.peer, reason = reason.0, sent = code.0, version = ?self.version, "connection refused");
        Close {
            reason,
            publish_will: false,
            by_client: false,
        }
    }

    fn handle_connect(&mut self, connect: Connect, now: Instant) -> Result<(), Close> {
        self.version = connect.protocol;
        if self.version.is_v5() {
            // Every packet to this client, CONNACK included, must fit it.
            self.client_maximum_packet_size =
                connect.properties.maximum_packet_size.unwrap_or(u32::MAX);
        }
        let limits = &self.broker.config.limits;
        let v5 = self.version.is_v5();

        // Client identifier rules per version.
        let mut client_id = connect.client_id.clone();
        let mut assigned = false;
        match self.version {
            ProtocolVersion::V3_1 => {
                if client_id.is_empty() || client_id.chars().count() > 23 {
                    return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
                }
            }
            ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => {
                if client_id.is_empty() {
                    if !v5 && !connect.clean_start {
                        return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
                    }
                    client_id = self.broker.assign_client_id();
                    assigned = true;
                } else if client_id.len() > limits.max_client_id_len {
                    return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
                }
            }
        }

        if self.broker.memory.pressure() >= Pressure::RefuseConnections {
            self.broker.memory.record(Overload::ConnectionRefused);
            return Err(self.refuse(ReasonCode::QUOTA_EXCEEDED));
        }
        let mut connect = connect;
        if let Some(will) = connect.will.as_mut() {
            if will.qos as u8 > limits.max_qos {
                return Err(self.refuse(ReasonCode::QOS_NOT_SUPPORTED));
            }
            if will.retain && !limits.retain_available {
                return Err(self.refuse(ReasonCode::RETAIN_NOT_SUPPORTED));
            }
            if topic_levels(&will.topic) > limits.max_topic_levels {
                return Err(self.refuse(ReasonCode::TOPIC_NAME_INVALID));
            }
            if will.topic.starts_with("$SYS") {
                return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
            }
            // The will lives as long as the connection: its bytes must not keep the read
            // buffer CONNECT arrived in.
            will.payload = bytes::Bytes::copy_from_slice(&will.payload);
            if let Some(data) = will.properties.correlation_data.as_mut() {
                *data = bytes::Bytes::copy_from_slice(data);
            }
        }

        let request = ConnectRequest {
            listener: Arc::clone(&self.listener.name),
            peer: self.peer,
            client_id: client_id.clone(),
            username: connect.username.clone(),
            password: connect.password.as_ref().map(|p| Secret::new(p.to_vec())),
            protocol_level: self.version.level(),
            certificate: self.certificate.as_deref().cloned(),
            authentication_method: connect.properties.authentication_method.clone(),
            authentication_data: connect
                .properties
                .authentication_data
                .as_ref()
                .map(|d| Secret::new(d.to_vec())),
        };
        let certificate_name = self
            .certificate
            .as_ref()
            .and_then(|c| self.listener.certificate_identity(c));
        if let (true, Some(name)) = (self.listener.certificate_is_username(), certificate_name) {
            // The certificate names the user (Mosquitto's use_identity_as_username): the
            // chain is not asked, and any password is ignored.
            tracing::info!(
                target: "tollgate::audit",
                listener = %Escaped(&request.listener), peer = %request.peer, client_id = %Escaped(&request.client_id),
                username = %Escaped(&name), authenticator = "certificate", outcome = "allow", "authentication"
            );
            self.pending = Some(Box::new(PendingConnect {
                connect: Box::new(connect),
                client_id,
                assigned,
                request: None,
                kept: None,
            }));
            self.phase = Phase::Authenticating;
            let identity = Identity {
                username: Some(name),
                ..Identity::default()
            };
            return self.finish_connect(
                ChainDecision::Allowed {
                    identity,
                    by: "certificate".into(),
                },
                now,
            );
        }
        self.pending = Some(Box::new(PendingConnect {
            connect: Box::new(connect),
            client_id,
            assigned,
            request: Some(request),
            kept: None,
        }));
        self.phase = Phase::Authenticating;
        Ok(())
    }

    /// The credentials to put to the listener's authentication chain, once, after CONNECT
    /// was received. The driver runs the chain and hands the decision to
    /// [`Connection::finish_connect`].
    pub fn take_auth_request(&mut self) -> Option<ConnectRequest> {
        let rechecks = self.listener.chain.rechecks();
        match self.pending.as_mut() {
            Some(pending) => {
                let request = pending.request.take()?;
                if rechecks {
                    pending.kept = Some(request.clone());
                }
                Some(request)
            }
            None => self.reauth.take().map(|r| *r),
        }
    }

    /// Applies the chain's decision on the request [`Connection::take_auth_request`] gave:
    /// completes CONNECT, or a re-authentication.
    pub fn finish_authentication(
        &mut self,
        decision: ChainDecision,
        now: Instant,
    ) -> Result<(), Close> {
        let step = if self.reauthenticating {
            self.finish_reauth(decision, now)
        } else {
            self.finish_connect(decision, now)
        };
        self.check_oversized(step)
    }

    /// AUTH from a connected client: re-authentication (0x19) with the method it connected
    /// with. Anything else is a protocol error (no multi-step method is offered).
    fn handle_auth(&mut self, auth: tollgate_mqtt::Auth) -> Result<(), Close> {
        let same_method = self.reauth_basis.as_ref().is_some_and(|basis| {
            auth.properties.authentication_method.as_deref() == Some(basis.method.as_str())
        });
        if auth.reason_code != ReasonCode::REAUTHENTICATE || !same_method {
            return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
        }
        let Some(principal) = self.principal.clone() else {
            return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
        };
        let request = ConnectRequest {
            listener: Arc::clone(&self.listener.name),
            peer: self.peer,
            client_id: principal.client_id.clone(),
            username: self.reauth_basis.as_ref().and_then(|b| b.username.clone()),
            password: None,
            protocol_level: self.version.level(),
            certificate: self.certificate.as_deref().cloned(),
            authentication_method: auth.properties.authentication_method,
            authentication_data: auth
                .properties
                .authentication_data
                .map(|d| Secret::new(d.to_vec())),
        };
        if let Some(recheck) = self.recheck.as_mut() {
            // Later re-checks use the fresh credentials.
            recheck.request = request.clone();
        }
        self.reauth = Some(Box::new(request));
        self.reauthenticating = true;
        Ok(())
    }

    /// A re-authentication decided: the principal, its permissions and its expiry are
    /// replaced (the session is untouched), or the connection ends with 0x87.
    fn finish_reauth(&mut self, decision: ChainDecision, now: Instant) -> Result<(), Close> {
        self.reauthenticating = false;
        let rechecking = self
            .recheck
            .as_mut()
            .is_some_and(|r| std::mem::take(&mut r.running));
        let (identity, by) = match decision {
            ChainDecision::Allowed { identity, by } => (identity, by),
            ChainDecision::Refused {
                reason: DenyReason::BackendUnavailable,
                ..
            } if rechecking => {
                // The provider could not say: the rights granted stand (until their expiry),
                // and the next check asks again.
                tracing::warn!(client_id = self.client_id().unwrap_or(""), "re-check impossible (authentication backend unavailable): connection kept, checked again later");
                return Ok(());
            }
            ChainDecision::Refused { reason, .. } => {
                let what = if rechecking {
                    "re-check"
                } else {
                    "re-authentication"
                };
                tracing::info!(target: "tollgate::audit", client_id = self.client_id().unwrap_or(""), reason = %reason, "{what} refused: disconnected");
                return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
            }
        };
        let sent_username = if rechecking {
            self.recheck
                .as_ref()
                .and_then(|r| r.request.username.clone())
        } else {
            self.reauth_basis.as_ref().and_then(|b| b.username.clone())
        };
        let old = self
            .principal
            .clone()
            .expect("connected connections have a principal");
        let mut principal = (*old).clone();
        principal.username = identity.username.or(sent_username);
        if principal.owner() != old.owner() {
            // Re-authentication renews a principal's rights; it cannot change who it is.
            tracing::info!(target: "tollgate::audit", client_id = %Escaped(&old.client_id), "re-authentication as another principal refused");
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        principal.roles = identity.roles;
        principal.groups = identity.groups;
        principal.claims = identity.claims;
        principal.expires_at = identity.expires_at;
        principal.granted = identity.granted;
        let recheck_interval = self.listener.chain.recheck_interval(&by);
        principal.authenticated_by = by;
        if let Some(why) = self.broker.revoked(&principal) {
            tracing::info!(target: "tollgate::audit", client_id = %Escaped(&old.client_id), "re-authentication refused: {}", Escaped(&why));
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        self.expires_at = match principal.expires_at {
            Some(expiry) => match deadline_of(expiry, now) {
                Some(deadline) => Some(deadline),
                None => return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED)),
            },
            None => None,
        };
        let principal = Arc::new(principal);
        if let Some(session) = &self.session {
            session.state.lock().principal = Some(Arc::clone(&principal));
        }
        self.principal = Some(principal);
        self.refresh_permissions();
        self.schedule_recheck(recheck_interval, now);
        if rechecking {
            tracing::debug!(
                client_id = self.client_id().unwrap_or(""),
                "re-check passed"
            );
            return Ok(());
        }
        self.send(&Packet::Auth(tollgate_mqtt::Auth {
            reason_code: ReasonCode::SUCCESS,
            properties: tollgate_mqtt::AuthProperties {
                authentication_method: self.reauth_basis.as_ref().map(|b| b.method.clone()),
                ..Default::default()
            },
        }));
        tracing::info!(target: "tollgate::audit", client_id = self.client_id().unwrap_or(""), "re-authenticated");
        Ok(())
    }

    /// Plans the next re-check `interval` from now, when the authenticator that allowed the
    /// client asks for them; drops the kept credentials otherwise.
    fn schedule_recheck(&mut self, interval: Option<Duration>, now: Instant) {
        match interval {
            Some(interval) => {
                if let Some(recheck) = self.recheck.as_mut() {
                    recheck.interval = interval;
                    recheck.at = later(now, interval);
                }
            }
            None => self.recheck = None,
        }
    }

    /// Starts a re-check: the chain is asked again with the kept credentials.
    fn start_recheck(&mut self, now: Instant) {
        let Some(recheck) = self.recheck.as_mut() else {
            return;
        };
        recheck.running = true;
        // Until it is decided, the next one is not due.
        recheck.at = later(now, recheck.interval);
        self.reauth = Some(Box::new(recheck.request.clone()));
        self.reauthenticating = true;
    }

    /// Whether the authentication waiting is a connected client's (a re-authentication or a
    /// re-check), which the chain neither throttles nor answers from its cache.
    pub fn is_reauthenticating(&self) -> bool {
        self.reauthenticating
    }

    /// Whether the packet at the front of `input` must wait for the authentication being
    /// decided. While CONNECT is decided nothing more is handled (the client waits for its
    /// CONNACK). While a connected client's re-authentication or re-check is decided, its
    /// other packets are handled as usual (MQTT-4.12.1: the client may go on sending), and only
    /// a further AUTH waits for the decision.
    pub fn input_waits(&self, input: &[u8]) -> bool {
        const AUTH_TYPE: u8 = 15;
        self.phase == Phase::Authenticating
            || (self.reauthenticating && input.first().is_some_and(|b| b >> 4 == AUTH_TYPE))
    }

    /// Completes CONNECT with the chain's decision: CONNACK, the session, deliveries.
    pub fn finish_connect(&mut self, decision: ChainDecision, now: Instant) -> Result<(), Close> {
        let Some(pending) = self.pending.take() else {
            return Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR));
        };
        let PendingConnect {
            connect,
            client_id,
            assigned,
            kept,
            ..
        } = *pending;
        let (identity, authenticated_by) = match decision {
            ChainDecision::Allowed { identity, by } => (identity, by),
            ChainDecision::Refused { reason, by, .. } => {
                // Refusals that cost nothing to provoke are counted and logged once per
                // interval (the chain writes no audit line for each).
                match (reason, by) {
                    (DenyReason::Busy, _) => {
                        self.broker.memory.record(Overload::AuthenticationsBusy)
                    }
                    (DenyReason::RateLimited | DenyReason::Banned, None) => {
                        self.broker.memory.record(Overload::Throttled)
                    }
                    _ => {}
                }
                return Err(self.refuse(deny_reason_code(reason)));
            }
        };
        if let (Some(request), Some(interval)) = (
            kept,
            self.listener.chain.recheck_interval(&authenticated_by),
        ) {
            self.recheck = Some(Box::new(Recheck {
                request,
                interval,
                at: later(now, interval),
                running: false,
            }));
        }
        let connect = *connect;
        let broker = Arc::clone(&self.broker);
        let limits = &broker.config.limits;
        let v5 = self.version.is_v5();

        let certificate_name = self
            .certificate
            .as_ref()
            .and_then(|c| self.listener.certificate_identity(c));
        let principal = Principal::from_allow(
            client_id.clone(),
            identity,
            authenticated_by,
            connect.username.clone(),
            certificate_name,
            self.certificate.clone(),
        );
        if let Some(why) = broker
            .revoked(&principal)
            .or_else(|| self.certificate_revoked())
        {
            tracing::info!(target: "tollgate::audit", client_id = %Escaped(&client_id), username = principal.username.as_deref().unwrap_or(""), "connection refused: {}", Escaped(&why));
            return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
        }
        if !self.listener.config.client_id_patterns.is_empty()
            && !client_id_allowed(
                &self.listener.config.client_id_patterns,
                &client_id,
                principal.username.as_deref(),
            )
        {
            tracing::info!(target: "tollgate::audit", client_id = %Escaped(&client_id), username = principal.username.as_deref().unwrap_or(""), "client identifier does not match the listener's patterns");
            return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
        }

        if let Some(expiry) = principal.expires_at {
            match deadline_of(expiry, now) {
                Some(deadline) => self.expires_at = Some(deadline),
                None => return Err(self.refuse(ReasonCode::NOT_AUTHORIZED)),
            }
        }
        let principal = Arc::new(principal);
        self.principal = Some(Arc::clone(&principal));
        self.compile_permissions();
        if let (Some(will), false) = (&connect.will, self.unrestricted) {
            let decision = self
                .permissions
                .check_publish(&will.topic, will.qos as u8, will.retain);
            if !decision.allowed {
                self.audit_denial("will", &will.topic, &decision);
                return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
            }
        }

        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            NEVER_EXPIRES
        };
        let expiry = requested_expiry
            .min(limits.max_session_expiry)
            .min(self.listener.config.max_session_expiry.unwrap_or(u32::MAX));

        let owner = principal.owner();
        let opened = match self.broker.open_session(
            &client_id,
            connect.clean_start,
            expiry,
            owner.as_ref(),
        ) {
            Ok(opened) => opened,
            Err(SessionOwnedByAnother) => {
                tracing::info!(target: "tollgate::audit", client_id = ?client_id, owner = ?owner.as_ref().map(ToString::to_string), "session belongs to another principal: takeover refused");
                return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
            }
        };
        self.session_expiry = expiry;

        let mut props = ConnAckProperties::default();
        if v5 {
            self.client_receive_maximum = connect.properties.receive_maximum.unwrap_or(u16::MAX);
            self.client_maximum_packet_size =
                connect.properties.maximum_packet_size.unwrap_or(u32::MAX);
            self.client_topic_alias_maximum = connect.properties.topic_alias_maximum.unwrap_or(0);
            props.receive_maximum = Some(limits.receive_maximum);
            props.maximum_packet_size = Some(limits.max_packet_size);
            props.topic_alias_maximum = Some(limits.topic_alias_maximum);
            if limits.max_qos < 2 {
                props.maximum_qos = QoS::from_u8(limits.max_qos);
            }
            if !limits.retain_available {
                props.retain_available = Some(false);
            }
            if expiry != requested_expiry {
                props.session_expiry_interval = Some(expiry);
            }
            if assigned {
                props.assigned_client_identifier = Some(client_id.clone());
            }
            // A client authenticated through MQTT 5 authentication data is answered with the
            // same method (MQTT-3.2.2.3.17).
            props.authentication_method = connect.properties.authentication_method.clone();
            self.reauth_basis = connect
                .properties
                .authentication_method
                .clone()
                .map(|method| {
                    Box::new(ReauthBasis {
                        method,
                        username: connect.username.clone(),
                    })
                });
        }

        let mut keep_alive = connect.keep_alive;
        if v5
            && (keep_alive > limits.max_keep_alive
                || (keep_alive == 0 && limits.max_keep_alive < u16::MAX))
        {
            keep_alive = limits.max_keep_alive;
            props.server_keep_alive = Some(keep_alive);
        }
        self.keep_alive =
            (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));

        opened.session.state.lock().principal = Some(Arc::clone(&principal));
        self.session = Some(opened.session);
        self.wake = Some(opened.wake);
        self.generation = opened.generation;
        self.will = connect.will.map(Box::new);
        self.phase = Phase::Connected;
        BrokerStats::add(&self.broker.stats.clients_connected, 1);
        BrokerStats::add(&self.broker.stats.connections_total, 1);
        tracing::info!(peer = %self.peer, client_id = %Escaped(&client_id), version = ?self.version, session_present = opened.present, "client connected");

        let session_present = opened.present && self.version != ProtocolVersion::V3_1;
        self.send(&Packet::ConnAck(ConnAck {
            session_present,
            reason_code: ReasonCode::SUCCESS,
            properties: props,
        }));
        if self.oversized {
            // Not even CONNACK fits what the client takes: close without a word.
            self.oversized = false;
            return Err(Close {
                reason: ReasonCode::PACKET_TOO_LARGE,
                publish_will: false,
                by_client: false,
            });
        }
        if opened.present {
            self.resend_inflight(now);
        }
        self.pull_deliveries(now)
    }

    /// After a session is resumed: everything unacknowledged goes out again, PUBLISH with DUP
    /// set, PUBREL as it was. A PUBLISH goes out again only if the principal may still read
    /// its topic (the rules, or the principal, may have changed since it was first sent); one
    /// it may not is forgotten. A PUBREL always goes: the message itself was delivered.
    fn resend_inflight(&mut self, now: Instant) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let mut state = session.state.lock();
        if !self.unrestricted {
            let permissions = Arc::clone(&self.permissions);
            let client_id = session.client_id.clone();
            state.retain_inflight(|flight| {
                flight.state == OutgoingState::AwaitingPubComp
                    || permissions
                        .check_receive(
                            &flight.delivery.message.publish.topic,
                            flight.delivery.qos as u8,
                            false,
                        )
                        .allowed
                    || {
                        tracing::debug!(client_id = ?client_id, topic = ?flight.delivery.message.publish.topic, "in-flight message withheld on resume: topic no longer readable");
                        false
                    }
            });
        }
        let mut sent = 0u64;
        for flight in state.inflight() {
            match flight.state {
                OutgoingState::AwaitingPubComp => {
                    self.send(&Packet::PubRel(Ack {
                        packet_id: flight.packet_id,
                        ..Ack::default()
                    }));
                }
                OutgoingState::AwaitingPubAck | OutgoingState::AwaitingPubRec => {
                    let expiry = flight.delivery.message.remaining_expiry(now).flatten();
                    if self.encode_delivery(&flight.delivery, Some(flight.packet_id), true, expiry)
                    {
                        sent += 1;
                    }
                }
            }
        }
        drop(state);
        self.counts.messages_sent += sent;
    }

    /// Encodes one delivery, assigning a topic alias when the client accepts them. Returns
    /// false (and writes nothing) when it is larger than the client's maximum packet size.
    fn encode_delivery(
        &mut self,
        delivery: &Delivery,
        packet_id: Option<u16>,
        dup: bool,
        expiry: Option<u32>,
    ) -> bool {
        let message = &delivery.message.publish;
        let mut overrides = PublishOverrides {
            dup,
            qos: delivery.qos,
            retain: delivery.retain,
            packet_id,
            topic_alias: None,
            omit_topic: false,
            message_expiry_interval: expiry,
            subscription_identifiers: &delivery.subscription_ids,
        };
        if self.version.is_v5() && self.client_topic_alias_maximum > 0 {
            let aliases = self.aliases.get_or_insert_with(Box::default);
            match aliases.outgoing.get(&message.topic) {
                Some(&alias) => {
                    overrides.topic_alias = Some(alias);
                    overrides.omit_topic = true;
                }
                None => {
                    let next = aliases.outgoing.len() + 1;
                    // As many aliases as the client takes, but no more than the broker takes
                    // from clients: each holds its topic for the connection's life.
                    let most = self
                        .client_topic_alias_maximum
                        .min(self.broker.config.limits.topic_alias_maximum);
                    if next <= usize::from(most) {
                        overrides.topic_alias = Some(next as u16);
                    }
                }
            }
        }
        match publish_encoded_len(message, &overrides, self.version) {
            Ok(len) if len as u64 <= u64::from(self.client_maximum_packet_size) => {}
            Ok(len) => {
                tracing::debug!(topic = %Escaped(&message.topic), len, max = self.client_maximum_packet_size, "message larger than the client's maximum packet size: not sent");
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a message");
                return false;
            }
        }
        if let (Some(alias), false) = (overrides.topic_alias, overrides.omit_topic) {
            self.aliases
                .get_or_insert_with(Box::default)
                .outgoing
                .insert(message.topic.clone(), alias);
        }
        match encode_publish_with(message, &overrides, self.version, &mut self.out) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a message");
                false
            }
        }
    }

    /// Moves messages from the session's queue to the socket's buffer, as far as the client's
    /// in-flight window and the buffer's high-water mark allow. Finds out here when the session
    /// was taken over by another connection.
    pub fn pull_deliveries(&mut self, now: Instant) -> Result<(), Close> {
        let Some(session) = self.session.clone() else {
            return Ok(());
        };
        if self.phase != Phase::Connected {
            return Ok(());
        }
        if self.permissions_generation != self.broker.policy_generation() {
            self.check_revocation()?;
            self.refresh_permissions();
        }
        let window = usize::from(
            self.client_receive_maximum
                .min(self.broker.config.limits.max_inflight_messages)
                .max(1),
        );
        let mut state = session.state.lock();
        if state.generation != self.generation {
            drop(state);
            tracing::info!(client_id = ?session.client_id, "session taken over by a new connection");
            self.send_disconnect(ReasonCode::SESSION_TAKEN_OVER);
            return Err(Close::abnormal(ReasonCode::SESSION_TAKEN_OVER));
        }
        let mut sent = 0u64;
        while self.out.len() < OUT_HIGH_WATER {
            let Some(qos) = state.next_qos() else {
                break;
            };
            if qos != QoS::AtMostOnce && state.inflight_len() >= window {
                break;
            }
            let delivery = state.pop_queued().expect("a next delivery exists");
            let Some(expiry) = delivery.message.remaining_expiry(now) else {
                continue;
            };
            // A queued message goes out only if the client may still read its topic now.
            if !self.unrestricted
                && !self
                    .permissions
                    .check_receive(&delivery.message.publish.topic, delivery.qos as u8, false)
                    .allowed
            {
                tracing::debug!(client_id = ?session.client_id, topic = ?delivery.message.publish.topic, "delivery withheld: topic no longer readable");
                continue;
            }
            let packet_id = (delivery.qos != QoS::AtMostOnce).then(|| state.next_packet_id());
            if !self.encode_delivery(&delivery, packet_id, false, expiry) {
                continue;
            }
            sent += 1;
            if let Some(packet_id) = packet_id {
                let flight_state = if delivery.qos == QoS::AtLeastOnce {
                    OutgoingState::AwaitingPubAck
                } else {
                    OutgoingState::AwaitingPubRec
                };
                state.push_inflight(InFlight {
                    packet_id,
                    delivery,
                    state: flight_state,
                });
            }
        }
        drop(state);
        self.counts.messages_sent += sent;
        Ok(())
    }

    fn handle_publish(&mut self, mut publish: Publish, now: Instant) -> Result<(), Close> {
        let limits = &self.broker.config.limits;
        self.counts.messages_received += 1;
        if publish.qos as u8 > limits.max_qos {
            return Err(self.protocol_error(ReasonCode::QOS_NOT_SUPPORTED));
        }
        if publish.retain && !limits.retain_available {
            return Err(self.protocol_error(ReasonCode::RETAIN_NOT_SUPPORTED));
        }
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > limits.topic_alias_maximum {
                return Err(self.protocol_error(ReasonCode::TOPIC_ALIAS_INVALID));
            }
            if publish.topic.is_empty() {
                match self.aliases.as_ref().and_then(|a| a.incoming.get(&alias)) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR)),
                }
            } else {
                self.aliases
                    .get_or_insert_with(Box::default)
                    .incoming
                    .insert(alias, publish.topic.clone());
            }
        } else if publish.topic.is_empty() {
            return Err(self.protocol_error(ReasonCode::TOPIC_NAME_INVALID));
        }
        if topic_levels(&publish.topic) > limits.max_topic_levels {
            return Err(self.protocol_error(ReasonCode::TOPIC_NAME_INVALID));
        }

        let session = self
            .session
            .clone()
            .expect("connected connections have a session");
        let packet_id = publish.packet_id;
        let qos = publish.qos;
        if qos == QoS::ExactlyOnce {
            let id = packet_id.expect("QoS 2 publishes carry a packet id");
            let mut state = session.state.lock();
            if state.incoming_qos2.contains(&id) {
                // A resend of a message already taken: acknowledge again, route nothing.
                drop(state);
                self.send(&Packet::PubRec(Ack {
                    packet_id: id,
                    ..Ack::default()
                }));
                return Ok(());
            }
            if state.incoming_qos2.len() >= usize::from(limits.receive_maximum) {
                drop(state);
                return Err(self.protocol_error(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED));
            }
            state.incoming_qos2.insert(id);
        }

        // `$SYS` is the broker's (read-only for everyone); anything else is as the principal's
        // permissions say.
        let denied = if publish.topic.starts_with("$SYS") {
            tracing::info!(target: "tollgate::audit", client_id = ?session.client_id, topic = ?publish.topic, action = "publish", outcome = "deny", "$SYS is read-only");
            true
        } else if !self.unrestricted {
            let decision =
                self.permissions
                    .check_publish(&publish.topic, qos as u8, publish.retain);
            if !decision.allowed {
                self.audit_denial("publish", &publish.topic, &decision);
            }
            !decision.allowed
        } else {
            false
        };
        if denied {
            let authorization = &self.broker.config.authorization;
            let disconnect = match self.version {
                ProtocolVersion::V3_1 => true,
                ProtocolVersion::V3_1_1 => {
                    authorization.denied_publish_v311 == DeniedPublish::Disconnect
                }
                ProtocolVersion::V5 => false,
            };
            if disconnect {
                return Err(Close::abnormal(ReasonCode::NOT_AUTHORIZED));
            }
        }
        // The memory budget refuses publishes before anything is stored (3.x has no negative
        // acknowledgement: its publisher is disconnected; a QoS 0 message is just dropped).
        let overloaded = !denied && self.broker.memory.pressure() >= Pressure::RefusePublishes;
        if overloaded {
            self.broker.memory.record(Overload::PublishRefused);
            if qos == QoS::AtMostOnce {
                return Ok(());
            }
            if !self.version.is_v5() {
                return Err(Close::abnormal(ReasonCode::QUOTA_EXCEEDED));
            }
        }
        let reason = if denied {
            ReasonCode::NOT_AUTHORIZED
        } else if overloaded {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            publish.dup = false;
            publish.packet_id = None;
            let message = Message::received(publish, session.id, now, &self.broker.memory);
            let retained =
                !message.publish.retain || self.broker.retain(Arc::clone(&message)).is_ok();
            let outcome =
                ROUTE_SCRATCH.with_borrow_mut(|scratch| self.broker.route(&message, scratch));
            if qos == QoS::AtMostOnce {
                ReasonCode::SUCCESS
            } else if outcome.dropped > 0 || !retained {
                ReasonCode::QUOTA_EXCEEDED
            } else if outcome.delivered == 0 {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            } else {
                ReasonCode::SUCCESS
            }
        };
        let reason = if self.version.is_v5() {
            reason
        } else {
            ReasonCode::SUCCESS
        };
        if let Some(packet_id) = packet_id {
            let ack = Ack {
                packet_id,
                reason_code: reason,
                properties: AckProperties::default(),
            };
            if qos == QoS::ExactlyOnce {
                if reason.is_error() {
                    // A refused QoS 2 message is not held for PUBREL.
                    session.state.lock().incoming_qos2.remove(&packet_id);
                }
                self.send(&Packet::PubRec(ack));
            } else {
                self.send(&Packet::PubAck(ack));
            }
        }
        if denied
            && self.version.is_v5()
            && self
                .broker
                .config
                .authorization
                .disconnect_on_denied_publish_v5
        {
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        Ok(())
    }

    /// Ends the connection if its principal has been revoked (DISCONNECT 0x87 to a 5.0
    /// client; the will as for an expiry).
    fn check_revocation(&mut self) -> Result<(), Close> {
        let Some(why) = self
            .principal
            .as_ref()
            .and_then(|p| self.broker.revoked(p))
            .or_else(|| self.certificate_revoked())
        else {
            return Ok(());
        };
        tracing::info!(target: "tollgate::audit", client_id = self.client_id().unwrap_or(""), "disconnected: {}", Escaped(&why));
        self.send_disconnect(ReasonCode::NOT_AUTHORIZED);
        Err(Close {
            reason: ReasonCode::NOT_AUTHORIZED,
            publish_will: self.broker.config.will_on_expiry,
            by_client: false,
        })
    }

    /// Why the client's certificate is no longer good, if the listener's CRLs now revoke it.
    fn certificate_revoked(&self) -> Option<String> {
        let (tls, certificate) = (self.listener.tls.as_ref()?, self.certificate.as_ref()?);
        tls.is_revoked(certificate).then(|| {
            format!(
                "client certificate {} of {} is revoked by a CRL",
                certificate.serial_hex, certificate.issuer
            )
        })
    }

    /// Compiles the principal's permissions from the listener's current authorizer chain.
    fn compile_permissions(&mut self) {
        self.permissions_generation = self.broker.policy_generation();
        let chain = self.listener.authorization.read().clone();
        match (chain, &self.principal) {
            (chain, Some(principal)) if chain.is_some() || principal.granted.is_some() => {
                let compiled = match chain {
                    Some(chain) => chain.compile(principal),
                    None => compile_granted_only(principal).expect("granted rules, checked above"),
                };
                for note in compiled.notes() {
                    tracing::warn!(client_id = %Escaped(&principal.client_id), authorizer = %Escaped(&note.authorizer), "permissions: {}", Escaped(&note.message));
                }
                self.permissions = Arc::new(compiled);
                self.unrestricted = false;
            }
            _ => {
                self.permissions = Arc::clone(&self.broker.allow_all);
                self.unrestricted = true;
            }
        }
    }

    /// The rules changed (a policy reload): compile again, and drop the subscriptions the
    /// new permissions no longer allow (they stop delivering at once; the client is not told,
    /// as a subscription the broker removes has no packet in MQTT).
    pub fn refresh_permissions(&mut self) {
        self.compile_permissions();
        if self.unrestricted {
            return;
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        let subscriptions: Vec<(String, u8)> = session
            .state
            .lock()
            .subscriptions()
            .iter()
            .map(|(f, s)| (f.clone(), s.options.qos as u8))
            .collect();
        for (filter, qos) in subscriptions {
            let shared = tollgate_mqtt::topic::split_shared(&filter);
            let inner = shared.map_or(filter.as_str(), |s| s.filter);
            let decision = self
                .permissions
                .check_subscribe(inner, qos, shared.is_some());
            if !decision.allowed {
                self.audit_denial("subscription removed", &filter, &decision);
                self.broker.unsubscribe(&session, &filter);
            }
        }
    }

    /// Writes the audit line of a denied action.
    fn audit_denial(&self, action: &str, topic: &str, decision: &Decision) {
        let principal = self.principal.as_deref();
        tracing::info!(
            target: "tollgate::audit",
            client_id = principal.map_or("", |p| p.client_id.as_str()),
            username = principal.and_then(|p| p.username.as_deref()).unwrap_or(""),
            action, topic, outcome = "deny",
            decision = %Escaped(&self.permissions.describe(decision).to_string()),
            "authorization"
        );
    }

    // Acknowledgements of outgoing messages, all handled by one rule: an acknowledgement that
    // names a message in flight at another step (PUBACK for a QoS 2 message, PUBREC for a
    // QoS 1 message, PUBCOMP before PUBREC) is a protocol error, and the connection closes
    // (5.0: DISCONNECT 0x82). One that names no message in flight is stale (a resend crossed
    // an acknowledgement, or came after a reconnect): PUBACK and PUBCOMP are ignored, a
    // successful PUBREC is answered with PUBREL (a refusing one needs nothing), as Mosquitto
    // does.

    fn handle_puback(&mut self, ack: Ack, now: Instant) -> Result<(), Close> {
        self.complete_outgoing(ack.packet_id, OutgoingState::AwaitingPubAck)?;
        self.pull_deliveries(now)
    }

    fn handle_pubrec(&mut self, ack: Ack) -> Result<(), Close> {
        let Some(session) = self.session.clone() else {
            return Ok(());
        };
        let mut state = session.state.lock();
        match state.inflight_mut(ack.packet_id) {
            Some(flight) if flight.state != OutgoingState::AwaitingPubRec => {
                drop(state);
                return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
            }
            Some(_) if ack.reason_code.is_error() => {
                // The client refused the message: the flow ends here.
                state.remove_inflight(ack.packet_id);
                return Ok(());
            }
            Some(flight) => {
                flight.state = OutgoingState::AwaitingPubComp;
            }
            None if ack.reason_code.is_error() => return Ok(()),
            None => {}
        };
        drop(state);
        self.send(&Packet::PubRel(Ack {
            packet_id: ack.packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }));
        Ok(())
    }

    fn handle_pubrel(&mut self, ack: Ack) -> Result<(), Close> {
        let Some(session) = self.session.clone() else {
            return Ok(());
        };
        // A PUBREL for a flow already complete (resent after a reconnect, say) is answered
        // as if it had just completed: the message was taken once either way.
        session.state.lock().incoming_qos2.remove(&ack.packet_id);
        self.send(&Packet::PubComp(Ack {
            packet_id: ack.packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }));
        Ok(())
    }

    fn handle_pubcomp(&mut self, ack: Ack, now: Instant) -> Result<(), Close> {
        self.complete_outgoing(ack.packet_id, OutgoingState::AwaitingPubComp)?;
        self.pull_deliveries(now)
    }

    /// Removes an acknowledged message from the in-flight window (see the rule above).
    fn complete_outgoing(&mut self, packet_id: u16, expected: OutgoingState) -> Result<(), Close> {
        let Some(session) = self.session.clone() else {
            return Ok(());
        };
        let mut state = session.state.lock();
        match state.inflight_mut(packet_id).map(|f| f.state) {
            None => Ok(()),
            Some(found) if found == expected => {
                state.remove_inflight(packet_id);
                Ok(())
            }
            Some(_) => {
                drop(state);
                Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR))
            }
        }
    }

    /// SUBSCRIBE: each filter checked and granted (or refused) in order, then SUBACK, then the
    /// retained messages. A filter repeated within the packet is handled once, with its last
    /// options (a later subscription replaces an earlier one), and every copy is answered with
    /// that one code. Retained messages are queued while the store is walked, and the walk
    /// stops when the session's queue is full.
    fn handle_subscribe(&mut self, subscribe: Subscribe, now: Instant) -> Result<(), Close> {
        let session = self
            .session
            .clone()
            .expect("connected connections have a session");
        let limits = &self.broker.config.limits;
        if subscribe.subscriptions.len() > limits.max_filters_per_subscribe {
            tracing::info!(client_id = ?session.client_id, filters = subscribe.subscriptions.len(), max = limits.max_filters_per_subscribe, "SUBSCRIBE with too many filters: connection closed");
            return Err(self.protocol_error(ReasonCode::QUOTA_EXCEEDED));
        }
        let identifier = subscribe.properties.subscription_identifier;
        // The last occurrence of each filter is the one that counts.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(subscribe.subscriptions.len());
        for (i, subscription) in subscribe.subscriptions.iter().enumerate() {
            last.insert(subscription.filter.as_str(), i);
        }
        let mut codes = vec![ReasonCode::SUCCESS; subscribe.subscriptions.len()];
        let mut granted: Vec<(usize, SubscriptionOptions)> = Vec::new();
        for (i, subscription) in subscribe.subscriptions.iter().enumerate() {
            if last[subscription.filter.as_str()] != i {
                continue;
            }
            match self.grant(&session, subscription)? {
                Ok(options) => {
                    codes[i] = ReasonCode(options.qos as u8);
                    granted.push((i, options));
                }
                Err(code) => codes[i] = code,
            }
        }
        for (i, subscription) in subscribe.subscriptions.iter().enumerate() {
            codes[i] = codes[last[subscription.filter.as_str()]];
        }
        let mut send_retained = Vec::new();
        for (i, options) in granted {
            let filter = &subscribe.subscriptions[i].filter;
            let existed = self.broker.subscribe(&session, filter, options, identifier);
            let wanted = match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            if wanted && tollgate_mqtt::topic::split_shared(filter).is_none() {
                send_retained.push((i, options));
            }
        }
        self.send(&Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes: codes,
        }));
        for (i, options) in send_retained {
            let filter = &subscribe.subscriptions[i].filter;
            if self
                .queue_retained(&session, filter, options, identifier)
                .is_break()
            {
                tracing::debug!(client_id = ?session.client_id, filter = ?filter, "session queue full: retained messages not all queued");
                break;
            }
        }
        self.pull_deliveries(now)
    }

    /// Decides one subscription: the options granted (QoS lowered to what the broker and the
    /// permissions allow), or the SUBACK code refusing it. `Err` closes the connection.
    fn grant(
        &mut self,
        session: &Arc<Session>,
        subscription: &tollgate_mqtt::Subscription,
    ) -> Result<Result<SubscriptionOptions, ReasonCode>, Close> {
        let limits = &self.broker.config.limits;
        let shared = tollgate_mqtt::topic::split_shared(&subscription.filter);
        if shared.is_some() && subscription.options.no_local && self.version.is_v5() {
            return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
        }
        let inner = shared.map_or(subscription.filter.as_str(), |s| s.filter);
        let refusal = if topic_levels(inner) > limits.max_topic_levels {
            Some(ReasonCode::TOPIC_FILTER_INVALID)
        } else {
            let state = session.state.lock();
            let subscriptions = state.subscriptions();
            let full = subscriptions.len() >= limits.max_subscriptions_per_session
                || state.subscription_bytes() + subscription.filter.len()
                    > limits.max_subscription_bytes;
            (full && !subscriptions.contains_key(&subscription.filter))
                .then_some(ReasonCode::QUOTA_EXCEEDED)
        };
        if let Some(reason) = refusal {
            tracing::info!(client_id = ?session.client_id, filter = ?subscription.filter, reason = reason.0, "subscription refused");
            return match self.version {
                // 3.1 has no failure code in SUBACK: the connection is closed.
                ProtocolVersion::V3_1 => Err(Close::abnormal(reason)),
                ProtocolVersion::V3_1_1 => Ok(Err(ReasonCode::UNSPECIFIED_ERROR)),
                ProtocolVersion::V5 => Ok(Err(reason)),
            };
        }
        let mut options = subscription.options;
        options.qos = options
            .qos
            .min(QoS::from_u8(limits.max_qos).unwrap_or(QoS::ExactlyOnce));
        if self.unrestricted {
            return Ok(Ok(options));
        }
        // Grant the highest QoS, up to the requested one, the permissions allow.
        let mut decision =
            self.permissions
                .check_subscribe(inner, options.qos as u8, shared.is_some());
        let mut granted = options.qos as u8;
        while !decision.allowed && granted > 0 {
            granted -= 1;
            let lower = self
                .permissions
                .check_subscribe(inner, granted, shared.is_some());
            if lower.allowed {
                decision = lower;
            }
        }
        if !decision.allowed {
            self.audit_denial("subscribe", &subscription.filter, &decision);
            return match self.version {
                // 3.1 has no failure code in SUBACK: the connection is closed.
                ProtocolVersion::V3_1 => Err(Close::abnormal(ReasonCode::NOT_AUTHORIZED)),
                ProtocolVersion::V3_1_1 => Ok(Err(ReasonCode::UNSPECIFIED_ERROR)),
                ProtocolVersion::V5 => Ok(Err(
                    match self.broker.config.authorization.denied_subscribe_code_v5 {
                        DeniedSubscribeCode::NotAuthorized => ReasonCode::NOT_AUTHORIZED,
                        DeniedSubscribeCode::UnspecifiedError => ReasonCode::UNSPECIFIED_ERROR,
                    },
                )),
            };
        }
        options.qos = QoS::from_u8(granted).unwrap_or(QoS::AtMostOnce);
        Ok(Ok(options))
    }

    /// Queues the retained messages `filter` matches and the principal may read, as the
    /// store is walked; breaks when the session's queue takes no more.
    fn queue_retained(
        &self,
        session: &Arc<Session>,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> ControlFlow<()> {
        let permissions = (!self.unrestricted).then(|| Arc::clone(&self.permissions));
        self.broker.for_each_retained(filter, |message| {
            if let Some(p) = &permissions {
                if !p
                    .check_receive(&message.publish.topic, options.qos as u8, false)
                    .allowed
                {
                    return ControlFlow::Continue(());
                }
            }
            let delivery = Delivery {
                message: Arc::clone(message),
                qos: message.publish.qos.min(options.qos),
                retain: true,
                subscription_ids: identifier.into_iter().collect(),
            };
            match session.enqueue(delivery) {
                EnqueueOutcome::Dropped | EnqueueOutcome::Shed => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        })
    }

    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Result<(), Close> {
        let session = self
            .session
            .clone()
            .expect("connected connections have a session");
        let mut codes = Vec::new();
        for filter in &unsubscribe.filters {
            let existed = self.broker.unsubscribe(&session, filter);
            if self.version.is_v5() {
                codes.push(if existed {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                });
            }
        }
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes: codes,
        }));
        Ok(())
    }

    fn handle_disconnect(&mut self, disconnect: Disconnect) -> Close {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.session_expiry == 0 && expiry != 0 {
                // Setting an expiry at DISCONNECT when CONNECT asked for none is forbidden.
                return self.protocol_error(ReasonCode::PROTOCOL_ERROR);
            }
            let expiry = expiry
                .min(self.broker.config.limits.max_session_expiry)
                .min(self.listener.config.max_session_expiry.unwrap_or(u32::MAX));
            self.session_expiry = expiry;
            if let Some(session) = &self.session {
                session.state.lock().expiry_interval = expiry;
            }
        }
        Close::by_client(disconnect.reason_code)
    }

    /// When the connection must next be looked at if nothing arrives: the connect timeout
    /// before CONNECT, one and a half keep-alive periods after the last packet afterwards.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingConnect => {
                // No packet has arrived yet (the first one is CONNECT, which ends this phase).
                Some(self.last_received + self.broker.config.limits.connect_timeout())
            }
            Phase::Connected => {
                let keep_alive = self.keep_alive.map(|k| self.last_received + k);
                let recheck = self.recheck.as_ref().map(|r| r.at);
                [keep_alive, self.expires_at, recheck]
                    .into_iter()
                    .flatten()
                    .min()
            }
            Phase::Authenticating | Phase::Closed => None,
        }
    }

    /// Checks the deadline at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Result<(), Close> {
        match self.deadline() {
            Some(deadline) if now >= deadline => match self.phase {
                Phase::AwaitingConnect => {
                    tracing::debug!(peer = %self.peer, "no CONNECT within the connect timeout");
                    Err(Close {
                        reason: ReasonCode::MAXIMUM_CONNECT_TIME,
                        publish_will: false,
                        by_client: false,
                    })
                }
                _ if self.expires_at.is_some_and(|e| now >= e) => {
                    // The credentials ended: so do the principal's rights.
                    tracing::info!(target: "tollgate::audit", client_id = self.client_id().unwrap_or(""), "credentials expired: disconnected");
                    self.send_disconnect(ReasonCode::NOT_AUTHORIZED);
                    Err(Close {
                        reason: ReasonCode::NOT_AUTHORIZED,
                        publish_will: self.broker.config.will_on_expiry,
                        by_client: false,
                    })
                }
                _ if self.recheck.as_ref().is_some_and(|r| now >= r.at) => {
                    if self.reauthenticating {
                        // A re-authentication is being decided: it counts as the check.
                        if let Some(recheck) = self.recheck.as_mut() {
                            recheck.at = later(now, recheck.interval);
                        }
                    } else {
                        self.start_recheck(now);
                    }
                    Ok(())
                }
                _ => {
                    tracing::info!(
                        client_id = self.client_id().unwrap_or(""),
                        "keep alive timeout"
                    );
                    Err(self.protocol_error(ReasonCode::KEEP_ALIVE_TIMEOUT))
                }
            },
            _ => Ok(()),
        }
    }

    /// The broker is shutting down: 5.0 clients are told so.
    pub fn shutdown(&mut self) -> Close {
        self.send_disconnect(ReasonCode::SERVER_SHUTTING_DOWN);
        Close {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            publish_will: false,
            by_client: false,
        }
    }

    /// The connection is over (closed by either side, for `close`'s reason): the session is
    /// detached and the will handled. Call once, after the last bytes were written.
    pub fn closed(&mut self, close: Close) {
        if self.phase != Phase::Connected {
            self.phase = Phase::Closed;
            return;
        }
        self.phase = Phase::Closed;
        BrokerStats::sub(&self.broker.stats.clients_connected, 1);
        self.counts.flush(&self.broker.stats);
        let mut will = if close.publish_will {
            self.will.take().map(|w| *w)
        } else {
            None
        };
        // The will is checked again as it is sent: the rules may have changed since CONNECT.
        if let (Some(w), false) = (&will, self.unrestricted) {
            if self.permissions_generation != self.broker.policy_generation() {
                self.compile_permissions();
            }
            let decision = self
                .permissions
                .check_publish(&w.topic, w.qos as u8, w.retain);
            if !self.unrestricted && !decision.allowed {
                self.audit_denial("will", &w.topic, &decision);
                will = None;
            }
        }
        if let Some(session) = self.session.take() {
            tracing::info!(client_id = ?session.client_id, reason = close.reason.0, will = will.is_some(), "client disconnected");
            let session_expiry = self.session_expiry;
            let will = will.map(|will| ClosingWill {
                delay: will
                    .properties
                    .will_delay_interval
                    .unwrap_or(0)
                    .min(session_expiry),
                will,
            });
            self.broker.close_session(&session, self.generation, will);
        }
    }
}

/// The instant credentials valid until `expiry` (wall clock) end, on the clock of `now`;
/// `None` when they have already ended. A date too far ahead to represent is capped (at
/// about 136 years), never a panic.
fn deadline_of(expiry: std::time::SystemTime, now: Instant) -> Option<Instant> {
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    if left.is_zero() {
        return None;
    }
    Some(later(now, left))
}

/// `after` from `now`, capped (at about 136 years) rather than overflowing the clock.
fn later(now: Instant, after: Duration) -> Instant {
    let capped = after.min(Duration::from_secs(u64::from(u32::MAX)));
    now.checked_add(capped)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

/// How many levels a topic name or filter has.
fn topic_levels(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count() + 1
}

/// The 5.0 CONNACK reason for a refusal (converted for 3.x clients when sent).
fn deny_reason_code(reason: DenyReason) -> ReasonCode {
    match reason {
        DenyReason::BadCredentials => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        DenyReason::NotAuthorized => ReasonCode::NOT_AUTHORIZED,
        DenyReason::Banned => ReasonCode::BANNED,
        DenyReason::RateLimited => ReasonCode::CONNECTION_RATE_EXCEEDED,
        DenyReason::BadAuthenticationMethod => ReasonCode::BAD_AUTHENTICATION_METHOD,
        DenyReason::BackendUnavailable => ReasonCode::SERVER_UNAVAILABLE,
        DenyReason::Busy => ReasonCode::SERVER_BUSY,
    }
}

/// Whether `client_id` matches one of `patterns` (`%u`: the user name, taken literally;
/// `*`: any run of characters). A pattern with `%u` never matches a client without a user
/// name, and a `*` inside the user name is a plain character, not a wildcard.
fn client_id_allowed(patterns: &[String], client_id: &str, username: Option<&str>) -> bool {
    patterns.iter().any(|pattern| {
        let mut tokens = Vec::new();
        for (i, piece) in pattern.split("%u").enumerate() {
            if i > 0 {
                match username {
                    Some(name) => tokens.push(GlobToken::Literal(name)),
                    None => return false,
                }
            }
            for (j, literal) in piece.split('*').enumerate() {
                if j > 0 {
                    tokens.push(GlobToken::Star);
                }
                if !literal.is_empty() {
                    tokens.push(GlobToken::Literal(literal));
                }
            }
        }
        glob_matches(&tokens, client_id)
    })
}

/// A piece of a client identifier pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobToken<'a> {
    /// Exactly these characters.
    Literal(&'a str),
    /// Any run of characters.
    Star,
}

/// Matches `text` against literals and stars, iteratively (no backtracking blow-up: each star
/// retries by moving the literal after it along, in at most `text.len()` steps per star).
fn glob_matches(tokens: &[GlobToken<'_>], text: &str) -> bool {
    let text = text.as_bytes();
    let (mut ti, mut ki) = (0usize, 0usize);
    // The last star seen: the token after it, and where in the text it was tried.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match tokens.get(ki) {
            Some(GlobToken::Star) => {
                ki += 1;
                star = Some((ki, ti));
                continue;
            }
            Some(GlobToken::Literal(lit)) if text[ti..].starts_with(lit.as_bytes()) => {
                ti += lit.len();
                ki += 1;
                continue;
            }
            None if ti == text.len() => return true,
            _ => {}
        }
        match star {
            Some((after, tried)) if tried < text.len() => {
                star = Some((after, tried + 1));
                ki = after;
                ti = tried + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_patterns_substitute_the_user_name() {
        let patterns = vec!["%u".to_owned(), "%u-*".to_owned()];
        assert!(client_id_allowed(&patterns, "alice", Some("alice")));
        assert!(client_id_allowed(&patterns, "alice-phone", Some("alice")));
        assert!(!client_id_allowed(&patterns, "bob-phone", Some("alice")));
        assert!(!client_id_allowed(&patterns, "alice", None));
        let stars = |p: &str, t: &str| client_id_allowed(&[p.to_owned()], t, None);
        assert!(stars("a*b*c", "axxbyyc"));
        assert!(stars("*", ""));
        assert!(stars("a**", "a"));
        assert!(!stars("a*b", "ab-"));
        assert!(stars("*b", "abab"));
    }

    #[test]
    fn a_star_in_the_user_name_is_not_a_wildcard() {
        let patterns = vec!["%u".to_owned(), "%u-*".to_owned()];
        assert!(!client_id_allowed(&patterns, "anything", Some("*")));
        assert!(!client_id_allowed(&patterns, "bob-phone", Some("*")));
        assert!(client_id_allowed(&patterns, "*", Some("*")));
        assert!(client_id_allowed(&patterns, "*-x", Some("*")));
        assert!(!client_id_allowed(&patterns, "a-b", Some("a*")));
    }

    #[test]
    fn deadlines_far_ahead_are_capped_not_a_panic() {
        let now = Instant::now();
        let far = std::time::SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(u64::from(u32::MAX) * 1000))
            .unwrap();
        assert!(deadline_of(far, now).is_some());
        assert!(deadline_of(std::time::SystemTime::UNIX_EPOCH, now).is_none());
    }
}
