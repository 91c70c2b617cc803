//! Reading packets: the checks on the first byte of the fixed header, and one function per
//! packet type for the body.

use bytes::Bytes;

use super::properties;
use super::reader::Reader;
use super::reason_codes;
use super::Role;
use crate::error::DecodeError;
use crate::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, Publish, QoS, RetainHandling,
    SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
use crate::reason::ReasonCode;
use crate::topic;

/// Checks what the first byte of the fixed header alone can tell: the packet type exists in
/// `version`, may travel towards `role`, and its flag bits are right.
pub(crate) fn check_first_byte(
    byte: u8,
    role: Role,
    version: ProtocolVersion,
) -> Result<(), DecodeError> {
    let packet_type = byte >> 4;
    let flags = byte & 0x0F;
    if packet_type == 0 || (packet_type == 15 && !version.is_v5()) {
        return Err(DecodeError::InvalidPacketType(packet_type));
    }
    let unexpected = match role {
        // Only a server sends CONNACK, SUBACK, UNSUBACK and PINGRESP.
        Role::Server => matches!(packet_type, 2 | 9 | 11 | 13),
        // Only a client sends CONNECT, SUBSCRIBE, UNSUBSCRIBE and PINGREQ.
        Role::Client => matches!(packet_type, 1 | 8 | 10 | 12),
    };
    if unexpected {
        return Err(DecodeError::UnexpectedPacket(packet_type));
    }
    match packet_type {
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQoS);
            }
            let dup = flags & 0b1000 != 0;
            if dup && qos == 0 && version != ProtocolVersion::V3_1 {
                return Err(DecodeError::InvalidFixedHeaderFlags(byte));
            }
        }
        6 | 8 | 10 => {
            // MQTT 3.1 sent these with QoS 1 and let the DUP flag mark a retransmission.
            let ok = flags == 0b0010 || (version == ProtocolVersion::V3_1 && flags == 0b1010);
            if !ok {
                return Err(DecodeError::InvalidFixedHeaderFlags(byte));
            }
        }
        _ => {
            if flags != 0 {
                return Err(DecodeError::InvalidFixedHeaderFlags(byte));
            }
        }
    }
    Ok(())
}

/// Decodes a packet whose first byte passed [`check_first_byte`] from its body (everything
/// after the remaining length).
pub(crate) fn decode_body(
    first_byte: u8,
    body: Bytes,
    role: Role,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let mut r = Reader::new(body);
    let packet_type = first_byte >> 4;
    let packet = match packet_type {
        1 => Packet::Connect(Box::new(connect(&mut r)?)),
        2 => Packet::ConnAck(connack(&mut r, version)?),
        3 => Packet::Publish(publish(&mut r, first_byte, role, version)?),
        4 => Packet::PubAck(ack(&mut r, packet_type, version)?),
        5 => Packet::PubRec(ack(&mut r, packet_type, version)?),
        6 => Packet::PubRel(ack(&mut r, packet_type, version)?),
        7 => Packet::PubComp(ack(&mut r, packet_type, version)?),
        8 => Packet::Subscribe(subscribe(&mut r, version)?),
        9 => Packet::SubAck(suback(&mut r, version)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r, version)?),
        11 => Packet::UnsubAck(unsuback(&mut r, version)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect(&mut r, role, version)?),
        15 => Packet::Auth(auth(&mut r)?),
        other => return Err(DecodeError::InvalidPacketType(other)),
    };
    r.finish()?;
    Ok(packet)
}

fn packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

/// Reads the protocol name and level of CONNECT and returns the version they name.
pub(crate) fn protocol_version(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    match (&name[..], level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let protocol = protocol_version(r)?;
    let flags = r.u8()?;
    let keep_alive = r.u16()?;

    let clean_start = flags & 0b0000_0010 != 0;
    let will_flag = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let password_flag = flags & 0b0100_0000 != 0;
    let username_flag = flags & 0b1000_0000 != 0;
    if flags & 0b0000_0001 != 0 {
        return Err(DecodeError::InvalidFlags);
    }
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::InvalidFlags);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidQoS)?;
    if protocol == ProtocolVersion::V3_1_1 && password_flag && !username_flag {
        return Err(DecodeError::InvalidFlags);
    }

    let properties = if protocol.is_v5() {
        properties::decode_connect(r)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if protocol.is_v5() {
            properties::decode_will(r)?
        } else {
            Default::default()
        };
        let topic = r.string()?;
        if !topic::is_valid_topic_name(&topic) {
            return Err(DecodeError::InvalidTopicName);
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn connack(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    // In 3.1 this byte is unused; from 3.1.1 on bit 0 is session present, the rest reserved.
    let session_present = match version {
        ProtocolVersion::V3_1 => false,
        _ => {
            if flags & 0b1111_1110 != 0 {
                return Err(DecodeError::InvalidFlags);
            }
            flags & 1 != 0
        }
    };
    let reason_code = reason_codes::connack(version, r.u8()?)?;
    let properties = if version.is_v5() {
        properties::decode_connack(r)?
    } else {
        Default::default()
    };
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

fn publish(
    r: &mut Reader,
    first_byte: u8,
    role: Role,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let dup = first_byte & 0b1000 != 0;
    let qos = QoS::from_u8((first_byte >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let retain = first_byte & 0b0001 != 0;
    let topic = r.string()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(packet_id(r)?),
    };
    let properties = if version.is_v5() {
        properties::decode_publish(r, role)?
    } else {
        Default::default()
    };
    let topic_ok = if topic.is_empty() {
        properties.topic_alias.is_some()
    } else {
        topic::is_valid_topic_name(&topic)
    };
    if !topic_ok {
        return Err(DecodeError::InvalidTopicName);
    }
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

fn ack(r: &mut Reader, packet_type: u8, version: ProtocolVersion) -> Result<Ack, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut ack = Ack {
        packet_id,
        ..Ack::default()
    };
    // 5.0: a remaining length of 2 means success without properties, 3 a reason code alone.
    if version.is_v5() && !r.is_empty() {
        ack.reason_code = reason_codes::publish_ack(packet_type, r.u8()?)?;
        if !r.is_empty() {
            ack.properties = properties::decode_ack(r)?;
        }
    }
    Ok(ack)
}

fn subscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if version.is_v5() {
        properties::decode_subscribe(r)?
    } else {
        Default::default()
    };
    let mut subscriptions = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        if !topic::is_valid_topic_filter(&filter) {
            return Err(DecodeError::InvalidTopicFilter);
        }
        let options = subscription_options(r.u8()?, version)?;
        if options.no_local && topic::split_shared(&filter).is_some() {
            return Err(DecodeError::NoLocalOnSharedSubscription);
        }
        subscriptions.push(Subscription { filter, options });
    }
    if subscriptions.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Subscribe {
        packet_id,
        properties,
        subscriptions,
    })
}

fn subscription_options(
    byte: u8,
    version: ProtocolVersion,
) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if version.is_v5() {
        0b1100_0000
    } else {
        0b1111_1100
    };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidFlags);
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::InvalidFlags),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

fn suback(r: &mut Reader, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if version.is_v5() {
        properties::decode_ack(r)?
    } else {
        Default::default()
    };
    let mut reason_codes = Vec::new();
    while !r.is_empty() {
        reason_codes.push(reason_codes::suback(version, r.u8()?)?);
    }
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

fn unsubscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let user_properties = if version.is_v5() {
        properties::decode_unsubscribe(r)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        if !topic::is_valid_topic_filter(&filter) {
            return Err(DecodeError::InvalidTopicFilter);
        }
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Unsubscribe {
        packet_id,
        user_properties,
        filters,
    })
}

fn unsuback(r: &mut Reader, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut unsuback = UnsubAck {
        packet_id,
        ..UnsubAck::default()
    };
    if version.is_v5() {
        unsuback.properties = properties::decode_ack(r)?;
        while !r.is_empty() {
            unsuback.reason_codes.push(reason_codes::unsuback(r.u8()?)?);
        }
    }
    Ok(unsuback)
}

fn disconnect(
    r: &mut Reader,
    role: Role,
    version: ProtocolVersion,
) -> Result<Disconnect, DecodeError> {
    let mut disconnect = Disconnect::default();
    // 5.0: a remaining length of 0 means normal disconnection, 1 a reason code alone.
    if version.is_v5() && !r.is_empty() {
        disconnect.reason_code = reason_codes::disconnect(r.u8()?)?;
        if !r.is_empty() {
            disconnect.properties = properties::decode_disconnect(r, role)?;
        }
    }
    Ok(disconnect)
}

fn auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let mut auth = Auth {
        reason_code: ReasonCode::SUCCESS,
        ..Auth::default()
    };
    // A remaining length of 0 means success without properties.
    if !r.is_empty() {
        auth.reason_code = reason_codes::auth(r.u8()?)?;
        if !r.is_empty() {
            auth.properties = properties::decode_auth(r)?;
        }
    }
    Ok(auth)
}
