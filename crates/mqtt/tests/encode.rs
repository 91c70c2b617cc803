//! Encoder behaviour: exact bytes for known packets, the short 5.0 forms, what 3.x leaves out,
//! and the errors instead of panics.

use bytes::{Bytes, BytesMut};
use tollgate_mqtt::*;

use ProtocolVersion::{V3_1, V3_1_1, V5};

fn bytes(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).expect("encodes");
    assert_eq!(
        out.len(),
        encoded_len(packet, version).unwrap(),
        "encoded_len disagrees"
    );
    out.to_vec()
}

fn ack(id: u16, code: u8) -> Ack {
    Ack {
        packet_id: id,
        reason_code: ReasonCode(code),
        properties: Default::default(),
    }
}

#[test]
fn connect_311_encodes_to_the_spec_layout() {
    let connect = Packet::Connect(Box::new(Connect {
        protocol: V3_1_1,
        clean_start: true,
        keep_alive: 60,
        client_id: "id".into(),
        will: Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Default::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: Default::default(),
    }));
    // The version argument is ignored for CONNECT.
    let expected: Vec<u8> = [
        &[0x10, 26][..],
        &[0, 4],
        b"MQTT",
        &[4, 0b1110_1110, 0, 60],
        &[0, 2],
        b"id",
        &[0, 1],
        b"w",
        &[0, 1],
        b"x",
        &[0, 1],
        b"u",
        &[0, 1],
        b"p",
    ]
    .concat();
    assert_eq!(bytes(&connect, V5), expected);
}

#[test]
fn connect_31_uses_mqisdp_level_3() {
    let connect = Packet::Connect(Box::new(Connect {
        protocol: V3_1,
        client_id: "c".into(),
        ..Default::default()
    }));
    assert_eq!(
        bytes(&connect, V3_1),
        [0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0, 0, 0, 0, 1, b'c']
    );
}

#[test]
fn connect_5_writes_an_empty_property_block() {
    let connect = Packet::Connect(Box::new(Connect {
        protocol: V5,
        client_id: "c".into(),
        ..Default::default()
    }));
    assert_eq!(
        bytes(&connect, V5),
        [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0, 0, 0, 0, 0, 1, b'c']
    );
}

#[test]
fn publish_qos1_encodes_flags_topic_id_and_payload() {
    let p = Packet::Publish(Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "a/b".into(),
        packet_id: Some(10),
        payload: Bytes::from_static(b"hi"),
        ..Default::default()
    });
    assert_eq!(
        bytes(&p, V3_1_1),
        [0x3B, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']
    );
    assert_eq!(
        bytes(&p, V5),
        [0x3B, 10, 0, 3, b'a', b'/', b'b', 0, 10, 0, b'h', b'i']
    );
}

#[test]
fn publish_properties_are_left_out_in_3x() {
    let mut with = Publish {
        topic: "t".into(),
        payload: Bytes::from_static(b"x"),
        ..Default::default()
    };
    let without = with.clone();
    with.properties
        .user_properties
        .push(("k".into(), "v".into()));
    with.properties.subscription_identifiers.push(3);
    with.properties.topic_alias = Some(1);
    for v in [V3_1, V3_1_1] {
        assert_eq!(
            bytes(&Packet::Publish(with.clone()), v),
            bytes(&Packet::Publish(without.clone()), v)
        );
    }
}

#[test]
fn publish_qos0_never_writes_a_packet_id() {
    let p = Packet::Publish(Publish {
        topic: "t".into(),
        packet_id: Some(5),
        ..Default::default()
    });
    assert_eq!(bytes(&p, V3_1_1), [0x30, 3, 0, 1, b't']);
}

#[test]
fn v5_ack_with_success_and_no_properties_uses_the_two_byte_form() {
    assert_eq!(bytes(&Packet::PubAck(ack(7, 0)), V5), [0x40, 2, 0, 7]);
    assert_eq!(bytes(&Packet::PubRel(ack(7, 0)), V5), [0x62, 2, 0, 7]);
}

#[test]
fn v5_ack_with_a_reason_and_no_properties_uses_the_three_byte_form() {
    assert_eq!(
        bytes(&Packet::PubRec(ack(7, 0x10)), V5),
        [0x50, 3, 0, 7, 0x10]
    );
    assert_eq!(
        bytes(&Packet::PubComp(ack(7, 0x92)), V5),
        [0x70, 3, 0, 7, 0x92]
    );
}

#[test]
fn v5_ack_with_properties_writes_reason_and_property_block() {
    let mut a = ack(7, 0);
    a.properties.reason_string = Some("r".into());
    assert_eq!(
        bytes(&Packet::PubAck(a), V5),
        [0x40, 8, 0, 7, 0, 4, 0x1F, 0, 1, b'r']
    );
}

#[test]
fn v3_ack_is_only_the_packet_id() {
    let mut a = ack(7, 0x80);
    a.properties.reason_string = Some("r".into());
    assert_eq!(bytes(&Packet::PubAck(a), V3_1_1), [0x40, 2, 0, 7]);
}

#[test]
fn v5_normal_disconnect_is_two_bytes() {
    assert_eq!(
        bytes(&Packet::Disconnect(Disconnect::default()), V5),
        [0xE0, 0]
    );
    let d = Disconnect {
        reason_code: ReasonCode::SESSION_TAKEN_OVER,
        properties: Default::default(),
    };
    assert_eq!(bytes(&Packet::Disconnect(d.clone()), V5), [0xE0, 1, 0x8E]);
    assert_eq!(bytes(&Packet::Disconnect(d), V3_1_1), [0xE0, 0]);
}

#[test]
fn auth_success_without_properties_is_two_bytes() {
    assert_eq!(bytes(&Packet::Auth(Auth::default()), V5), [0xF0, 0]);
}

#[test]
fn auth_in_3x_is_not_in_version() {
    for v in [V3_1, V3_1_1] {
        let mut out = BytesMut::new();
        assert_eq!(
            encode(&Packet::Auth(Auth::default()), v, &mut out),
            Err(EncodeError::NotInVersion)
        );
        assert!(out.is_empty());
        assert_eq!(
            encoded_len(&Packet::Auth(Auth::default()), v),
            Err(EncodeError::NotInVersion)
        );
    }
}

#[test]
fn suback_codes_are_written_as_is_in_3x() {
    let s = Packet::SubAck(SubAck {
        packet_id: 1,
        properties: Default::default(),
        reason_codes: vec![
            ReasonCode(0),
            ReasonCode(2),
            ReasonCode(0x80),
            ReasonCode(0x97),
        ],
    });
    assert_eq!(bytes(&s, V3_1_1), [0x90, 6, 0, 1, 0, 2, 0x80, 0x97]);
    assert_eq!(bytes(&s, V5), [0x90, 7, 0, 1, 0, 0, 2, 0x80, 0x97]);
}

#[test]
fn unsuback_in_3x_is_only_the_packet_id() {
    let u = Packet::UnsubAck(UnsubAck {
        packet_id: 3,
        properties: AckProperties {
            reason_string: Some("x".into()),
            user_properties: vec![],
        },
        reason_codes: vec![ReasonCode(0x11)],
    });
    assert_eq!(bytes(&u, V3_1_1), [0xB0, 2, 0, 3]);
    assert_eq!(bytes(&u, V5), [0xB0, 8, 0, 3, 4, 0x1F, 0, 1, b'x', 0x11]);
}

#[test]
fn subscribe_options_byte_carries_5_fields_only_in_5() {
    let s = Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Default::default(),
        subscriptions: vec![Subscription {
            filter: "a".into(),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::SendIfNew,
            },
        }],
    });
    assert_eq!(bytes(&s, V3_1_1), [0x82, 6, 0, 1, 0, 1, b'a', 0x02]);
    assert_eq!(bytes(&s, V5), [0x82, 7, 0, 1, 0, 0, 1, b'a', 0x1E]);
}

#[test]
fn pings_are_two_bytes() {
    assert_eq!(bytes(&Packet::PingReq, V3_1_1), [0xC0, 0]);
    assert_eq!(bytes(&Packet::PingResp, V5), [0xD0, 0]);
}

#[test]
fn connack_31_has_no_session_present_flag() {
    let c = Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode(0),
        properties: Default::default(),
    });
    assert_eq!(bytes(&c, V3_1), [0x20, 2, 0, 0]);
    assert_eq!(bytes(&c, V3_1_1), [0x20, 2, 1, 0]);
    assert_eq!(bytes(&c, V5), [0x20, 3, 1, 0, 0]);
}

#[test]
fn string_longer_than_65535_bytes_is_string_too_long() {
    let p = Packet::Publish(Publish {
        topic: "a".repeat(65_536),
        ..Default::default()
    });
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&p, V3_1_1, &mut out),
        Err(EncodeError::StringTooLong)
    );
    assert!(out.is_empty());
    assert_eq!(encoded_len(&p, V3_1_1), Err(EncodeError::StringTooLong));

    let mut ok = Publish {
        topic: "a".repeat(65_535),
        ..Default::default()
    };
    assert!(encoded_len(&Packet::Publish(ok.clone()), V3_1_1).is_ok());
    ok.properties
        .user_properties
        .push(("k".into(), "v".repeat(65_536)));
    assert_eq!(
        encoded_len(&Packet::Publish(ok), V5),
        Err(EncodeError::StringTooLong)
    );
}

#[test]
fn binary_longer_than_65535_bytes_is_string_too_long() {
    let c = Packet::Connect(Box::new(Connect {
        password: Some(Bytes::from(vec![0; 65_536])),
        username: Some("u".into()),
        ..Default::default()
    }));
    assert_eq!(encoded_len(&c, V3_1_1), Err(EncodeError::StringTooLong));
}

#[test]
fn remaining_length_over_268435455_is_packet_too_large() {
    // Zeroed memory from the allocator is not touched: the size check fails before writing.
    let payload = Bytes::from(vec![0u8; 268_435_455]);
    let p = Packet::Publish(Publish {
        topic: "t".into(),
        payload,
        ..Default::default()
    });
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&p, V3_1_1, &mut out),
        Err(EncodeError::PacketTooLarge)
    );
    assert!(out.is_empty());
    assert_eq!(encoded_len(&p, V3_1_1), Err(EncodeError::PacketTooLarge));
}

#[test]
fn qos1_publish_without_packet_id_is_invalid_field() {
    let p = Packet::Publish(Publish {
        topic: "t".into(),
        qos: QoS::AtLeastOnce,
        ..Default::default()
    });
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&p, V5, &mut out),
        Err(EncodeError::InvalidField("packet_id"))
    );
    assert!(out.is_empty());
}

#[test]
fn packet_id_zero_is_invalid_field() {
    let p = Packet::Publish(Publish {
        topic: "t".into(),
        qos: QoS::ExactlyOnce,
        packet_id: Some(0),
        ..Default::default()
    });
    assert_eq!(
        encoded_len(&p, V5),
        Err(EncodeError::InvalidField("packet_id"))
    );
    assert_eq!(
        encoded_len(&Packet::PubAck(ack(0, 0)), V5),
        Err(EncodeError::InvalidField("packet_id"))
    );
}

#[test]
fn subscription_identifier_zero_is_invalid_field() {
    let mut p = Publish {
        topic: "t".into(),
        ..Default::default()
    };
    p.properties.subscription_identifiers.push(0);
    assert_eq!(
        encoded_len(&Packet::Publish(p), V5),
        Err(EncodeError::InvalidField("subscription identifier"))
    );
}

#[test]
fn password_without_user_name_in_311_is_invalid_field() {
    let c = Packet::Connect(Box::new(Connect {
        password: Some(Bytes::from_static(b"p")),
        ..Default::default()
    }));
    assert_eq!(
        encoded_len(&c, V3_1_1),
        Err(EncodeError::InvalidField("password"))
    );
}

#[test]
fn encode_appends_after_existing_bytes() {
    let mut out = BytesMut::from(&b"xy"[..]);
    encode(&Packet::PingReq, V3_1_1, &mut out).unwrap();
    assert_eq!(&out[..], &[b'x', b'y', 0xC0, 0]);
}

fn overrides<'a>(sids: &'a [u32]) -> PublishOverrides<'a> {
    PublishOverrides {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        packet_id: Some(9),
        topic_alias: Some(4),
        omit_topic: true,
        message_expiry_interval: Some(30),
        subscription_identifiers: sids,
    }
}

#[test]
fn encode_publish_with_omits_the_topic_when_an_alias_stands_for_it() {
    let message = Publish {
        topic: "long/topic".into(),
        retain: true,
        payload: Bytes::from_static(b"p"),
        ..Default::default()
    };
    let sids = [1, 200];
    let mut out = BytesMut::new();
    encode_publish_with(&message, &overrides(&sids), V5, &mut out).unwrap();
    assert_eq!(
        out.len(),
        publish_encoded_len(&message, &overrides(&sids), V5).unwrap()
    );
    assert_eq!(
        &out[..],
        &[
            0x32, 19, 0, 0, 0, 9, 13, 0x02, 0, 0, 0, 30, 0x23, 0, 4, 0x0B, 1, 0x0B, 0xC8, 0x01,
            b'p'
        ]
    );
}

#[test]
fn encode_publish_with_keeps_the_topic_for_3x_recipients() {
    let message = Publish {
        topic: "t".into(),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    encode_publish_with(&message, &overrides(&[]), V3_1_1, &mut out).unwrap();
    assert_eq!(&out[..], &[0x32, 5, 0, 1, b't', 0, 9]);
}

#[test]
fn encode_publish_with_omit_topic_but_no_alias_is_invalid_field() {
    let message = Publish {
        topic: "t".into(),
        ..Default::default()
    };
    let mut o = overrides(&[]);
    o.topic_alias = None;
    let mut out = BytesMut::new();
    assert_eq!(
        encode_publish_with(&message, &o, V5, &mut out),
        Err(EncodeError::InvalidField("omit_topic"))
    );
    assert!(out.is_empty());
    assert_eq!(
        publish_encoded_len(&message, &o, V5),
        Err(EncodeError::InvalidField("omit_topic"))
    );
}

#[test]
fn encode_publish_with_qos_above_0_requires_a_packet_id() {
    let message = Publish {
        topic: "t".into(),
        ..Default::default()
    };
    let mut o = overrides(&[]);
    o.packet_id = None;
    assert_eq!(
        publish_encoded_len(&message, &o, V5),
        Err(EncodeError::InvalidField("packet_id"))
    );
}
