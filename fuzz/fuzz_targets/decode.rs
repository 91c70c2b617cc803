//! Feeds arbitrary bytes to decoders of both roles and every protocol version. Whatever
//! decodes is encoded again, which must succeed, take `encoded_len` bytes and decode to the
//! same packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tollgate_mqtt::{encode, encoded_len, Decoder, Packet, ProtocolVersion, Role};

const VERSIONS: [ProtocolVersion; 3] =
    [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fuzz_target!(|data: &[u8]| {
    for version in VERSIONS {
        for role in [Role::Server, Role::Client] {
            let decoder = Decoder {
                role,
                version,
                maximum_packet_size: 1 << 20,
            };
            let mut buf = BytesMut::from(data);
            // Decode packet after packet until the bytes run out or one is rejected.
            while let Ok(Some(packet)) = decoder.decode(&mut buf) {
                check_round_trip(&packet, role, version);
            }
        }
    }
});

fn check_round_trip(packet: &Packet, role: Role, version: ProtocolVersion) {
    // A CONNECT is written in the version it names.
    let version = match packet {
        Packet::Connect(connect) => connect.protocol,
        _ => version,
    };
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).expect("a decoded packet must encode");
    assert_eq!(out.len(), encoded_len(packet, version).expect("encoded_len"));
    let decoder = Decoder {
        role,
        version,
        maximum_packet_size: u32::MAX,
    };
    let again = decoder
        .decode(&mut out)
        .expect("a re-encoded packet must decode")
        .expect("a re-encoded packet is complete");
    assert_eq!(&again, packet);
    assert!(out.is_empty(), "re-encoding must be exactly one packet");
}
