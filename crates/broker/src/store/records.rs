//! The store's keys and values, byte by byte.
//!
//! Every value starts with a format byte ([`FORMAT`]); a message is kept as an MQTT 5.0
//! PUBLISH packet, encoded and decoded by the broker's own codec (so every property survives,
//! and a damaged record is refused by the same checks as a hostile packet). A value that does
//! not decode is skipped at recovery and deleted, and counted in the recovery log line.
//!
//! Keys: a session by its client identifier; its children (subscriptions, deliveries, QoS 2
//! state) by the session's number (8 bytes, big-endian) followed by the filter, the delivery's
//! sequence number (8 bytes, big-endian, so a session's deliveries are read back in order) or
//! the packet identifier; a retained message by its topic.

use bytes::{BufMut, BytesMut};
use tollgate_auth::{NameOrigin, Owner};
use tollgate_mqtt::{
    Decoder, Packet, ProtocolVersion, Publish, PublishProperties, QoS, RetainHandling, Role,
    SubscriptionOptions, Will, WillProperties,
};

/// The format of every value written by this version.
pub const FORMAT: u8 = 1;

/// The key of a session's record.
pub fn session_key(client_id: &str) -> Vec<u8> {
    client_id.as_bytes().to_vec()
}

/// The prefix of every child record of the session numbered `uid`.
pub fn session_prefix(uid: u64) -> Vec<u8> {
    uid.to_be_bytes().to_vec()
}

/// The key of a subscription.
pub fn subscription_key(uid: u64, filter: &str) -> Vec<u8> {
    let mut key = session_prefix(uid);
    key.extend_from_slice(filter.as_bytes());
    key
}

/// The key of a delivery (and of its PUBREC marker).
pub fn delivery_key(uid: u64, seq: u64) -> Vec<u8> {
    let mut key = session_prefix(uid);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of an incoming QoS 2 packet identifier.
pub fn qos2_key(uid: u64, packet_id: u16) -> Vec<u8> {
    let mut key = session_prefix(uid);
    key.extend_from_slice(&packet_id.to_be_bytes());
    key
}

/// The key of a retained message.
pub fn retained_key(topic: &str) -> Vec<u8> {
    topic.as_bytes().to_vec()
}

/// A child key split into the session's number and the rest.
pub fn split_child_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let (uid, rest) = key.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*uid), rest))
}

/// A persistent session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session's number (its children's key prefix).
    pub uid: u64,
    /// Session expiry interval, seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// Who owns it.
    pub owner: Option<Owner>,
    /// Unix seconds when its last connection left; `None` while one is attached.
    pub disconnected_at: Option<u64>,
    /// A will waiting for its delay, and the Unix second it is due.
    pub will: Option<(Will, u64)>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// QoS for its recipient.
    pub qos: QoS,
    /// Retain flag as its recipient sees it.
    pub retain: bool,
    /// Subscription identifiers.
    pub subscription_ids: Vec<u32>,
    /// Unix milliseconds when the broker received the message (message expiry counts from it).
    pub received_at_ms: u64,
    /// The message.
    pub publish: Publish,
}

/// A retained message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RetainedRecord {
    /// Unix milliseconds when the broker received it.
    pub received_at_ms: u64,
    /// The message.
    pub publish: Publish,
}

/// A value that could not be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged;

/// Encodes a session record.
pub fn encode_session(record: &SessionRecord) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(FORMAT);
    out.put_u64(record.uid);
    out.put_u32(record.expiry_interval);
    match &record.owner {
        Some(owner) => {
            out.put_u8(match owner.origin {
                NameOrigin::Authenticated => 1,
                NameOrigin::Certificate => 2,
                NameOrigin::Unverified => 3,
            });
            put_bytes(&mut out, owner.name.as_bytes());
        }
        None => out.put_u8(0),
    }
    match record.disconnected_at {
        Some(at) => {
            out.put_u8(1);
            out.put_u64(at);
        }
        None => out.put_u8(0),
    }
    match &record.will {
        Some((will, due)) => {
            out.put_u8(1);
            out.put_u64(*due);
            put_bytes(&mut out, &encode_publish(&will_as_publish(will)));
        }
        None => out.put_u8(0),
    }
    out.to_vec()
}

/// Decodes a session record.
pub fn decode_session(value: &[u8]) -> Result<SessionRecord, Damaged> {
    let mut r = Reader::new(value)?;
    let uid = r.u64()?;
    let expiry_interval = r.u32()?;
    let owner = match r.u8()? {
        0 => None,
        origin => Some(Owner {
            origin: match origin {
                1 => NameOrigin::Authenticated,
                2 => NameOrigin::Certificate,
                3 => NameOrigin::Unverified,
                _ => return Err(Damaged),
            },
            name: String::from_utf8(r.bytes()?.to_vec()).map_err(|_| Damaged)?,
        }),
    };
    let disconnected_at = match r.u8()? {
        0 => None,
        1 => Some(r.u64()?),
        _ => return Err(Damaged),
    };
    let will = match r.u8()? {
        0 => None,
        1 => {
            let due = r.u64()?;
            Some((publish_as_will(decode_publish(r.bytes()?)?), due))
        }
        _ => return Err(Damaged),
    };
    r.end()?;
    Ok(SessionRecord {
        uid,
        expiry_interval,
        owner,
        disconnected_at,
        will,
    })
}

/// Encodes a subscription's options and identifier.
pub fn encode_subscription(options: SubscriptionOptions, identifier: Option<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(7);
    out.push(FORMAT);
    out.push(
        options.qos as u8
            | u8::from(options.no_local) << 2
            | u8::from(options.retain_as_published) << 3
            | (options.retain_handling as u8) << 4,
    );
    match identifier {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_be_bytes());
        }
        None => out.push(0),
    }
    out
}

/// Decodes a subscription's options and identifier.
pub fn decode_subscription(value: &[u8]) -> Result<(SubscriptionOptions, Option<u32>), Damaged> {
    let mut r = Reader::new(value)?;
    let bits = r.u8()?;
    let options = SubscriptionOptions {
        qos: QoS::from_u8(bits & 3).ok_or(Damaged)?,
        no_local: bits & 4 != 0,
        retain_as_published: bits & 8 != 0,
        retain_handling: match (bits >> 4) & 3 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(Damaged),
        },
    };
    let identifier = match r.u8()? {
        0 => None,
        1 => Some(r.u32()?),
        _ => return Err(Damaged),
    };
    r.end()?;
    Ok((options, identifier))
}

/// Encodes a delivery around `message`, the message's encoding ([`encode_publish`]), made
/// once for every session it goes to.
pub fn encode_delivery(
    qos: QoS,
    retain: bool,
    subscription_ids: &[u32],
    received_at_ms: u64,
    message: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * subscription_ids.len() + message.len());
    out.push(FORMAT);
    out.push(qos as u8 | u8::from(retain) << 2);
    out.extend_from_slice(&(subscription_ids.len() as u16).to_be_bytes());
    for id in subscription_ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(&received_at_ms.to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Decodes a delivery.
pub fn decode_delivery(value: &[u8]) -> Result<DeliveryRecord, Damaged> {
    let mut r = Reader::new(value)?;
    let bits = r.u8()?;
    let qos = QoS::from_u8(bits & 3).ok_or(Damaged)?;
    let retain = bits & 4 != 0;
    let count = r.u16()?;
    let subscription_ids = (0..count).map(|_| r.u32()).collect::<Result<_, _>>()?;
    let received_at_ms = r.u64()?;
    let publish = decode_publish(r.rest())?;
    Ok(DeliveryRecord {
        qos,
        retain,
        subscription_ids,
        received_at_ms,
        publish,
    })
}

/// Encodes a retained message.
pub fn encode_retained(received_at_ms: u64, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + message.len());
    out.push(FORMAT);
    out.extend_from_slice(&received_at_ms.to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Decodes a retained message.
pub fn decode_retained(value: &[u8]) -> Result<RetainedRecord, Damaged> {
    let mut r = Reader::new(value)?;
    let received_at_ms = r.u64()?;
    let publish = decode_publish(r.rest())?;
    Ok(RetainedRecord {
        received_at_ms,
        publish,
    })
}

/// A message as an MQTT 5.0 PUBLISH packet (QoS, retain flag and properties kept; a QoS 1/2
/// message carries packet identifier 1, which means nothing here).
pub fn encode_publish(publish: &Publish) -> Vec<u8> {
    let mut stored = Publish {
        dup: false,
        packet_id: (publish.qos != QoS::AtMostOnce).then_some(1),
        ..publish.clone()
    };
    stored.properties.topic_alias = None;
    let mut out = BytesMut::new();
    tollgate_mqtt::encode(&Packet::Publish(stored), ProtocolVersion::V5, &mut out)
        .expect("a message the broker accepted encodes");
    out.to_vec()
}

/// The message [`encode_publish`] wrote.
pub fn decode_publish(bytes: &[u8]) -> Result<Publish, Damaged> {
    let decoder = Decoder {
        role: Role::Client,
        version: ProtocolVersion::V5,
        maximum_packet_size: u32::MAX,
    };
    let mut buf = BytesMut::from(bytes);
    match decoder.decode(&mut buf) {
        Ok(Some(Packet::Publish(mut publish))) if buf.is_empty() => {
            publish.packet_id = None;
            publish.dup = false;
            Ok(publish)
        }
        _ => Err(Damaged),
    }
}

/// A will as the message it becomes.
pub fn will_as_publish(will: &Will) -> Publish {
    let p = &will.properties;
    Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: will.topic.clone(),
        packet_id: None,
        properties: PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            topic_alias: None,
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
            subscription_identifiers: Vec::new(),
            content_type: p.content_type.clone(),
        },
        payload: will.payload.clone(),
    }
}

fn publish_as_will(publish: Publish) -> Will {
    let p = publish.properties;
    Will {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties: WillProperties {
            will_delay_interval: None,
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
        },
    }
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

/// Reads a value, every length checked against what is left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader past the format byte, which must be [`FORMAT`].
    fn new(value: &'a [u8]) -> Result<Reader<'a>, Damaged> {
        match value.split_first() {
            Some((&FORMAT, rest)) => Ok(Reader { rest }),
            _ => Err(Damaged),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], Damaged> {
        let (bytes, rest) = self.rest.split_first_chunk::<N>().ok_or(Damaged)?;
        self.rest = rest;
        Ok(*bytes)
    }

    fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Damaged> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, Damaged> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, Damaged> {
        self.take().map(u64::from_be_bytes)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Damaged> {
        let len = self.u32()? as usize;
        if len > self.rest.len() {
            return Err(Damaged);
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    fn end(&self) -> Result<(), Damaged> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Damaged)
        }
    }
}

#[cfg(test)]
mod tests;
