//! The bounds that keep one client from growing the broker's memory, and the `$SYS` tree.

mod common;

use common::*;
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

#[tokio::test]
async fn full_offline_queue_drops_and_tells_a_v5_publisher_0x97() {
    let (_server, addr) = start_broker(|c| c.limits.max_queued_messages = 2).await;
    let mut connect = connect_packet(V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut away, _) = TestClient::connect_with(addr, connect.clone()).await;
    away.subscribe(1, "q", QoS::AtLeastOnce).await;
    away.disconnect().await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    assert_eq!(
        p.publish("q", b"1", QoS::AtLeastOnce, false, 1).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        p.publish("q", b"2", QoS::AtLeastOnce, false, 2).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        p.publish("q", b"3", QoS::AtLeastOnce, false, 3).await,
        ReasonCode::QUOTA_EXCEEDED
    );
    let (mut away, _) = TestClient::connect_with(addr, connect).await;
    assert_eq!(&away.recv_publish().await.payload[..], b"1");
    assert_eq!(&away.recv_publish().await.payload[..], b"2");
    away.expect_nothing().await;
}

#[tokio::test]
async fn subscriptions_per_session_are_bounded() {
    let (_server, addr) = start_broker(|c| c.limits.max_subscriptions_per_session = 2).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    c.subscribe(1, "a", QoS::AtMostOnce).await;
    c.subscribe(2, "b", QoS::AtMostOnce).await;
    assert_eq!(
        c.subscribe(3, "c", QoS::AtMostOnce).await.reason_codes,
        vec![ReasonCode::QUOTA_EXCEEDED]
    );
    assert_eq!(
        c.subscribe(4, "a", QoS::AtLeastOnce).await.reason_codes,
        vec![ReasonCode::GRANTED_QOS_1],
        "replacing is allowed"
    );
    let mut old = TestClient::connect(addr, V311, "old").await;
    old.subscribe(1, "a", QoS::AtMostOnce).await;
    old.subscribe(2, "b", QoS::AtMostOnce).await;
    assert_eq!(
        old.subscribe(3, "c", QoS::AtMostOnce).await.reason_codes,
        vec![ReasonCode::UNSPECIFIED_ERROR]
    );
}

#[tokio::test]
async fn topics_deeper_than_the_limit_are_refused() {
    let (_server, addr) = start_broker(|c| c.limits.max_topic_levels = 4).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    assert_eq!(
        c.subscribe(1, "a/b/c/d/e", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::TOPIC_FILTER_INVALID]
    );
    assert_eq!(
        c.subscribe(2, "a/b/c/d", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    c.publish("a/b/c/d/e", b"deep", QoS::AtMostOnce, false, 1)
        .await;
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::TOPIC_NAME_INVALID),
        other => panic!("expected DISCONNECT 0x90, got {other:?}"),
    }
}

#[tokio::test]
async fn a_very_deep_topic_is_refused_without_harm() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    let deep = "/".repeat(60_000);
    c.publish_packet(Publish {
        topic: deep,
        retain: true,
        payload: "x".into(),
        ..Default::default()
    })
    .await;
    assert!(matches!(
        c.expect_close().await.as_slice(),
        [Packet::Disconnect(_)]
    ));
    TestClient::connect(addr, V5, "still-serving")
        .await
        .expect_nothing()
        .await;
}

#[tokio::test]
async fn retained_store_is_bounded_but_replacing_is_allowed() {
    let (_server, addr) = start_broker(|c| c.limits.max_retained_messages = 1).await;
    let mut p = TestClient::connect(addr, V5, "p").await;
    assert_eq!(
        p.publish("r/1", b"a", QoS::AtLeastOnce, true, 1).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        p.publish("r/2", b"b", QoS::AtLeastOnce, true, 2).await,
        ReasonCode::QUOTA_EXCEEDED
    );
    assert_eq!(
        p.publish("r/1", b"c", QoS::AtLeastOnce, true, 3).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    let mut s = TestClient::connect(addr, V5, "s").await;
    s.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    let got = s.recv_publish().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("r/1", &b"c"[..]));
    s.expect_nothing().await;
}

#[tokio::test]
async fn sys_topics_report_counters_and_version() {
    let (server, addr) =
        start_broker(|c| c.sys_interval = std::time::Duration::from_secs(3600)).await;
    let mut c = TestClient::connect(addr, V311, "c").await;
    // The interval is long: publish the counters now rather than wait for it.
    tollgate_broker::sys::publish_counters(server.broker());
    c.subscribe(1, "$SYS/broker/clients/connected", QoS::AtMostOnce)
        .await;
    assert_eq!(&c.recv_publish().await.payload[..], b"1");
    c.subscribe(2, "$SYS/broker/version", QoS::AtMostOnce).await;
    let version = c.recv_publish().await;
    assert!(
        version.payload.starts_with(b"tollgate "),
        "{:?}",
        version.payload
    );
}
