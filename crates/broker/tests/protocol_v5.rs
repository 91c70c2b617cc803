//! MQTT 5.0 behaviours of one connection, driven on the protocol core with no socket (see
//! `common/core.rs`): what CONNACK advertises, the server keep alive, topic aliases both
//! ways, the client's Maximum Packet Size and Receive Maximum, the broker's Receive Maximum,
//! UNSUBACK reasons, PUBACK 0x10 and an operator's kick (0x98). What needs a socket stays in
//! `core_v5.rs`.

mod common;

use common::core::{connect, Client, Core};
use tollgate_mqtt::*;

/// A QoS 0 PUBLISH of `payload` to `topic`.
fn publish(topic: &str, payload: &'static [u8]) -> Publish {
    Publish {
        topic: topic.into(),
        payload: payload.into(),
        ..Publish::default()
    }
}

/// A PUBLISH of `x` to `topic` at `qos` with packet id `id`.
fn publish_at(topic: &str, qos: QoS, id: u16) -> Packet {
    let mut publish = publish(topic, b"x");
    publish.qos = qos;
    publish.packet_id = Some(id);
    Packet::Publish(publish)
}

/// The PUBLISH packets among `packets`.
fn publishes(packets: Vec<Packet>) -> Vec<Publish> {
    packets
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        })
        .collect()
}

/// `client` sends `packet` at the test's start; its answers.
async fn exchange(core: &Core, client: &mut Client, packet: Packet) -> Vec<Packet> {
    client.send(packet, core.t0).await.expect("still connected");
    client.received()
}

#[tokio::test]
async fn connack_advertises_limits_and_assigns_an_empty_client_id() {
    let core = Core::new(|c| {
        c.limits.receive_maximum = 20;
        c.limits.max_packet_size = 5000;
        c.limits.topic_alias_maximum = 7;
    });
    let mut client = core.accept();
    let packets = exchange(
        &core,
        &mut client,
        Packet::Connect(Box::new(connect("", 0))),
    )
    .await;
    let [Packet::ConnAck(ack)] = packets.as_slice() else {
        panic!("expected CONNACK, got {packets:?}");
    };
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let p = &ack.properties;
    assert_eq!(
        (
            p.receive_maximum,
            p.maximum_packet_size,
            p.topic_alias_maximum
        ),
        (Some(20), Some(5000), Some(7))
    );
    assert!(p
        .assigned_client_identifier
        .as_deref()
        .is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn server_keep_alive_caps_the_clients() {
    let core = Core::new(|c| c.limits.max_keep_alive = 60);
    let mut client = core.accept();
    let packets = exchange(
        &core,
        &mut client,
        Packet::Connect(Box::new(connect("k", 120))),
    )
    .await;
    let [Packet::ConnAck(ack)] = packets.as_slice() else {
        panic!("expected CONNACK, got {packets:?}");
    };
    assert_eq!(ack.properties.server_keep_alive, Some(60));
}

#[tokio::test]
async fn client_topic_alias_is_resolved_and_unknown_alias_is_a_protocol_error() {
    let core = Core::new(|_| {});
    let mut sub = core.connected(connect("sub", 0), core.t0).await;
    sub.subscribe("alias/topic", core.t0).await;
    let mut p = core.connected(connect("p", 0), core.t0).await;
    let with_alias = |topic: &str| {
        let mut publish = publish(topic, b"x");
        publish.properties.topic_alias = Some(1);
        Packet::Publish(publish)
    };
    exchange(&core, &mut p, with_alias("alias/topic")).await;
    exchange(&core, &mut p, with_alias("")).await;
    let topics: Vec<String> = publishes(sub.deliveries(core.t0))
        .into_iter()
        .map(|p| p.topic)
        .collect();
    assert_eq!(topics, ["alias/topic", "alias/topic"]);

    let mut q = core.connected(connect("q", 0), core.t0).await;
    let close = q.send(with_alias(""), core.t0).await.unwrap_err();
    assert_eq!(close.reason, ReasonCode::PROTOCOL_ERROR);
    match q.received().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
}

#[tokio::test]
async fn server_assigns_topic_aliases_when_the_client_accepts_them() {
    let core = Core::new(|_| {});
    let mut accepts_two = connect("sub", 0);
    accepts_two.properties.topic_alias_maximum = Some(2);
    let mut sub = core.connected(accepts_two, core.t0).await;
    sub.subscribe("ta/#", core.t0).await;
    let mut p = core.connected(connect("p", 0), core.t0).await;
    for topic in ["ta/1", "ta/1", "ta/2", "ta/3"] {
        exchange(&core, &mut p, Packet::Publish(publish(topic, b"x"))).await;
    }
    let got: Vec<(String, Option<u16>)> = publishes(sub.deliveries(core.t0))
        .into_iter()
        .map(|m| (m.topic, m.properties.topic_alias))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ta/1".into(), Some(1)),
            ("".into(), Some(1)),
            ("ta/2".into(), Some(2)),
            ("ta/3".into(), None)
        ]
    );
}

#[tokio::test]
async fn messages_over_the_clients_maximum_packet_size_are_not_sent() {
    let core = Core::new(|_| {});
    let mut takes_64 = connect("small", 0);
    takes_64.properties.maximum_packet_size = Some(64);
    let mut small = core.connected(takes_64, core.t0).await;
    small.subscribe("size", core.t0).await;
    let mut p = core.connected(connect("p", 0), core.t0).await;
    exchange(
        &core,
        &mut p,
        Packet::Publish(publish("size", &[b'x'; 100])),
    )
    .await;
    exchange(&core, &mut p, Packet::Publish(publish("size", b"fits"))).await;
    let payloads: Vec<Vec<u8>> = publishes(small.deliveries(core.t0))
        .into_iter()
        .map(|m| m.payload.to_vec())
        .collect();
    assert_eq!(payloads, [b"fits".to_vec()]);
}

#[tokio::test]
async fn exceeding_the_receive_maximum_is_disconnect_0x93() {
    let core = Core::new(|c| c.limits.receive_maximum = 2);
    let mut greedy = core.connected(connect("greedy", 0), core.t0).await;
    let qos2 = |id: u16| publish_at("t", QoS::ExactlyOnce, id);
    for id in 1..=2 {
        let packets = exchange(&core, &mut greedy, qos2(id)).await;
        assert!(
            matches!(packets.as_slice(), [Packet::PubRec(_)]),
            "{packets:?}"
        );
    }
    let close = greedy.send(qos2(3), core.t0).await.unwrap_err();
    assert_eq!(close.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    match greedy.received().as_slice() {
        [Packet::Disconnect(d)] => {
            assert_eq!(d.reason_code, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
        }
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
}

#[tokio::test]
async fn outgoing_window_respects_the_clients_receive_maximum() {
    let core = Core::new(|_| {});
    let mut takes_two = connect("slow", 0);
    takes_two.properties.receive_maximum = Some(2);
    let mut slow = core.connected(takes_two, core.t0).await;
    slow.subscribe("w", core.t0).await;
    let mut p = core.connected(connect("p", 0), core.t0).await;
    for id in 1..=3u16 {
        exchange(&core, &mut p, publish_at("w", QoS::AtLeastOnce, id)).await;
    }
    let first_two = publishes(slow.deliveries(core.t0));
    assert_eq!(first_two.len(), 2, "the window holds two");
    let ack = Ack {
        packet_id: first_two[0].packet_id.unwrap(),
        ..Ack::default()
    };
    let third = publishes(exchange(&core, &mut slow, Packet::PubAck(ack)).await);
    assert_eq!(
        third.len(),
        1,
        "the third follows the first acknowledgement"
    );
    assert_eq!(third[0].qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn unsubscribe_reports_whether_the_subscription_existed() {
    let core = Core::new(|_| {});
    let mut c = core.connected(connect("c", 0), core.t0).await;
    c.subscribe("u", core.t0).await;
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        packet_id: 2,
        user_properties: vec![],
        filters: vec!["u".into(), "v".into()],
    });
    match exchange(&core, &mut c, unsubscribe).await.as_slice() {
        [Packet::UnsubAck(ack)] => assert_eq!(
            ack.reason_codes,
            vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
        ),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn qos1_publish_without_subscribers_is_acknowledged_with_0x10() {
    let core = Core::new(|_| {});
    let mut c = core.connected(connect("c", 0), core.t0).await;
    let message = publish_at("nobody", QoS::AtLeastOnce, 1);
    match exchange(&core, &mut c, message).await.as_slice() {
        [Packet::PubAck(ack)] => {
            assert_eq!(ack.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS)
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn a_kick_closes_the_connection_with_0x98_and_publishes_its_will() {
    let core = Core::new(|_| {});
    let mut watcher = core.connected(connect("watcher", 0), core.t0).await;
    watcher.subscribe("wills/#", core.t0).await;
    let mut with_will = connect("kicked", 0);
    with_will.will = Some(Will {
        topic: "wills/kicked".into(),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        ..Will::default()
    });
    let mut kicked = core.connected(with_will, core.t0).await;
    assert!(
        core.broker.kick("kicked", "ops"),
        "a connected client is kicked"
    );
    assert!(!core.broker.kick("nobody", "ops"), "no one to kick");
    let close = kicked
        .conn
        .pull_deliveries(core.at(1.0))
        .expect_err("a kicked connection closes");
    assert_eq!(close.reason, ReasonCode::ADMINISTRATIVE_ACTION);
    match kicked.received().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::ADMINISTRATIVE_ACTION),
        other => panic!("expected DISCONNECT 0x98, got {other:?}"),
    }
    kicked.close(close);
    let wills = publishes(watcher.deliveries(core.at(1.0)));
    assert_eq!(wills.len(), 1);
    assert_eq!(wills[0].topic, "wills/kicked");
    assert!(
        !core.broker.kick("kicked", "ops"),
        "the kicked connection is gone"
    );
}
