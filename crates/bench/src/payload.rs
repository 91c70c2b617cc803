//! The header every benchmark payload starts with: the publisher, its sequence number and the
//! time of sending. The rest of the payload, up to the requested size, is zeros.
//!
//! Layout (big-endian): publisher `u32`, sequence `u64`, sent-at nanoseconds `u64`.

/// Bytes of the header; payloads are at least this long.
pub const HEADER_LEN: usize = 20;

/// What a payload says about its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher in the scenario.
    pub publisher: u32,
    /// Sequence number within that publisher, from 0.
    pub seq: u64,
    /// When it was sent, from [`crate::clock::now_ns`].
    pub sent_ns: u64,
}

/// Writes `stamp` at the start of `payload`, which must be at least [`HEADER_LEN`] long.
pub fn write(payload: &mut [u8], stamp: &Stamp) {
    payload[0..4].copy_from_slice(&stamp.publisher.to_be_bytes());
    payload[4..12].copy_from_slice(&stamp.seq.to_be_bytes());
    payload[12..20].copy_from_slice(&stamp.sent_ns.to_be_bytes());
}

/// Reads the stamp of a payload; `None` if it is shorter than the header.
pub fn read(payload: &[u8]) -> Option<Stamp> {
    if payload.len() < HEADER_LEN {
        return None;
    }
    Some(Stamp {
        publisher: u32::from_be_bytes(payload[0..4].try_into().ok()?),
        seq: u64::from_be_bytes(payload[4..12].try_into().ok()?),
        sent_ns: u64::from_be_bytes(payload[12..20].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stamp = Stamp {
            publisher: 7,
            seq: u64::MAX - 3,
            sent_ns: 123_456_789,
        };
        let mut buf = [0u8; 64];
        write(&mut buf, &stamp);
        assert_eq!(read(&buf), Some(stamp));
        assert_eq!(read(&buf[..HEADER_LEN]), Some(stamp));
    }

    #[test]
    fn short_payload_has_no_stamp() {
        assert_eq!(read(&[0u8; HEADER_LEN - 1]), None);
    }
}
