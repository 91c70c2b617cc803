//! The protocol core driven directly, as the driver drives it, with the time chosen by each
//! test: no sockets, no waiting, the same result every run. Keep alive, the connect timeout,
//! message expiry in a queue, and a token's expiry against its renewal by AUTH, over the real
//! shared state; and what a connection asks of the shared state, over a fake that records it
//! (`Recorder`).

mod common;

use common::core::{connect, Core};
use std::time::Duration;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::BytesMut;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate_auth::jwt::{unix_now, JwtConfig, TokenClaimsConfig, TokenLocation};
use tollgate_auth::permissions::CompiledPermissions;
use tollgate_auth::revocation::RevocationList;
use tollgate_auth::Owner;
use tollgate_broker::broker::{
    ClosingWill, OpenedSession, RouteOutcome, RouteTarget, SessionOwnedByAnother,
};
use tollgate_broker::connection::{Close, Connection};
use tollgate_broker::events::Hooks;
use tollgate_broker::memory::MemoryBudget;
use tollgate_broker::message::Message;
use tollgate_broker::retained::RetainRefused;
use tollgate_broker::session::{QueueLimits, Session};
use tollgate_broker::shared::Shared;
use tollgate_broker::stats::BrokerStats;
use tollgate_broker::{AuthenticatorConfig, BrokerConfig};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test]
async fn keep_alive_ends_the_connection_at_one_and_a_half_periods_after_the_last_packet() {
    let core = Core::new(|_| {});
    let mut c = core.connected(connect("c", 10), core.t0).await;
    assert_eq!(c.conn.deadline(), Some(core.at(15.0)));
    assert!(c.conn.on_timer(core.at(14.9)).is_ok());

    // A packet at 10 s moves the deadline to 25 s.
    c.send(Packet::PingReq, core.at(10.0)).await.unwrap();
    assert!(matches!(c.received().as_slice(), [Packet::PingResp]));
    assert!(c.conn.on_timer(core.at(24.9)).is_ok());
    let close = c.conn.on_timer(core.at(25.0)).unwrap_err();
    assert_eq!(close.reason, ReasonCode::KEEP_ALIVE_TIMEOUT);
    assert!(close.publish_will);
    match c.received().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::KEEP_ALIVE_TIMEOUT),
        other => panic!("expected DISCONNECT 0x8D, got {other:?}"),
    }
    c.close(close);
}

#[tokio::test]
async fn a_3_1_1_keep_alive_timeout_closes_without_a_word_and_publishes_the_will() {
    let core = Core::new(|_| {});
    let mut watcher = core.connected(connect("watcher", 0), core.t0).await;
    watcher.subscribe("w", core.t0).await;
    let mut sleepy = connect("sleepy", 1);
    sleepy.protocol = ProtocolVersion::V3_1_1;
    sleepy.will = Some(Will {
        topic: "w".into(),
        payload: "timeout".into(),
        ..Will::default()
    });
    let mut c = core.connected(sleepy, core.t0).await;
    assert!(c.conn.on_timer(core.at(1.49)).is_ok());
    let close = c.conn.on_timer(core.at(1.5)).unwrap_err();
    assert_eq!(close.reason, ReasonCode::KEEP_ALIVE_TIMEOUT);
    assert!(
        c.received().is_empty(),
        "3.1.1 has no DISCONNECT from the server"
    );
    c.close(close);
    match watcher.deliveries(core.at(1.5)).as_slice() {
        [Packet::Publish(p)] => {
            assert_eq!((p.topic.as_str(), &p.payload[..]), ("w", &b"timeout"[..]))
        }
        other => panic!("expected the will, got {other:?}"),
    }
}

#[tokio::test]
async fn keep_alive_zero_never_times_out() {
    let core = Core::new(|_| {});
    let c = core.connected(connect("c", 0), core.t0).await;
    assert_eq!(c.conn.deadline(), None);
}

#[tokio::test]
async fn no_connect_within_the_connect_timeout_ends_the_connection_without_a_word() {
    let core = Core::new(|c| c.limits.connect_timeout = Duration::from_secs(5));
    let mut c = core.accept();
    assert_eq!(c.conn.deadline(), Some(core.at(5.0)));
    assert!(c.conn.on_timer(core.at(4.9)).is_ok());
    let close = c.conn.on_timer(core.at(5.0)).unwrap_err();
    assert_eq!(close.reason, ReasonCode::MAXIMUM_CONNECT_TIME);
    assert!(c.received().is_empty(), "nothing is sent before CONNECT");
}

#[tokio::test]
async fn a_queued_message_past_its_expiry_is_dropped_and_the_rest_carry_what_is_left() {
    let core = Core::new(|_| {});
    let mut persistent = connect("away", 0);
    persistent.clean_start = false;
    persistent.properties.session_expiry_interval = Some(600);
    let mut away = core.connected(persistent.clone(), core.t0).await;
    away.subscribe("e", core.t0).await;
    away.close(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR));

    let mut publisher = core.connected(connect("p", 0), core.t0).await;
    for (id, expiry) in [(1u16, Some(1)), (2, Some(10)), (3, None)] {
        let publish = Publish {
            qos: QoS::AtLeastOnce,
            topic: "e".into(),
            packet_id: Some(id),
            properties: PublishProperties {
                message_expiry_interval: expiry,
                ..PublishProperties::default()
            },
            payload: "x".into(),
            ..Publish::default()
        };
        publisher
            .send(Packet::Publish(publish), core.t0)
            .await
            .unwrap();
    }

    // Back 4 s later: the 1 s message is gone, the 10 s one has 6 s left.
    let mut back = core.accept();
    back.send(Packet::Connect(Box::new(persistent)), core.at(4.0))
        .await
        .unwrap();
    let mut packets = back.received();
    packets.extend(back.deliveries(core.at(4.0)));
    let expiries: Vec<Option<u32>> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.properties.message_expiry_interval),
            _ => None,
        })
        .collect();
    assert_eq!(expiries, vec![Some(6), None]);
}

const SECRET: &str = "a-secret-the-identity-provider-shares";

fn token(subject: &str, expires_in: u64) -> String {
    let claims = json!({ "sub": subject, "exp": unix_now() + expires_in });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Tokens in MQTT 5 authentication data, method `jwt`.
fn with_tokens(c: &mut BrokerConfig) {
    c.listeners[0].allow_anonymous = false;
    c.authenticators = vec![AuthenticatorConfig {
        name: "idp".into(),
        jwt: Some(JwtConfig {
            algorithms: vec!["HS256".into()],
            secret: Some(SECRET.into()),
            leeway: Duration::from_secs(0),
            claims: TokenClaimsConfig {
                token_from: TokenLocation::AuthenticationData,
                authentication_method: Some("jwt".into()),
                ..TokenClaimsConfig::default()
            },
            ..JwtConfig::default()
        }),
        ..AuthenticatorConfig::default()
    }];
    c.throttle.enabled = false;
}

fn with_token(client_id: &str, token: &str) -> Connect {
    let mut c = connect(client_id, 0);
    c.properties.authentication_method = Some("jwt".into());
    c.properties.authentication_data = Some(token.to_owned().into_bytes().into());
    c
}

#[tokio::test]
async fn a_token_renewed_by_auth_outlives_the_first_ones_expiry_and_an_unrenewed_one_does_not() {
    let core = Core::new(with_tokens);
    let mut renewed = core
        .connected(with_token("renewed", &token("dev", 2)), core.t0)
        .await;
    let mut expiring = core
        .connected(with_token("expiring", &token("dev", 2)), core.t0)
        .await;

    let reauth = Packet::Auth(Auth {
        reason_code: ReasonCode::REAUTHENTICATE,
        properties: AuthProperties {
            authentication_method: Some("jwt".into()),
            authentication_data: Some(token("dev", 600).into_bytes().into()),
            ..AuthProperties::default()
        },
    });
    renewed.send(reauth, core.at(1.0)).await.unwrap();
    match renewed.received().as_slice() {
        [Packet::Auth(a)] => assert_eq!(a.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected AUTH success, got {other:?}"),
    }

    // Past the first token's expiry (2 s, plus a second for the wall clock's rounding).
    let later = core.at(3.5);
    assert!(renewed.conn.on_timer(later).is_ok(), "the renewal holds");
    let close = expiring.conn.on_timer(later).unwrap_err();
    assert_eq!(close.reason, ReasonCode::NOT_AUTHORIZED);
    match expiring.received().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
}

/// What a connection asked of the shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    Open {
        client_id: String,
        clean_start: bool,
    },
    Close {
        will: Option<String>,
    },
    Subscribe {
        filter: String,
        qos: QoS,
    },
    Retain {
        topic: String,
    },
    Route {
        topic: String,
        payload: Vec<u8>,
    },
}

/// Shared state that records what a connection asks of it, and refuses sessions when told
/// to: the protocol core's side of the broker, without the broker.
struct Recorder {
    config: BrokerConfig,
    memory: Arc<MemoryBudget>,
    stats: BrokerStats,
    allow_all: Arc<CompiledPermissions>,
    refuse_sessions: bool,
    asked: parking_lot::Mutex<Vec<Asked>>,
    hooks: Hooks,
}

impl Recorder {
    fn new(config: BrokerConfig, refuse_sessions: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            memory: MemoryBudget::new(config.limits.max_memory),
            config,
            stats: BrokerStats::default(),
            allow_all: Arc::new(CompiledPermissions::allow_all()),
            refuse_sessions,
            asked: parking_lot::Mutex::new(Vec::new()),
            hooks: Hooks::default(),
        })
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().clone()
    }

    fn record(&self, asked: Asked) {
        self.asked.lock().push(asked);
    }
}

impl Shared for Recorder {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn memory(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }

    fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    fn allow_all(&self) -> &Arc<CompiledPermissions> {
        &self.allow_all
    }

    fn assign_client_id(&self) -> String {
        "assigned".into()
    }

    fn open_session(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        owner: Option<&Owner>,
    ) -> Result<OpenedSession, SessionOwnedByAnother> {
        self.record(Asked::Open {
            client_id: client_id.into(),
            clean_start,
        });
        if self.refuse_sessions {
            return Err(SessionOwnedByAnother);
        }
        let session = Arc::new(Session::new(
            1,
            client_id.into(),
            expiry_interval,
            QueueLimits::messages(10),
            Arc::clone(&self.memory),
            None,
        ));
        let (generation, wake) = session.state.lock().open(owner.cloned());
        Ok(OpenedSession {
            session,
            generation,
            present: false,
            wake,
        })
    }

    fn close_session(
        self: &Arc<Self>,
        _session: &Arc<Session>,
        _generation: u64,
        will: Option<ClosingWill>,
    ) {
        self.record(Asked::Close {
            will: will.map(|w| w.will.topic),
        });
    }

    fn subscribe(
        &self,
        _session: &Arc<Session>,
        filter: &str,
        options: SubscriptionOptions,
        _identifier: Option<u32>,
    ) -> bool {
        self.record(Asked::Subscribe {
            filter: filter.into(),
            qos: options.qos,
        });
        false
    }

    fn unsubscribe(&self, _session: &Arc<Session>, _filter: &str) -> bool {
        false
    }

    fn for_each_retained(
        &self,
        _filter: &str,
        _f: impl FnMut(&Arc<Message>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    fn retain(&self, message: Arc<Message>) -> Result<(), RetainRefused> {
        self.record(Asked::Retain {
            topic: message.publish.topic.to_string(),
        });
        Ok(())
    }

    fn route(&self, message: &Arc<Message>, _scratch: &mut Vec<RouteTarget>) -> RouteOutcome {
        self.record(Asked::Route {
            topic: message.publish.topic.to_string(),
            payload: message.publish.payload.to_vec(),
        });
        RouteOutcome {
            delivered: 1,
            dropped: 0,
        }
    }

    fn policy_generation(&self) -> u64 {
        0
    }

    fn revocation_list(&self) -> Arc<RevocationList> {
        Arc::default()
    }
}

/// A connection over `shared`, its CONNECT handled at the test's start.
async fn connected_to(
    core: &Core,
    shared: &Arc<Recorder>,
    connect: Connect,
) -> (Connection<Recorder>, Vec<Packet>) {
    let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let mut conn = Connection::new(
        Arc::clone(shared),
        Arc::clone(&core.listener),
        peer,
        None,
        core.t0,
    );
    conn.handle(Packet::Connect(Box::new(connect)), core.t0)
        .unwrap();
    if let Some(request) = conn.take_auth_request() {
        let decision = core.listener.policy().chain.authenticate(&request).await;
        let _ = conn.finish_authentication(decision, core.t0);
    }
    let packets = decode_all(&mut conn.out);
    (conn, packets)
}

fn decode_all(out: &mut BytesMut) -> Vec<Packet> {
    let decoder = Decoder {
        role: Role::Client,
        version: V5,
        maximum_packet_size: u32::MAX,
    };
    let mut packets = Vec::new();
    while let Some(packet) = decoder.decode(out).expect("the broker's bytes decode") {
        packets.push(packet);
    }
    packets
}

#[tokio::test]
async fn a_retained_publish_is_stored_then_routed_and_a_subscription_asks_for_the_granted_qos() {
    let core = Core::new(|c| c.limits.max_qos = 1);
    let shared = Recorder::new(core.broker.config.clone(), false);
    let (mut conn, packets) = connected_to(&core, &shared, connect("dev", 0)).await;
    assert!(
        matches!(packets.as_slice(), [Packet::ConnAck(a)] if a.reason_code == ReasonCode::SUCCESS)
    );

    let subscribe = Subscribe {
        packet_id: 1,
        properties: SubscribeProperties::default(),
        subscriptions: vec![Subscription {
            filter: "cmd/#".into(),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                ..SubscriptionOptions::default()
            },
        }],
    };
    conn.handle(Packet::Subscribe(subscribe), core.t0).unwrap();
    conn.handle(
        Packet::Publish(Publish {
            retain: true,
            topic: "state/dev".into(),
            payload: "on".into(),
            ..Publish::default()
        }),
        core.t0,
    )
    .unwrap();
    assert_eq!(
        shared.asked(),
        vec![
            Asked::Open {
                client_id: "dev".into(),
                clean_start: true
            },
            Asked::Subscribe {
                filter: "cmd/#".into(),
                qos: QoS::AtLeastOnce
            },
            Asked::Retain {
                topic: "state/dev".into()
            },
            Asked::Route {
                topic: "state/dev".into(),
                payload: b"on".to_vec()
            },
        ]
    );
    match decode_all(&mut conn.out).as_slice() {
        [Packet::SubAck(ack)] => assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_1]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_the_shared_state_refuses_is_a_connack_0x87_and_nothing_else_is_asked() {
    let core = Core::new(|_| {});
    let shared = Recorder::new(core.broker.config.clone(), true);
    let mut will_connect = connect("taken", 0);
    will_connect.will = Some(Will {
        topic: "wills/taken".into(),
        payload: "gone".into(),
        ..Will::default()
    });
    let (mut conn, packets) = connected_to(&core, &shared, will_connect).await;
    match packets.as_slice() {
        [Packet::ConnAck(a)] => assert_eq!(a.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected CONNACK 0x87, got {other:?}"),
    }
    conn.closed(Close::abnormal(ReasonCode::NOT_AUTHORIZED));
    assert_eq!(
        shared.asked(),
        vec![Asked::Open {
            client_id: "taken".into(),
            clean_start: true
        }],
        "no session was opened, so none is closed and no will goes out"
    );
}

#[tokio::test]
async fn an_abrupt_end_hands_the_will_to_the_shared_state_and_a_disconnect_does_not() {
    let core = Core::new(|_| {});
    for (close, will) in [
        (
            Close::abnormal(ReasonCode::KEEP_ALIVE_TIMEOUT),
            Some("wills/dev".to_owned()),
        ),
        (
            Close {
                reason: ReasonCode::SUCCESS,
                publish_will: false,
                by_client: true,
            },
            None,
        ),
    ] {
        let shared = Recorder::new(core.broker.config.clone(), false);
        let mut with_will = connect("dev", 0);
        with_will.will = Some(Will {
            topic: "wills/dev".into(),
            payload: "gone".into(),
            ..Will::default()
        });
        let (mut conn, _) = connected_to(&core, &shared, with_will).await;
        conn.closed(close);
        assert_eq!(shared.asked().last(), Some(&Asked::Close { will }));
    }
}
