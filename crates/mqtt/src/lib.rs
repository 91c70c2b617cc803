//! The MQTT wire format for Tollgate: every packet of MQTT 3.1 (`MQIsdp`, level 3), 3.1.1
//! (level 4) and 5.0 (level 5), decoded and encoded for both the server and the client side.
//!
//! This crate does no I/O and knows nothing of sessions: bytes in, [`Packet`]s out, and back.
//! Untrusted input is checked before anything is allocated for it: the fixed header's remaining
//! length is compared against the maximum packet size before the body is read, and every length
//! inside a packet against what is left of it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod error;
pub mod packet;
pub mod reason;
pub mod topic;

pub use codec::{
    encode, encode_publish_with, encoded_len, publish_encoded_len, Decoder, PublishOverrides, Role,
};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use reason::{ConnectReturnCode, ReasonCode};
