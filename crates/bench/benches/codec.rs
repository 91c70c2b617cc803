//! Baseline cost of Tollgate's codec on the hottest packet: a PUBLISH with a 64-byte payload,
//! decoded (server side, as the broker reads it) and encoded (as the broker writes it to a
//! subscriber), for MQTT 3.1.1 and 5.0.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tollgate_mqtt::{
    encode, encode_publish_with, Decoder, Packet, ProtocolVersion, Publish, PublishOverrides, QoS,
    Role,
};

fn message(qos: QoS) -> Publish {
    Publish {
        qos,
        topic: "sensors/building-7/floor-3/room-12/temperature".to_owned(),
        packet_id: (qos != QoS::AtMostOnce).then_some(4242),
        payload: Bytes::from(vec![0x5a; 64]),
        ..Publish::default()
    }
}

fn versions() -> [(ProtocolVersion, &'static str); 2] {
    [
        (ProtocolVersion::V3_1_1, "v3.1.1"),
        (ProtocolVersion::V5, "v5"),
    ]
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode publish 64B");
    group.throughput(Throughput::Elements(1));
    for (version, name) in versions() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let mut wire = BytesMut::new();
            encode(&Packet::Publish(message(qos)), version, &mut wire).unwrap();
            let wire = wire.freeze();
            let decoder = Decoder {
                role: Role::Server,
                version,
                maximum_packet_size: 1 << 20,
            };
            group.bench_function(format!("{name} qos{}", qos as u8), |b| {
                b.iter_batched_ref(
                    || BytesMut::from(&wire[..]),
                    |buf| black_box(decoder.decode(buf).unwrap().unwrap()),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn encode_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode publish 64B");
    group.throughput(Throughput::Elements(1));
    for (version, name) in versions() {
        let msg = message(QoS::AtMostOnce);
        let packet = Packet::Publish(message(QoS::AtLeastOnce));
        let mut out = BytesMut::with_capacity(64 * 1024);
        group.bench_function(format!("{name} encode qos1"), |b| {
            b.iter(|| {
                if out.len() > 60 * 1024 {
                    out.clear();
                }
                encode(black_box(&packet), version, &mut out).unwrap();
            })
        });
        // What the broker does per subscriber: one shared message, per-recipient overrides.
        let overrides = PublishOverrides {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            packet_id: Some(7),
            topic_alias: None,
            omit_topic: false,
            message_expiry_interval: None,
            subscription_identifiers: &[],
        };
        group.bench_function(format!("{name} encode_publish_with qos1"), |b| {
            b.iter(|| {
                if out.len() > 60 * 1024 {
                    out.clear();
                }
                encode_publish_with(black_box(&msg), &overrides, version, &mut out).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode_bench);
criterion_main!(benches);
