//! The password hash formats of a password file.
//!
//! - `$6$<salt>$<hash>`: Mosquitto's older format, SHA-512 of the password followed by the salt,
//!   both base64.
//! - `$7$<iterations>$<salt>$<hash>`: Mosquitto 2's PBKDF2-HMAC-SHA512, salt and 64-byte hash
//!   base64.
//! - `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`: a PHC string, what `tollgate passwd` writes.
//! - `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (or `SCRAM-SHA-512`): SCRAM
//!   keys, what `tollgate passwd --scram` writes (see [`crate::scram`]).
//!
//! Every format checks a password sent in CONNECT. SCRAM exchanges use SCRAM lines, and
//! `$7$` lines of at least 4 096 iterations for SCRAM-SHA-512 (Mosquitto's PBKDF2-HMAC-SHA512
//! output is SCRAM's salted password), so those Mosquitto users need no new enrolment.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash as PhcString, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha512};

use crate::scram::{Mechanism, ScramKeys, MIN_ITERATIONS};
use crate::secret::constant_time_eq;

/// Most PBKDF2 iterations accepted from a file: a hostile file must not make one login cost
/// minutes (Mosquitto writes 101).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Most argon2 memory one hash may ask for, in KiB (a line asking for more is refused: a
/// password file must not make one login take gigabytes). `tollgate passwd` writes 19 456.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;

/// Most argon2 passes accepted from a file.
const MAX_ARGON2_PASSES: u32 = 64;

/// One stored password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$6$`: SHA-512(password ‖ salt).
    Sha512 {
        /// Salt bytes.
        salt: Vec<u8>,
        /// Digest bytes.
        hash: Vec<u8>,
    },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// Iteration count.
        iterations: u32,
        /// Salt bytes.
        salt: Vec<u8>,
        /// Derived key bytes.
        hash: Vec<u8>,
    },
    /// An argon2id PHC string.
    Argon2id(String),
    /// SCRAM keys.
    Scram(ScramKeys),
}

impl PasswordHash {
    /// Parses the part of a password file line after `user:`.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        if text.starts_with("SCRAM-") {
            return ScramKeys::parse(text).map(PasswordHash::Scram);
        }
        if text.starts_with("$argon2id$") {
            let phc = PhcString::new(text).map_err(|e| format!("invalid argon2id hash: {e}"))?;
            if phc.salt.is_none() || phc.hash.is_none() {
                return Err("invalid argon2id hash: salt or hash missing".into());
            }
            let params =
                Params::try_from(&phc).map_err(|e| format!("invalid argon2id parameters: {e}"))?;
            if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
                return Err(format!(
                    "argon2id cost m={} t={} is above the most accepted (m={MAX_ARGON2_MEMORY_KIB}, t={MAX_ARGON2_PASSES})",
                    params.m_cost(),
                    params.t_cost()
                ));
            }
            return Ok(PasswordHash::Argon2id(text.to_owned()));
        }
        let b64 = |field: &str, what: &str| {
            STANDARD
                .decode(field)
                .map_err(|_| format!("{what} is not valid base64"))
        };
        let parts: Vec<&str> = text.split('$').collect();
        match parts.as_slice() {
            ["", "6", salt, hash] => {
                let hash = b64(hash, "hash")?;
                if hash.len() != 64 {
                    return Err(format!("$6$ hash must be 64 bytes, not {}", hash.len()));
                }
                Ok(PasswordHash::Sha512 { salt: b64(salt, "salt")?, hash })
            }
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations.parse().map_err(|_| "iteration count is not a number".to_owned())?;
                if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                    return Err(format!("iteration count {iterations} is out of range (1 to {MAX_PBKDF2_ITERATIONS})"));
                }
                let hash = b64(hash, "hash")?;
                if hash.is_empty() || hash.len() > 128 {
                    return Err(format!("$7$ hash length {} is out of range", hash.len()));
                }
                Ok(PasswordHash::Pbkdf2Sha512 { iterations, salt: b64(salt, "salt")?, hash })
            }
            _ => Err("unknown hash format (expected $6$, $7$, $argon2id$ or SCRAM-SHA-256$/SCRAM-SHA-512$; plain-text passwords are not accepted)".to_owned()),
        }
    }

    /// Whether `password` matches. Compares in constant time; costs what the format costs
    /// (argon2id and PBKDF2 are slow on purpose: call from a thread of their own).
    pub fn verify(&self, password: &[u8]) -> bool {
        self.verify_with_memory(password, &mut Vec::new())
    }

    /// [`PasswordHash::verify`], with argon2's working memory in `memory` (grown as needed and
    /// left for the next call): a hashing thread that keeps one buffer never goes back to the
    /// allocator for it.
    pub fn verify_with_memory(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                constant_time_eq(&h.finalize(), hash)
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                constant_time_eq(&out, hash)
            }
            PasswordHash::Argon2id(phc) => verify_argon2id(phc, password, memory).unwrap_or(false),
            PasswordHash::Scram(keys) => keys.verify_password(password),
        }
    }

    /// The SCRAM keys a `mechanism` exchange checks this user with, if the line has them: a
    /// SCRAM line of that mechanism, or a `$7$` line of at least 4 096 iterations for
    /// SCRAM-SHA-512 (fewer, such as the 101 `mosquitto_passwd` writes by default, would
    /// hand a client a count RFC 7677 calls too weak, and clients such as `scramp` refuse it).
    pub fn scram_keys(&self, mechanism: Mechanism) -> Option<ScramKeys> {
        match self {
            PasswordHash::Scram(keys) if keys.mechanism == mechanism => Some(keys.clone()),
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } if mechanism == Mechanism::Sha512
                && hash.len() == mechanism.key_len()
                && *iterations >= MIN_ITERATIONS =>
            {
                Some(ScramKeys::from_salted_password(
                    mechanism,
                    hash,
                    salt,
                    *iterations,
                ))
            }
            _ => None,
        }
    }

    /// How much working memory checking this hash takes, in bytes.
    pub fn memory_cost(&self) -> usize {
        match self {
            PasswordHash::Argon2id(phc) => PhcString::new(phc)
                .ok()
                .and_then(|p| Params::try_from(&p).ok())
                .map_or(0, |p| p.block_count() * Block::SIZE),
            _ => 0,
        }
    }

    /// A new argon2id hash of `password` with a random salt, as a PHC string.
    pub fn create_argon2id(password: &[u8]) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password, &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    }
}

/// Checks `password` against an argon2id PHC string, with `memory` as the working memory.
/// `None` when the string cannot be used (it was checked when the file was read).
fn verify_argon2id(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> Option<bool> {
    let parsed = PhcString::new(phc).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let expected = parsed.hash?;
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(out.len()),
    )
    .ok()?;
    Argon2::new(Algorithm::Argon2id, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .ok()?;
    Some(constant_time_eq(&out, expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Mosquitto 2.0.11's `mosquitto_passwd` (see tests/fixtures/README.md).
    const MOSQUITTO_FILE: &str = include_str!("../../tests/fixtures/mosquitto_passwd.txt");

    fn fixture(user: &str) -> PasswordHash {
        let line = MOSQUITTO_FILE
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap();
        PasswordHash::parse(&line[user.len() + 1..]).unwrap()
    }

    #[test]
    fn sha512_format_verifies() {
        // $6$: sha512(password ‖ salt), computed independently for this test.
        let salt = b"0123456789ab";
        let mut h = Sha512::new();
        h.update(b"pw");
        h.update(salt);
        let line = format!(
            "$6${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(h.finalize())
        );
        let hash = PasswordHash::parse(&line).unwrap();
        assert!(hash.verify(b"pw"));
        assert!(!hash.verify(b"pW"));
    }

    #[test]
    fn mosquitto_pbkdf2_lines_verify() {
        let alice = fixture("alice");
        assert!(matches!(
            alice,
            PasswordHash::Pbkdf2Sha512 {
                iterations: 101,
                ..
            }
        ));
        assert!(alice.verify(b"secret1"));
        assert!(!alice.verify(b"secret2"));
        assert!(fixture("bob").verify(b"p@ss w0rd"));
    }

    #[test]
    fn mosquitto_pbkdf2_lines_of_enough_iterations_give_scram_sha_512_keys() {
        // Written as `mosquitto_passwd -I 4096` writes it: $7$, count, salt, PBKDF2 output.
        let salt = b"mosquitto-salt-12";
        let mut hash = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"secret1", salt, 4096, &mut hash);
        let line = format!(
            "$7$4096${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(hash)
        );
        let parsed = PasswordHash::parse(&line).unwrap();
        assert_eq!(
            parsed.scram_keys(Mechanism::Sha512),
            Some(ScramKeys::derive(Mechanism::Sha512, b"secret1", salt, 4096))
        );
        assert_eq!(parsed.scram_keys(Mechanism::Sha256), None);
        // mosquitto_passwd's default of 101 iterations is too weak to offer.
        assert_eq!(fixture("alice").scram_keys(Mechanism::Sha512), None);
        assert_eq!(fixture("carol").scram_keys(Mechanism::Sha512), None);
    }

    #[test]
    fn scram_lines_verify_plain_passwords_and_give_their_keys() {
        let keys = ScramKeys::derive(Mechanism::Sha256, b"pencil", b"salt-bytes", 4096);
        let hash = PasswordHash::parse(&keys.to_string()).unwrap();
        assert!(hash.verify(b"pencil"));
        assert!(!hash.verify(b"Pencil"));
        assert_eq!(hash.scram_keys(Mechanism::Sha256), Some(keys));
        assert_eq!(hash.scram_keys(Mechanism::Sha512), None);
    }

    #[test]
    fn mosquitto_sha512_line_verifies() {
        let carol = fixture("carol");
        assert!(matches!(carol, PasswordHash::Sha512 { .. }));
        assert!(carol.verify(b"legacy"));
        assert!(!carol.verify(b"Legacy"));
    }

    #[test]
    fn argon2id_round_trip() {
        let phc = PasswordHash::create_argon2id(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        let hash = PasswordHash::parse(&phc).unwrap();
        assert!(hash.verify(b"correct horse"));
        assert!(!hash.verify(b"battery staple"));
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason() {
        for (line, needle) in [
            ("plaintext", "unknown hash format"),
            ("$7$abc$c2FsdA==$aGFzaA==", "not a number"),
            ("$7$0$c2FsdA==$aGFzaA==", "out of range"),
            ("$7$99999999999$c2FsdA==$aGFzaA==", "not a number"),
            ("$6$!!!$aGFzaA==", "64 bytes"),
            ("$argon2id$garbage", "invalid argon2id"),
        ] {
            let err = PasswordHash::parse(line).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
