//! The broker driven by a real, independent client library (rumqttc), MQTT 3.1.1 and 5.0.

mod common;

use std::time::Duration;

use common::start_broker;

const TIMEOUT: Duration = Duration::from_secs(5);

mod v311 {
    use super::*;
    use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};

    fn options(id: &str, port: u16) -> MqttOptions {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// Polls the event loop until `want` returns a value.
    async fn until<T>(events: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Event::Incoming(packet) = events.poll().await.expect("connection stays up") {
                    if let Some(v) = want(&packet) {
                        return v;
                    }
                }
            }
        })
        .await
        .expect("expected packet within the timeout")
    }

    #[tokio::test]
    async fn publish_subscribe_at_every_qos_with_rumqttc() {
        let (_server, addr) = start_broker(|_| {}).await;
        let (sub, mut sub_events) = AsyncClient::new(options("rumqttc-sub", addr.port()), 10);
        sub.subscribe("r/#", QoS::ExactlyOnce).await.unwrap();
        until(&mut sub_events, |p| {
            matches!(p, Packet::SubAck(_)).then_some(())
        })
        .await;

        let (publisher, mut pub_events) = AsyncClient::new(options("rumqttc-pub", addr.port()), 10);
        for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .enumerate()
        {
            publisher
                .publish(format!("r/{i}"), qos, false, vec![i as u8; 3])
                .await
                .unwrap();
        }
        // Drive the publisher until its QoS 2 exchange completes.
        until(&mut pub_events, |p| {
            matches!(p, Packet::PubComp(_)).then_some(())
        })
        .await;

        let mut received = Vec::new();
        while received.len() < 3 {
            let p = until(&mut sub_events, |p| match p {
                Packet::Publish(p) => Some((p.topic.clone(), p.qos, p.payload.to_vec())),
                _ => None,
            })
            .await;
            received.push(p);
        }
        let expected = [
            ("r/0", QoS::AtMostOnce, vec![0; 3]),
            ("r/1", QoS::AtLeastOnce, vec![1; 3]),
            ("r/2", QoS::ExactlyOnce, vec![2; 3]),
        ];
        assert_eq!(
            received,
            expected.map(|(t, q, p)| (t.to_owned(), q, p)).to_vec()
        );
    }

    #[tokio::test]
    async fn retained_message_and_will_with_rumqttc() {
        let (_server, addr) = start_broker(|_| {}).await;
        let (watcher, mut watch_events) =
            AsyncClient::new(options("rumqttc-watch", addr.port()), 10);
        watcher
            .subscribe("status/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        until(&mut watch_events, |p| {
            matches!(p, Packet::SubAck(_)).then_some(())
        })
        .await;

        let mut o = options("rumqttc-dev", addr.port());
        o.set_last_will(LastWill::new(
            "status/dev",
            "offline",
            QoS::AtLeastOnce,
            false,
        ));
        let (dev, mut dev_events) = AsyncClient::new(o, 10);
        dev.publish("status/retained", QoS::AtLeastOnce, true, "online")
            .await
            .unwrap();
        until(&mut dev_events, |p| {
            matches!(p, Packet::PubAck(_)).then_some(())
        })
        .await;
        // The device vanishes without DISCONNECT: dropping its event loop closes the socket.
        drop(dev_events);

        let mut topics = Vec::new();
        while topics.len() < 2 {
            let t = until(&mut watch_events, |p| match p {
                Packet::Publish(p) => Some(p.topic.clone()),
                _ => None,
            })
            .await;
            topics.push(t);
        }
        assert_eq!(
            topics,
            vec!["status/retained".to_owned(), "status/dev".to_owned()]
        );

        let (late, mut late_events) = AsyncClient::new(options("rumqttc-late", addr.port()), 10);
        late.subscribe("status/retained", QoS::AtLeastOnce)
            .await
            .unwrap();
        let retained = until(&mut late_events, |p| match p {
            Packet::Publish(p) => Some((p.retain, p.payload.to_vec())),
            _ => None,
        })
        .await;
        assert_eq!(retained, (true, b"online".to_vec()));
    }
}

mod v5 {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

    fn options(id: &str, port: u16) -> MqttOptions {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    async fn until<T>(events: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Event::Incoming(packet) = events.poll().await.expect("connection stays up") {
                    if let Some(v) = want(&packet) {
                        return v;
                    }
                }
            }
        })
        .await
        .expect("expected packet within the timeout")
    }

    #[tokio::test]
    async fn publish_with_properties_reaches_a_v5_subscriber_with_rumqttc() {
        let (_server, addr) = start_broker(|_| {}).await;
        let (sub, mut sub_events) = AsyncClient::new(options("v5-sub", addr.port()), 10);
        sub.subscribe("v5/+", QoS::ExactlyOnce).await.unwrap();
        until(&mut sub_events, |p| {
            matches!(p, Packet::SubAck(_)).then_some(())
        })
        .await;

        let (publisher, mut pub_events) = AsyncClient::new(options("v5-pub", addr.port()), 10);
        let properties = PublishProperties {
            response_topic: Some("v5/reply".into()),
            correlation_data: Some(bytes::Bytes::from_static(b"42")),
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        publisher
            .publish_with_properties("v5/req", QoS::ExactlyOnce, false, "ping", properties)
            .await
            .unwrap();
        until(&mut pub_events, |p| {
            matches!(p, Packet::PubComp(_)).then_some(())
        })
        .await;

        let (qos, props, payload) = until(&mut sub_events, |p| match p {
            Packet::Publish(p) => Some((p.qos, p.properties.clone(), p.payload.to_vec())),
            _ => None,
        })
        .await;
        assert_eq!((qos, payload), (QoS::ExactlyOnce, b"ping".to_vec()));
        let props = props.expect("properties forwarded");
        assert_eq!(props.response_topic.as_deref(), Some("v5/reply"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"42"[..]));
        assert_eq!(
            props.user_properties,
            vec![("k".to_owned(), "v".to_owned())]
        );
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    }
}
