//! Variable byte integers (MQTT 1.5.5): the remaining length, property lengths and
//! subscription identifiers.

use bytes::BufMut;

/// The largest value a variable byte integer can carry (four bytes).
pub(crate) const MAX: u32 = 268_435_455;

/// Why a variable byte integer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarIntError {
    /// The bytes end before the integer does.
    Incomplete,
    /// More than four bytes, or not the shortest encoding of its value.
    Malformed,
}

/// Reads a variable byte integer from the front of `bytes`: its value and how many bytes it took.
pub(crate) fn decode(bytes: &[u8]) -> Result<(u32, usize), VarIntError> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&byte) = bytes.get(i) else {
            return Err(VarIntError::Incomplete);
        };
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A final byte of 0 after a continuation byte means a longer encoding than needed,
            // which MQTT-1.5.5-1 forbids.
            if i > 0 && byte == 0 {
                return Err(VarIntError::Malformed);
            }
            return Ok((value, i + 1));
        }
    }
    Err(VarIntError::Malformed)
}

/// How many bytes the encoding of `value` takes (values above [`MAX`] count as four).
pub(crate) fn len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value`, which the caller has checked is at most [`MAX`].
pub(crate) fn put<B: BufMut + ?Sized>(out: &mut B, value: u32) {
    let mut value = value;
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_encode_to_the_spec_lengths_and_decode_back() {
        for (value, expected_len) in [
            (0u32, 1usize),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (MAX, 4),
        ] {
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(out.len(), expected_len, "{value}");
            assert_eq!(len(value as usize), expected_len, "{value}");
            assert_eq!(decode(&out), Ok((value, expected_len)));
        }
    }

    #[test]
    fn five_bytes_is_malformed() {
        assert_eq!(
            decode(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(VarIntError::Malformed)
        );
    }

    #[test]
    fn non_minimal_encoding_is_malformed() {
        assert_eq!(decode(&[0x80, 0x00]), Err(VarIntError::Malformed));
        assert_eq!(decode(&[0xFF, 0x80, 0x00]), Err(VarIntError::Malformed));
    }

    #[test]
    fn missing_continuation_is_incomplete() {
        assert_eq!(decode(&[]), Err(VarIntError::Incomplete));
        assert_eq!(decode(&[0x80, 0x80]), Err(VarIntError::Incomplete));
    }
}
