//! A small MQTT client over Tollgate's own codec, for tests that need to send what ordinary
//! client libraries cannot (MQTT 3.1, AUTH, malformed packets) or to see every packet.
#![allow(dead_code)]

pub mod admin;
pub mod core;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_broker::{BrokerConfig, ListenerConfig, Server};
use tollgate_mqtt::*;

/// How long a test waits for a packet before failing.
pub const PACKET_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration tests start from: one anonymous listener on a free loopback port, no
/// `$SYS` updates.
pub fn anonymous_config() -> BrokerConfig {
    BrokerConfig {
        listeners: vec![ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            allow_anonymous: true,
            ..ListenerConfig::default()
        }],
        sys_interval: Duration::from_secs(0),
        ..BrokerConfig::default()
    }
}

/// A directory of files for one test, removed when dropped.
pub struct TestDir(pub std::path::PathBuf);

impl TestDir {
    /// A fresh directory named after `tag` and the process.
    pub fn new(tag: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("tollgate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    /// Writes `text` to the file `name` in the directory; its path.
    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration change: persistence on, with its store in `dir`.
pub fn persistent(dir: &std::path::Path) -> impl FnOnce(&mut BrokerConfig) + '_ {
    move |config: &mut BrokerConfig| {
        config.persistence.path = Some(dir.to_owned());
    }
}

/// Starts a broker on a free loopback port with `f` applied to [`anonymous_config`].
pub async fn start_broker(f: impl FnOnce(&mut BrokerConfig)) -> (Server, SocketAddr) {
    let mut config = anonymous_config();
    f(&mut config);
    let server = Server::start(config).await.expect("broker starts");
    let addr = server.local_addrs()[0];
    (server, addr)
}

/// Any byte stream a test client can speak MQTT over (TCP, TLS).
pub trait ByteStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> ByteStream for T {}

/// A raw MQTT client.
pub struct TestClient {
    pub stream: Box<dyn ByteStream>,
    buf: BytesMut,
    pub version: ProtocolVersion,
}

/// A CONNECT for `client_id` with `version`, clean, keep alive 60.
pub fn connect_packet(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        ..Connect::default()
    }
}

impl TestClient {
    /// Opens a TCP connection without sending anything.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> TestClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).unwrap();
        TestClient::over(Box::new(stream), version)
    }

    /// Opens a TCP connection from the local address `from` (another loopback address, to
    /// stand for another machine), without sending anything.
    pub async fn open_from(addr: SocketAddr, from: &str, version: ProtocolVersion) -> TestClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(from.parse().unwrap(), 0))
            .expect("binds the source address");
        let stream = socket.connect(addr).await.expect("connects");
        stream.set_nodelay(true).unwrap();
        TestClient::over(Box::new(stream), version)
    }

    /// A client over an already open stream.
    pub fn over(stream: Box<dyn ByteStream>, version: ProtocolVersion) -> TestClient {
        TestClient {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    /// Connects with `connect` over an open stream and returns the CONNACK.
    pub async fn connect_over(
        stream: Box<dyn ByteStream>,
        connect: Connect,
    ) -> (TestClient, ConnAck) {
        let mut client = TestClient::over(stream, connect.protocol);
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects with `connect` and returns the CONNACK.
    pub async fn connect_with(addr: SocketAddr, connect: Connect) -> (TestClient, ConnAck) {
        let mut client = TestClient::open(addr, connect.protocol).await;
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects clean with `client_id` and asserts success.
    pub async fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
    ) -> TestClient {
        let (client, ack) =
            TestClient::connect_with(addr, connect_packet(version, client_id)).await;
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "CONNACK {ack:?}");
        client
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, self.version, &mut out).expect("encodes");
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    /// The next packet, or `None` when the broker closed the connection.
    pub async fn try_recv(&mut self) -> Option<Packet> {
        self.try_recv_within(PACKET_TIMEOUT).await
    }

    /// [`Self::try_recv`], waiting up to `limit` for each read (for what the broker sends
    /// on a timer of its own, such as a device grant's poll interval).
    pub async fn try_recv_within(&mut self, limit: Duration) -> Option<Packet> {
        let decoder = Decoder {
            role: Role::Client,
            version: self.version,
            maximum_packet_size: 268_435_460,
        };
        loop {
            if let Some(packet) = decoder
                .decode(&mut self.buf)
                .expect("broker sent a well-formed packet")
            {
                return Some(packet);
            }
            let n = tokio::time::timeout(limit, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a packet or a close within the timeout")
                .unwrap_or(0);
            if n == 0 {
                assert!(
                    self.buf.is_empty(),
                    "connection closed in the middle of a packet"
                );
                return None;
            }
        }
    }

    /// The next packet; fails if the connection closed.
    pub async fn recv(&mut self) -> Packet {
        self.try_recv()
            .await
            .expect("connection closed while a packet was expected")
    }

    /// Asserts that the broker closes the connection, after any packets it sends first, which
    /// are returned.
    pub async fn expect_close(&mut self) -> Vec<Packet> {
        let mut before = Vec::new();
        while let Some(p) = self.try_recv().await {
            before.push(p);
        }
        before
    }

    /// Asserts that nothing was sent to this client before a PINGREQ round trip (the broker
    /// sends whatever was queued for a client before it answers the client's next packet).
    pub async fn expect_nothing(&mut self) {
        self.send(Packet::PingReq).await;
        match self.recv().await {
            Packet::PingResp => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, packet_id: u16, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_with(
            packet_id,
            filter,
            SubscriptionOptions {
                qos,
                ..Default::default()
            },
            None,
        )
        .await
    }

    pub async fn subscribe_with(
        &mut self,
        packet_id: u16,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            properties: SubscribeProperties {
                subscription_identifier: id,
                ..Default::default()
            },
            subscriptions: vec![Subscription {
                filter: filter.into(),
                options,
            }],
        }))
        .await;
        match self.recv().await {
            Packet::SubAck(ack) => {
                assert_eq!(ack.packet_id, packet_id);
                ack
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS flow; returns the acknowledgement's reason code.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &'static [u8],
        qos: QoS,
        retain: bool,
        packet_id: u16,
    ) -> ReasonCode {
        let publish = Publish {
            qos,
            retain,
            topic: topic.into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(packet_id),
            payload: Bytes::from_static(payload),
            ..Publish::default()
        };
        self.publish_packet(publish).await
    }

    pub async fn publish_packet(&mut self, publish: Publish) -> ReasonCode {
        let qos = publish.qos;
        let packet_id = publish.packet_id;
        self.send(Packet::Publish(publish)).await;
        match qos {
            QoS::AtMostOnce => ReasonCode::SUCCESS,
            QoS::AtLeastOnce => match self.recv().await {
                Packet::PubAck(ack) if Some(ack.packet_id) == packet_id => ack.reason_code,
                other => panic!("expected PUBACK, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                let rec = match self.recv().await {
                    Packet::PubRec(ack) if Some(ack.packet_id) == packet_id => ack,
                    other => panic!("expected PUBREC, got {other:?}"),
                };
                if rec.reason_code.is_error() {
                    return rec.reason_code;
                }
                self.send(Packet::PubRel(Ack {
                    packet_id: rec.packet_id,
                    ..Ack::default()
                }))
                .await;
                match self.recv().await {
                    Packet::PubComp(ack) if ack.packet_id == rec.packet_id => rec.reason_code,
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
    }

    /// Receives a PUBLISH and acknowledges it as its QoS requires.
    pub async fn recv_publish(&mut self) -> Publish {
        let publish = match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        self.ack(&publish).await;
        publish
    }

    /// Acknowledges a received PUBLISH (QoS 2: PUBREC, then PUBREL is awaited and PUBCOMP sent).
    pub async fn ack(&mut self, publish: &Publish) {
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                self.send(Packet::PubAck(Ack {
                    packet_id: id,
                    ..Ack::default()
                }))
                .await
            }
            (QoS::ExactlyOnce, Some(id)) => {
                self.send(Packet::PubRec(Ack {
                    packet_id: id,
                    ..Ack::default()
                }))
                .await;
                match self.recv().await {
                    Packet::PubRel(rel) if rel.packet_id == id => {}
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(Ack {
                    packet_id: id,
                    ..Ack::default()
                }))
                .await;
            }
            _ => {}
        }
    }

    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::default())).await;
        assert!(
            self.try_recv().await.is_none(),
            "the broker closes after DISCONNECT"
        );
    }
}

/// A well-behaved client on another address (127.0.0.2) is served: it connects, subscribes,
/// and gets back what it publishes at QoS 1.
pub async fn assert_served(addr: SocketAddr) {
    let mut good = TestClient::open_from(addr, "127.0.0.2", ProtocolVersion::V5).await;
    good.send(Packet::Connect(Box::new(connect_packet(
        ProtocolVersion::V5,
        "well-behaved",
    ))))
    .await;
    match good.recv().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{ack:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    good.subscribe(1, "good/echo", QoS::AtLeastOnce).await;
    good.send(Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "good/echo".into(),
        packet_id: Some(7),
        payload: Bytes::from_static(b"ping"),
        ..Publish::default()
    }))
    .await;
    let mut got_ack = false;
    let mut got_message = false;
    while !(got_ack && got_message) {
        match good.recv().await {
            Packet::PubAck(ack) if ack.packet_id == 7 => got_ack = true,
            Packet::Publish(p) if &p.payload[..] == b"ping" => {
                good.ack(&p).await;
                got_message = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
