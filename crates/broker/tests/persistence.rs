//! Persistence across a restart of the broker in this process: persistent sessions (with
//! their subscriptions, queued and in-flight messages and QoS 2 state) and retained messages
//! come back; clean sessions and `$SYS` do not; the store refuses to be opened twice. A
//! damaged store: `store_damage.rs`.
//!
//! The crash test (a real broker process killed with SIGKILL under load) is
//! `crates/tollgate/tests/crash.rs`.

mod common;

use std::path::Path;

use common::*;
use tollgate_broker::{BrokerConfig, FsyncMode, Server, StartError};
use tollgate_mqtt::*;

/// A 5.0 CONNECT resuming `client_id`'s session (clean start 0), expiring an hour after it
/// leaves.
fn resume(client_id: &str) -> Connect {
    Connect {
        clean_start: false,
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            ..ConnectProperties::default()
        },
        ..connect_packet(ProtocolVersion::V5, client_id)
    }
}

async fn restart(server: Server, dir: &Path) -> (Server, std::net::SocketAddr) {
    server.shutdown().await;
    start_broker(persistent(dir)).await
}

#[tokio::test]
async fn an_offline_sessions_messages_subscriptions_and_retained_messages_survive_a_restart() {
    let dir = TestDir::new("persist-restart");
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let (mut device, ack) = TestClient::connect_with(addr, resume("device-1")).await;
    assert!(!ack.session_present);
    device.subscribe(1, "cmd/#", QoS::AtLeastOnce).await;
    device.subscribe(2, "exact/#", QoS::ExactlyOnce).await;
    device.disconnect().await;

    let mut sender = TestClient::connect(addr, ProtocolVersion::V5, "sender").await;
    for (i, payload) in [&b"one"[..], b"two", b"three"].into_iter().enumerate() {
        let reason = sender
            .publish("cmd/a", payload, QoS::AtLeastOnce, false, i as u16 + 1)
            .await;
        assert_eq!(reason, ReasonCode::SUCCESS);
    }
    assert_eq!(
        sender
            .publish("exact/b", b"once", QoS::ExactlyOnce, false, 9)
            .await,
        ReasonCode::SUCCESS
    );
    sender
        .publish("config/plant", b"v2", QoS::AtLeastOnce, true, 10)
        .await;
    sender.disconnect().await;

    let (server, addr) = restart(server, &dir.0).await;
    let (mut device, ack) = TestClient::connect_with(addr, resume("device-1")).await;
    assert!(ack.session_present, "the session came back");
    let mut got = Vec::new();
    for _ in 0..4 {
        let publish = device.recv_publish().await;
        got.push((publish.topic, publish.qos, publish.payload));
    }
    assert_eq!(
        got,
        vec![
            ("cmd/a".into(), QoS::AtLeastOnce, "one".into()),
            ("cmd/a".into(), QoS::AtLeastOnce, "two".into()),
            ("cmd/a".into(), QoS::AtLeastOnce, "three".into()),
            ("exact/b".into(), QoS::ExactlyOnce, "once".into()),
        ]
    );
    device.expect_nothing().await;

    // The subscriptions came back too: a new message is routed to the session.
    let mut sender = TestClient::connect(addr, ProtocolVersion::V5, "sender").await;
    sender
        .publish("cmd/a", b"four", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(&device.recv_publish().await.payload[..], b"four");

    // And the retained message.
    let mut reader = TestClient::connect(addr, ProtocolVersion::V5, "reader").await;
    reader.subscribe(1, "config/#", QoS::AtLeastOnce).await;
    let retained = reader.recv_publish().await;
    assert_eq!((retained.retain, &retained.payload[..]), (true, &b"v2"[..]));
    server.shutdown().await;
}

#[tokio::test]
async fn acknowledged_messages_are_taken_from_the_store_and_not_delivered_again() {
    let dir = TestDir::new("persist-acked");
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let (mut device, _) = TestClient::connect_with(addr, resume("device-2")).await;
    device.subscribe(1, "t/#", QoS::ExactlyOnce).await;
    let mut sender = TestClient::connect(addr, ProtocolVersion::V5, "sender").await;
    sender
        .publish("t/1", b"a", QoS::AtLeastOnce, false, 1)
        .await;
    sender
        .publish("t/2", b"b", QoS::ExactlyOnce, false, 2)
        .await;
    assert_eq!(&device.recv_publish().await.payload[..], b"a");
    assert_eq!(&device.recv_publish().await.payload[..], b"b");
    device.disconnect().await;
    sender.disconnect().await;

    let (server, addr) = restart(server, &dir.0).await;
    let (mut device, ack) = TestClient::connect_with(addr, resume("device-2")).await;
    assert!(ack.session_present);
    device.expect_nothing().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_qos2_message_past_pubrec_is_released_not_sent_again_after_a_restart() {
    let dir = TestDir::new("persist-pubrel");
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let (mut device, _) = TestClient::connect_with(addr, resume("device-3")).await;
    device.subscribe(1, "t", QoS::ExactlyOnce).await;
    let mut sender = TestClient::connect(addr, ProtocolVersion::V5, "sender").await;
    sender.publish("t", b"x", QoS::ExactlyOnce, false, 1).await;
    let publish = match device.recv().await {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    let id = publish.packet_id.unwrap();
    device
        .send(Packet::PubRec(Ack {
            packet_id: id,
            ..Ack::default()
        }))
        .await;
    match device.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    // The device goes away before PUBCOMP.
    drop(device);
    sender.disconnect().await;

    let (server, addr) = restart(server, &dir.0).await;
    let (mut device, ack) = TestClient::connect_with(addr, resume("device-3")).await;
    assert!(ack.session_present);
    match device.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, id, "the same flow, released again"),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    device
        .send(Packet::PubComp(Ack {
            packet_id: id,
            ..Ack::default()
        }))
        .await;
    device.expect_nothing().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_incoming_qos2_message_is_not_routed_twice_when_resent_after_a_restart() {
    let dir = TestDir::new("persist-qos2-in");
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let (mut device, _) = TestClient::connect_with(addr, resume("device-4")).await;
    device.subscribe(1, "t", QoS::ExactlyOnce).await;
    device.disconnect().await;
    let (mut sender, _) = TestClient::connect_with(addr, resume("sender-4")).await;
    sender
        .send(Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: "t".into(),
            packet_id: Some(7),
            payload: "only once".into(),
            ..Publish::default()
        }))
        .await;
    assert!(matches!(sender.recv().await, Packet::PubRec(a) if a.packet_id == 7));
    // The sender goes before PUBREL.
    drop(sender);

    let (server, addr) = restart(server, &dir.0).await;
    let (mut sender, ack) = TestClient::connect_with(addr, resume("sender-4")).await;
    assert!(ack.session_present);
    sender
        .send(Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            topic: "t".into(),
            packet_id: Some(7),
            payload: "only once".into(),
            ..Publish::default()
        }))
        .await;
    assert!(matches!(sender.recv().await, Packet::PubRec(a) if a.packet_id == 7));
    sender
        .send(Packet::PubRel(Ack {
            packet_id: 7,
            ..Ack::default()
        }))
        .await;
    assert!(matches!(sender.recv().await, Packet::PubComp(a) if a.packet_id == 7));
    let (mut device, _) = TestClient::connect_with(addr, resume("device-4")).await;
    assert_eq!(&device.recv_publish().await.payload[..], b"only once");
    device.expect_nothing().await;
    server.shutdown().await;
}

#[tokio::test]
async fn with_the_disk_full_publishes_that_need_storage_are_refused_and_the_rest_served() {
    let dir = TestDir::new("persist-full");
    // No file system has this much room left: the store counts as full from the start.
    let (_server, addr) = start_broker(|config: &mut BrokerConfig| {
        config.persistence.path = Some(dir.0.clone());
        config.persistence.min_free_bytes = Some(u64::MAX);
    })
    .await;
    let mut reader = TestClient::connect(addr, ProtocolVersion::V5, "reader").await;
    reader.subscribe(1, "t/#", QoS::AtLeastOnce).await;
    let mut sender = TestClient::connect(addr, ProtocolVersion::V5, "sender").await;
    assert_eq!(
        sender
            .publish("t/1", b"q1", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::QUOTA_EXCEEDED
    );
    assert_eq!(
        sender
            .publish("t/2", b"q2", QoS::ExactlyOnce, false, 2)
            .await,
        ReasonCode::QUOTA_EXCEEDED
    );
    sender
        .publish("t/0", b"q0", QoS::AtMostOnce, false, 0)
        .await;
    let got = reader.recv_publish().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("t/0", &b"q0"[..]));
    reader.expect_nothing().await;

    // 3.1.1 has no negative acknowledgement: the publisher is disconnected.
    let mut old = TestClient::connect(addr, ProtocolVersion::V3_1_1, "old").await;
    old.send(Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "t/3".into(),
        packet_id: Some(3),
        payload: "q3".into(),
        ..Publish::default()
    }))
    .await;
    let before_close = old.expect_close().await;
    assert!(
        !before_close.iter().any(|p| matches!(p, Packet::PubAck(_))),
        "{before_close:?}"
    );
    // Others still connect, and QoS 0 still flows.
    let mut late = TestClient::connect(addr, ProtocolVersion::V3_1_1, "late").await;
    late.publish("t/4", b"q4", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&reader.recv_publish().await.payload[..], b"q4");
}

#[tokio::test]
async fn clean_sessions_and_sys_topics_are_not_kept() {
    let dir = TestDir::new("persist-clean");
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let mut clean = TestClient::connect(addr, ProtocolVersion::V5, "clean").await;
    clean.subscribe(1, "t", QoS::AtLeastOnce).await;
    drop(clean);
    let (server, addr) = restart(server, &dir.0).await;
    let (_, ack) = TestClient::connect_with(addr, resume("clean")).await;
    assert!(!ack.session_present, "a clean session is not restored");
    assert_eq!(server.broker().session_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_is_ended_at_start_and_its_will_published() {
    let dir = TestDir::new("persist-expired");
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let (mut watcher, _) = TestClient::connect_with(addr, resume("watcher")).await;
    watcher.subscribe(1, "gone/#", QoS::AtLeastOnce).await;
    watcher.disconnect().await;
    let mut connect = resume("short-lived");
    connect.properties.session_expiry_interval = Some(1);
    connect.will = Some(Will {
        topic: "gone/short-lived".into(),
        payload: "bye".into(),
        qos: QoS::AtLeastOnce,
        properties: WillProperties {
            will_delay_interval: Some(1),
            ..WillProperties::default()
        },
        ..Will::default()
    });
    let (mut device, _) = TestClient::connect_with(addr, connect).await;
    // DISCONNECT 0x04 asks for the will, which then waits for its delay; the broker closes
    // the socket once the session is detached.
    device
        .send(Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::DISCONNECT_WITH_WILL,
            ..Disconnect::default()
        }))
        .await;
    assert!(device.try_recv().await.is_none());
    server.shutdown().await;
    // The session's expiry and the will's delay run out while the broker is down. The store
    // counts in whole seconds: two seconds later both are past.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (server, addr) = start_broker(persistent(&dir.0)).await;
    let (_, ack) = TestClient::connect_with(addr, resume("short-lived")).await;
    assert!(
        !ack.session_present,
        "the session expired while the broker was down"
    );
    let (mut watcher, _) = TestClient::connect_with(addr, resume("watcher")).await;
    let will = watcher.recv_publish().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("gone/short-lived", &b"bye"[..])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_store_in_use_is_refused() {
    let dir = TestDir::new("persist-damaged");
    let (server, _) = start_broker(persistent(&dir.0)).await;
    let mut second = anonymous_config();
    second.persistence.path = Some(dir.0.clone());
    match Server::start(second).await {
        Err(StartError::Store(e)) => assert!(e.to_string().contains("cannot open"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second broker opened a store in use"),
    }
    server.shutdown().await;
    assert!(dir.0.exists(), "the store in use was moved aside");
}

#[tokio::test]
async fn fsync_modes_interval_and_never_keep_what_was_written_across_a_clean_restart() {
    for (tag, mode) in [
        ("interval", FsyncMode::Interval),
        ("never", FsyncMode::Never),
    ] {
        let dir = TestDir::new(&format!("persist-{tag}"));
        let with_mode = |config: &mut BrokerConfig| {
            config.persistence.path = Some(dir.0.clone());
            config.persistence.fsync = mode;
        };
        let (server, addr) = start_broker(with_mode).await;
        let mut sender = TestClient::connect(addr, ProtocolVersion::V3_1_1, "sender").await;
        sender
            .publish("kept", b"yes", QoS::AtLeastOnce, true, 1)
            .await;
        server.shutdown().await;
        let (server, addr) = start_broker(with_mode).await;
        let mut reader = TestClient::connect(addr, ProtocolVersion::V3_1_1, "reader").await;
        reader.subscribe(1, "kept", QoS::AtLeastOnce).await;
        assert_eq!(&reader.recv_publish().await.payload[..], b"yes", "{tag}");
        server.shutdown().await;
    }
}
