//! Reason codes (5.0) and connect return codes (3.x).

/// A 5.0 reason code, or a 3.x return code where a packet carries one (CONNACK, SUBACK).
///
/// A newtype over the wire byte rather than an enum: the same byte means different things in
/// different packets (0x00 is "success", "normal disconnection" and "granted QoS 0"), and the
/// decoder checks which values each packet allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    /// 0x00 Success / Normal disconnection / Granted QoS 0.
    pub const SUCCESS: ReasonCode = ReasonCode(0x00);
    /// 0x00 Normal disconnection.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode(0x00);
    /// 0x00 Granted QoS 0.
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode(0x00);
    /// 0x01 Granted QoS 1.
    pub const GRANTED_QOS_1: ReasonCode = ReasonCode(0x01);
    /// 0x02 Granted QoS 2.
    pub const GRANTED_QOS_2: ReasonCode = ReasonCode(0x02);
    /// 0x04 Disconnect with will message.
    pub const DISCONNECT_WITH_WILL: ReasonCode = ReasonCode(0x04);
    /// 0x10 No matching subscribers.
    pub const NO_MATCHING_SUBSCRIBERS: ReasonCode = ReasonCode(0x10);
    /// 0x11 No subscription existed.
    pub const NO_SUBSCRIPTION_EXISTED: ReasonCode = ReasonCode(0x11);
    /// 0x18 Continue authentication.
    pub const CONTINUE_AUTHENTICATION: ReasonCode = ReasonCode(0x18);
    /// 0x19 Re-authenticate.
    pub const REAUTHENTICATE: ReasonCode = ReasonCode(0x19);
    /// 0x80 Unspecified error (also the 3.1.1 SUBACK failure code).
    pub const UNSPECIFIED_ERROR: ReasonCode = ReasonCode(0x80);
    /// 0x81 Malformed packet.
    pub const MALFORMED_PACKET: ReasonCode = ReasonCode(0x81);
    /// 0x82 Protocol error.
    pub const PROTOCOL_ERROR: ReasonCode = ReasonCode(0x82);
    /// 0x83 Implementation specific error.
    pub const IMPLEMENTATION_SPECIFIC_ERROR: ReasonCode = ReasonCode(0x83);
    /// 0x84 Unsupported protocol version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: ReasonCode = ReasonCode(0x84);
    /// 0x85 Client identifier not valid.
    pub const CLIENT_IDENTIFIER_NOT_VALID: ReasonCode = ReasonCode(0x85);
    /// 0x86 Bad user name or password.
    pub const BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(0x86);
    /// 0x87 Not authorized.
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(0x87);
    /// 0x88 Server unavailable.
    pub const SERVER_UNAVAILABLE: ReasonCode = ReasonCode(0x88);
    /// 0x89 Server busy.
    pub const SERVER_BUSY: ReasonCode = ReasonCode(0x89);
    /// 0x8A Banned.
    pub const BANNED: ReasonCode = ReasonCode(0x8A);
    /// 0x8B Server shutting down.
    pub const SERVER_SHUTTING_DOWN: ReasonCode = ReasonCode(0x8B);
    /// 0x8C Bad authentication method.
    pub const BAD_AUTHENTICATION_METHOD: ReasonCode = ReasonCode(0x8C);
    /// 0x8D Keep alive timeout.
    pub const KEEP_ALIVE_TIMEOUT: ReasonCode = ReasonCode(0x8D);
    /// 0x8E Session taken over.
    pub const SESSION_TAKEN_OVER: ReasonCode = ReasonCode(0x8E);
    /// 0x8F Topic filter invalid.
    pub const TOPIC_FILTER_INVALID: ReasonCode = ReasonCode(0x8F);
    /// 0x90 Topic name invalid.
    pub const TOPIC_NAME_INVALID: ReasonCode = ReasonCode(0x90);
    /// 0x91 Packet identifier in use.
    pub const PACKET_IDENTIFIER_IN_USE: ReasonCode = ReasonCode(0x91);
    /// 0x92 Packet identifier not found.
    pub const PACKET_IDENTIFIER_NOT_FOUND: ReasonCode = ReasonCode(0x92);
    /// 0x93 Receive maximum exceeded.
    pub const RECEIVE_MAXIMUM_EXCEEDED: ReasonCode = ReasonCode(0x93);
    /// 0x94 Topic alias invalid.
    pub const TOPIC_ALIAS_INVALID: ReasonCode = ReasonCode(0x94);
    /// 0x95 Packet too large.
    pub const PACKET_TOO_LARGE: ReasonCode = ReasonCode(0x95);
    /// 0x96 Message rate too high.
    pub const MESSAGE_RATE_TOO_HIGH: ReasonCode = ReasonCode(0x96);
    /// 0x97 Quota exceeded.
    pub const QUOTA_EXCEEDED: ReasonCode = ReasonCode(0x97);
    /// 0x98 Administrative action.
    pub const ADMINISTRATIVE_ACTION: ReasonCode = ReasonCode(0x98);
    /// 0x99 Payload format invalid.
    pub const PAYLOAD_FORMAT_INVALID: ReasonCode = ReasonCode(0x99);
    /// 0x9A Retain not supported.
    pub const RETAIN_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9A);
    /// 0x9B QoS not supported.
    pub const QOS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9B);
    /// 0x9C Use another server.
    pub const USE_ANOTHER_SERVER: ReasonCode = ReasonCode(0x9C);
    /// 0x9D Server moved.
    pub const SERVER_MOVED: ReasonCode = ReasonCode(0x9D);
    /// 0x9E Shared subscriptions not supported.
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9E);
    /// 0x9F Connection rate exceeded.
    pub const CONNECTION_RATE_EXCEEDED: ReasonCode = ReasonCode(0x9F);
    /// 0xA0 Maximum connect time.
    pub const MAXIMUM_CONNECT_TIME: ReasonCode = ReasonCode(0xA0);
    /// 0xA1 Subscription identifiers not supported.
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xA1);
    /// 0xA2 Wildcard subscriptions not supported.
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xA2);

    /// Whether this code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }
}

/// MQTT 3.x CONNACK return codes.
pub struct ConnectReturnCode;

impl ConnectReturnCode {
    /// 0: connection accepted.
    pub const ACCEPTED: ReasonCode = ReasonCode(0);
    /// 1: unacceptable protocol version.
    pub const UNACCEPTABLE_PROTOCOL_VERSION: ReasonCode = ReasonCode(1);
    /// 2: identifier rejected.
    pub const IDENTIFIER_REJECTED: ReasonCode = ReasonCode(2);
    /// 3: server unavailable.
    pub const SERVER_UNAVAILABLE: ReasonCode = ReasonCode(3);
    /// 4: bad user name or password.
    pub const BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(4);
    /// 5: not authorized.
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(5);

    /// The 3.x return code that best conveys a 5.0 CONNACK reason code.
    pub fn from_v5(reason: ReasonCode) -> ReasonCode {
        match reason.0 {
            0x00 => Self::ACCEPTED,
            0x84 => Self::UNACCEPTABLE_PROTOCOL_VERSION,
            0x85 => Self::IDENTIFIER_REJECTED,
            0x86 | 0x8C => Self::BAD_USER_NAME_OR_PASSWORD,
            0x88 | 0x89 | 0x97 | 0x9C | 0x9D | 0x9F => Self::SERVER_UNAVAILABLE,
            _ => Self::NOT_AUTHORIZED,
        }
    }
}
