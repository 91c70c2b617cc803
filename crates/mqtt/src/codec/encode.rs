//! Writing packets. Each body is written once against [`Sink`]: counted to learn the
//! remaining length, then written into the buffer after a single `reserve`.

use bytes::BytesMut;

use super::properties::{self, PublishPropertiesRef, WriteProperties};
use super::sink::{Counter, Sink};
use super::varint;
use crate::error::EncodeError;
use crate::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, QoS, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use crate::reason::ReasonCode;

/// A PUBLISH as it goes on the wire, borrowed from a message and its overrides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishRef<'a> {
    pub(crate) dup: bool,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) topic: &'a str,
    pub(crate) packet_id: Option<u16>,
    pub(crate) properties: PublishPropertiesRef<'a>,
    pub(crate) payload: &'a [u8],
}

/// Anything that can be framed as a packet: a first byte and a body.
pub(crate) trait Body {
    /// The first byte of the fixed header.
    fn first_byte(&self, version: ProtocolVersion) -> u8;
    /// Writes everything after the remaining length.
    fn body<S: Sink>(&self, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError>;
}

/// The remaining length of `packet`, checked against the maximum.
fn remaining_len<B: Body + ?Sized>(
    packet: &B,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    packet.body(version, &mut c)?;
    if c.0 > varint::MAX as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    Ok(c.0)
}

/// The size of the whole packet.
pub(crate) fn framed_len<B: Body + ?Sized>(
    packet: &B,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let remaining = remaining_len(packet, version)?;
    Ok(1 + varint::len(remaining) + remaining)
}

/// Appends the whole packet to `out`.
pub(crate) fn write_framed<B: Body + ?Sized>(
    packet: &B,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = remaining_len(packet, version)?;
    out.reserve(1 + varint::len(remaining) + remaining);
    let start = out.len();
    Sink::put_u8(out, packet.first_byte(version));
    out.put_varint_unchecked(remaining as u32);
    if let Err(e) = packet.body(version, out) {
        // Unreachable in practice (the count above ran the same checks), but never leave a
        // half-written packet behind.
        out.truncate(start);
        return Err(e);
    }
    debug_assert_eq!(out.len() - start, 1 + varint::len(remaining) + remaining);
    Ok(())
}

fn nonzero_packet_id(id: u16) -> Result<u16, EncodeError> {
    if id == 0 {
        Err(EncodeError::InvalidField("packet_id"))
    } else {
        Ok(id)
    }
}

impl Body for Packet {
    fn first_byte(&self, _version: ProtocolVersion) -> u8 {
        let flags = match self {
            Packet::Publish(p) => PublishRef::of(p).flags(),
            Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
            _ => 0,
        };
        (self.packet_type() << 4) | flags
    }

    fn body<S: Sink>(&self, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
        match self {
            Packet::Connect(c) => connect(c, s),
            Packet::ConnAck(c) => connack(c, version, s),
            Packet::Publish(p) => PublishRef::of(p).body(version, s),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                ack(a, version, s)
            }
            Packet::Subscribe(p) => subscribe(p, version, s),
            Packet::SubAck(p) => suback(p, version, s),
            Packet::Unsubscribe(p) => unsubscribe(p, version, s),
            Packet::UnsubAck(p) => unsuback(p, version, s),
            Packet::PingReq | Packet::PingResp => Ok(()),
            Packet::Disconnect(d) => disconnect(d, version, s),
            Packet::Auth(a) => auth(a, version, s),
        }
    }
}

impl<'a> PublishRef<'a> {
    /// A message as it is.
    pub(crate) fn of(p: &'a crate::packet::Publish) -> Self {
        PublishRef {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            packet_id: p.packet_id,
            properties: PublishPropertiesRef::of(&p.properties),
            payload: &p.payload,
        }
    }

    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }
}

impl Body for PublishRef<'_> {
    fn first_byte(&self, _version: ProtocolVersion) -> u8 {
        (3 << 4) | self.flags()
    }

    fn body<S: Sink>(&self, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
        s.put_str(self.topic)?;
        if self.qos != QoS::AtMostOnce {
            let id = self
                .packet_id
                .ok_or(EncodeError::InvalidField("packet_id"))?;
            s.put_u16(nonzero_packet_id(id)?);
        }
        if version.is_v5() {
            properties::put_block(s, &self.properties)?;
        }
        s.put_slice(self.payload);
        Ok(())
    }
}

fn connect<S: Sink>(c: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let version = c.protocol;
    if version == ProtocolVersion::V3_1_1 && c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::InvalidField("password"));
    }
    s.put_str(version.protocol_name())?;
    s.put_u8(version.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0b100 | ((will.qos as u8) << 3) | (u8::from(will.retain) << 5);
    }
    if c.password.is_some() {
        flags |= 0b0100_0000;
    }
    if c.username.is_some() {
        flags |= 0b1000_0000;
    }
    s.put_u8(flags);
    s.put_u16(c.keep_alive);
    if version.is_v5() {
        properties::put_block(s, &c.properties)?;
    }
    s.put_str(&c.client_id)?;
    if let Some(will) = &c.will {
        if version.is_v5() {
            properties::put_block(s, &will.properties)?;
        }
        s.put_str(&will.topic)?;
        s.put_binary(&will.payload)?;
    }
    if let Some(username) = &c.username {
        s.put_str(username)?;
    }
    if let Some(password) = &c.password {
        s.put_binary(password)?;
    }
    Ok(())
}

fn connack<S: Sink>(c: &ConnAck, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    // MQTT 3.1 has no session present flag; the byte is unused there.
    let session_present = c.session_present && version != ProtocolVersion::V3_1;
    s.put_u8(u8::from(session_present));
    s.put_u8(c.reason_code.0);
    if version.is_v5() {
        properties::put_block(s, &c.properties)?;
    }
    Ok(())
}

fn ack<S: Sink>(a: &Ack, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(nonzero_packet_id(a.packet_id)?);
    if version.is_v5() {
        let props_len = a.properties.properties_len()?;
        if props_len > 0 {
            s.put_u8(a.reason_code.0);
            properties::put_block_sized(s, &a.properties, props_len)?;
        } else if a.reason_code != ReasonCode::SUCCESS {
            s.put_u8(a.reason_code.0);
        }
    }
    Ok(())
}

fn subscribe<S: Sink>(
    p: &Subscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(nonzero_packet_id(p.packet_id)?);
    if version.is_v5() {
        properties::put_block(s, &p.properties)?;
    }
    for sub in &p.subscriptions {
        s.put_str(&sub.filter)?;
        let o = &sub.options;
        let mut byte = o.qos as u8;
        if version.is_v5() {
            byte |= (u8::from(o.no_local) << 2)
                | (u8::from(o.retain_as_published) << 3)
                | ((o.retain_handling as u8) << 4);
        }
        s.put_u8(byte);
    }
    Ok(())
}

fn suback<S: Sink>(p: &SubAck, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(nonzero_packet_id(p.packet_id)?);
    if version.is_v5() {
        properties::put_block(s, &p.properties)?;
    }
    for code in &p.reason_codes {
        s.put_u8(code.0);
    }
    Ok(())
}

fn unsubscribe<S: Sink>(
    p: &Unsubscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    s.put_u16(nonzero_packet_id(p.packet_id)?);
    if version.is_v5() {
        properties::put_block(s, p.user_properties.as_slice())?;
    }
    for filter in &p.filters {
        s.put_str(filter)?;
    }
    Ok(())
}

fn unsuback<S: Sink>(p: &UnsubAck, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(nonzero_packet_id(p.packet_id)?);
    if version.is_v5() {
        properties::put_block(s, &p.properties)?;
        for code in &p.reason_codes {
            s.put_u8(code.0);
        }
    }
    Ok(())
}

fn disconnect<S: Sink>(
    d: &Disconnect,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if version.is_v5() {
        let props_len = d.properties.properties_len()?;
        if props_len > 0 {
            s.put_u8(d.reason_code.0);
            properties::put_block_sized(s, &d.properties, props_len)?;
        } else if d.reason_code != ReasonCode::SUCCESS {
            s.put_u8(d.reason_code.0);
        }
    }
    Ok(())
}

fn auth<S: Sink>(a: &Auth, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Err(EncodeError::NotInVersion);
    }
    let props_len = a.properties.properties_len()?;
    if props_len > 0 {
        s.put_u8(a.reason_code.0);
        properties::put_block_sized(s, &a.properties, props_len)?;
    } else if a.reason_code != ReasonCode::SUCCESS {
        s.put_u8(a.reason_code.0);
    }
    Ok(())
}
