//! Decoding bytes into packets and encoding packets into bytes.
//! (Stub: the signatures are the contract; the bodies are being written.)

use bytes::BytesMut;

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
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let _ = buf;
        todo!()
    }
}

/// Appends the encoding of `packet` for `version` to `out`.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
    let _ = (packet, version, out);
    todo!()
}

/// The size of `packet`'s encoding for `version`, fixed header included.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let _ = (packet, version);
    todo!()
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

/// Appends a PUBLISH built from `message` with `overrides` applied.
pub fn encode_publish_with(
    message: &Publish,
    overrides: &PublishOverrides<'_>,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = (message, overrides, version, out);
    todo!()
}

/// The size [`encode_publish_with`] would write.
pub fn publish_encoded_len(
    message: &Publish,
    overrides: &PublishOverrides<'_>,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let _ = (message, overrides, version);
    todo!()
}
