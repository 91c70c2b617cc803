//! One test per malformed-input rule, each asserting the specific [`DecodeError`], plus the
//! tricky-but-valid cases next to them.

use bytes::{Bytes, BytesMut};
use tollgate_mqtt::*;

use ProtocolVersion::{V3_1, V3_1_1, V5};
use Role::{Client, Server};

// ---- helpers --------------------------------------------------------------------------------

fn decode(
    role: Role,
    version: ProtocolVersion,
    bytes: &[u8],
) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    Decoder {
        role,
        version,
        maximum_packet_size: 1 << 20,
    }
    .decode(&mut buf)
}

fn err(role: Role, version: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    decode(role, version, bytes).expect_err("expected a decode error")
}

fn ok(role: Role, version: ProtocolVersion, bytes: &[u8]) -> Packet {
    decode(role, version, bytes)
        .expect("expected the packet to decode")
        .expect("expected a complete packet")
}

/// A two byte length prefix and the bytes.
fn s(x: &[u8]) -> Vec<u8> {
    let mut v = (x.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(x);
    v
}

/// A whole packet: first byte, remaining length, body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    let mut n = body.len();
    loop {
        let b = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            v.push(b);
            break;
        }
        v.push(b | 0x80);
    }
    v.extend_from_slice(body);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A 5.0 property block: length then properties.
fn props(p: &[u8]) -> Vec<u8> {
    assert!(p.len() < 128);
    cat(&[&[p.len() as u8], p])
}

/// The body of a CONNECT with the given name, level and flags, keep alive 60, client id "c".
fn connect_body(name: &[u8], level: u8, flags: u8) -> Vec<u8> {
    let mut v = s(name);
    v.push(level);
    v.push(flags);
    v.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        v.push(0);
    }
    v.extend_from_slice(&s(b"c"));
    v
}

/// A 5.0 PUBLISH QoS 0 to topic `a` with these properties and payload `x`.
fn publish_v5(role_props: &[u8]) -> Vec<u8> {
    packet(0x30, &cat(&[&s(b"a"), &props(role_props), b"x"]))
}

// ---- fixed header ---------------------------------------------------------------------------

#[test]
fn remaining_length_of_five_bytes_is_malformed_remaining_length() {
    let e = err(Server, V3_1_1, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    assert_eq!(e, DecodeError::MalformedRemainingLength);
}

#[test]
fn remaining_length_continuing_past_the_fourth_byte_is_rejected_before_the_fifth_arrives() {
    let e = err(Server, V3_1_1, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(e, DecodeError::MalformedRemainingLength);
}

#[test]
fn non_minimal_remaining_length_is_malformed_remaining_length() {
    // 0 encoded in two bytes.
    let e = err(Server, V3_1_1, &[0xC0, 0x80, 0x00]);
    assert_eq!(e, DecodeError::MalformedRemainingLength);
}

#[test]
fn packet_too_large_is_reported_from_the_fixed_header_before_the_body_arrives() {
    let mut buf = BytesMut::from(&[0x30u8, 0xE8, 0x07][..]); // remaining length 1000
    let d = Decoder {
        role: Server,
        version: V5,
        maximum_packet_size: 1002,
    };
    assert_eq!(
        d.decode(&mut buf),
        Err(DecodeError::PacketTooLarge {
            size: 1003,
            maximum: 1002
        })
    );
    assert_eq!(
        DecodeError::PacketTooLarge {
            size: 1,
            maximum: 0
        }
        .reason_code(),
        ReasonCode::PACKET_TOO_LARGE
    );
}

#[test]
fn packet_exactly_at_the_maximum_size_is_accepted() {
    let bytes = packet(0x30, &cat(&[&s(b"t"), &[0u8; 7]]));
    let mut buf = BytesMut::from(&bytes[..]);
    let d = Decoder {
        role: Server,
        version: V3_1_1,
        maximum_packet_size: bytes.len() as u32,
    };
    assert!(d.decode(&mut buf).unwrap().is_some());
}

#[test]
fn packet_type_zero_is_invalid_packet_type() {
    assert_eq!(
        err(Server, V5, &[0x00, 0x00]),
        DecodeError::InvalidPacketType(0)
    );
}

#[test]
fn auth_on_a_3x_connection_is_invalid_packet_type_15() {
    for v in [V3_1, V3_1_1] {
        assert_eq!(
            err(Server, v, &[0xF0, 0x00]),
            DecodeError::InvalidPacketType(15)
        );
        assert_eq!(
            err(Client, v, &[0xF0, 0x00]),
            DecodeError::InvalidPacketType(15)
        );
    }
}

#[test]
fn server_rejects_packets_only_a_server_sends() {
    for (first, body) in [
        (0x20u8, &[0u8, 0][..]),
        (0x90, &[0, 1, 0][..]),
        (0xB0, &[0, 1][..]),
        (0xD0, &[][..]),
    ] {
        let e = err(Server, V3_1_1, &packet(first, body));
        assert_eq!(e, DecodeError::UnexpectedPacket(first >> 4));
    }
}

#[test]
fn client_rejects_packets_only_a_client_sends() {
    let connect = packet(0x10, &connect_body(b"MQTT", 4, 0x02));
    let subscribe = packet(0x82, &cat(&[&[0, 1], &s(b"a"), &[0]]));
    let unsubscribe = packet(0xA2, &cat(&[&[0, 1], &s(b"a")]));
    let pingreq = packet(0xC0, &[]);
    for bytes in [connect, subscribe, unsubscribe, pingreq] {
        let e = err(Client, V3_1_1, &bytes);
        assert_eq!(e, DecodeError::UnexpectedPacket(bytes[0] >> 4));
    }
}

#[test]
fn pubrel_subscribe_unsubscribe_without_flags_0010_are_invalid_fixed_header_flags() {
    assert_eq!(
        err(Server, V5, &packet(0x60, &[0, 1])),
        DecodeError::InvalidFixedHeaderFlags(0x60)
    );
    assert_eq!(
        err(Server, V5, &packet(0x63, &[0, 1])),
        DecodeError::InvalidFixedHeaderFlags(0x63)
    );
    let sub = cat(&[&[0, 1, 0], &s(b"a"), &[0]]);
    assert_eq!(
        err(Server, V5, &packet(0x80, &sub)),
        DecodeError::InvalidFixedHeaderFlags(0x80)
    );
    let unsub = cat(&[&[0, 1, 0], &s(b"a")]);
    assert_eq!(
        err(Server, V5, &packet(0xA0, &unsub)),
        DecodeError::InvalidFixedHeaderFlags(0xA0)
    );
}

#[test]
fn other_packets_with_nonzero_flags_are_invalid_fixed_header_flags() {
    assert_eq!(
        err(Server, V3_1_1, &[0xC1, 0x00]),
        DecodeError::InvalidFixedHeaderFlags(0xC1)
    );
    assert_eq!(
        err(Server, V3_1_1, &packet(0x42, &[0, 1])),
        DecodeError::InvalidFixedHeaderFlags(0x42)
    );
    assert_eq!(
        err(Server, V3_1_1, &[0xE8, 0x00]),
        DecodeError::InvalidFixedHeaderFlags(0xE8)
    );
    assert_eq!(
        err(Client, V5, &[0xF1, 0x00]),
        DecodeError::InvalidFixedHeaderFlags(0xF1)
    );
}

#[test]
fn mqtt31_accepts_the_dup_flag_on_a_retransmitted_subscribe() {
    let sub = cat(&[&[0, 1], &s(b"a"), &[1]]);
    assert!(matches!(
        ok(Server, V3_1, &packet(0x8A, &sub)),
        Packet::Subscribe(_)
    ));
    assert_eq!(
        err(Server, V3_1_1, &packet(0x8A, &sub)),
        DecodeError::InvalidFixedHeaderFlags(0x8A)
    );
}

#[test]
fn publish_qos_3_is_invalid_qos_and_malformed() {
    let e = err(Server, V3_1_1, &packet(0x36, &cat(&[&s(b"a"), &[0, 1]])));
    assert_eq!(e, DecodeError::InvalidQoS);
    assert_eq!(e.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn publish_qos_0_with_dup_is_invalid_fixed_header_flags_in_311_and_5() {
    let bytes = packet(0x38, &cat(&[&s(b"a"), b"x"]));
    assert_eq!(
        err(Server, V3_1_1, &bytes),
        DecodeError::InvalidFixedHeaderFlags(0x38)
    );
    let bytes5 = packet(0x38, &cat(&[&s(b"a"), &[0], b"x"]));
    assert_eq!(
        err(Server, V5, &bytes5),
        DecodeError::InvalidFixedHeaderFlags(0x38)
    );
    // MQTT 3.1 did not forbid it.
    assert!(matches!(ok(Server, V3_1, &bytes), Packet::Publish(p) if p.dup));
}

// ---- incomplete input and consumption -------------------------------------------------------

#[test]
fn incomplete_packet_returns_none_and_consumes_nothing() {
    let bytes = packet(0x30, &cat(&[&s(b"a/b"), b"hello"]));
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        let d = Decoder {
            role: Server,
            version: V3_1_1,
            maximum_packet_size: 1 << 20,
        };
        assert_eq!(d.decode(&mut buf), Ok(None), "cut at {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn decode_consumes_exactly_one_packet_and_leaves_the_next() {
    let mut bytes = packet(0xC0, &[]);
    bytes.extend_from_slice(&[0x30, 0x05, 0x00]);
    let mut buf = BytesMut::from(&bytes[..]);
    let d = Decoder {
        role: Server,
        version: V3_1_1,
        maximum_packet_size: 1 << 20,
    };
    assert_eq!(d.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert_eq!(&buf[..], &[0x30, 0x05, 0x00]);
}

#[test]
fn publish_payload_shares_the_read_buffer() {
    let bytes = packet(0x30, &cat(&[&s(b"a"), b"payload!"]));
    let mut buf = BytesMut::from(&bytes[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let d = Decoder {
        role: Server,
        version: V3_1_1,
        maximum_packet_size: 1 << 20,
    };
    let Some(Packet::Publish(p)) = d.decode(&mut buf).unwrap() else {
        panic!("expected a publish")
    };
    assert_eq!(&p.payload[..], b"payload!");
    let at = p.payload.as_ptr() as usize;
    assert!(at >= start && at < end, "payload was copied");
}

// ---- strings --------------------------------------------------------------------------------

#[test]
fn invalid_utf8_in_a_string_is_invalid_utf8() {
    let e = err(
        Server,
        V3_1_1,
        &packet(0x30, &cat(&[&s(&[0x61, 0xFF]), b"x"])),
    );
    assert_eq!(e, DecodeError::InvalidUtf8);
}

#[test]
fn encoded_surrogate_in_a_string_is_invalid_utf8() {
    let e = err(
        Server,
        V3_1_1,
        &packet(0x30, &cat(&[&s(&[0xED, 0xA0, 0x80]), b"x"])),
    );
    assert_eq!(e, DecodeError::InvalidUtf8);
}

#[test]
fn nul_character_in_a_string_is_invalid_utf8() {
    let e = err(Server, V3_1_1, &packet(0x30, &cat(&[&s(b"a\0b"), b"x"])));
    assert_eq!(e, DecodeError::InvalidUtf8);
    let e = err(
        Server,
        V3_1_1,
        &packet(
            0x10,
            &connect_body(b"MQTT", 4, 0x02)[..10]
                .iter()
                .copied()
                .chain(s(b"c\0"))
                .collect::<Vec<_>>(),
        ),
    );
    assert_eq!(e, DecodeError::InvalidUtf8);
}

#[test]
fn string_length_beyond_the_packet_is_unexpected_end() {
    let e = err(Server, V3_1_1, &packet(0x30, &[0x00, 0x09, b'a']));
    assert_eq!(e, DecodeError::UnexpectedEnd);
}

// ---- topics ---------------------------------------------------------------------------------

#[test]
fn publish_topic_with_wildcards_is_invalid_topic_name() {
    for topic in [&b"a/+"[..], b"a/#", b"+", b"a+b"] {
        let e = err(Server, V3_1_1, &packet(0x30, &cat(&[&s(topic), b"x"])));
        assert_eq!(e, DecodeError::InvalidTopicName, "{topic:?}");
    }
}

#[test]
fn empty_publish_topic_is_invalid_in_3x_and_in_5_without_topic_alias() {
    assert_eq!(
        err(Server, V3_1_1, &packet(0x30, &cat(&[&s(b""), b"x"]))),
        DecodeError::InvalidTopicName
    );
    assert_eq!(
        err(Server, V3_1, &packet(0x30, &cat(&[&s(b""), b"x"]))),
        DecodeError::InvalidTopicName
    );
    assert_eq!(
        err(Server, V5, &packet(0x30, &cat(&[&s(b""), &[0], b"x"]))),
        DecodeError::InvalidTopicName
    );
}

#[test]
fn empty_publish_topic_with_topic_alias_is_valid_in_5() {
    let bytes = packet(0x30, &cat(&[&s(b""), &props(&[0x23, 0, 7]), b"x"]));
    let Packet::Publish(p) = ok(Server, V5, &bytes) else {
        panic!()
    };
    assert_eq!(p.topic, "");
    assert_eq!(p.properties.topic_alias, Some(7));
}

#[test]
fn topic_alias_zero_is_invalid_property_value_and_maps_to_topic_alias_invalid() {
    let e = err(Server, V5, &publish_v5(&[0x23, 0, 0]));
    assert_eq!(e, DecodeError::InvalidPropertyValue(0x23));
    assert_eq!(e.reason_code(), ReasonCode::TOPIC_ALIAS_INVALID);
}

#[test]
fn will_topic_with_wildcard_is_invalid_topic_name() {
    let mut body = s(b"MQTT");
    body.extend_from_slice(&[4, 0b0000_0110, 0, 60]);
    body.extend(s(b"c"));
    body.extend(s(b"a/#"));
    body.extend(s(b"bye"));
    assert_eq!(
        err(Server, V3_1_1, &packet(0x10, &body)),
        DecodeError::InvalidTopicName
    );
}

#[test]
fn response_topic_with_wildcard_is_invalid_property_value() {
    let mut p = vec![0x08];
    p.extend(s(b"r/+"));
    assert_eq!(
        err(Server, V5, &publish_v5(&p)),
        DecodeError::InvalidPropertyValue(0x08)
    );
}

#[test]
fn misplaced_wildcards_in_a_subscribe_filter_are_invalid_topic_filter() {
    for filter in [
        &b"a/#/b"[..],
        b"a#",
        b"a/b+",
        b"+a",
        b"",
        b"$share//a",
        b"$share/g",
        b"$share/g/",
        b"$share/g+/a",
    ] {
        let body = cat(&[&[0, 1], &s(filter), &[0]]);
        assert_eq!(
            err(Server, V3_1_1, &packet(0x82, &body)),
            DecodeError::InvalidTopicFilter,
            "{filter:?}"
        );
    }
}

#[test]
fn misplaced_wildcards_in_an_unsubscribe_filter_are_invalid_topic_filter() {
    let body = cat(&[&[0, 1, 0], &s(b"a/#/b")]);
    assert_eq!(
        err(Server, V5, &packet(0xA2, &body)),
        DecodeError::InvalidTopicFilter
    );
}

#[test]
fn shared_subscription_filters_are_accepted() {
    let body = cat(&[&[0, 1, 0], &s(b"$share/group/a/+/#"), &[1]]);
    let Packet::Subscribe(sub) = ok(Server, V5, &packet(0x82, &body)) else {
        panic!()
    };
    assert_eq!(sub.subscriptions[0].filter, "$share/group/a/+/#");
}

#[test]
fn no_local_on_a_shared_subscription_is_rejected_as_protocol_error() {
    let body = cat(&[&[0, 1, 0], &s(b"$share/g/a"), &[0b0000_0100]]);
    let e = err(Server, V5, &packet(0x82, &body));
    assert_eq!(e, DecodeError::NoLocalOnSharedSubscription);
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

// ---- packet identifiers ---------------------------------------------------------------------

#[test]
fn packet_id_zero_is_zero_packet_id_wherever_one_is_required() {
    let publish = packet(0x32, &cat(&[&s(b"a"), &[0, 0], b"x"]));
    let subscribe = packet(0x82, &cat(&[&[0, 0], &s(b"a"), &[0]]));
    let unsubscribe = packet(0xA2, &cat(&[&[0, 0], &s(b"a")]));
    for bytes in [publish, subscribe, unsubscribe] {
        assert_eq!(err(Server, V3_1_1, &bytes), DecodeError::ZeroPacketId);
    }
    for first in [0x40u8, 0x50, 0x62, 0x70] {
        assert_eq!(
            err(Server, V3_1_1, &packet(first, &[0, 0])),
            DecodeError::ZeroPacketId
        );
        assert_eq!(
            err(Client, V5, &packet(first, &[0, 0])),
            DecodeError::ZeroPacketId
        );
    }
    assert_eq!(
        err(Client, V3_1_1, &packet(0x90, &[0, 0, 0])),
        DecodeError::ZeroPacketId
    );
    assert_eq!(
        err(Client, V3_1_1, &packet(0xB0, &[0, 0])),
        DecodeError::ZeroPacketId
    );
}

#[test]
fn publish_qos_0_has_no_packet_id() {
    let Packet::Publish(p) = ok(Server, V3_1_1, &packet(0x30, &cat(&[&s(b"a"), &[0, 0]]))) else {
        panic!()
    };
    assert_eq!(p.packet_id, None);
    assert_eq!(&p.payload[..], &[0, 0]);
}

// ---- subscribe options ----------------------------------------------------------------------

fn subscribe_with_options(byte: u8) -> Vec<u8> {
    packet(0x82, &cat(&[&[0, 1, 0], &s(b"a"), &[byte]]))
}

#[test]
fn subscription_options_reserved_bits_6_and_7_are_invalid_flags_in_5() {
    assert_eq!(
        err(Server, V5, &subscribe_with_options(0b0100_0000)),
        DecodeError::InvalidFlags
    );
    assert_eq!(
        err(Server, V5, &subscribe_with_options(0b1000_0000)),
        DecodeError::InvalidFlags
    );
}

#[test]
fn subscription_options_bits_2_to_7_are_invalid_flags_in_3x() {
    for bit in 2..8 {
        let body = cat(&[&[0, 1], &s(b"a"), &[1 << bit]]);
        assert_eq!(
            err(Server, V3_1_1, &packet(0x82, &body)),
            DecodeError::InvalidFlags,
            "bit {bit}"
        );
        assert_eq!(
            err(Server, V3_1, &packet(0x82, &body)),
            DecodeError::InvalidFlags,
            "bit {bit}"
        );
    }
}

#[test]
fn retain_handling_3_is_invalid_flags() {
    assert_eq!(
        err(Server, V5, &subscribe_with_options(0b0011_0000)),
        DecodeError::InvalidFlags
    );
}

#[test]
fn subscription_qos_3_is_invalid_qos() {
    assert_eq!(
        err(Server, V5, &subscribe_with_options(0b0000_0011)),
        DecodeError::InvalidQoS
    );
    let body = cat(&[&[0, 1], &s(b"a"), &[3]]);
    assert_eq!(
        err(Server, V3_1_1, &packet(0x82, &body)),
        DecodeError::InvalidQoS
    );
}

#[test]
fn subscription_options_bits_decode_into_their_fields() {
    let Packet::Subscribe(sub) = ok(Server, V5, &subscribe_with_options(0b0010_1110)) else {
        panic!()
    };
    assert_eq!(
        sub.subscriptions[0].options,
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        }
    );
}

#[test]
fn subscribe_without_filters_is_empty_subscription() {
    assert_eq!(
        err(Server, V3_1_1, &packet(0x82, &[0, 1])),
        DecodeError::EmptySubscription
    );
    assert_eq!(
        err(Server, V5, &packet(0x82, &[0, 1, 0])),
        DecodeError::EmptySubscription
    );
}

#[test]
fn unsubscribe_without_filters_is_empty_subscription() {
    assert_eq!(
        err(Server, V3_1_1, &packet(0xA2, &[0, 1])),
        DecodeError::EmptySubscription
    );
    assert_eq!(
        err(Server, V5, &packet(0xA2, &[0, 1, 0])),
        DecodeError::EmptySubscription
    );
}

#[test]
fn subscribe_entry_missing_its_options_byte_is_unexpected_end() {
    assert_eq!(
        err(Server, V3_1_1, &packet(0x82, &cat(&[&[0, 1], &s(b"a")]))),
        DecodeError::UnexpectedEnd
    );
}

// ---- CONNECT --------------------------------------------------------------------------------

#[test]
fn connect_protocol_names_and_levels_select_the_version() {
    for (name, level, version) in [
        (&b"MQIsdp"[..], 3, V3_1),
        (b"MQTT", 4, V3_1_1),
        (b"MQTT", 5, V5),
    ] {
        // The decoder's own version does not matter for CONNECT.
        let Packet::Connect(c) = ok(
            Server,
            V3_1_1,
            &packet(0x10, &connect_body(name, level, 0x02)),
        ) else {
            panic!()
        };
        assert_eq!(c.protocol, version);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.client_id, "c");
    }
}

#[test]
fn unknown_protocol_name_is_invalid_protocol_name() {
    assert_eq!(
        err(Server, V5, &packet(0x10, &connect_body(b"MQTX", 4, 0x02))),
        DecodeError::InvalidProtocolName
    );
    assert_eq!(
        err(Server, V5, &packet(0x10, &connect_body(b"mqtt", 5, 0x02))),
        DecodeError::InvalidProtocolName
    );
}

#[test]
fn known_protocol_name_with_another_level_is_unsupported_protocol_version_with_the_level() {
    let e = err(Server, V5, &packet(0x10, &connect_body(b"MQTT", 6, 0x02)));
    assert_eq!(e, DecodeError::UnsupportedProtocolVersion(6));
    assert_eq!(e.reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(
        err(Server, V5, &packet(0x10, &connect_body(b"MQTT", 3, 0x02))),
        DecodeError::UnsupportedProtocolVersion(3)
    );
    assert_eq!(
        err(Server, V5, &packet(0x10, &connect_body(b"MQIsdp", 4, 0x02))),
        DecodeError::UnsupportedProtocolVersion(4)
    );
}

#[test]
fn unsupported_level_is_reported_even_when_the_rest_of_connect_is_garbage() {
    let body = cat(&[&s(b"MQTT"), &[7, 0xFF]]);
    assert_eq!(
        err(Server, V5, &packet(0x10, &body)),
        DecodeError::UnsupportedProtocolVersion(7)
    );
}

#[test]
fn connect_reserved_flag_bit_is_invalid_flags() {
    for (name, level) in [(&b"MQIsdp"[..], 3), (b"MQTT", 4), (b"MQTT", 5)] {
        assert_eq!(
            err(Server, V5, &packet(0x10, &connect_body(name, level, 0x03))),
            DecodeError::InvalidFlags
        );
    }
}

#[test]
fn will_qos_or_retain_without_will_flag_is_invalid_flags() {
    assert_eq!(
        err(
            Server,
            V5,
            &packet(0x10, &connect_body(b"MQTT", 4, 0b0000_1010))
        ),
        DecodeError::InvalidFlags
    );
    assert_eq!(
        err(
            Server,
            V5,
            &packet(0x10, &connect_body(b"MQTT", 4, 0b0001_0010))
        ),
        DecodeError::InvalidFlags
    );
    assert_eq!(
        err(
            Server,
            V5,
            &packet(0x10, &connect_body(b"MQTT", 5, 0b0010_0010))
        ),
        DecodeError::InvalidFlags
    );
}

#[test]
fn will_qos_3_is_invalid_qos() {
    let mut body = s(b"MQTT");
    body.extend_from_slice(&[4, 0b0001_1110, 0, 60]);
    body.extend(s(b"c"));
    body.extend(s(b"w"));
    body.extend(s(b"x"));
    assert_eq!(
        err(Server, V3_1_1, &packet(0x10, &body)),
        DecodeError::InvalidQoS
    );
}

#[test]
fn password_without_user_name_is_invalid_flags_in_311_only() {
    let mut body = connect_body(b"MQTT", 4, 0b0100_0010);
    body.extend(s(b"pw"));
    assert_eq!(
        err(Server, V3_1_1, &packet(0x10, &body)),
        DecodeError::InvalidFlags
    );

    let mut body = connect_body(b"MQTT", 5, 0b0100_0010);
    body.extend(s(b"pw"));
    let Packet::Connect(c) = ok(Server, V5, &packet(0x10, &body)) else {
        panic!()
    };
    assert_eq!(
        (c.username, c.password),
        (None, Some(Bytes::from_static(b"pw")))
    );
}

#[test]
fn connect_with_will_user_name_and_password_decodes_every_field() {
    let mut body = s(b"MQTT");
    body.extend_from_slice(&[4, 0b1111_0100, 0, 10]);
    body.extend(s(b"client"));
    body.extend(s(b"will/topic"));
    body.extend(s(b"bye"));
    body.extend(s(b"user"));
    body.extend(s(b"pass"));
    let Packet::Connect(c) = ok(Server, V3_1_1, &packet(0x10, &body)) else {
        panic!()
    };
    assert_eq!(
        *c,
        Connect {
            protocol: V3_1_1,
            clean_start: false,
            keep_alive: 10,
            client_id: "client".into(),
            will: Some(Will {
                topic: "will/topic".into(),
                payload: Bytes::from_static(b"bye"),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: Default::default(),
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"pass")),
            properties: Default::default(),
        }
    );
}

#[test]
fn connect_followed_by_an_extra_byte_is_trailing_bytes() {
    let mut body = connect_body(b"MQTT", 4, 0x02);
    body.push(0);
    assert_eq!(
        err(Server, V3_1_1, &packet(0x10, &body)),
        DecodeError::TrailingBytes
    );
}

#[test]
fn connect_missing_the_client_id_is_unexpected_end() {
    let body = cat(&[&s(b"MQTT"), &[4, 0x02, 0, 60]]);
    assert_eq!(
        err(Server, V3_1_1, &packet(0x10, &body)),
        DecodeError::UnexpectedEnd
    );
}

// ---- CONNACK --------------------------------------------------------------------------------

#[test]
fn connack_reserved_flag_bits_are_invalid_flags() {
    assert_eq!(
        err(Client, V3_1_1, &packet(0x20, &[0x02, 0])),
        DecodeError::InvalidFlags
    );
    assert_eq!(
        err(Client, V5, &packet(0x20, &[0x80, 0, 0])),
        DecodeError::InvalidFlags
    );
}

#[test]
fn connack_3x_return_code_above_5_is_invalid_reason_code() {
    assert_eq!(
        err(Client, V3_1_1, &packet(0x20, &[0, 6])),
        DecodeError::InvalidReasonCode(6)
    );
}

#[test]
fn connack_5_reason_code_not_in_table_is_invalid_reason_code() {
    assert_eq!(
        err(Client, V5, &packet(0x20, &[0, 0x01, 0])),
        DecodeError::InvalidReasonCode(0x01)
    );
    assert_eq!(
        err(Client, V5, &packet(0x20, &[0, 0x8B, 0])),
        DecodeError::InvalidReasonCode(0x8B)
    );
}

#[test]
fn connack_3x_with_trailing_byte_is_trailing_bytes() {
    assert_eq!(
        err(Client, V3_1_1, &packet(0x20, &[0, 0, 0])),
        DecodeError::TrailingBytes
    );
}

// ---- properties -----------------------------------------------------------------------------

#[test]
fn unknown_property_identifier_is_unknown_property() {
    assert_eq!(
        err(Server, V5, &publish_v5(&[0x7F, 0])),
        DecodeError::UnknownProperty(0x7F)
    );
    assert_eq!(
        err(Server, V5, &publish_v5(&[0x00, 0])),
        DecodeError::UnknownProperty(0x00)
    );
}

#[test]
fn property_from_another_packet_is_property_not_allowed() {
    // Session expiry interval is not a PUBLISH property.
    assert_eq!(
        err(Server, V5, &publish_v5(&[0x11, 0, 0, 0, 1])),
        DecodeError::PropertyNotAllowed(0x11)
    );
    // Topic alias is not a PUBACK property.
    let puback = packet(0x40, &cat(&[&[0, 1, 0], &props(&[0x23, 0, 1])]));
    assert_eq!(
        err(Server, V5, &puback),
        DecodeError::PropertyNotAllowed(0x23)
    );
}

#[test]
fn repeated_single_valued_property_is_duplicate_property() {
    let p = [0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2];
    let e = err(Server, V5, &publish_v5(&p));
    assert_eq!(e, DecodeError::DuplicateProperty(0x02));
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn repeated_user_properties_are_kept_in_order() {
    let mut p = Vec::new();
    for (k, v) in [("b", "1"), ("a", "2"), ("b", "3")] {
        p.push(0x26);
        p.extend(s(k.as_bytes()));
        p.extend(s(v.as_bytes()));
    }
    let Packet::Publish(publish) = ok(Server, V5, &publish_v5(&p)) else {
        panic!()
    };
    let got: Vec<(&str, &str)> = publish
        .properties
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, [("b", "1"), ("a", "2"), ("b", "3")]);
}

#[test]
fn repeated_subscription_identifiers_are_accepted_by_a_client() {
    let Packet::Publish(p) = ok(Client, V5, &publish_v5(&[0x0B, 5, 0x0B, 0x80, 0x01])) else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, [5, 128]);
}

#[test]
fn subscription_identifier_in_a_publish_from_a_client_is_property_not_allowed() {
    assert_eq!(
        err(Server, V5, &publish_v5(&[0x0B, 5])),
        DecodeError::PropertyNotAllowed(0x0B)
    );
}

#[test]
fn subscription_identifier_zero_is_invalid_property_value() {
    assert_eq!(
        err(Client, V5, &publish_v5(&[0x0B, 0])),
        DecodeError::InvalidPropertyValue(0x0B)
    );
    let sub = packet(0x82, &cat(&[&[0, 1], &props(&[0x0B, 0]), &s(b"a"), &[0]]));
    assert_eq!(
        err(Server, V5, &sub),
        DecodeError::InvalidPropertyValue(0x0B)
    );
}

#[test]
fn subscription_identifier_twice_in_subscribe_is_duplicate_property() {
    let sub = packet(
        0x82,
        &cat(&[&[0, 1], &props(&[0x0B, 1, 0x0B, 2]), &s(b"a"), &[0]]),
    );
    assert_eq!(err(Server, V5, &sub), DecodeError::DuplicateProperty(0x0B));
}

#[test]
fn subscription_identifier_of_five_bytes_is_malformed_variable_integer() {
    let e = err(
        Client,
        V5,
        &publish_v5(&[0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    );
    assert_eq!(e, DecodeError::MalformedVariableInteger);
}

fn connect_v5_with_properties(p: &[u8]) -> Vec<u8> {
    let mut body = s(b"MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 60]);
    body.extend(props(p));
    body.extend(s(b"c"));
    packet(0x10, &body)
}

#[test]
fn receive_maximum_zero_is_invalid_property_value() {
    assert_eq!(
        err(Server, V5, &connect_v5_with_properties(&[0x21, 0, 0])),
        DecodeError::InvalidPropertyValue(0x21)
    );
    assert_eq!(
        err(
            Client,
            V5,
            &packet(0x20, &cat(&[&[0, 0], &props(&[0x21, 0, 0])]))
        ),
        DecodeError::InvalidPropertyValue(0x21)
    );
}

#[test]
fn maximum_packet_size_zero_is_invalid_property_value() {
    let e = err(Server, V5, &connect_v5_with_properties(&[0x27, 0, 0, 0, 0]));
    assert_eq!(e, DecodeError::InvalidPropertyValue(0x27));
}

#[test]
fn boolean_property_other_than_0_or_1_is_invalid_property_value() {
    assert_eq!(
        err(Server, V5, &connect_v5_with_properties(&[0x17, 2])),
        DecodeError::InvalidPropertyValue(0x17)
    );
    assert_eq!(
        err(Server, V5, &publish_v5(&[0x01, 2])),
        DecodeError::InvalidPropertyValue(0x01)
    );
    assert_eq!(
        err(
            Client,
            V5,
            &packet(0x20, &cat(&[&[0, 0], &props(&[0x25, 7])]))
        ),
        DecodeError::InvalidPropertyValue(0x25)
    );
}

#[test]
fn maximum_qos_other_than_0_or_1_is_invalid_property_value() {
    assert_eq!(
        err(
            Client,
            V5,
            &packet(0x20, &cat(&[&[0, 0], &props(&[0x24, 2])]))
        ),
        DecodeError::InvalidPropertyValue(0x24)
    );
    let Packet::ConnAck(c) = ok(
        Client,
        V5,
        &packet(0x20, &cat(&[&[0, 0], &props(&[0x24, 1])])),
    ) else {
        panic!()
    };
    assert_eq!(c.properties.maximum_qos, Some(QoS::AtLeastOnce));
}

#[test]
fn property_length_beyond_the_packet_is_unexpected_end() {
    let bytes = packet(0x30, &cat(&[&s(b"a"), &[20, 0x01, 1]]));
    assert_eq!(err(Server, V5, &bytes), DecodeError::UnexpectedEnd);
}

#[test]
fn property_value_cut_short_by_the_property_length_is_unexpected_end() {
    // The block claims 3 bytes, the message expiry interval needs 5.
    let bytes = packet(0x30, &cat(&[&s(b"a"), &[3, 0x02, 0, 0, 0, 1]]));
    assert_eq!(err(Server, V5, &bytes), DecodeError::UnexpectedEnd);
}

#[test]
fn session_expiry_in_a_disconnect_from_the_server_is_property_not_allowed() {
    let bytes = packet(0xE0, &cat(&[&[0x00], &props(&[0x11, 0, 0, 0, 5])]));
    assert_eq!(
        err(Client, V5, &bytes),
        DecodeError::PropertyNotAllowed(0x11)
    );
    let Packet::Disconnect(d) = ok(Server, V5, &bytes) else {
        panic!()
    };
    assert_eq!(d.properties.session_expiry_interval, Some(5));
}

#[test]
fn correlation_and_authentication_data_share_the_read_buffer() {
    let mut p = vec![0x09];
    p.extend(s(b"corr"));
    let bytes = publish_v5(&p);
    let mut buf = BytesMut::from(&bytes[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let d = Decoder {
        role: Server,
        version: V5,
        maximum_packet_size: 1000,
    };
    let Some(Packet::Publish(p)) = d.decode(&mut buf).unwrap() else {
        panic!()
    };
    let data = p.properties.correlation_data.unwrap();
    assert_eq!(&data[..], b"corr");
    assert!(range.contains(&(data.as_ptr() as usize)));
}

// ---- acknowledgements, DISCONNECT, AUTH -----------------------------------------------------

#[test]
fn v5_ack_with_remaining_length_2_is_success_without_properties() {
    for (first, role) in [
        (0x40u8, Server),
        (0x50, Client),
        (0x62, Server),
        (0x70, Client),
    ] {
        let p = ok(role, V5, &packet(first, &[0x12, 0x34]));
        let ack = match p {
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ack,
            Ack {
                packet_id: 0x1234,
                reason_code: ReasonCode::SUCCESS,
                properties: Default::default()
            }
        );
    }
}

#[test]
fn v5_ack_with_remaining_length_3_is_a_reason_code_without_properties() {
    let Packet::PubAck(a) = ok(Server, V5, &packet(0x40, &[0, 1, 0x10])) else {
        panic!()
    };
    assert_eq!(a.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(a.properties, AckProperties::default());
}

#[test]
fn v5_ack_with_reason_string_decodes_it() {
    let mut p = vec![0x1F];
    p.extend(s(b"why"));
    let Packet::PubRec(a) = ok(
        Server,
        V5,
        &packet(0x50, &cat(&[&[0, 1, 0x80], &props(&p)])),
    ) else {
        panic!()
    };
    assert_eq!(a.properties.reason_string.as_deref(), Some("why"));
}

#[test]
fn puback_and_pubrec_reason_codes_outside_their_table_are_invalid_reason_code() {
    for code in [0x01u8, 0x11, 0x81, 0x92, 0x95] {
        assert_eq!(
            err(Server, V5, &packet(0x40, &[0, 1, code])),
            DecodeError::InvalidReasonCode(code)
        );
        assert_eq!(
            err(Server, V5, &packet(0x50, &[0, 1, code])),
            DecodeError::InvalidReasonCode(code)
        );
    }
    for code in [0x00u8, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99] {
        assert!(
            decode(Server, V5, &packet(0x40, &[0, 1, code])).is_ok(),
            "{code:#x}"
        );
    }
}

#[test]
fn pubrel_and_pubcomp_allow_only_success_and_packet_id_not_found() {
    assert_eq!(
        err(Server, V5, &packet(0x62, &[0, 1, 0x10])),
        DecodeError::InvalidReasonCode(0x10)
    );
    assert_eq!(
        err(Server, V5, &packet(0x70, &[0, 1, 0x80])),
        DecodeError::InvalidReasonCode(0x80)
    );
    assert!(decode(Server, V5, &packet(0x62, &[0, 1, 0x92])).is_ok());
    assert!(decode(Server, V5, &packet(0x70, &[0, 1, 0x92])).is_ok());
}

#[test]
fn v3_ack_with_more_than_a_packet_id_is_trailing_bytes() {
    assert_eq!(
        err(Server, V3_1_1, &packet(0x40, &[0, 1, 0])),
        DecodeError::TrailingBytes
    );
    assert_eq!(
        err(Server, V3_1, &packet(0x62, &[0, 1, 0])),
        DecodeError::TrailingBytes
    );
}

#[test]
fn ack_with_one_byte_is_unexpected_end() {
    assert_eq!(
        err(Server, V5, &packet(0x40, &[1])),
        DecodeError::UnexpectedEnd
    );
}

#[test]
fn suback_codes_outside_the_table_are_invalid_reason_code() {
    assert_eq!(
        err(Client, V3_1_1, &packet(0x90, &[0, 1, 3])),
        DecodeError::InvalidReasonCode(3)
    );
    assert_eq!(
        err(Client, V5, &packet(0x90, &[0, 1, 0, 0x11])),
        DecodeError::InvalidReasonCode(0x11)
    );
    let Packet::SubAck(s) = ok(Client, V3_1_1, &packet(0x90, &[0, 1, 0, 1, 2, 0x80])) else {
        panic!()
    };
    assert_eq!(
        s.reason_codes,
        [
            ReasonCode(0),
            ReasonCode(1),
            ReasonCode(2),
            ReasonCode(0x80)
        ]
    );
}

#[test]
fn unsuback_codes_outside_the_table_are_invalid_reason_code() {
    assert_eq!(
        err(Client, V5, &packet(0xB0, &[0, 1, 0, 0x01])),
        DecodeError::InvalidReasonCode(0x01)
    );
}

#[test]
fn v3_unsuback_with_more_than_a_packet_id_is_trailing_bytes() {
    assert_eq!(
        err(Client, V3_1_1, &packet(0xB0, &[0, 1, 0])),
        DecodeError::TrailingBytes
    );
}

#[test]
fn v5_disconnect_with_remaining_length_0_is_normal_disconnection() {
    let p = ok(Server, V5, &[0xE0, 0x00]);
    assert_eq!(
        p,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::NORMAL_DISCONNECTION,
            properties: Default::default()
        })
    );
}

#[test]
fn v5_disconnect_with_a_reason_code_alone_decodes_it() {
    let Packet::Disconnect(d) = ok(Server, V5, &[0xE0, 0x01, 0x04]) else {
        panic!()
    };
    assert_eq!(d.reason_code, ReasonCode::DISCONNECT_WITH_WILL);
}

#[test]
fn disconnect_reason_code_outside_the_table_is_invalid_reason_code() {
    assert_eq!(
        err(Server, V5, &[0xE0, 0x01, 0x05]),
        DecodeError::InvalidReasonCode(0x05)
    );
    assert_eq!(
        err(Server, V5, &[0xE0, 0x01, 0x84]),
        DecodeError::InvalidReasonCode(0x84)
    );
}

#[test]
fn v3_disconnect_with_a_body_is_trailing_bytes() {
    assert_eq!(
        err(Server, V3_1_1, &[0xE0, 0x01, 0x00]),
        DecodeError::TrailingBytes
    );
}

#[test]
fn auth_with_remaining_length_0_is_success() {
    assert_eq!(ok(Server, V5, &[0xF0, 0x00]), Packet::Auth(Auth::default()));
}

#[test]
fn auth_reason_code_outside_the_table_is_invalid_reason_code() {
    assert_eq!(
        err(Server, V5, &[0xF0, 0x01, 0x01]),
        DecodeError::InvalidReasonCode(0x01)
    );
    assert_eq!(
        err(Client, V5, &[0xF0, 0x01, 0x87]),
        DecodeError::InvalidReasonCode(0x87)
    );
}

#[test]
fn auth_with_method_and_data_decodes_them() {
    let mut p = vec![0x15];
    p.extend(s(b"SCRAM-SHA-1"));
    p.push(0x16);
    p.extend(s(b"\x00\x01"));
    let Packet::Auth(a) = ok(Server, V5, &packet(0xF0, &cat(&[&[0x18], &props(&p)]))) else {
        panic!()
    };
    assert_eq!(a.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
    assert_eq!(
        a.properties.authentication_method.as_deref(),
        Some("SCRAM-SHA-1")
    );
    assert_eq!(
        a.properties.authentication_data.as_deref(),
        Some(&b"\x00\x01"[..])
    );
}

#[test]
fn pingreq_with_a_body_is_trailing_bytes() {
    assert_eq!(
        err(Server, V3_1_1, &[0xC0, 0x01, 0x00]),
        DecodeError::TrailingBytes
    );
    assert_eq!(
        err(Client, V5, &[0xD0, 0x01, 0x00]),
        DecodeError::TrailingBytes
    );
}
