//! Decoding bytes into packets and encoding packets into bytes.
//!
//! [`Decoder::decode`] takes one packet at a time off the front of a read buffer; the body of
//! a packet is split off as [`bytes::Bytes`], so payloads, correlation and authentication data
//! share the read buffer. [`encode`] and [`encode_publish_with`] compute the size first,
//! reserve once and write.

mod decode;
mod encode;
mod properties;
mod reader;
mod reason_codes;
mod sink;
mod varint;

use bytes::{Buf, BytesMut};

use self::encode::{framed_len, write_framed, PublishRef};
use self::properties::PublishPropertiesRef;
use self::varint::VarIntError;
use crate::error::{DecodeError, EncodeError};
use crate::packet::{Packet, ProtocolVersion, Publish, QoS};

/// Which end of the connection is decoding; decides which packet types are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A broker: accepts packets a client sends.
    Server,
    /// A client: accepts packets a server sends.
    Client,
}

/// Decodes packets from a read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// Which end decodes.
    pub role: Role,
    /// The connection's protocol version. Ignored for CONNECT, which carries its own.
    pub version: ProtocolVersion,
    /// Largest whole packet (fixed header included) accepted.
    pub maximum_packet_size: u32,
}

impl Decoder {
    /// Decodes one packet from the front of `buf`.
    ///
    /// `Ok(None)` when `buf` does not yet hold a whole packet (nothing is consumed).
    /// `Ok(Some(p))` consumes the packet's bytes. An error as soon as the bytes seen prove the
    /// packet malformed or too large, before waiting for or allocating the rest.
    ///
    /// After an error the connection cannot be resynchronised: what, if anything, was consumed
    /// is unspecified (a packet whose body was complete is consumed).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        decode::check_first_byte(first, self.role, self.version)?;
        let (remaining, len_bytes) = match varint::decode(&buf[1..]) {
            Ok(v) => v,
            Err(VarIntError::Incomplete) => return Ok(None),
            Err(VarIntError::Malformed) => return Err(DecodeError::MalformedRemainingLength),
        };
        let header = 1 + len_bytes;
        let size = header + remaining as usize;
        if size > self.maximum_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size,
                maximum: self.maximum_packet_size as usize,
            });
        }
        if buf.len() < size {
            return Ok(None);
        }
        buf.advance(header);
        let body = buf.split_to(remaining as usize).freeze();
        decode::decode_body(first, body, self.role, self.version).map(Some)
    }
}

/// Appends the encoding of `packet` for `version` to `out`.
///
/// A CONNECT is encoded for the version in its own `protocol` field; `version` is ignored for
/// it. For 3.x, properties and other 5.0-only fields are left out. A QoS 0 PUBLISH never
/// carries a packet identifier, whatever `packet_id` holds. On error nothing is appended.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_framed(packet, version, out)
}

/// The size of `packet`'s encoding for `version`, fixed header included.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    framed_len(packet, version)
}

/// The fields of an outgoing PUBLISH that differ per recipient. The broker keeps one shared
/// [`Publish`] per message and encodes it for each subscriber with these, without cloning it.
/// Every field here replaces the corresponding one of the message.
#[derive(Debug, Clone, Copy)]
pub struct PublishOverrides<'a> {
    /// DUP flag.
    pub dup: bool,
    /// QoS for this recipient.
    pub qos: QoS,
    /// Retain flag for this recipient.
    pub retain: bool,
    /// Packet identifier (`Some` exactly when `qos` > 0).
    pub packet_id: Option<u16>,
    /// Topic alias property (5.0), replacing the message's.
    pub topic_alias: Option<u16>,
    /// Send an empty topic name (the alias stands for it).
    pub omit_topic: bool,
    /// Message expiry interval (5.0), replacing the message's (the time left).
    pub message_expiry_interval: Option<u32>,
    /// Subscription identifiers (5.0), replacing the message's.
    pub subscription_identifiers: &'a [u32],
}

fn publish_ref<'a>(
    message: &'a Publish,
    overrides: &PublishOverrides<'a>,
    version: ProtocolVersion,
) -> Result<PublishRef<'a>, EncodeError> {
    let mut properties = PublishPropertiesRef::of(&message.properties);
    properties.topic_alias = overrides.topic_alias;
    properties.message_expiry_interval = overrides.message_expiry_interval;
    properties.subscription_identifiers = overrides.subscription_identifiers;
    // Topic aliases exist only in 5.0; a 3.x recipient always gets the topic.
    let omit_topic = overrides.omit_topic && version.is_v5();
    if omit_topic && overrides.topic_alias.is_none() {
        return Err(EncodeError::InvalidField("omit_topic"));
    }
    Ok(PublishRef {
        dup: overrides.dup,
        qos: overrides.qos,
        retain: overrides.retain,
        topic: if omit_topic { "" } else { &message.topic },
        packet_id: overrides.packet_id,
        properties,
        payload: &message.payload,
    })
}

/// Appends a PUBLISH built from `message` with `overrides` applied.
///
/// Fails without appending anything when `omit_topic` is set without a `topic_alias` (5.0),
/// when `qos` > 0 without a non-zero `packet_id`, or on the limits [`encode`] checks.
pub fn encode_publish_with(
    message: &Publish,
    overrides: &PublishOverrides<'_>,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_framed(&publish_ref(message, overrides, version)?, version, out)
}

/// The size [`encode_publish_with`] would write.
pub fn publish_encoded_len(
    message: &Publish,
    overrides: &PublishOverrides<'_>,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    framed_len(&publish_ref(message, overrides, version)?, version)
}
