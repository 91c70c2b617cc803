//! Attacks, scaled down: each asserts the bound that stops it, that the broker is still
//! alive, and that a well-behaved client on another address is served meanwhile.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

fn subscribe_packet(filters: impl IntoIterator<Item = String>) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: SubscribeProperties::default(),
        subscriptions: filters
            .into_iter()
            .map(|filter| Subscription {
                filter,
                options: SubscriptionOptions::default(),
            })
            .collect(),
    })
}

async fn publish_retained(addr: std::net::SocketAddr, count: usize) {
    let mut p = TestClient::connect(addr, V5, "retainer").await;
    for i in 0..count {
        let reason = p
            .publish_packet(Publish {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: format!("r/{i}"),
                packet_id: Some(1),
                payload: Bytes::from(vec![b'x'; 100]),
                ..Publish::default()
            })
            .await;
        assert!(!reason.is_error(), "{reason:?}");
    }
}

#[tokio::test]
async fn a_retained_will_65_000_levels_deep_is_refused_and_hash_subscribers_are_served() {
    let (server, addr) = start_broker(|_| {}).await;
    for version in [V5, V311] {
        let mut connect = connect_packet(version, "deep");
        connect.will = Some(Will {
            topic: "/".repeat(65_000),
            payload: "gone".into(),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: WillProperties::default(),
        });
        let (mut c, ack) = TestClient::connect_with(addr, connect).await;
        let expected = if version == V5 {
            ReasonCode::TOPIC_NAME_INVALID
        } else {
            ConnectReturnCode::NOT_AUTHORIZED
        };
        assert_eq!(ack.reason_code, expected);
        assert!(c.try_recv().await.is_none(), "closed after the refusal");
    }
    let mut all = TestClient::connect(addr, V5, "all").await;
    all.subscribe(1, "#", QoS::AtMostOnce).await;
    all.expect_nothing().await;
    assert_eq!(
        server
            .broker()
            .stats
            .retained_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_served(addr).await;
}

#[tokio::test]
async fn a_will_at_the_level_limit_is_stored_and_delivered() {
    let (_server, addr) = start_broker(|c| c.limits.max_topic_levels = 8).await;
    let topic = "a/b/c/d/e/f/g/h".to_owned();
    let mut connect = connect_packet(V5, "will");
    connect.will = Some(Will {
        topic: topic.clone(),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    let (c, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    drop(c);
    let mut all = TestClient::connect(addr, V5, "all").await;
    all.subscribe(1, "#", QoS::AtMostOnce).await;
    // The will is published when the broker sees the close: wait for it, or its retained copy.
    let got = all.recv_publish().await;
    assert_eq!(got.topic, topic);
}

#[tokio::test]
async fn one_subscribe_with_100_000_copies_of_hash_is_closed_before_it_costs_anything() {
    let (server, addr) = start_broker(|c| c.limits.max_packet_size = 1024 * 1024).await;
    publish_retained(addr, 200).await;
    let mut attacker = TestClient::connect(addr, V5, "attacker").await;
    attacker
        .send(subscribe_packet((0..100_000).map(|_| "#".to_owned())))
        .await;
    match attacker.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected DISCONNECT 0x97, got {other:?}"),
    }
    let broker = server.broker();
    assert!(
        broker.memory.peak() < 4 * 1024 * 1024,
        "peak charged {} bytes",
        broker.memory.peak()
    );
    assert_served(addr).await;
}

#[tokio::test]
async fn a_filter_repeated_in_one_subscribe_is_handled_once() {
    let (_server, addr) = start_broker(|_| {}).await;
    publish_retained(addr, 20).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    c.send(subscribe_packet(
        (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    "#".to_owned()
                } else {
                    "r/+".to_owned()
                }
            })
            .collect::<Vec<_>>(),
    ))
    .await;
    match c.recv().await {
        Packet::SubAck(ack) => assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_0; 200]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // Each distinct filter sends the retained messages once: 20 for `#`, 20 for `r/+`.
    for _ in 0..40 {
        c.recv_publish().await;
    }
    c.expect_nothing().await;
}

#[tokio::test]
async fn retained_messages_stop_at_the_session_queue_bound() {
    let (server, addr) = start_broker(|c| c.limits.max_queued_messages = 10).await;
    publish_retained(addr, 200).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    c.subscribe(1, "#", QoS::AtMostOnce).await;
    for _ in 0..10 {
        c.recv_publish().await;
    }
    c.expect_nothing().await;
    assert!(server.broker().memory.used() < 1024 * 1024);
    assert_served(addr).await;
}

#[tokio::test]
async fn an_offline_session_holds_at_most_max_queued_bytes() {
    let (server, addr) = start_broker(|c| c.limits.max_queued_bytes = 1024 * 1024).await;
    let mut connect = connect_packet(V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut away, _) = TestClient::connect_with(addr, connect).await;
    away.subscribe(1, "q/#", QoS::AtLeastOnce).await;
    away.disconnect().await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    let mut accepted = 0;
    for i in 0..64u16 {
        let reason = p
            .publish_packet(Publish {
                qos: QoS::AtLeastOnce,
                topic: "q/x".into(),
                packet_id: Some(i + 1),
                payload: Bytes::from(vec![0u8; 64 * 1024]),
                ..Publish::default()
            })
            .await;
        if reason == ReasonCode::QUOTA_EXCEEDED {
            break;
        }
        assert_eq!(reason, ReasonCode::SUCCESS);
        accepted += 1;
    }
    assert!(
        (10..16).contains(&accepted),
        "1 MiB holds 15 messages of 64 KiB, not {accepted}"
    );
    assert!(server.broker().memory.used() < 2 * 1024 * 1024);
    assert_served(addr).await;
}

#[tokio::test]
async fn a_subscriber_that_never_reads_costs_at_most_its_bounds() {
    let (server, addr) = start_broker(|c| c.limits.max_queued_bytes = 1024 * 1024).await;
    // A subscriber with a small receive buffer that subscribes and then never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut sleeper, _) =
        TestClient::connect_over(Box::new(stream), connect_packet(V5, "sleeper")).await;
    sleeper.subscribe(1, "s/#", QoS::AtLeastOnce).await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    let mut refused = false;
    for i in 0..1000u16 {
        let reason = p
            .publish_packet(Publish {
                qos: QoS::AtLeastOnce,
                topic: "s/x".into(),
                packet_id: Some(i + 1),
                payload: Bytes::from(vec![0u8; 16 * 1024]),
                ..Publish::default()
            })
            .await;
        if reason == ReasonCode::QUOTA_EXCEEDED {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the sleeper's queue filled up and the publisher was told"
    );
    let peak = server.broker().memory.peak();
    assert!(peak < 3 * 1024 * 1024, "peak charged {peak} bytes");
    assert_served(addr).await;
}

#[tokio::test]
async fn the_retained_store_is_bounded_in_bytes() {
    let (server, addr) = start_broker(|c| c.limits.max_retained_bytes = 256 * 1024).await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    let mut stored = 0;
    for i in 0..16 {
        let reason = p
            .publish_packet(Publish {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: format!("r/{i}"),
                packet_id: Some(1),
                payload: Bytes::from(vec![0u8; 32 * 1024]),
                ..Publish::default()
            })
            .await;
        if reason == ReasonCode::QUOTA_EXCEEDED {
            break;
        }
        stored += 1;
    }
    assert_eq!(
        stored, 7,
        "256 KiB holds seven 32 KiB messages and their topics"
    );
    let bytes = server
        .broker()
        .stats
        .retained_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(bytes <= 256 * 1024);
    // Clearing is always allowed.
    assert_eq!(
        p.publish("r/0", b"", QoS::AtLeastOnce, true, 2).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_served(addr).await;
}

#[tokio::test]
async fn under_memory_pressure_qos0_is_shed_then_publishes_then_connections_are_refused() {
    use tollgate_broker::memory::Overload;
    let (server, addr) = start_broker(|c| {
        c.limits.max_memory = 1024 * 1024;
        c.limits.max_queued_bytes = 64 * 1024 * 1024;
    })
    .await;
    let broker = server.broker();
    let mut connect = connect_packet(V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    connect.properties.receive_maximum = Some(1);
    let (mut away, _) = TestClient::connect_with(addr, connect).await;
    away.subscribe(1, "m/#", QoS::AtLeastOnce).await;
    away.disconnect().await;
    let mut online = TestClient::connect(addr, V5, "online").await;
    online.subscribe(1, "zero", QoS::AtMostOnce).await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    // Fill the offline session's queue until publishes are refused.
    let mut refused_at = None;
    for i in 0..100u16 {
        let reason = p
            .publish_packet(Publish {
                qos: QoS::AtLeastOnce,
                topic: "m/x".into(),
                packet_id: Some(i + 1),
                payload: Bytes::from(vec![0u8; 32 * 1024]),
                ..Publish::default()
            })
            .await;
        if broker.memory.count(Overload::ShedQos0) == 0 && broker.memory.used() >= 750 * 1024 {
            // Past 70 %: a QoS 0 message to an online subscriber is shed.
            p.publish("zero", b"shed", QoS::AtMostOnce, false, 0).await;
            online.expect_nothing().await;
            assert_eq!(broker.memory.count(Overload::ShedQos0), 1);
        }
        if reason == ReasonCode::QUOTA_EXCEEDED {
            refused_at = Some(broker.memory.used());
            break;
        }
    }
    // (Measured after the refusal: the refused publish's own buffer is given back by then.)
    let used = refused_at.expect("publishes were refused");
    assert!(used >= 1024 * 1024 * 80 / 100, "refused at {used} bytes");
    assert_eq!(broker.memory.count(Overload::ShedQos0), 1);
    assert!(broker.memory.count(Overload::PublishRefused) >= 1);
    // Connections are still taken until the budget is full; then refused with 0x97 / 3.
    let mut kept = Vec::new();
    let refusal = loop {
        let (c, ack) =
            TestClient::connect_with(addr, connect_packet(V5, &format!("c{}", kept.len()))).await;
        if ack.reason_code != ReasonCode::SUCCESS {
            break ack.reason_code;
        }
        kept.push(c);
        assert!(kept.len() < 1000, "connections were never refused");
    };
    assert_eq!(refusal, ReasonCode::QUOTA_EXCEEDED);
    let (_, ack) = TestClient::connect_with(addr, connect_packet(V311, "old")).await;
    assert_eq!(ack.reason_code, ConnectReturnCode::SERVER_UNAVAILABLE);
    assert!(broker.memory.count(Overload::ConnectionRefused) >= 2);
    // Pressure ends as memory is given back: the offline session takes its messages.
    drop(kept);
    let mut connect = connect_packet(V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut away, ack) = TestClient::connect_with(addr, connect).await;
    assert!(ack.session_present);
    let first = away.recv_publish().await;
    assert_eq!(first.payload.len(), 32 * 1024);
}

#[tokio::test]
async fn websocket_pings_never_read_pause_reading_instead_of_piling_up_pongs() {
    let (server, addr) = start_broker(|c| {
        let mut plain = c.listeners[0].clone();
        plain.name = Some("plain".into());
        c.listeners[0].websocket = Some(Default::default());
        c.listeners.push(plain);
    })
    .await;
    let plain = server.local_addrs()[1];
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").await.unwrap();
    let mut response = [0u8; 256];
    let n = stream.read(&mut response).await.unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 101"));
    // 125-byte pings, masked, 64 MiB of them, never reading a pong.
    let mut ping = BytesMut::new();
    ping.put_u8(0x89);
    ping.put_u8(0x80 | 125);
    ping.put_slice(&[0, 0, 0, 0]);
    ping.put_slice(&[b'p'; 125]);
    let mut flood = BytesMut::with_capacity(ping.len() * 8192);
    for _ in 0..8192 {
        flood.put_slice(&ping);
    }
    let flood = flood.freeze();
    let writer = tokio::spawn(async move {
        for _ in 0..64 {
            if stream.write_all(&flood).await.is_err() {
                return;
            }
        }
    });
    // The attacker gives up after a while; if reading did not pause, the broker would by then
    // have read all 64 MiB and queued as many pongs.
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
    let peak = server.broker().memory.peak();
    assert!(peak < 2 * 1024 * 1024, "peak charged {peak} bytes");
    assert_served(plain).await;
}

#[tokio::test]
async fn a_takeover_closes_the_old_connection_at_once_and_delivers_to_the_new_one() {
    let (_server, addr) = start_broker(|_| {}).await;
    for (version, id) in [(V5, "device5"), (V311, "device311")] {
        let mut connect = connect_packet(version, id);
        connect.clean_start = false;
        connect.properties.session_expiry_interval = Some(600);
        let (mut old, _) = TestClient::connect_with(addr, connect.clone()).await;
        old.subscribe(1, "cmd", QoS::AtLeastOnce).await;
        let (mut new, ack) = TestClient::connect_with(addr, connect).await;
        assert!(ack.session_present);
        let closing = old.expect_close().await;
        if version == V5 {
            match closing.as_slice() {
                [Packet::Disconnect(d)] => {
                    assert_eq!(d.reason_code, ReasonCode::SESSION_TAKEN_OVER)
                }
                other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
            }
        } else {
            assert!(closing.is_empty(), "{closing:?}");
        }
        let mut p = TestClient::connect(addr, version, "p").await;
        p.publish("cmd", b"go", QoS::AtLeastOnce, false, 1).await;
        // No PINGREQ first: the message must arrive on its own.
        match new.recv().await {
            Packet::Publish(got) => assert_eq!(&got.payload[..], b"go"),
            other => panic!("expected the message, got {other:?}"),
        }
        p.disconnect().await;
        new.disconnect().await;
    }
}

#[tokio::test]
async fn taking_over_a_session_that_was_not_persistent_starts_afresh_and_sends_the_old_will() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut watcher = TestClient::connect(addr, V5, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtMostOnce).await;
    for version in [V5, V311] {
        let mut connect = connect_packet(version, "fleeting");
        // 3.1.1 clean session 1 / 5.0 session expiry 0: the session ends with its connection.
        connect.will = Some(Will {
            topic: "wills/fleeting".into(),
            payload: "gone".into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        let (mut old, _) = TestClient::connect_with(addr, connect).await;
        old.subscribe(1, "x", QoS::AtLeastOnce).await;
        let mut again = connect_packet(version, "fleeting");
        again.clean_start = false;
        let (_new, ack) = TestClient::connect_with(addr, again).await;
        assert!(
            !ack.session_present,
            "{version:?}: nothing was left to resume"
        );
        old.expect_close().await;
        let will = watcher.recv_publish().await;
        assert_eq!(will.topic, "wills/fleeting");
    }
}

#[tokio::test]
async fn no_packet_exceeds_the_clients_maximum_packet_size_not_even_connack() {
    let (_server, addr) = start_broker(|_| {}).await;
    // CONNACK with its properties is larger than 8 bytes: the connection closes without it.
    let mut tiny = connect_packet(V5, "");
    tiny.properties.maximum_packet_size = Some(8);
    let mut c = TestClient::open(addr, V5).await;
    c.send(Packet::Connect(Box::new(tiny))).await;
    assert!(c.try_recv().await.is_none(), "closed without CONNACK");
    // A SUBACK that does not fit closes the connection with DISCONNECT 0x95.
    let mut small = connect_packet(V5, "small");
    small.properties.maximum_packet_size = Some(64);
    let (mut c, ack) = TestClient::connect_with(addr, small).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    c.send(subscribe_packet((0..100).map(|i| format!("t/{i}"))))
        .await;
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::PACKET_TOO_LARGE),
        other => panic!("expected DISCONNECT 0x95, got {other:?}"),
    }
    assert_served(addr).await;
}

#[tokio::test]
async fn a_sessions_subscriptions_are_bounded_in_bytes() {
    let (_server, addr) = start_broker(|c| c.limits.max_subscription_bytes = 64 * 1024).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    let mut refused = None;
    for i in 0..10u16 {
        let filter = format!("{i}/{}", "x".repeat(10_000));
        let codes = c
            .subscribe(i + 1, &filter, QoS::AtMostOnce)
            .await
            .reason_codes;
        if codes[0] == ReasonCode::QUOTA_EXCEEDED {
            refused = Some(i);
            break;
        }
    }
    assert_eq!(refused, Some(6), "six filters of 10 KB fit in 64 KiB");
    assert_served(addr).await;
}

#[tokio::test]
async fn websocket_pages_from_other_origins_are_refused() {
    let (_server, addr) = start_broker(|c| {
        c.listeners[0].websocket = Some(tollgate_broker::WebSocketConfig {
            allowed_origins: Some(vec!["https://console.example.com".into()]),
            ..Default::default()
        });
    })
    .await;
    for (origin, status) in [
        ("https://evil.example", "HTTP/1.1 403"),
        ("https://console.example.com", "HTTP/1.1 101"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /mqtt HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = [0u8; 256];
        let n = stream.read(&mut response).await.unwrap();
        assert!(
            response[..n].starts_with(status.as_bytes()),
            "{origin}: {}",
            String::from_utf8_lossy(&response[..n])
        );
    }
}

#[tokio::test]
async fn a_first_packet_that_is_not_connect_is_refused_at_its_first_byte() {
    let (server, addr) = start_broker(|c| c.limits.max_packet_size = 256 * 1024 * 1024).await;
    let mut c = TestClient::open(addr, V5).await;
    // A PUBLISH announcing ~243 MB, then a little of its body: nothing more is read.
    c.send_raw(&[0x30, 0xff, 0xff, 0xff, 0x73]).await;
    c.send_raw(&[0u8; 1024]).await;
    assert!(c.try_recv().await.is_none(), "closed without an answer");
    assert!(server.broker().memory.peak() < 1024 * 1024);
    assert_served(addr).await;
}

#[tokio::test]
async fn acknowledgements_for_the_wrong_step_close_and_stale_ones_are_harmless() {
    let (_server, addr) = start_broker(|_| {}).await;
    // (the QoS delivered, the wrong acknowledgement sent back)
    type WrongAck = (QoS, fn(u16) -> Packet);
    let wrong: [WrongAck; 3] = [
        (QoS::AtLeastOnce, |id| {
            Packet::PubComp(Ack {
                packet_id: id,
                ..Ack::default()
            })
        }),
        (QoS::ExactlyOnce, |id| {
            Packet::PubAck(Ack {
                packet_id: id,
                ..Ack::default()
            })
        }),
        (QoS::ExactlyOnce, |id| {
            Packet::PubComp(Ack {
                packet_id: id,
                ..Ack::default()
            })
        }),
    ];
    for (i, (qos, ack)) in wrong.into_iter().enumerate() {
        let mut sub = TestClient::connect(addr, V5, &format!("sub{i}")).await;
        sub.subscribe(1, "acks", qos).await;
        let mut p = TestClient::connect(addr, V5, &format!("pub{i}")).await;
        p.publish("acks", b"m", qos, false, 1).await;
        let id = match sub.recv().await {
            Packet::Publish(got) => got.packet_id.unwrap(),
            other => panic!("{other:?}"),
        };
        sub.send(ack(id)).await;
        match sub.expect_close().await.as_slice() {
            [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::PROTOCOL_ERROR),
            other => panic!("case {i}: expected DISCONNECT 0x82, got {other:?}"),
        }
    }
    // Stale ones: PUBACK and PUBCOMP ignored, PUBREC and PUBREL answered with success.
    let mut c = TestClient::connect(addr, V5, "stale").await;
    c.send(Packet::PubAck(Ack {
        packet_id: 9,
        ..Ack::default()
    }))
    .await;
    c.send(Packet::PubComp(Ack {
        packet_id: 9,
        ..Ack::default()
    }))
    .await;
    c.send(Packet::PubRec(Ack {
        packet_id: 9,
        ..Ack::default()
    }))
    .await;
    match c.recv().await {
        Packet::PubRel(rel) => {
            assert_eq!((rel.packet_id, rel.reason_code), (9, ReasonCode::SUCCESS))
        }
        other => panic!("{other:?}"),
    }
    c.send(Packet::PubRel(Ack {
        packet_id: 9,
        ..Ack::default()
    }))
    .await;
    match c.recv().await {
        Packet::PubComp(comp) => {
            assert_eq!((comp.packet_id, comp.reason_code), (9, ReasonCode::SUCCESS))
        }
        other => panic!("{other:?}"),
    }
    c.expect_nothing().await;
}
