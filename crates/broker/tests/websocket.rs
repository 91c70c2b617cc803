//! MQTT over WebSocket and secure WebSocket, driven by an independent WebSocket client
//! (tungstenite), over real sockets.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use futures_util::{SinkExt, StreamExt};
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tollgate_broker::{TlsConfig, WebSocketConfig};
use tollgate_mqtt::*;

/// An MQTT client speaking over a WebSocket.
struct WsClient<S> {
    ws: WebSocketStream<S>,
    buf: BytesMut,
    version: ProtocolVersion,
}

async fn ws_open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    url: &str,
    protocol: &str,
) -> Result<WebSocketStream<S>, String> {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        protocol
    );
    Ok(ws)
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    async fn connect(
        ws: WebSocketStream<S>,
        version: ProtocolVersion,
        client_id: &str,
    ) -> WsClient<S> {
        let mut client = WsClient {
            ws,
            buf: BytesMut::new(),
            version,
        };
        client
            .send(Packet::Connect(Box::new(connect_packet(
                version, client_id,
            ))))
            .await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, self.version, &mut out).unwrap();
        self.ws.send(Message::Binary(out.freeze())).await.unwrap();
    }

    /// The next packet; `None` once the broker closed the WebSocket.
    async fn recv(&mut self) -> Option<Packet> {
        let decoder = Decoder {
            role: Role::Client,
            version: self.version,
            maximum_packet_size: 1 << 20,
        };
        loop {
            if let Some(packet) = decoder.decode(&mut self.buf).unwrap() {
                return Some(packet);
            }
            match tokio::time::timeout(PACKET_TIMEOUT, self.ws.next())
                .await
                .expect("a frame within the timeout")
            {
                Some(Ok(Message::Binary(data))) => self.buf.extend_from_slice(&data),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            }
        }
    }
}

async fn pub_sub_round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut sub: WsClient<S>,
    mut publisher: WsClient<S>,
) {
    sub.send(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Default::default(),
        subscriptions: vec![Subscription {
            filter: "ws/#".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
    }))
    .await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    publisher
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            topic: "ws/1".into(),
            packet_id: Some(7),
            payload: Bytes::from_static(b"framed"),
            ..Default::default()
        }))
        .await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(a)) if a.packet_id == 7));
    match sub.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!((&p.topic[..], &p.payload[..]), ("ws/1", &b"framed"[..]))
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test]
async fn mqtt_over_websocket_in_311_and_5() {
    let (_server, addr) = start_broker(|c| {
        c.listeners[0].websocket = Some(WebSocketConfig {
            path: Some("/mqtt".into()),
            ..WebSocketConfig::default()
        })
    })
    .await;
    let url = format!("ws://{addr}/mqtt");
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let sub = WsClient::connect(
            ws_open(TcpStream::connect(addr).await.unwrap(), &url, "mqtt")
                .await
                .unwrap(),
            version,
            "ws-sub",
        )
        .await;
        let publisher = WsClient::connect(
            ws_open(TcpStream::connect(addr).await.unwrap(), &url, "mqtt")
                .await
                .unwrap(),
            version,
            "ws-pub",
        )
        .await;
        pub_sub_round_trip(sub, publisher).await;
    }
}

#[tokio::test]
async fn a_packet_split_across_frames_is_one_packet() {
    let (_server, addr) =
        start_broker(|c| c.listeners[0].websocket = Some(WebSocketConfig::default())).await;
    let mut ws = ws_open(
        TcpStream::connect(addr).await.unwrap(),
        &format!("ws://{addr}/any/path"),
        "mqttv3.1",
    )
    .await
    .unwrap();
    let mut connect = BytesMut::new();
    encode(
        &Packet::Connect(Box::new(connect_packet(ProtocolVersion::V3_1, "split"))),
        ProtocolVersion::V3_1,
        &mut connect,
    )
    .unwrap();
    let second = connect.split_off(5);
    ws.send(Message::Binary(connect.freeze())).await.unwrap();
    ws.send(Message::Binary(second.freeze())).await.unwrap();
    let mut client = WsClient {
        ws,
        buf: BytesMut::new(),
        version: ProtocolVersion::V3_1,
    };
    assert!(
        matches!(client.recv().await, Some(Packet::ConnAck(a)) if a.reason_code == ReasonCode::SUCCESS)
    );
}

#[tokio::test]
async fn wrong_path_and_text_frames_are_refused() {
    let (_server, addr) = start_broker(|c| {
        c.listeners[0].websocket = Some(WebSocketConfig {
            path: Some("/mqtt".into()),
            ..WebSocketConfig::default()
        })
    })
    .await;
    let err = ws_open(
        TcpStream::connect(addr).await.unwrap(),
        &format!("ws://{addr}/wrong"),
        "mqtt",
    )
    .await
    .unwrap_err();
    assert!(err.contains("404"), "{err}");
    let mut ws = ws_open(
        TcpStream::connect(addr).await.unwrap(),
        &format!("ws://{addr}/mqtt"),
        "mqtt",
    )
    .await
    .unwrap();
    ws.send(Message::Text("CONNECT".into())).await.unwrap();
    match tokio::time::timeout(PACKET_TIMEOUT, ws.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1003),
        other => panic!("expected a close with 1003, got {other:?}"),
    }
}

#[tokio::test]
async fn mqtt_over_secure_websocket() {
    let dir = std::env::temp_dir().join(format!("tollgate-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let tls = TlsConfig {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: None,
        client_certs: Default::default(),
        crl: vec![],
        identity: Default::default(),
        identity_as: Default::default(),
        reload_interval: Duration::from_secs(0),
    };
    let (_server, addr) = start_broker(|c| {
        c.listeners[0].websocket = Some(WebSocketConfig {
            path: Some("/mqtt".into()),
            ..WebSocketConfig::default()
        });
        c.listeners[0].tls = Some(tls);
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let open = |addr: SocketAddr| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let tls = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            ws_open(tls, "wss://localhost/mqtt", "mqtt").await.unwrap()
        }
    };
    let sub = WsClient::connect(open(addr).await, ProtocolVersion::V5, "wss-sub").await;
    let publisher = WsClient::connect(open(addr).await, ProtocolVersion::V5, "wss-pub").await;
    pub_sub_round_trip(sub, publisher).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
