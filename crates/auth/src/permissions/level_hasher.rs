//! A fast hash for topic levels in the rule index.
//!
//! The index's keys are the levels of the rules' filters, fixed when a principal's permissions
//! are compiled; lookups use levels of the client's topics. A client cannot add keys, so the
//! flooding attacks that SipHash (the standard library's default) protects against do not
//! apply, and a multiply-rotate hash over eight bytes at a time is several times faster on
//! short keys.

use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hasher over 64-bit words.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LevelHasher {
    hash: u64,
}

/// Builds [`LevelHasher`]s.
pub(crate) type BuildLevelHasher = BuildHasherDefault<LevelHasher>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl LevelHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for LevelHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash(s: &str) -> u64 {
        BuildLevelHasher::default().hash_one(s)
    }

    #[test]
    fn different_levels_hash_differently() {
        let keys = [
            "",
            "a",
            "b",
            "ab",
            "abcdefgh",
            "abcdefghi",
            "sensor-1",
            "sensor-2",
        ];
        let mut hashes: Vec<u64> = keys.iter().map(|k| hash(k)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), keys.len());
    }
}
