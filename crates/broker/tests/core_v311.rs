//! MQTT 3.1 and 3.1.1 behaviour seen from a client, over real sockets.

mod common;

use common::*;
use tollgate_mqtt::*;

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

#[tokio::test]
async fn publish_reaches_subscriber_at_each_qos_in_order() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut sub = TestClient::connect(addr, V311, "sub").await;
    let ack = sub.subscribe(1, "a/+", QoS::ExactlyOnce).await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_2]);
    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            publisher
                .publish("a/b", b"hello", qos, false, i as u16 + 1)
                .await,
            ReasonCode::SUCCESS
        );
    }
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let p = sub.recv_publish().await;
        assert_eq!(
            (p.topic.as_str(), &p.payload[..], p.qos, p.retain),
            ("a/b", &b"hello"[..], qos, false)
        );
    }
    sub.expect_nothing().await;
}

#[tokio::test]
async fn delivery_qos_is_the_lower_of_publish_and_subscription() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut sub = TestClient::connect(addr, V311, "sub").await;
    sub.subscribe(1, "t", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    publisher
        .publish("t", b"x", QoS::ExactlyOnce, false, 7)
        .await;
    assert_eq!(sub.recv_publish().await.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn retained_message_is_set_replaced_and_cleared() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    publisher
        .publish("r/1", b"first", QoS::AtLeastOnce, true, 1)
        .await;
    publisher
        .publish("r/1", b"second", QoS::AtLeastOnce, true, 2)
        .await;

    let mut sub = TestClient::connect(addr, V311, "sub").await;
    sub.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    let p = sub.recv_publish().await;
    assert_eq!((&p.payload[..], p.retain), (&b"second"[..], true));

    // A live message is forwarded with retain 0 to an existing subscriber.
    publisher
        .publish("r/1", b"third", QoS::AtLeastOnce, true, 3)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!((&p.payload[..], p.retain), (&b"third"[..], false));

    publisher
        .publish("r/1", b"", QoS::AtLeastOnce, true, 4)
        .await;
    let p = sub.recv_publish().await;
    assert!(p.payload.is_empty());
    let mut late = TestClient::connect(addr, V311, "late").await;
    late.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    late.expect_nothing().await;
}

#[tokio::test]
async fn will_is_published_on_abrupt_close_but_not_after_disconnect() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut watcher = TestClient::connect(addr, V311, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtLeastOnce).await;

    let mut connect = connect_packet(V311, "dies");
    connect.will = Some(Will {
        topic: "wills/dies".into(),
        payload: "gone".into(),
        qos: QoS::AtLeastOnce,
        ..Will::default()
    });
    let (dies, _) = TestClient::connect_with(addr, connect.clone()).await;
    drop(dies);
    let p = watcher.recv_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("wills/dies", &b"gone"[..])
    );

    connect.client_id = "leaves".into();
    connect.will.as_mut().unwrap().topic = "wills/leaves".into();
    let (leaves, _) = TestClient::connect_with(addr, connect).await;
    leaves.disconnect().await;
    watcher.expect_nothing().await;
}

#[tokio::test]
async fn will_is_published_on_protocol_error() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut watcher = TestClient::connect(addr, V311, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtMostOnce).await;
    let mut connect = connect_packet(V311, "bad");
    connect.will = Some(Will {
        topic: "wills/bad".into(),
        payload: "x".into(),
        ..Will::default()
    });
    let (mut bad, _) = TestClient::connect_with(addr, connect).await;
    // A second CONNECT is a protocol violation.
    bad.send(Packet::Connect(Box::new(connect_packet(V311, "bad"))))
        .await;
    assert!(bad.expect_close().await.is_empty());
    assert_eq!(watcher.recv_publish().await.topic, "wills/bad");
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queues_qos1_while_offline() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut connect = connect_packet(V311, "keeper");
    connect.clean_start = false;
    let (mut keeper, ack) = TestClient::connect_with(addr, connect.clone()).await;
    assert!(!ack.session_present);
    keeper.subscribe(1, "q/#", QoS::AtLeastOnce).await;
    keeper.disconnect().await;

    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    publisher
        .publish("q/0", b"qos0", QoS::AtMostOnce, false, 1)
        .await;
    publisher
        .publish("q/1", b"one", QoS::AtLeastOnce, false, 2)
        .await;
    publisher
        .publish("q/2", b"two", QoS::ExactlyOnce, false, 3)
        .await;

    let (mut keeper, ack) = TestClient::connect_with(addr, connect).await;
    assert!(ack.session_present);
    let first = keeper.recv_publish().await;
    let second = keeper.recv_publish().await;
    assert_eq!(
        (&first.payload[..], &second.payload[..]),
        (&b"one"[..], &b"two"[..])
    );
    assert_eq!(
        second.qos,
        QoS::AtLeastOnce,
        "delivered at the subscription's QoS"
    );
    keeper.expect_nothing().await;
}

#[tokio::test]
async fn unacknowledged_messages_are_redelivered_with_dup_after_reconnect() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut connect = connect_packet(V311, "flaky");
    connect.clean_start = false;
    let (mut flaky, _) = TestClient::connect_with(addr, connect.clone()).await;
    flaky.subscribe(1, "d", QoS::ExactlyOnce).await;
    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    publisher
        .publish("d", b"m1", QoS::AtLeastOnce, false, 1)
        .await;
    publisher
        .publish("d", b"m2", QoS::ExactlyOnce, false, 2)
        .await;
    let Packet::Publish(first) = flaky.recv().await else {
        panic!()
    };
    let Packet::Publish(second) = flaky.recv().await else {
        panic!()
    };
    assert!(!first.dup && !second.dup);
    // Acknowledge the QoS 2 message only up to PUBREC, then drop the connection.
    flaky
        .send(Packet::PubRec(Ack {
            packet_id: second.packet_id.unwrap(),
            ..Ack::default()
        }))
        .await;
    assert!(matches!(flaky.recv().await, Packet::PubRel(_)));
    drop(flaky);

    let (mut flaky, ack) = TestClient::connect_with(addr, connect).await;
    assert!(ack.session_present);
    let Packet::Publish(again) = flaky.recv().await else {
        panic!("expected the QoS 1 message again")
    };
    assert!(again.dup);
    assert_eq!(
        (again.packet_id, &again.payload[..]),
        (first.packet_id, &b"m1"[..])
    );
    match flaky.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, second.packet_id.unwrap()),
        other => panic!("expected PUBREL resent, got {other:?}"),
    }
}

#[tokio::test]
async fn clean_session_discards_the_previous_session() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut connect = connect_packet(V311, "c");
    connect.clean_start = false;
    let (mut c, _) = TestClient::connect_with(addr, connect.clone()).await;
    c.subscribe(1, "x", QoS::AtLeastOnce).await;
    c.disconnect().await;
    let (mut c, ack) = TestClient::connect(addr, V311, "c")
        .await
        .disconnect_and_reconnect(addr, connect)
        .await;
    assert!(
        !ack.session_present,
        "the clean connection in between ended the session"
    );
    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    publisher
        .publish("x", b"m", QoS::AtLeastOnce, false, 1)
        .await;
    c.expect_nothing().await;
}

trait Reconnect {
    async fn disconnect_and_reconnect(
        self,
        addr: std::net::SocketAddr,
        connect: Connect,
    ) -> (TestClient, ConnAck);
}
impl Reconnect for TestClient {
    async fn disconnect_and_reconnect(
        self,
        addr: std::net::SocketAddr,
        connect: Connect,
    ) -> (TestClient, ConnAck) {
        self.disconnect().await;
        TestClient::connect_with(addr, connect).await
    }
}

#[tokio::test]
async fn second_connection_with_same_client_id_takes_over() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut first = TestClient::connect(addr, V311, "twin").await;
    let mut second = TestClient::connect(addr, V311, "twin").await;
    assert!(
        first.expect_close().await.is_empty(),
        "3.1.1 has no server DISCONNECT"
    );
    second.subscribe(1, "t", QoS::AtMostOnce).await;
}

#[tokio::test]
async fn empty_client_id_is_assigned_for_clean_sessions_and_refused_otherwise() {
    let (_server, addr) = start_broker(|_| {}).await;
    let (_c, ack) = TestClient::connect_with(addr, connect_packet(V311, "")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let mut connect = connect_packet(V311, "");
    connect.clean_start = false;
    let (mut c, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ConnectReturnCode::IDENTIFIER_REJECTED);
    assert!(c.expect_close().await.is_empty());
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards_and_sys_is_read_only() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut all = TestClient::connect(addr, V311, "all").await;
    all.subscribe(1, "#", QoS::AtMostOnce).await;
    let mut sys = TestClient::connect(addr, V311, "sys").await;
    sys.subscribe(1, "$SYS/#", QoS::AtMostOnce).await;
    let mut publisher = TestClient::connect(addr, V311, "pub").await;
    publisher
        .publish("$other/x", b"x", QoS::AtLeastOnce, false, 2)
        .await;
    // Writing under $SYS is a denied publish: a 3.1.1 client is disconnected (the default).
    publisher
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            topic: "$SYS/fake".into(),
            packet_id: Some(1),
            payload: "x".into(),
            ..Publish::default()
        }))
        .await;
    assert!(publisher.expect_close().await.is_empty());
    // A 5.0 client is told 0x87 and stays connected.
    let mut v5 = TestClient::connect(addr, ProtocolVersion::V5, "pub5").await;
    assert_eq!(
        v5.publish("$SYS/fake", b"x", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    v5.expect_nothing().await;
    all.expect_nothing().await;
    sys.expect_nothing().await;
}

#[tokio::test]
async fn mqtt31_clients_connect_with_mqisdp_and_short_client_ids_only() {
    let (_server, addr) = start_broker(|_| {}).await;
    let v31 = ProtocolVersion::V3_1;
    let mut c = TestClient::connect(addr, v31, "a-twenty-three-chars-id").await;
    c.subscribe(1, "t", QoS::ExactlyOnce).await;
    let mut p = TestClient::connect(addr, v31, "p").await;
    p.publish("t", b"31", QoS::ExactlyOnce, false, 1).await;
    assert_eq!(&c.recv_publish().await.payload[..], b"31");
    let (mut long, ack) =
        TestClient::connect_with(addr, connect_packet(v31, "a-twenty-four-chars-id!!")).await;
    assert_eq!(ack.reason_code, ConnectReturnCode::IDENTIFIER_REJECTED);
    assert!(long.expect_close().await.is_empty());
    // 3.1.1 has no such limit.
    TestClient::connect(addr, V311, "a-twenty-four-chars-id!!").await;
}

#[tokio::test]
async fn shared_subscription_gives_each_message_to_one_member() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut a = TestClient::connect(addr, V311, "a").await;
    let mut b = TestClient::connect(addr, V311, "b").await;
    a.subscribe(1, "$share/g/jobs", QoS::AtLeastOnce).await;
    b.subscribe(1, "$share/g/jobs", QoS::AtLeastOnce).await;
    let mut p = TestClient::connect(addr, V311, "p").await;
    for i in 0..4u16 {
        p.publish("jobs", b"j", QoS::AtLeastOnce, false, i + 1)
            .await;
    }
    for client in [&mut a, &mut b] {
        client.recv_publish().await;
        client.recv_publish().await;
        client.expect_nothing().await;
    }
}

#[tokio::test]
async fn connect_must_be_the_first_packet() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut c = TestClient::open(addr, V311).await;
    c.send(Packet::PingReq).await;
    assert!(c.expect_close().await.is_empty());
}

#[tokio::test]
async fn unsupported_protocol_level_gets_return_code_1() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut c = TestClient::open(addr, V311).await;
    // CONNECT, protocol name MQTT, level 9.
    c.send_raw(&[
        0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x09, 0x02, 0x00, 0x3c, 0x00, 0x01, b'x',
    ])
    .await;
    match c.recv().await {
        Packet::ConnAck(ack) => assert_eq!(
            ack.reason_code,
            ConnectReturnCode::UNACCEPTABLE_PROTOCOL_VERSION
        ),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(c.expect_close().await.is_empty());
}
