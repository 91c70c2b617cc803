//! The protocol core driven directly, as the driver drives it (`connection` and the shared
//! state, no socket), with the time each test chooses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tollgate_broker::connection::{Close, Connection};
use tollgate_broker::listener::Listener;
use tollgate_broker::{Broker, BrokerConfig, Extensions, Server};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// One broker's shared state and listener, with no socket.
pub struct Core {
    pub broker: Arc<Broker>,
    pub listener: Arc<Listener>,
    /// The time every test starts at.
    pub t0: Instant,
}

impl Core {
    /// A broker with `f` applied to an anonymous one-listener configuration. (Building the
    /// listener needs a tokio runtime: files would be watched from it.)
    pub fn new(f: impl FnOnce(&mut BrokerConfig)) -> Core {
        let mut config = super::anonymous_config();
        f(&mut config);
        let prepared = Server::prepare(config.clone(), Extensions::default()).expect("valid");
        Core {
            broker: Broker::new(config),
            listener: Arc::clone(prepared.listener(None).unwrap()),
            t0: Instant::now(),
        }
    }

    /// The instant `seconds` after the test's start.
    pub fn at(&self, seconds: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(seconds)
    }

    /// A connection just accepted, at the test's start.
    pub fn accept(&self) -> Client {
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
            version: V5,
        }
    }

    /// A client whose `connect` was accepted at `now`, its CONNACK read.
    pub async fn connected(&self, connect: Connect, now: Instant) -> Client {
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
pub struct Client {
    pub conn: Connection,
    pub listener: Arc<Listener>,
    /// The protocol version its CONNECT asked for (5.0 until one is sent).
    pub version: ProtocolVersion,
}

impl Client {
    /// Hands `packet` to the connection at `now`, then runs the authentication it asks for
    /// (as the driver does, beside the connection) and hands it the decision.
    pub async fn send(&mut self, packet: Packet, now: Instant) -> Result<(), Close> {
        if let Packet::Connect(connect) = &packet {
            self.version = connect.protocol;
        }
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
    pub fn received(&mut self) -> Vec<Packet> {
        let decoder = Decoder {
            role: Role::Client,
            version: self.version,
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
    pub fn deliveries(&mut self, now: Instant) -> Vec<Packet> {
        self.conn.pull_deliveries(now).expect("still connected");
        self.received()
    }

    /// Subscribes to `filter` at QoS 1.
    pub async fn subscribe(&mut self, filter: &str, now: Instant) {
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
    pub fn close(&mut self, close: Close) {
        self.conn.closed(close);
    }
}

/// A 5.0 CONNECT with clean start and `keep_alive`.
pub fn connect(client_id: &str, keep_alive: u16) -> Connect {
    Connect {
        protocol: V5,
        clean_start: true,
        keep_alive,
        client_id: client_id.into(),
        ..Connect::default()
    }
}
