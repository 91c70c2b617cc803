//! The packets of MQTT 3.1, 3.1.1 and 5.0 as Rust values.
//!
//! One type serves all three protocol versions: fields that exist only in 5.0 (properties,
//! reason codes on acknowledgements) are simply left at their defaults for 3.x, and the encoder
//! leaves them out. Payloads are [`Bytes`], so a decoded PUBLISH shares the read buffer and can
//! be fanned out to many subscribers without copying.

use bytes::Bytes;

use crate::reason::ReasonCode;

/// The protocol version a connection speaks, fixed by its CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    #[default]
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte carried in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name carried in CONNECT.
    pub fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V3_1 => "MQIsdp",
            _ => "MQTT",
        }
    }

    /// Whether this version carries properties and reason codes (5.0 only).
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service of a message or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// At most once (0).
    #[default]
    AtMostOnce = 0,
    /// At least once (1).
    AtLeastOnce = 1,
    /// Exactly once (2).
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a wire value, `None` for 3 and above.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The QoS one below, `None` for QoS 0.
    pub fn lower(self) -> Option<QoS> {
        match self {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(QoS::AtMostOnce),
            QoS::ExactlyOnce => Some(QoS::AtLeastOnce),
        }
    }
}

/// A user property: a name/value pair of UTF-8 strings (5.0). Order is kept, names may repeat.
pub type UserProperty = (String, String);

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (1), client to server.
    Connect(Box<Connect>),
    /// CONNACK (2), server to client.
    ConnAck(ConnAck),
    /// PUBLISH (3), both directions.
    Publish(Publish),
    /// PUBACK (4), both directions.
    PubAck(Ack),
    /// PUBREC (5), both directions.
    PubRec(Ack),
    /// PUBREL (6), both directions.
    PubRel(Ack),
    /// PUBCOMP (7), both directions.
    PubComp(Ack),
    /// SUBSCRIBE (8), client to server.
    Subscribe(Subscribe),
    /// SUBACK (9), server to client.
    SubAck(SubAck),
    /// UNSUBSCRIBE (10), client to server.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (11), server to client.
    UnsubAck(UnsubAck),
    /// PINGREQ (12), client to server.
    PingReq,
    /// PINGRESP (13), server to client.
    PingResp,
    /// DISCONNECT (14), client to server in 3.x, both directions in 5.0.
    Disconnect(Disconnect),
    /// AUTH (15), both directions, 5.0 only.
    Auth(Auth),
}

impl Packet {
    /// The packet type number (1 to 15) of the fixed header.
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::ConnAck(_) => 2,
            Packet::Publish(_) => 3,
            Packet::PubAck(_) => 4,
            Packet::PubRec(_) => 5,
            Packet::PubRel(_) => 6,
            Packet::PubComp(_) => 7,
            Packet::Subscribe(_) => 8,
            Packet::SubAck(_) => 9,
            Packet::Unsubscribe(_) => 10,
            Packet::UnsubAck(_) => 11,
            Packet::PingReq => 12,
            Packet::PingResp => 13,
            Packet::Disconnect(_) => 14,
            Packet::Auth(_) => 15,
        }
    }
}

/// CONNECT: the first packet of every connection.
///
/// `Debug` prints `<redacted>` for the password and the authentication data, so a logged
/// CONNECT never leaks a secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// Protocol version requested; decides how every later packet is read.
    pub protocol: ProtocolVersion,
    /// Clean session (3.x) or clean start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// Client identifier; may be empty.
    pub client_id: String,
    /// The will message, if the will flag was set.
    pub will: Option<Will>,
    /// User name, if the flag was set.
    pub username: Option<String>,
    /// Password (binary data), if the flag was set.
    pub password: Option<Bytes>,
    /// CONNECT properties (5.0).
    pub properties: ConnectProperties,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("protocol", &self.protocol)
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("properties", &self.properties)
            .finish()
    }
}

/// Properties of CONNECT (5.0).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// Session expiry interval (0x11), seconds.
    pub session_expiry_interval: Option<u32>,
    /// Receive maximum (0x21): how many QoS 1/2 publishes the client accepts in flight.
    pub receive_maximum: Option<u16>,
    /// Maximum packet size (0x27) the client accepts.
    pub maximum_packet_size: Option<u32>,
    /// Topic alias maximum (0x22) the client accepts from the server.
    pub topic_alias_maximum: Option<u16>,
    /// Request response information (0x19).
    pub request_response_information: Option<bool>,
    /// Request problem information (0x17).
    pub request_problem_information: Option<bool>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Authentication method (0x15).
    pub authentication_method: Option<String>,
    /// Authentication data (0x16).
    pub authentication_data: Option<Bytes>,
}

impl std::fmt::Debug for ConnectProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectProperties")
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("receive_maximum", &self.receive_maximum)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field(
                "request_response_information",
                &self.request_response_information,
            )
            .field(
                "request_problem_information",
                &self.request_problem_information,
            )
            .field("user_properties", &self.user_properties)
            .field("authentication_method", &self.authentication_method)
            .field(
                "authentication_data",
                &self.authentication_data.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Will {
    /// Topic name the will is published to.
    pub topic: String,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (5.0).
    pub properties: WillProperties,
}

/// Properties of a will (5.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    /// Will delay interval (0x18), seconds.
    pub will_delay_interval: Option<u32>,
    /// Payload format indicator (0x01): true for UTF-8.
    pub payload_format_indicator: Option<bool>,
    /// Message expiry interval (0x02), seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content type (0x03).
    pub content_type: Option<String>,
    /// Response topic (0x08).
    pub response_topic: Option<String>,
    /// Correlation data (0x09).
    pub correlation_data: Option<Bytes>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// CONNACK: the server's answer to CONNECT.
///
/// `reason_code` is a 5.0 reason code for 5.0 connections and a 3.x return code (0 to 5) for
/// 3.x connections; see [`crate::reason::ConnectReturnCode`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Session present flag.
    pub session_present: bool,
    /// Reason code (5.0) or return code (3.x).
    pub reason_code: ReasonCode,
    /// CONNACK properties (5.0).
    pub properties: ConnAckProperties,
}

/// Properties of CONNACK (5.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// Session expiry interval (0x11) the server uses.
    pub session_expiry_interval: Option<u32>,
    /// Receive maximum (0x21) of the server.
    pub receive_maximum: Option<u16>,
    /// Maximum QoS (0x24) the server supports (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// Retain available (0x25).
    pub retain_available: Option<bool>,
    /// Maximum packet size (0x27) the server accepts.
    pub maximum_packet_size: Option<u32>,
    /// Assigned client identifier (0x12).
    pub assigned_client_identifier: Option<String>,
    /// Topic alias maximum (0x22) the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Reason string (0x1F).
    pub reason_string: Option<String>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Wildcard subscription available (0x28).
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription identifiers available (0x29).
    pub subscription_identifiers_available: Option<bool>,
    /// Shared subscription available (0x2A).
    pub shared_subscription_available: Option<bool>,
    /// Server keep alive (0x13), seconds.
    pub server_keep_alive: Option<u16>,
    /// Response information (0x1A).
    pub response_information: Option<String>,
    /// Server reference (0x1C).
    pub server_reference: Option<String>,
    /// Authentication method (0x15).
    pub authentication_method: Option<String>,
    /// Authentication data (0x16).
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH: an application message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// Duplicate delivery flag.
    pub dup: bool,
    /// Quality of service.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name; may be empty in 5.0 when a topic alias is given.
    pub topic: String,
    /// Packet identifier, present exactly when `qos` is 1 or 2.
    pub packet_id: Option<u16>,
    /// PUBLISH properties (5.0).
    pub properties: PublishProperties,
    /// Application payload.
    pub payload: Bytes,
}

/// Properties of PUBLISH (5.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// Payload format indicator (0x01): true for UTF-8.
    pub payload_format_indicator: Option<bool>,
    /// Message expiry interval (0x02), seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic alias (0x23).
    pub topic_alias: Option<u16>,
    /// Response topic (0x08).
    pub response_topic: Option<String>,
    /// Correlation data (0x09).
    pub correlation_data: Option<Bytes>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Subscription identifiers (0x0B), server to client only; may repeat.
    pub subscription_identifiers: Vec<u32>,
    /// Content type (0x03).
    pub content_type: Option<String>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: they share one shape.
///
/// In 3.x only `packet_id` is on the wire. In 5.0 the reason code and properties may be left
/// out when the reason is success (0) and there are no properties; the encoder does so.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    /// Packet identifier of the publish being acknowledged.
    pub packet_id: u16,
    /// Reason code (5.0); [`ReasonCode::SUCCESS`] in 3.x.
    pub reason_code: ReasonCode,
    /// Properties (5.0).
    pub properties: AckProperties,
}

/// The properties shared by the acknowledgements (PUBACK…PUBCOMP, SUBACK, UNSUBACK).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// Reason string (0x1F).
    pub reason_string: Option<String>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// How retained messages are sent when a subscription is made (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: do not send them.
    DoNotSend = 2,
}

/// The options byte of one subscription in SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS requested.
    pub qos: QoS,
    /// No local (5.0): do not send the client's own publishes back to it.
    pub no_local: bool,
    /// Retain as published (5.0): keep the retain flag on forwarded messages.
    pub retain_as_published: bool,
    /// Retain handling (5.0).
    pub retain_handling: RetainHandling,
}

/// One topic filter and its options in SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Topic filter, possibly `$share/<group>/<filter>`.
    pub filter: String,
    /// Subscription options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Properties (5.0).
    pub properties: SubscribeProperties,
    /// At least one subscription.
    pub subscriptions: Vec<Subscription>,
}

/// Properties of SUBSCRIBE (5.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// Subscription identifier (0x0B), 1 to 268 435 455.
    pub subscription_identifier: Option<u32>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK: one return/reason code per requested subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// Properties (5.0).
    pub properties: AckProperties,
    /// Granted QoS (0, 1, 2) or a failure code (0x80 in 3.1.1, any 5.0 error reason).
    pub reason_codes: Vec<ReasonCode>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// User properties (5.0).
    pub user_properties: Vec<UserProperty>,
    /// At least one topic filter.
    pub filters: Vec<String>,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// Properties (5.0).
    pub properties: AckProperties,
    /// One reason code per filter (5.0); empty and absent on the wire in 3.x.
    pub reason_codes: Vec<ReasonCode>,
}

/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Reason code (5.0); [`ReasonCode::SUCCESS`] (normal disconnection) in 3.x.
    pub reason_code: ReasonCode,
    /// Properties (5.0).
    pub properties: DisconnectProperties,
}

/// Properties of DISCONNECT (5.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    /// Session expiry interval (0x11), client to server only.
    pub session_expiry_interval: Option<u32>,
    /// Reason string (0x1F).
    pub reason_string: Option<String>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Server reference (0x1C).
    pub server_reference: Option<String>,
}

/// AUTH (5.0): enhanced authentication exchange and re-authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub reason_code: ReasonCode,
    /// Properties.
    pub properties: AuthProperties,
}

/// Properties of AUTH (5.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    /// Authentication method (0x15).
    pub authentication_method: Option<String>,
    /// Authentication data (0x16).
    pub authentication_data: Option<Bytes>,
    /// Reason string (0x1F).
    pub reason_string: Option<String>,
    /// User properties (0x26).
    pub user_properties: Vec<UserProperty>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_debug_redacts_secrets() {
        let connect = Connect {
            password: Some(Bytes::from_static(b"hunter2")),
            properties: ConnectProperties {
                authentication_data: Some(Bytes::from_static(b"token-xyz")),
                ..Default::default()
            },
            ..Connect::default()
        };
        let shown = format!("{connect:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("token-xyz"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
    }
}
