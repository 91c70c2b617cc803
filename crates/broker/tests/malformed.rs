//! Bad input over a real socket: the right reason code, a closed connection, and a broker that
//! goes on serving everyone else.

mod common;

use common::*;
use tollgate_mqtt::*;

/// Sends `bytes` on a connected 5.0 client and returns the DISCONNECT reason the broker closes
/// with.
async fn v5_disconnect_reason(addr: std::net::SocketAddr, bytes: &[u8]) -> ReasonCode {
    let mut c = TestClient::connect(addr, ProtocolVersion::V5, "bad").await;
    c.send_raw(bytes).await;
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => d.reason_code,
        other => panic!("expected one DISCONNECT then close, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_packets_get_the_precise_reason_code_then_close() {
    let (_server, addr) = start_broker(|c| c.limits.max_packet_size = 1000).await;
    let cases: &[(&str, &[u8], ReasonCode)] = &[
        (
            "remaining length over four bytes",
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "packet over the maximum size, refused at its header",
            &[0x30, 0xe9, 0x07],
            ReasonCode::PACKET_TOO_LARGE,
        ),
        (
            "SUBSCRIBE with reserved flags 0000",
            &[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b't'],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PUBLISH with QoS 3",
            &[0x36, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PUBLISH topic with a wildcard",
            &[0x30, 0x04, 0x00, 0x01, b'#', 0x00],
            ReasonCode::TOPIC_NAME_INVALID,
        ),
        (
            "PUBLISH topic that is not UTF-8",
            &[0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PUBLISH topic with U+0000",
            &[0x30, 0x05, 0x00, 0x02, b'a', 0x00, 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "QoS 1 PUBLISH with packet id 0",
            &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00],
            ReasonCode::PROTOCOL_ERROR,
        ),
        (
            "duplicate property",
            &[0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x01, 0x01, 0x01, 0x01],
            ReasonCode::PROTOCOL_ERROR,
        ),
        (
            "property not allowed in PUBLISH",
            &[
                0x30, 0x09, 0x00, 0x01, b't', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01,
            ],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "subscription filter with misplaced #",
            &[
                0x82, 0x08, 0x00, 0x01, 0x00, 0x00, 0x03, b'#', b'/', b'a', 0x00,
            ],
            ReasonCode::TOPIC_FILTER_INVALID,
        ),
        (
            "SUBSCRIBE with no filter",
            &[0x82, 0x03, 0x00, 0x01, 0x00],
            ReasonCode::PROTOCOL_ERROR,
        ),
        ("packet type 0", &[0x00, 0x00], ReasonCode::PROTOCOL_ERROR),
        (
            "a second CONNECT",
            &[
                0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00,
                0x00,
            ],
            ReasonCode::PROTOCOL_ERROR,
        ),
    ];
    for (what, bytes, expected) in cases {
        let got = v5_disconnect_reason(addr, bytes).await;
        assert_eq!(
            got, *expected,
            "{what}: expected {:#04x}, got {:#04x}",
            expected.0, got.0
        );
    }
    // The broker still serves.
    let mut ok = TestClient::connect(addr, ProtocolVersion::V5, "ok").await;
    ok.expect_nothing().await;
}

#[tokio::test]
async fn malformed_packets_on_3x_close_the_connection_without_a_packet() {
    let (_server, addr) = start_broker(|_| {}).await;
    for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
        let mut c = TestClient::connect(addr, version, "bad").await;
        c.send_raw(&[0x36, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00])
            .await;
        assert!(c.expect_close().await.is_empty(), "{version:?}");
        // AUTH does not exist before 5.0.
        let mut c = TestClient::connect(addr, version, "auth").await;
        c.send_raw(&[0xf0, 0x00]).await;
        assert!(c.expect_close().await.is_empty(), "{version:?}");
    }
}

#[tokio::test]
async fn garbage_before_connect_closes_without_an_answer() {
    let (_server, addr) = start_broker(|_| {}).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x10, 0x02, 0x00, 0x00],
        &[0xff; 16],
    ] {
        let mut c = TestClient::open(addr, ProtocolVersion::V3_1_1).await;
        c.send_raw(garbage).await;
        assert!(c.expect_close().await.is_empty());
    }
}

#[tokio::test]
async fn a_connection_that_never_sends_connect_is_closed_after_the_timeout() {
    let (_server, addr) =
        start_broker(|c| c.limits.connect_timeout = std::time::Duration::from_secs(1)).await;
    let mut c = TestClient::open(addr, ProtocolVersion::V3_1_1).await;
    assert!(c.expect_close().await.is_empty());
}

#[tokio::test]
async fn a_partial_packet_waits_for_the_rest() {
    let (_server, addr) = start_broker(|_| {}).await;
    let mut sub = TestClient::connect(addr, ProtocolVersion::V3_1_1, "sub").await;
    sub.subscribe(1, "t", QoS::AtMostOnce).await;
    let mut p = TestClient::connect(addr, ProtocolVersion::V3_1_1, "p").await;
    let whole = [0x30, 0x04, 0x00, 0x01, b't', b'!'];
    for byte in whole {
        p.send_raw(&[byte]).await;
    }
    assert_eq!(&sub.recv_publish().await.payload[..], b"!");
}
