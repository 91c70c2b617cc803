//! The protocol core driven directly, as the driver drives it, with the time chosen by each
//! test: no sockets, no waiting, the same result every run. Keep alive, the connect timeout,
//! message expiry in a queue, and a token's expiry against its renewal by AUTH.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate_auth::jwt::{unix_now, JwtConfig, TokenLocation};
use tollgate_broker::connection::{Close, Connection};
use tollgate_broker::listener::Listener;
use tollgate_broker::{
    AuthenticatorConfig, Broker, BrokerConfig, Extensions, ListenerConfig, Server,
};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// One broker's shared state and listener, with no socket.
struct Core {
    broker: Arc<Broker>,
    listener: Arc<Listener>,
    /// The time every test starts at.
    t0: Instant,
}

impl Core {
    /// A broker with `f` applied to an anonymous one-listener configuration. (Building the
    /// listener needs a tokio runtime: files would be watched from it.)
    fn new(f: impl FnOnce(&mut BrokerConfig)) -> Core {
        let mut config = BrokerConfig {
            listeners: vec![ListenerConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                allow_anonymous: true,
                ..ListenerConfig::default()
            }],
            sys_interval: 0,
            ..BrokerConfig::default()
        };
        f(&mut config);
        let prepared = Server::prepare(config.clone(), Extensions::default()).expect("valid");
        Core {
            broker: Broker::new(config),
            listener: Arc::clone(prepared.listener(None).unwrap()),
            t0: Instant::now(),
        }
    }

    /// The instant `seconds` after the test's start.
    fn at(&self, seconds: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(seconds)
    }

    /// A connection just accepted, at the test's start.
    fn accept(&self) -> Client {
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        Client {
            conn: Connection::new(
                Arc::clone(&self.broker),
                Arc::clone(&self.listener),
                peer,
                None,
                self.t0,
            ),
            listener: Arc::clone(&self.listener),
        }
    }

    /// A client whose `connect` was accepted at `now`, its CONNACK read.
    async fn connected(&self, connect: Connect, now: Instant) -> Client {
        let mut client = self.accept();
        client
            .send(Packet::Connect(Box::new(connect)), now)
            .await
            .unwrap();
        match client.received().as_slice() {
            [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
    }
}

/// One connection's protocol state and what it sends.
struct Client {
    conn: Connection,
    listener: Arc<Listener>,
}

impl Client {
    /// Hands `packet` to the connection at `now`, then runs the authentication it asks for
    /// (as the driver does, beside the connection) and hands it the decision.
    async fn send(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        self.conn.handle(packet, now)?;
        if let Some(request) = self.conn.take_auth_request() {
            let chain = &self.listener.policy().chain;
            let decision = if self.conn.is_reauthenticating() {
                chain.recheck(&request).await
            } else {
                chain.authenticate(&request).await
            };
            self.conn.finish_authentication(decision, now)?;
        }
        Ok(())
    }

    /// Every packet the connection has written since last asked.
    fn received(&mut self) -> Vec<Packet> {
        let decoder = Decoder {
            role: Role::Client,
            version: V5,
            maximum_packet_size: u32::MAX,
        };
        let mut out = BytesMut::from(&self.conn.out[..]);
        self.conn.out.clear();
        let mut packets = Vec::new();
        while let Some(packet) = decoder.decode(&mut out).expect("the broker's bytes decode") {
            packets.push(packet);
        }
        assert!(out.is_empty(), "a partial packet was written");
        packets
    }

    /// What the connection sends, taking deliveries from its session at `now`.
    fn deliveries(&mut self, now: Instant) -> Vec<Packet> {
        self.conn.pull_deliveries(now).expect("still connected");
        self.received()
    }

    /// Subscribes to `filter` at QoS 1.
    async fn subscribe(&mut self, filter: &str, now: Instant) {
        let subscribe = Subscribe {
            packet_id: 1,
            properties: SubscribeProperties::default(),
            subscriptions: vec![Subscription {
                filter: filter.into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            }],
        };
        self.send(Packet::Subscribe(subscribe), now).await.unwrap();
        assert!(matches!(self.received().as_slice(), [Packet::SubAck(_)]));
    }

    /// The connection's close: it is over (the session detached, as the driver does).
    fn close(&mut self, close: Close) {
        self.conn.closed(close);
    }
}

fn connect(client_id: &str, keep_alive: u16) -> Connect {
    Connect {
        protocol: V5,
        clean_start: true,
        keep_alive,
        client_id: client_id.into(),
        ..Connect::default()
    }
}

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
async fn keep_alive_zero_never_times_out() {
    let core = Core::new(|_| {});
    let c = core.connected(connect("c", 0), core.t0).await;
    assert_eq!(c.conn.deadline(), None);
}

#[tokio::test]
async fn no_connect_within_the_connect_timeout_ends_the_connection_without_a_word() {
    let core = Core::new(|c| c.limits.connect_timeout = 5);
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
            token_from: TokenLocation::AuthenticationData,
            authentication_method: Some("jwt".into()),
            leeway: 0,
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
