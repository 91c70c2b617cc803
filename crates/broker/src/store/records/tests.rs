use bytes::Bytes;

use super::*;

fn message() -> Publish {
    Publish {
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "plant/7/valve".into(),
        properties: PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(60),
            response_topic: Some("replies/7".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("text/plain".into()),
            ..PublishProperties::default()
        },
        payload: Bytes::from_static(b"open"),
        ..Publish::default()
    }
}

#[test]
fn a_session_record_reads_back_as_written() {
    let will = Will {
        topic: "gone/7".into(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            content_type: Some("text/plain".into()),
            ..WillProperties::default()
        },
    };
    for record in [
        SessionRecord {
            uid: 42,
            expiry_interval: u32::MAX,
            owner: None,
            disconnected_at: None,
            will: None,
        },
        SessionRecord {
            uid: u64::MAX,
            expiry_interval: 3600,
            owner: Some(Owner {
                origin: NameOrigin::Certificate,
                name: "device-7".into(),
            }),
            disconnected_at: Some(1_790_000_000),
            will: Some((will.clone(), 1_790_000_030)),
        },
    ] {
        assert_eq!(decode_session(&encode_session(&record)), Ok(record));
    }
}

#[test]
fn a_delivery_keeps_its_message_with_every_property() {
    let encoded = encode_delivery(
        QoS::AtLeastOnce,
        true,
        &[3, 268_435_455],
        1_790_000_000_123,
        &encode_publish(&message()),
    );
    let record = decode_delivery(&encoded).unwrap();
    assert_eq!(record.qos, QoS::AtLeastOnce);
    assert!(record.retain);
    assert_eq!(record.subscription_ids, vec![3, 268_435_455]);
    assert_eq!(record.received_at_ms, 1_790_000_000_123);
    assert_eq!(record.publish, message());
}

#[test]
fn a_retained_message_and_a_subscription_read_back() {
    let stored = decode_retained(&encode_retained(7, &encode_publish(&message()))).unwrap();
    assert_eq!((stored.received_at_ms, stored.publish), (7, message()));
    let options = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    assert_eq!(
        decode_subscription(&encode_subscription(options, Some(9))),
        Ok((options, Some(9)))
    );
    assert_eq!(
        decode_subscription(&encode_subscription(SubscriptionOptions::default(), None)),
        Ok((SubscriptionOptions::default(), None))
    );
}

#[test]
fn damaged_values_are_refused_not_a_panic() {
    let session = encode_session(&SessionRecord {
        uid: 1,
        expiry_interval: 10,
        owner: Some(Owner {
            origin: NameOrigin::Authenticated,
            name: "alice".into(),
        }),
        disconnected_at: Some(5),
        will: Some((Will::default(), 6)),
    });
    let delivery = encode_delivery(
        QoS::AtLeastOnce,
        false,
        &[1],
        2,
        &encode_publish(&message()),
    );
    for value in [session, delivery] {
        // Every truncation, and every byte flipped, either decodes or is refused.
        for cut in 0..value.len() {
            let _ = decode_session(&value[..cut]);
            let _ = decode_delivery(&value[..cut]);
        }
        for i in 0..value.len() {
            let mut flipped = value.clone();
            flipped[i] ^= 0xff;
            let _ = decode_session(&flipped);
            let _ = decode_delivery(&flipped);
            let _ = decode_retained(&flipped);
            let _ = decode_subscription(&flipped);
        }
    }
    assert_eq!(decode_session(&[]), Err(Damaged));
    assert_eq!(decode_delivery(&[FORMAT + 1, 0, 0]), Err(Damaged));
    assert_eq!(decode_session(&[0u8; 32]), Err(Damaged), "zeroed");
}

#[test]
fn a_sessions_deliveries_sort_by_sequence_under_its_prefix() {
    let a = delivery_key(5, 255);
    let b = delivery_key(5, 256);
    assert!(a < b);
    assert!(a.starts_with(&session_prefix(5)));
    assert_eq!(split_child_key(&b), Some((5, &256u64.to_be_bytes()[..])));
    assert_eq!(split_child_key(&[1, 2]), None);
}
