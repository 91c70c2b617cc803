//! MQTT 5.0 behaviour seen from a client, over real sockets: what needs more than one
//! connection's protocol state (takeover, routing between clients, wills, shutdown) or the
//! socket itself. One connection's behaviours run on the protocol core in `protocol_v5.rs`.

mod common;

use bytes::Bytes;
use common::*;
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test]
async fn takeover_sends_disconnect_0x8e_to_the_first_connection() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut first = TestClient::connect(addr, V5, "twin").await;
    let _second = TestClient::connect(addr, V5, "twin").await;
    match first.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
}

#[tokio::test]
async fn overlapping_subscriptions_give_one_copy_with_highest_qos_and_every_identifier() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut sub = TestClient::connect(addr, V5, "sub").await;
    sub.subscribe_with(
        1,
        "o/+",
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
        Some(1),
    )
    .await;
    sub.subscribe_with(
        2,
        "o/#",
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            ..Default::default()
        },
        Some(2),
    )
    .await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    p.publish("o/x", b"m", QoS::ExactlyOnce, false, 1).await;
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    sub.expect_nothing().await;
}

#[tokio::test]
async fn no_local_and_retain_as_published_are_honoured() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    c.subscribe_with(
        1,
        "nl",
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            ..Default::default()
        },
        None,
    )
    .await;
    c.subscribe_with(
        2,
        "rap",
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            retain_as_published: true,
            ..Default::default()
        },
        None,
    )
    .await;
    c.publish("nl", b"own", QoS::AtLeastOnce, false, 1).await;
    c.publish("rap", b"kept", QoS::AtLeastOnce, true, 2).await;
    let got = c.recv_publish().await;
    assert_eq!((got.topic.as_str(), got.retain), ("rap", true));
    c.expect_nothing().await;
}

#[tokio::test]
async fn retain_handling_1_sends_retained_only_for_a_new_subscription_and_2_never() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    p.publish("rh", b"r", QoS::AtLeastOnce, true, 1).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    let if_new = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_handling: RetainHandling::SendIfNew,
        ..Default::default()
    };
    c.subscribe_with(1, "rh", if_new, None).await;
    assert_eq!(&c.recv_publish().await.payload[..], b"r");
    c.subscribe_with(2, "rh", if_new, None).await;
    c.expect_nothing().await;
    let never = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_handling: RetainHandling::DoNotSend,
        ..Default::default()
    };
    c.subscribe_with(3, "#", never, None).await;
    c.expect_nothing().await;
}

#[tokio::test]
async fn properties_pass_through_and_message_expiry_counts_down() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut sub = TestClient::connect(addr, V5, "sub").await;
    sub.subscribe(1, "req", QoS::AtLeastOnce).await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    let properties = PublishProperties {
        payload_format_indicator: Some(true),
        message_expiry_interval: Some(100),
        response_topic: Some("resp/1".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("a".into(), "3".into()),
        ],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let publish = Publish {
        qos: QoS::AtLeastOnce,
        topic: "req".into(),
        packet_id: Some(1),
        properties: properties.clone(),
        payload: "hi".into(),
        ..Default::default()
    };
    p.publish_packet(publish).await;
    let got = sub.recv_publish().await;
    let expiry = got
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!((98..=100).contains(&expiry), "remaining expiry {expiry}");
    let mut expected = properties;
    expected.message_expiry_interval = got.properties.message_expiry_interval;
    assert_eq!(got.properties, expected);
}

#[tokio::test]
async fn packet_over_the_brokers_maximum_is_refused_with_0x95() {
    let (_server, addr) = start_broker(|c| c.limits.max_packet_size = 128).await;
    let mut c = TestClient::connect(addr, V5, "big").await;
    c.publish("t", &[0u8; 200], QoS::AtMostOnce, false, 1).await;
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::PACKET_TOO_LARGE),
        other => panic!("expected DISCONNECT 0x95, got {other:?}"),
    }
}

#[tokio::test]
async fn disconnect_with_0x04_sends_the_will() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut watcher = TestClient::connect(addr, V5, "watcher").await;
    watcher.subscribe(1, "w", QoS::AtMostOnce).await;
    let mut connect = connect_packet(V5, "c");
    connect.will = Some(Will {
        topic: "w".into(),
        payload: "bye".into(),
        ..Will::default()
    });
    let (mut c, _) = TestClient::connect_with(addr, connect).await;
    c.send(Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL,
        ..Default::default()
    }))
    .await;
    assert!(c.expect_close().await.is_empty());
    assert_eq!(&watcher.recv_publish().await.payload[..], b"bye");
}

#[tokio::test]
async fn shutdown_sends_disconnect_0x8b() {
    let (server, addr) = start_broker(|_| {}).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    let stopping = tokio::spawn(server.shutdown());
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::SERVER_SHUTTING_DOWN),
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn enhanced_authentication_is_refused_with_0x8c_until_a_method_is_configured() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut connect = connect_packet(V5, "c");
    connect.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (mut c, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert!(c.expect_close().await.is_empty());
}
