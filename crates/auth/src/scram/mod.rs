//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 names them): a password check in
//! which the password never crosses the wire and the broker stores only keys derived from it.
//!
//! The broker keeps, per user, the mechanism, a salt, an iteration count, `StoredKey` =
//! H(HMAC(SaltedPassword, "Client Key")) and `ServerKey` = HMAC(SaltedPassword, "Server Key")
//! ([`ScramKeys`], a password file line `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`, the
//! form PostgreSQL stores). The exchange itself is [`ServerExchange`]: the client's first
//! message (its user name and nonce) is answered with the salt, the iteration count and the
//! combined nonce; the client's final message carries its proof, which the stored key
//! checks; the broker's final message proves to the client that it knew the keys too.
//!
//! Channel binding is not offered (`n` and `y` are accepted, `p=` is refused): TLS already
//! authenticates the broker to a client that checks its certificate.

mod messages;
mod server;

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

pub use server::{simulated_keys, ScramFailure, ServerExchange, SERVER_NONCE_LEN};

/// Most PBKDF2 iterations a credential line may ask a client to run (and a plain password
/// login to run on the broker). `tollgate passwd --scram` writes 4 096, RFC 7677's minimum.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Fewest iterations accepted from a credential line (RFC 7677 asks for at least 4 096).
pub const MIN_ITERATIONS: u32 = 4096;

/// Longest salt accepted from a credential line, in bytes.
const MAX_SALT_LEN: usize = 64;

/// A SCRAM mechanism: the hash the exchange uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `SCRAM-SHA-256` (RFC 7677).
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl Mechanism {
    /// Its name, which is also the MQTT 5 authentication method.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism an MQTT 5 authentication method names, if it names one.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// Length of the hash, and of every key, in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Mechanism::Sha256 => 32,
            Mechanism::Sha512 => 64,
        }
    }

    /// HMAC(key, data).
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes a key of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// H(data).
    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with this mechanism's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.key_len()];
        match self {
            Mechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            Mechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// A password as SCRAM hashes it: SASLprep (RFC 4013) applied, as a client library does
/// before deriving its keys. Refused when SASLprep prohibits it (control characters, unpaired
/// bidirectional text).
pub fn normalize_password(password: &str) -> Result<String, String> {
    stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .map_err(|e| format!("the password cannot be used with SCRAM (SASLprep: {e})"))
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the broker stores for one user: enough to check a proof and to prove itself, never
/// enough to log in as the user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// The mechanism the keys are for.
    pub mechanism: Mechanism,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys let anyone impersonate the broker to the user: never printed.
        f.debug_struct("ScramKeys")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramKeys {
    /// The keys of `password` (already SASLprep-normalised) with `salt` and `iterations`.
    pub fn derive(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The keys of a salted password (PBKDF2's output).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        ScramKeys {
            mechanism,
            iterations,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one these keys were derived from (a plain password login of
    /// a SCRAM user). Runs PBKDF2: call from a hashing thread. Compares in constant time.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let prepared = std::str::from_utf8(password)
            .ok()
            .and_then(|p| normalize_password(p).ok());
        let password = prepared.as_ref().map_or(password, |p| p.as_bytes());
        let derived = Self::derive(self.mechanism, password, &self.salt, self.iterations);
        crate::constant_time_eq(&derived.stored_key, &self.stored_key)
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
    pub fn parse(text: &str) -> Result<ScramKeys, String> {
        let (name, rest) = text
            .split_once('$')
            .ok_or("expected `SCRAM-SHA-…$<iterations>:<salt>$<StoredKey>:<ServerKey>`")?;
        let mechanism = Mechanism::from_name(name).ok_or_else(|| {
            format!("unknown mechanism `{name}` (SCRAM-SHA-256 or SCRAM-SHA-512)")
        })?;
        let (parameters, keys) = rest
            .split_once('$')
            .ok_or("expected `$<StoredKey>:<ServerKey>` after the salt")?;
        let (iterations, salt) = parameters
            .split_once(':')
            .ok_or("expected `<iterations>:<salt>`")?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or("expected `<StoredKey>:<ServerKey>`")?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| "iteration count is not a number".to_owned())?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "iteration count {iterations} is out of range ({MIN_ITERATIONS} to {MAX_ITERATIONS})"
            ));
        }
        let b64 = |field: &str, what: &str| {
            STANDARD
                .decode(field)
                .map_err(|_| format!("{what} is not valid base64"))
        };
        let salt = b64(salt, "salt")?;
        if salt.is_empty() || salt.len() > MAX_SALT_LEN {
            return Err(format!(
                "salt length {} is out of range (1 to {MAX_SALT_LEN})",
                salt.len()
            ));
        }
        let stored_key = b64(stored_key, "StoredKey")?;
        let server_key = b64(server_key, "ServerKey")?;
        if stored_key.len() != mechanism.key_len() || server_key.len() != mechanism.key_len() {
            return Err(format!(
                "{mechanism} keys must be {} bytes each",
                mechanism.key_len()
            ));
        }
        Ok(ScramKeys {
            mechanism,
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }
}

impl fmt::Display for ScramKeys {
    /// The password file form, [`ScramKeys::parse`]'s input.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}${}:{}${}:{}",
            self.mechanism,
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_file_form() {
        let keys = ScramKeys::derive(Mechanism::Sha512, b"pencil", b"NaCl-salt", 4096);
        let text = keys.to_string();
        assert!(text.starts_with("SCRAM-SHA-512$4096:"), "{text}");
        assert_eq!(ScramKeys::parse(&text).unwrap(), keys);
        assert!(keys.verify_password(b"pencil"));
        assert!(!keys.verify_password(b"pencil "));
    }

    #[test]
    fn rfc_7677_keys_are_derived() {
        // RFC 7677 section 3: user "user", password "pencil", this salt, 4096 iterations.
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = ScramKeys::derive(Mechanism::Sha256, b"pencil", &salt, 4096);
        assert!(keys.verify_password(b"pencil"));
        assert_eq!(keys.stored_key.len(), 32);
    }

    #[test]
    fn hostile_lines_are_refused_with_what_is_wrong() {
        let good = ScramKeys::derive(Mechanism::Sha256, b"pw", b"salt", 4096).to_string();
        let cases = [
            ("SCRAM-SHA-1$4096:c2FsdA==$AA==:AA==", "unknown mechanism"),
            (&good.replace("$4096:", "$4095:"), "out of range"),
            (&good.replace("$4096:", "$4294967295:"), "out of range"),
            (&good.replace("$4096:", "$x:"), "not a number"),
            ("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA", "32 bytes"),
            (
                "SCRAM-SHA-256$4096:!!$AAAA:AAAA",
                "salt is not valid base64",
            ),
            ("SCRAM-SHA-256$4096:$AAAA:AAAA", "salt length 0"),
            ("SCRAM-SHA-256", "expected"),
        ];
        for (line, expected) in cases {
            let error = ScramKeys::parse(line).unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
        }
    }

    #[test]
    fn passwords_are_prepared_as_clients_prepare_them() {
        // RFC 4013's examples: a soft hyphen is mapped to nothing, a no-break space to a space.
        assert_eq!(normalize_password("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(normalize_password("a\u{00A0}b").unwrap(), "a b");
        assert!(normalize_password("a\u{0007}b").is_err());
        let keys = ScramKeys::derive(Mechanism::Sha256, b"IX", b"salt", 4096);
        assert!(keys.verify_password("I\u{00AD}X".as_bytes()));
    }

    #[test]
    fn debug_shows_no_key() {
        let keys = ScramKeys::derive(Mechanism::Sha256, b"pw", b"salt", 4096);
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains(&STANDARD.encode(&keys.stored_key)),
            "{shown}"
        );
        assert!(shown.contains("Sha256"), "{shown}");
    }
}
