//! Which reason codes each packet may carry (MQTT 5.0 section 2.4, and the per-packet tables
//! of chapter 3; 3.x return codes for CONNACK and SUBACK).

use crate::error::DecodeError;
use crate::packet::ProtocolVersion;
use crate::reason::ReasonCode;

/// CONNACK, 5.0 (table 3-1).
const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// PUBACK and PUBREC (tables 3-4 and 3-5).
const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// PUBREL and PUBCOMP (tables 3-6 and 3-7).
const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
/// SUBACK, 5.0 (table 3-8).
const SUBACK_V5: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
/// SUBACK, 3.x: granted QoS or failure.
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
/// UNSUBACK, 5.0 (table 3-9).
const UNSUBACK_V5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
/// DISCONNECT (table 3-10), either direction.
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
/// AUTH (table 3-11).
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

fn check(allowed: &[u8], code: u8) -> Result<ReasonCode, DecodeError> {
    if allowed.contains(&code) {
        Ok(ReasonCode(code))
    } else {
        Err(DecodeError::InvalidReasonCode(code))
    }
}

/// A CONNACK reason code (5.0) or return code (3.x, 0 to 5).
pub(crate) fn connack(version: ProtocolVersion, code: u8) -> Result<ReasonCode, DecodeError> {
    if version.is_v5() {
        check(CONNACK_V5, code)
    } else if code <= 5 {
        Ok(ReasonCode(code))
    } else {
        Err(DecodeError::InvalidReasonCode(code))
    }
}

/// A reason code of PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7).
pub(crate) fn publish_ack(packet_type: u8, code: u8) -> Result<ReasonCode, DecodeError> {
    if packet_type <= 5 {
        check(PUBACK_PUBREC, code)
    } else {
        check(PUBREL_PUBCOMP, code)
    }
}

/// One SUBACK return or reason code.
pub(crate) fn suback(version: ProtocolVersion, code: u8) -> Result<ReasonCode, DecodeError> {
    if version.is_v5() {
        check(SUBACK_V5, code)
    } else {
        check(SUBACK_V3, code)
    }
}

/// One UNSUBACK reason code (5.0).
pub(crate) fn unsuback(code: u8) -> Result<ReasonCode, DecodeError> {
    check(UNSUBACK_V5, code)
}

/// A DISCONNECT reason code (5.0).
pub(crate) fn disconnect(code: u8) -> Result<ReasonCode, DecodeError> {
    check(DISCONNECT, code)
}

/// An AUTH reason code.
pub(crate) fn auth(code: u8) -> Result<ReasonCode, DecodeError> {
    check(AUTH, code)
}
