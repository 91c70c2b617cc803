//! Why a packet could not be decoded or encoded.

use std::fmt;

use crate::reason::ReasonCode;

/// A packet that could not be decoded. Every variant maps to the 5.0 reason code a server
/// sends in DISCONNECT (or CONNACK) before closing the connection; see [`DecodeError::reason_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The remaining length runs over four bytes.
    MalformedRemainingLength,
    /// The packet is larger than the maximum packet size allowed.
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: usize,
        /// The maximum in force.
        maximum: usize,
    },
    /// Packet type 0, or a 5.0-only packet (AUTH) on a 3.x connection.
    InvalidPacketType(u8),
    /// Reserved flag bits in the fixed header have the wrong value.
    InvalidFixedHeaderFlags(u8),
    /// The packet ended before a field it must contain.
    UnexpectedEnd,
    /// Bytes were left over after the last field.
    TrailingBytes,
    /// A string is not well-formed UTF-8, or contains U+0000.
    InvalidUtf8,
    /// The protocol name is neither `MQTT` nor `MQIsdp`, or does not fit the level.
    InvalidProtocolName,
    /// The protocol level is not 3, 4 or 5.
    UnsupportedProtocolVersion(u8),
    /// A reserved bit in CONNECT flags or subscription options is set, or the flags contradict
    /// each other (will QoS without will flag, password without user name in 3.1.1).
    InvalidFlags,
    /// QoS 3.
    InvalidQoS,
    /// Packet identifier 0 where one is required.
    ZeroPacketId,
    /// A variable byte integer is longer than four bytes.
    MalformedVariableInteger,
    /// A property identifier that does not exist.
    UnknownProperty(u8),
    /// A property not allowed in this packet.
    PropertyNotAllowed(u8),
    /// A property that may appear once appears twice.
    DuplicateProperty(u8),
    /// A property value out of range (receive maximum 0, a boolean other than 0/1…).
    InvalidPropertyValue(u8),
    /// A topic name with a wildcard, or empty where not allowed.
    InvalidTopicName,
    /// A topic filter with misplaced `#` or `+`, empty, or a malformed shared subscription.
    InvalidTopicFilter,
    /// A reason code not allowed in this packet.
    InvalidReasonCode(u8),
    /// SUBSCRIBE or UNSUBSCRIBE with no topic filter.
    EmptySubscription,
    /// A packet only a client may send arrived at a client, or the reverse.
    UnexpectedPacket(u8),
    /// A 5.0 SUBSCRIBE sets No Local on a shared subscription (MQTT-3.8.3-4).
    NoLocalOnSharedSubscription,
}

impl DecodeError {
    /// The 5.0 reason code a server sends for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::InvalidTopicName => ReasonCode::TOPIC_NAME_INVALID,
            DecodeError::InvalidTopicFilter => ReasonCode::TOPIC_FILTER_INVALID,
            // A topic alias of 0 (MQTT-3.3.2-8).
            DecodeError::InvalidPropertyValue(0x23) => ReasonCode::TOPIC_ALIAS_INVALID,
            DecodeError::InvalidPacketType(_)
            | DecodeError::DuplicateProperty(_)
            | DecodeError::UnexpectedPacket(_)
            | DecodeError::ZeroPacketId
            | DecodeError::NoLocalOnSharedSubscription
            | DecodeError::EmptySubscription => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::MalformedRemainingLength => {
                write!(f, "remaining length longer than 4 bytes")
            }
            DecodeError::PacketTooLarge { size, maximum } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {maximum}")
            }
            DecodeError::InvalidPacketType(t) => write!(f, "invalid packet type {t}"),
            DecodeError::InvalidFixedHeaderFlags(b) => {
                write!(f, "invalid fixed header flags in byte {b:#04x}")
            }
            DecodeError::UnexpectedEnd => write!(f, "packet ended before a required field"),
            DecodeError::TrailingBytes => write!(f, "bytes left over after the last field"),
            DecodeError::InvalidUtf8 => write!(f, "string is not valid MQTT UTF-8"),
            DecodeError::InvalidProtocolName => write!(f, "invalid protocol name"),
            DecodeError::UnsupportedProtocolVersion(v) => {
                write!(f, "unsupported protocol level {v}")
            }
            DecodeError::InvalidFlags => write!(f, "reserved or contradictory flags"),
            DecodeError::InvalidQoS => write!(f, "QoS 3 is not a valid QoS"),
            DecodeError::ZeroPacketId => write!(f, "packet identifier 0"),
            DecodeError::MalformedVariableInteger => {
                write!(f, "variable byte integer longer than 4 bytes")
            }
            DecodeError::UnknownProperty(p) => write!(f, "unknown property {p:#04x}"),
            DecodeError::PropertyNotAllowed(p) => {
                write!(f, "property {p:#04x} not allowed in this packet")
            }
            DecodeError::DuplicateProperty(p) => {
                write!(f, "property {p:#04x} appears more than once")
            }
            DecodeError::InvalidPropertyValue(p) => {
                write!(f, "invalid value for property {p:#04x}")
            }
            DecodeError::InvalidTopicName => write!(f, "invalid topic name"),
            DecodeError::InvalidTopicFilter => write!(f, "invalid topic filter"),
            DecodeError::InvalidReasonCode(c) => write!(f, "reason code {c:#04x} not allowed here"),
            DecodeError::EmptySubscription => write!(f, "no topic filter in (UN)SUBSCRIBE"),
            DecodeError::UnexpectedPacket(t) => {
                write!(f, "packet type {t} not expected in this direction")
            }
            DecodeError::NoLocalOnSharedSubscription => {
                write!(f, "no local set on a shared subscription")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A packet that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The encoded packet would be larger than 268 435 455 bytes of remaining length.
    PacketTooLarge,
    /// A string or binary data field is longer than 65 535 bytes.
    StringTooLong,
    /// The packet does not exist in this protocol version (AUTH in 3.x).
    NotInVersion,
    /// A field holds a value the wire cannot carry (a QoS > 0 PUBLISH without packet id…).
    InvalidField(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::PacketTooLarge => write!(f, "packet too large to encode"),
            EncodeError::StringTooLong => write!(f, "string longer than 65535 bytes"),
            EncodeError::NotInVersion => write!(f, "packet not available in this protocol version"),
            EncodeError::InvalidField(name) => write!(f, "invalid value in field {name}"),
        }
    }
}

impl std::error::Error for EncodeError {}
