//! 5.0 properties (MQTT 2.2.2): their identifiers, which packet allows which, reading them with
//! duplicate and range checks, and writing them.

use bytes::Bytes;

use super::reader::Reader;
use super::sink::{Counter, Sink};
use super::varint;
use crate::codec::Role;
use crate::error::{DecodeError, EncodeError};
use crate::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, QoS, SubscribeProperties, UserProperty, WillProperties,
};
use crate::topic;

/// Property identifiers (MQTT 2.2.2.2, table 2-4).
pub(crate) mod id {
    pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(crate) const CONTENT_TYPE: u8 = 0x03;
    pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
    pub(crate) const CORRELATION_DATA: u8 = 0x09;
    pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
    pub(crate) const REASON_STRING: u8 = 0x1F;
    pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(crate) const TOPIC_ALIAS: u8 = 0x23;
    pub(crate) const MAXIMUM_QOS: u8 = 0x24;
    pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(crate) const USER_PROPERTY: u8 = 0x26;
    pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

    /// Whether `id` is a property the specification defines.
    pub(crate) fn is_known(id: u8) -> bool {
        matches!(
            id,
            0x01..=0x03
                | 0x08
                | 0x09
                | 0x0B
                | 0x11..=0x13
                | 0x15..=0x1A
                | 0x1C
                | 0x1F
                | 0x21..=0x2A
        )
    }
}

use id::*;

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// The error for a property that is not accepted where it appeared.
fn not_allowed(id: u8) -> DecodeError {
    if id::is_known(id) {
        DecodeError::PropertyNotAllowed(id)
    } else {
        DecodeError::UnknownProperty(id)
    }
}

/// Stores a single-valued property, refusing a second occurrence.
fn once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads the property length and calls `f` with each property identifier and a reader
/// positioned at its value; `f` must read exactly the value.
fn each<F>(r: &mut Reader, mut f: F) -> Result<(), DecodeError>
where
    F: FnMut(u8, &mut Reader) -> Result<(), DecodeError>,
{
    let len = r.varint()? as usize;
    let mut props = Reader::new(r.take(len)?);
    while !props.is_empty() {
        let id = props.u8()?;
        f(id, &mut props)?;
    }
    Ok(())
}

fn boolean(r: &mut Reader, id: u8) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

fn nonzero_u16(r: &mut Reader, id: u8) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(v),
    }
}

fn nonzero_u32(r: &mut Reader, id: u8) -> Result<u32, DecodeError> {
    match r.u32()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(v),
    }
}

fn subscription_identifier(r: &mut Reader) -> Result<u32, DecodeError> {
    match r.varint()? {
        0 => Err(DecodeError::InvalidPropertyValue(SUBSCRIPTION_IDENTIFIER)),
        v => Ok(v),
    }
}

fn response_topic(r: &mut Reader) -> Result<String, DecodeError> {
    let topic = r.string()?;
    if !topic::is_valid_topic_name(&topic) {
        return Err(DecodeError::InvalidPropertyValue(RESPONSE_TOPIC));
    }
    Ok(topic)
}

fn user_property(r: &mut Reader, list: &mut Vec<UserProperty>) -> Result<(), DecodeError> {
    let name = r.string()?;
    let value = r.string()?;
    list.push((name, value));
    Ok(())
}

fn binary(r: &mut Reader) -> Result<Bytes, DecodeError> {
    r.binary()
}

/// CONNECT properties.
pub(crate) fn decode_connect(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let mut p = ConnectProperties::default();
    each(r, |id, r| match id {
        SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, id, r.u32()?),
        RECEIVE_MAXIMUM => once(&mut p.receive_maximum, id, nonzero_u16(r, id)?),
        MAXIMUM_PACKET_SIZE => once(&mut p.maximum_packet_size, id, nonzero_u32(r, id)?),
        TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, id, r.u16()?),
        REQUEST_RESPONSE_INFORMATION => {
            once(&mut p.request_response_information, id, boolean(r, id)?)
        }
        REQUEST_PROBLEM_INFORMATION => {
            once(&mut p.request_problem_information, id, boolean(r, id)?)
        }
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        AUTHENTICATION_METHOD => once(&mut p.authentication_method, id, r.string()?),
        AUTHENTICATION_DATA => once(&mut p.authentication_data, id, binary(r)?),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// Will properties in the CONNECT payload.
pub(crate) fn decode_will(r: &mut Reader) -> Result<WillProperties, DecodeError> {
    let mut p = WillProperties::default();
    each(r, |id, r| match id {
        WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, id, r.u32()?),
        PAYLOAD_FORMAT_INDICATOR => once(&mut p.payload_format_indicator, id, boolean(r, id)?),
        MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, id, r.u32()?),
        CONTENT_TYPE => once(&mut p.content_type, id, r.string()?),
        RESPONSE_TOPIC => once(&mut p.response_topic, id, response_topic(r)?),
        CORRELATION_DATA => once(&mut p.correlation_data, id, binary(r)?),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// CONNACK properties.
pub(crate) fn decode_connack(r: &mut Reader) -> Result<ConnAckProperties, DecodeError> {
    let mut p = ConnAckProperties::default();
    each(r, |id, r| match id {
        SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, id, r.u32()?),
        RECEIVE_MAXIMUM => once(&mut p.receive_maximum, id, nonzero_u16(r, id)?),
        MAXIMUM_QOS => {
            let qos = match r.u8()? {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => return Err(DecodeError::InvalidPropertyValue(id)),
            };
            once(&mut p.maximum_qos, id, qos)
        }
        RETAIN_AVAILABLE => once(&mut p.retain_available, id, boolean(r, id)?),
        MAXIMUM_PACKET_SIZE => once(&mut p.maximum_packet_size, id, nonzero_u32(r, id)?),
        ASSIGNED_CLIENT_IDENTIFIER => once(&mut p.assigned_client_identifier, id, r.string()?),
        TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, id, r.u16()?),
        REASON_STRING => once(&mut p.reason_string, id, r.string()?),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        WILDCARD_SUBSCRIPTION_AVAILABLE => {
            once(&mut p.wildcard_subscription_available, id, boolean(r, id)?)
        }
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => once(
            &mut p.subscription_identifiers_available,
            id,
            boolean(r, id)?,
        ),
        SHARED_SUBSCRIPTION_AVAILABLE => {
            once(&mut p.shared_subscription_available, id, boolean(r, id)?)
        }
        SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, id, r.u16()?),
        RESPONSE_INFORMATION => once(&mut p.response_information, id, r.string()?),
        SERVER_REFERENCE => once(&mut p.server_reference, id, r.string()?),
        AUTHENTICATION_METHOD => once(&mut p.authentication_method, id, r.string()?),
        AUTHENTICATION_DATA => once(&mut p.authentication_data, id, binary(r)?),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// PUBLISH properties. Subscription identifiers only travel from server to client, so a
/// server refuses them.
pub(crate) fn decode_publish(r: &mut Reader, role: Role) -> Result<PublishProperties, DecodeError> {
    let mut p = PublishProperties::default();
    each(r, |id, r| match id {
        PAYLOAD_FORMAT_INDICATOR => once(&mut p.payload_format_indicator, id, boolean(r, id)?),
        MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, id, r.u32()?),
        TOPIC_ALIAS => once(&mut p.topic_alias, id, nonzero_u16(r, id)?),
        RESPONSE_TOPIC => once(&mut p.response_topic, id, response_topic(r)?),
        CORRELATION_DATA => once(&mut p.correlation_data, id, binary(r)?),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        SUBSCRIPTION_IDENTIFIER if role == Role::Client => {
            p.subscription_identifiers.push(subscription_identifier(r)?);
            Ok(())
        }
        CONTENT_TYPE => once(&mut p.content_type, id, r.string()?),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// The properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
pub(crate) fn decode_ack(r: &mut Reader) -> Result<AckProperties, DecodeError> {
    let mut p = AckProperties::default();
    each(r, |id, r| match id {
        REASON_STRING => once(&mut p.reason_string, id, r.string()?),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// SUBSCRIBE properties.
pub(crate) fn decode_subscribe(r: &mut Reader) -> Result<SubscribeProperties, DecodeError> {
    let mut p = SubscribeProperties::default();
    each(r, |id, r| match id {
        SUBSCRIPTION_IDENTIFIER => once(
            &mut p.subscription_identifier,
            id,
            subscription_identifier(r)?,
        ),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// UNSUBSCRIBE properties: user properties only.
pub(crate) fn decode_unsubscribe(r: &mut Reader) -> Result<Vec<UserProperty>, DecodeError> {
    let mut list = Vec::new();
    each(r, |id, r| match id {
        USER_PROPERTY => user_property(r, &mut list),
        _ => Err(not_allowed(id)),
    })?;
    Ok(list)
}

/// DISCONNECT properties. The session expiry interval may only come from the client, so a
/// client refuses it.
pub(crate) fn decode_disconnect(
    r: &mut Reader,
    role: Role,
) -> Result<DisconnectProperties, DecodeError> {
    let mut p = DisconnectProperties::default();
    each(r, |id, r| match id {
        SESSION_EXPIRY_INTERVAL if role == Role::Server => {
            once(&mut p.session_expiry_interval, id, r.u32()?)
        }
        REASON_STRING => once(&mut p.reason_string, id, r.string()?),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        SERVER_REFERENCE => once(&mut p.server_reference, id, r.string()?),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

/// AUTH properties.
pub(crate) fn decode_auth(r: &mut Reader) -> Result<AuthProperties, DecodeError> {
    let mut p = AuthProperties::default();
    each(r, |id, r| match id {
        AUTHENTICATION_METHOD => once(&mut p.authentication_method, id, r.string()?),
        AUTHENTICATION_DATA => once(&mut p.authentication_data, id, binary(r)?),
        REASON_STRING => once(&mut p.reason_string, id, r.string()?),
        USER_PROPERTY => user_property(r, &mut p.user_properties),
        _ => Err(not_allowed(id)),
    })?;
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// A set of properties that can be written (without the property length in front).
pub(crate) trait WriteProperties {
    /// Writes each property, identifier and value.
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError>;

    /// The size of the properties, property length excluded.
    fn properties_len(&self) -> Result<usize, EncodeError> {
        let mut c = Counter::default();
        self.write_properties(&mut c)?;
        Ok(c.0)
    }
}

/// Writes the property length followed by the properties.
pub(crate) fn put_block<S: Sink, P: WriteProperties + ?Sized>(
    s: &mut S,
    p: &P,
) -> Result<(), EncodeError> {
    put_block_sized(s, p, p.properties_len()?)
}

/// [`put_block`] for properties whose size, `len`, is already known.
pub(crate) fn put_block_sized<S: Sink, P: WriteProperties + ?Sized>(
    s: &mut S,
    p: &P,
    len: usize,
) -> Result<(), EncodeError> {
    s.put_varint(len)?;
    s.put_properties(p, len)
}

fn put_u8_prop<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u8(v);
    }
}

fn put_bool<S: Sink>(s: &mut S, id: u8, v: Option<bool>) {
    put_u8_prop(s, id, v.map(u8::from));
}

fn put_u16_prop<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u16(v);
    }
}

fn put_u32_prop<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u32(v);
    }
}

fn put_str_prop<S: Sink>(s: &mut S, id: u8, v: Option<&str>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_str(v)?;
    }
    Ok(())
}

fn put_bin_prop<S: Sink>(s: &mut S, id: u8, v: Option<&[u8]>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_binary(v)?;
    }
    Ok(())
}

fn put_subscription_identifier<S: Sink>(s: &mut S, v: u32) -> Result<(), EncodeError> {
    if v == 0 || v > varint::MAX {
        return Err(EncodeError::InvalidField("subscription identifier"));
    }
    s.put_u8(SUBSCRIPTION_IDENTIFIER);
    s.put_varint_unchecked(v);
    Ok(())
}

fn put_user_properties<S: Sink>(s: &mut S, list: &[UserProperty]) -> Result<(), EncodeError> {
    for (name, value) in list {
        s.put_u8(USER_PROPERTY);
        s.put_str(name)?;
        s.put_str(value)?;
    }
    Ok(())
}

impl WriteProperties for ConnectProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16_prop(s, RECEIVE_MAXIMUM, self.receive_maximum);
        put_u32_prop(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_u16_prop(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_bool(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        put_bool(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        put_str_prop(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        )?;
        put_bin_prop(s, AUTHENTICATION_DATA, self.authentication_data.as_deref())?;
        put_user_properties(s, &self.user_properties)
    }
}

impl WriteProperties for WillProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        put_bool(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        put_u32_prop(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_str_prop(s, CONTENT_TYPE, self.content_type.as_deref())?;
        put_str_prop(s, RESPONSE_TOPIC, self.response_topic.as_deref())?;
        put_bin_prop(s, CORRELATION_DATA, self.correlation_data.as_deref())?;
        put_user_properties(s, &self.user_properties)
    }
}

impl WriteProperties for ConnAckProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16_prop(s, RECEIVE_MAXIMUM, self.receive_maximum);
        put_u8_prop(s, MAXIMUM_QOS, self.maximum_qos.map(|q| q as u8));
        put_bool(s, RETAIN_AVAILABLE, self.retain_available);
        put_u32_prop(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_str_prop(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_deref(),
        )?;
        put_u16_prop(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_str_prop(s, REASON_STRING, self.reason_string.as_deref())?;
        put_bool(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        put_bool(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        put_bool(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        put_u16_prop(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_str_prop(
            s,
            RESPONSE_INFORMATION,
            self.response_information.as_deref(),
        )?;
        put_str_prop(s, SERVER_REFERENCE, self.server_reference.as_deref())?;
        put_str_prop(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        )?;
        put_bin_prop(s, AUTHENTICATION_DATA, self.authentication_data.as_deref())?;
        put_user_properties(s, &self.user_properties)
    }
}

/// PUBLISH properties as they go on the wire, borrowed from a message and its per-recipient
/// overrides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishPropertiesRef<'a> {
    pub(crate) payload_format_indicator: Option<bool>,
    pub(crate) message_expiry_interval: Option<u32>,
    pub(crate) topic_alias: Option<u16>,
    pub(crate) response_topic: Option<&'a str>,
    pub(crate) correlation_data: Option<&'a [u8]>,
    pub(crate) user_properties: &'a [UserProperty],
    pub(crate) subscription_identifiers: &'a [u32],
    pub(crate) content_type: Option<&'a str>,
}

impl<'a> PublishPropertiesRef<'a> {
    /// A message's own properties.
    pub(crate) fn of(p: &'a PublishProperties) -> Self {
        PublishPropertiesRef {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            topic_alias: p.topic_alias,
            response_topic: p.response_topic.as_deref(),
            correlation_data: p.correlation_data.as_deref(),
            user_properties: &p.user_properties,
            subscription_identifiers: &p.subscription_identifiers,
            content_type: p.content_type.as_deref(),
        }
    }
}

impl WriteProperties for PublishPropertiesRef<'_> {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_bool(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        put_u32_prop(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_u16_prop(s, TOPIC_ALIAS, self.topic_alias);
        put_str_prop(s, RESPONSE_TOPIC, self.response_topic)?;
        put_bin_prop(s, CORRELATION_DATA, self.correlation_data)?;
        for &v in self.subscription_identifiers {
            put_subscription_identifier(s, v)?;
        }
        put_str_prop(s, CONTENT_TYPE, self.content_type)?;
        put_user_properties(s, self.user_properties)
    }
}

impl WriteProperties for AckProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_str_prop(s, REASON_STRING, self.reason_string.as_deref())?;
        put_user_properties(s, &self.user_properties)
    }
}

impl WriteProperties for SubscribeProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        if let Some(v) = self.subscription_identifier {
            put_subscription_identifier(s, v)?;
        }
        put_user_properties(s, &self.user_properties)
    }
}

impl WriteProperties for [UserProperty] {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_user_properties(s, self)
    }
}

impl WriteProperties for DisconnectProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_str_prop(s, REASON_STRING, self.reason_string.as_deref())?;
        put_str_prop(s, SERVER_REFERENCE, self.server_reference.as_deref())?;
        put_user_properties(s, &self.user_properties)
    }
}

impl WriteProperties for AuthProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        put_str_prop(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        )?;
        put_bin_prop(s, AUTHENTICATION_DATA, self.authentication_data.as_deref())?;
        put_str_prop(s, REASON_STRING, self.reason_string.as_deref())?;
        put_user_properties(s, &self.user_properties)
    }
}
