//! Property tests: every valid packet of every version encodes to `encoded_len` bytes and
//! decodes back to itself, also when fed a byte at a time; random bytes never panic.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tollgate_mqtt::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn decoder(role: Role, version: ProtocolVersion) -> Decoder {
    Decoder {
        role,
        version,
        maximum_packet_size: u32::MAX,
    }
}

// ---- leaf strategies ------------------------------------------------------------------------

/// Any MQTT string: valid UTF-8 without U+0000, short.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _./+#$-]{0,12}",
        any::<String>().prop_map(|s| s.replace('\0', "").chars().take(8).collect()),
    ]
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn topic_level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9 $_-]{0,6}", Just(String::new()), "[é€😀]{1,2}"]
}

fn topic_name() -> impl Strategy<Value = String> {
    vec(topic_level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are not empty", |t| !t.is_empty())
}

fn plain_filter() -> impl Strategy<Value = String> {
    (
        vec(
            prop_oneof![3 => topic_level(), 1 => Just("+".to_owned())],
            1..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
        .prop_filter("filters are not empty", |f| !f.is_empty())
}

fn topic_filter() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => plain_filter(),
        1 => ("[a-z0-9]{1,6}", plain_filter()).prop_map(|(g, f)| format!("$share/{g}/{f}")),
    ]
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((string(), string()), 0..3)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(codes).prop_map(ReasonCode)
}

fn subscription_id() -> impl Strategy<Value = u32> {
    1..=268_435_455u32
}

fn ack_properties(version: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    if !version.is_v5() {
        return Just(AckProperties::default()).boxed();
    }
    (option::of(string()), user_properties())
        .prop_map(|(reason_string, user_properties)| AckProperties {
            reason_string,
            user_properties,
        })
        .boxed()
}

// ---- packets --------------------------------------------------------------------------------

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let props = (
        (
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            option::of(1..=u32::MAX),
            option::of(any::<u16>()),
            option::of(any::<bool>()),
        ),
        (
            option::of(any::<bool>()),
            user_properties(),
            option::of(string()),
            option::of(binary()),
        ),
    )
        .prop_map(move |((sei, rm, mps, tam, rri), (rpi, up, am, ad))| {
            if !v5 {
                return ConnectProperties::default();
            }
            ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method: am,
                authentication_data: ad,
            }
        });
    let will_props = (
        (
            option::of(any::<u32>()),
            option::of(any::<bool>()),
            option::of(any::<u32>()),
        ),
        (
            option::of(string()),
            option::of(topic_name()),
            option::of(binary()),
            user_properties(),
        ),
    )
        .prop_map(move |((wdi, pfi, mei), (ct, rt, cd, up))| {
            if !v5 {
                return WillProperties::default();
            }
            WillProperties {
                will_delay_interval: wdi,
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                content_type: ct,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
            }
        });
    let will = option::of(
        (topic_name(), binary(), qos(), any::<bool>(), will_props).prop_map(
            |(topic, payload, qos, retain, properties)| Will {
                topic,
                payload,
                qos,
                retain,
                properties,
            },
        ),
    );
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        will,
        option::of(string()),
        option::of(binary()),
        props,
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                let password = if version == ProtocolVersion::V3_1_1 && username.is_none() {
                    None
                } else {
                    password
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    match version {
        ProtocolVersion::V5 => {
            let props = (
                (
                    option::of(any::<u32>()),
                    option::of(1..=u16::MAX),
                    option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
                    option::of(any::<bool>()),
                    option::of(1..=u32::MAX),
                    option::of(string()),
                ),
                (
                    option::of(any::<u16>()),
                    option::of(string()),
                    user_properties(),
                    option::of(any::<bool>()),
                    option::of(any::<bool>()),
                    option::of(any::<bool>()),
                ),
                (
                    option::of(any::<u16>()),
                    option::of(string()),
                    option::of(string()),
                    option::of(string()),
                    option::of(binary()),
                ),
            )
                .prop_map(
                    |((a, b, c, d, e, f), (g, h, i, j, k, l), (m, n, o, p, q))| ConnAckProperties {
                        session_expiry_interval: a,
                        receive_maximum: b,
                        maximum_qos: c,
                        retain_available: d,
                        maximum_packet_size: e,
                        assigned_client_identifier: f,
                        topic_alias_maximum: g,
                        reason_string: h,
                        user_properties: i,
                        wildcard_subscription_available: j,
                        subscription_identifiers_available: k,
                        shared_subscription_available: l,
                        server_keep_alive: m,
                        response_information: n,
                        server_reference: o,
                        authentication_method: p,
                        authentication_data: q,
                    },
                );
            let codes: &'static [u8] = &[
                0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
                0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
            ];
            (any::<bool>(), reason(codes), props)
                .prop_map(|(session_present, reason_code, properties)| {
                    Packet::ConnAck(ConnAck {
                        session_present,
                        reason_code,
                        properties,
                    })
                })
                .boxed()
        }
        _ => (any::<bool>(), 0u8..=5)
            .prop_map(move |(sp, code)| {
                Packet::ConnAck(ConnAck {
                    session_present: sp && version != ProtocolVersion::V3_1,
                    reason_code: ReasonCode(code),
                    properties: Default::default(),
                })
            })
            .boxed(),
    }
}

fn publish(version: ProtocolVersion, role: Role) -> impl Strategy<Value = Publish> {
    let v5 = version.is_v5();
    let props = (
        (
            option::of(any::<bool>()),
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
        ),
        (
            option::of(topic_name()),
            option::of(binary()),
            user_properties(),
            vec(subscription_id(), 0..3),
            option::of(string()),
        ),
    )
        .prop_map(move |((pfi, mei, ta), (rt, cd, up, sids, ct))| {
            if !v5 {
                return PublishProperties::default();
            }
            PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                topic_alias: ta,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
                subscription_identifiers: if role == Role::Client {
                    sids
                } else {
                    Vec::new()
                },
                content_type: ct,
            }
        });
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        props,
        vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(dup, qos, retain, topic, empty_topic, id, properties, payload)| {
                let topic = if empty_topic && properties.topic_alias.is_some() {
                    String::new()
                } else {
                    topic
                };
                Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic,
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    properties,
                    payload: Bytes::from(payload),
                }
            },
        )
}

fn ack(version: ProtocolVersion, codes: &'static [u8]) -> impl Strategy<Value = Ack> {
    let v5 = version.is_v5();
    (packet_id(), reason(codes), ack_properties(version)).prop_map(
        move |(packet_id, r, properties)| Ack {
            packet_id,
            reason_code: if v5 { r } else { ReasonCode::SUCCESS },
            properties,
        },
    )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let options = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(RetainHandling::SendAtSubscribe),
            Just(RetainHandling::SendIfNew),
            Just(RetainHandling::DoNotSend)
        ],
    );
    let subscription = (topic_filter(), options).prop_map(move |(filter, (qos, nl, rap, rh))| {
        let options = if v5 {
            SubscriptionOptions {
                qos,
                no_local: nl && tollgate_mqtt::topic::split_shared(&filter).is_none(),
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions {
                qos,
                ..Default::default()
            }
        };
        Subscription { filter, options }
    });
    (
        packet_id(),
        option::of(subscription_id()),
        user_properties(),
        vec(subscription, 1..4),
    )
        .prop_map(move |(packet_id, sid, up, subscriptions)| {
            let properties = if v5 {
                SubscribeProperties {
                    subscription_identifier: sid,
                    user_properties: up,
                }
            } else {
                SubscribeProperties::default()
            };
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                subscriptions,
            })
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes: &'static [u8] = if version.is_v5() {
        &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ]
    } else {
        &[0x00, 0x01, 0x02, 0x80]
    };
    (
        packet_id(),
        ack_properties(version),
        vec(reason(codes), 1..5),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    (packet_id(), user_properties(), vec(topic_filter(), 1..4)).prop_map(
        move |(packet_id, up, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                user_properties: if v5 { up } else { Vec::new() },
                filters,
            })
        },
    )
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let codes: &'static [u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    (
        packet_id(),
        ack_properties(version),
        vec(reason(codes), 0..4),
    )
        .prop_map(move |(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reason_codes: if v5 { reason_codes } else { Vec::new() },
            })
        })
}

fn disconnect(version: ProtocolVersion, role: Role) -> BoxedStrategy<Packet> {
    if !version.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    let codes: &'static [u8] = &[
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ];
    (
        reason(codes),
        option::of(any::<u32>()),
        option::of(string()),
        user_properties(),
        option::of(string()),
    )
        .prop_map(move |(reason_code, sei, rs, up, sr)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties: DisconnectProperties {
                    session_expiry_interval: if role == Role::Server { sei } else { None },
                    reason_string: rs,
                    user_properties: up,
                    server_reference: sr,
                },
            })
        })
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason(&[0x00, 0x18, 0x19]),
        option::of(string()),
        option::of(binary()),
        option::of(string()),
        user_properties(),
    )
        .prop_map(|(reason_code, am, ad, rs, up)| {
            Packet::Auth(Auth {
                reason_code,
                properties: AuthProperties {
                    authentication_method: am,
                    authentication_data: ad,
                    reason_string: rs,
                    user_properties: up,
                },
            })
        })
}

/// A valid packet for `version` and the role that receives it.
fn packet(version: ProtocolVersion) -> BoxedStrategy<(Packet, Role)> {
    use Role::{Client, Server};
    let puback: &'static [u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    let pubrel: &'static [u8] = &[0x00, 0x92];
    let role = prop_oneof![Just(Server), Just(Client)];
    let mut choices: Vec<BoxedStrategy<(Packet, Role)>> = vec![
        connect(version).prop_map(|p| (p, Server)).boxed(),
        connack(version).prop_map(|p| (p, Client)).boxed(),
        role.clone()
            .prop_flat_map(move |r| publish(version, r).prop_map(move |p| (Packet::Publish(p), r)))
            .boxed(),
        (ack(version, puback), role.clone())
            .prop_map(|(a, r)| (Packet::PubAck(a), r))
            .boxed(),
        (ack(version, puback), role.clone())
            .prop_map(|(a, r)| (Packet::PubRec(a), r))
            .boxed(),
        (ack(version, pubrel), role.clone())
            .prop_map(|(a, r)| (Packet::PubRel(a), r))
            .boxed(),
        (ack(version, pubrel), role.clone())
            .prop_map(|(a, r)| (Packet::PubComp(a), r))
            .boxed(),
        subscribe(version).prop_map(|p| (p, Server)).boxed(),
        suback(version).prop_map(|p| (p, Client)).boxed(),
        unsubscribe(version).prop_map(|p| (p, Server)).boxed(),
        unsuback(version).prop_map(|p| (p, Client)).boxed(),
        Just((Packet::PingReq, Server)).boxed(),
        Just((Packet::PingResp, Client)).boxed(),
        role.clone()
            .prop_flat_map(move |r| disconnect(version, r).prop_map(move |p| (p, r)))
            .boxed(),
    ];
    if version.is_v5() {
        choices.push((auth(), role).boxed());
    }
    proptest::strategy::Union::new(choices).boxed()
}

fn any_version_packet() -> impl Strategy<Value = (ProtocolVersion, Packet, Role)> {
    proptest::sample::select(VERSIONS.to_vec())
        .prop_flat_map(|v| packet(v).prop_map(move |(p, r)| (v, p, r)))
}

// ---- properties -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn every_valid_packet_round_trips_and_encoded_len_matches((version, packet, role) in any_version_packet()) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), encoded_len(&packet, version).unwrap());
        let decoded = decoder(role, version).decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn byte_at_a_time_feeding_yields_none_until_the_packet_is_complete((version, packet, role) in any_version_packet()) {
        let mut whole = BytesMut::new();
        encode(&packet, version, &mut whole).unwrap();
        let d = decoder(role, version);
        let mut buf = BytesMut::new();
        for (i, &byte) in whole.iter().enumerate() {
            prop_assert_eq!(d.decode(&mut buf).unwrap(), None);
            prop_assert_eq!(buf.len(), i, "an incomplete packet must not be consumed");
            buf.extend_from_slice(&[byte]);
        }
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(packet));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn back_to_back_packets_decode_one_at_a_time(
        (version, first, role) in any_version_packet(),
        second_seed in any::<u16>(),
    ) {
        let second = Packet::PubAck(Ack { packet_id: second_seed.max(1), ..Ack::default() });
        let mut buf = BytesMut::new();
        encode(&first, version, &mut buf).unwrap();
        encode(&second, version, &mut buf).unwrap();
        let d = decoder(role, version);
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(first));
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(second));
        prop_assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn encode_publish_with_applies_overrides_and_publish_encoded_len_matches(
        version in proptest::sample::select(VERSIONS.to_vec()),
        message in publish(ProtocolVersion::V5, Role::Client),
        qos in qos(),
        dup in any::<bool>(),
        retain in any::<bool>(),
        id in packet_id(),
        alias in option::of(1..=u16::MAX),
        omit_topic in any::<bool>(),
        expiry in option::of(any::<u32>()),
        sids in vec(subscription_id(), 0..3),
    ) {
        let dup = dup && qos != QoS::AtMostOnce;
        let packet_id = (qos != QoS::AtMostOnce).then_some(id);
        let omit_topic = omit_topic && alias.is_some();
        let overrides = PublishOverrides {
            dup, qos, retain, packet_id,
            topic_alias: alias,
            omit_topic,
            message_expiry_interval: expiry,
            subscription_identifiers: &sids,
        };
        let mut buf = BytesMut::new();
        encode_publish_with(&message, &overrides, version, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), publish_encoded_len(&message, &overrides, version).unwrap());

        let mut expected = message.clone();
        expected.dup = dup;
        expected.qos = qos;
        expected.retain = retain;
        expected.packet_id = packet_id;
        if version.is_v5() {
            expected.properties.topic_alias = alias;
            expected.properties.message_expiry_interval = expiry;
            expected.properties.subscription_identifiers = sids.clone();
            if omit_topic {
                expected.topic.clear();
            }
        } else {
            expected.properties = PublishProperties::default();
        }
        if expected.topic.is_empty() && expected.properties.topic_alias.is_none() {
            // The message itself relied on an alias that the overrides removed; not a valid
            // combination to send.
            return Ok(());
        }
        let decoded = decoder(Role::Client, version).decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(Packet::Publish(expected)));
    }

    #[test]
    fn encode_publish_with_the_messages_own_fields_equals_encode(
        version in proptest::sample::select(VERSIONS.to_vec()),
        message in publish(ProtocolVersion::V5, Role::Client),
    ) {
        let overrides = PublishOverrides {
            dup: message.dup,
            qos: message.qos,
            retain: message.retain,
            packet_id: message.packet_id,
            topic_alias: message.properties.topic_alias,
            omit_topic: false,
            message_expiry_interval: message.properties.message_expiry_interval,
            subscription_identifiers: &message.properties.subscription_identifiers,
        };
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        encode_publish_with(&message, &overrides, version, &mut a).unwrap();
        encode(&Packet::Publish(message.clone()), version, &mut b).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..300)) {
        for version in VERSIONS {
            for role in [Role::Server, Role::Client] {
                let mut buf = BytesMut::from(&bytes[..]);
                let d = Decoder { role, version, maximum_packet_size: 1 << 20 };
                while let Ok(Some(_)) = d.decode(&mut buf) {}
            }
        }
    }

    #[test]
    fn decoding_a_mutated_valid_packet_never_panics_and_reencodes_consistently(
        (version, packet, role) in any_version_packet(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        for (index, byte) in flips {
            let i = index.index(buf.len());
            buf[i] = byte;
        }
        let d = decoder(role, version);
        if let Ok(Some(decoded)) = d.decode(&mut buf) {
            let version = match &decoded {
                Packet::Connect(c) => c.protocol,
                _ => version,
            };
            let mut again = BytesMut::new();
            encode(&decoded, version, &mut again).unwrap();
            prop_assert_eq!(again.len(), encoded_len(&decoded, version).unwrap());
            prop_assert_eq!(decoder(role, version).decode(&mut again).unwrap(), Some(decoded));
        }
    }
}
