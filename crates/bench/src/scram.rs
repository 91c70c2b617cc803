//! The client's side of a SCRAM-SHA-256/512 login (RFC 5802) over MQTT 5 enhanced
//! authentication, for the connect-rate scenarios: client-first in CONNECT, the answer to
//! the broker's AUTH 0x18, and the check of the broker's signature in CONNACK.
//!
//! The salted password (PBKDF2, thousands of HMACs) is kept per salt and iteration count, as a
//! device reconnecting with the same credentials may keep it: the benchmark measures the
//! broker's side of the exchange, not the load generator's PBKDF2.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256, Sha512};

/// A SCRAM login: the mechanism, the credentials and the kept salted password.
#[derive(Debug)]
pub struct ScramLogin {
    sha512: bool,
    username: String,
    password: String,
    salted: Mutex<Option<SaltedPassword>>,
    nonces: AtomicU64,
}

/// PBKDF2's output for one salt and iteration count.
#[derive(Debug)]
struct SaltedPassword {
    salt: Vec<u8>,
    iterations: u32,
    key: Vec<u8>,
}

/// One exchange under way: what the answer and the check of the broker's signature need.
#[derive(Debug)]
pub struct ScramExchange {
    client_first_bare: String,
    expected_signature: Vec<u8>,
}

impl ScramLogin {
    /// A login with `mechanism` (`SCRAM-SHA-256` or `SCRAM-SHA-512`).
    pub fn new(mechanism: &str, username: &str, password: &str) -> Result<ScramLogin, String> {
        let sha512 = match mechanism {
            "SCRAM-SHA-256" => false,
            "SCRAM-SHA-512" => true,
            other => return Err(format!("unknown SCRAM mechanism {other}")),
        };
        Ok(ScramLogin {
            sha512,
            username: username.to_owned(),
            password: password.to_owned(),
            salted: Mutex::new(None),
            nonces: AtomicU64::new(0),
        })
    }

    /// The MQTT 5 authentication method.
    pub fn method(&self) -> &'static str {
        if self.sha512 {
            "SCRAM-SHA-512"
        } else {
            "SCRAM-SHA-256"
        }
    }

    /// The client-first message of a new exchange.
    pub fn first(&self) -> (ScramExchange, Vec<u8>) {
        let n = self.nonces.fetch_add(1, Ordering::Relaxed);
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let bare = format!(
            "n={},r={clock:x}{n:x}{:x}",
            self.username,
            std::process::id()
        );
        let message = format!("n,,{bare}").into_bytes();
        (
            ScramExchange {
                client_first_bare: bare,
                expected_signature: Vec::new(),
            },
            message,
        )
    }

    /// The client-final message answering `server_first`.
    pub fn answer(
        &self,
        exchange: &mut ScramExchange,
        server_first: &[u8],
    ) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let field = |name: &str| {
            text.split(',')
                .find_map(|f| f.strip_prefix(name))
                .ok_or_else(|| format!("no {name} in server-first"))
        };
        let nonce = field("r=")?;
        let salt = STANDARD.decode(field("s=")?).map_err(|_| "bad salt")?;
        let iterations: u32 = field("i=")?.parse().map_err(|_| "bad iteration count")?;
        let salted = self.salted_password(&salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let signed = format!("{},{text},{without_proof}", exchange.client_first_bare);
        let client_key = self.hmac(&salted, b"Client Key");
        let signature = self.hmac(&self.hash(&client_key), signed.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key");
        exchange.expected_signature = self.hmac(&server_key, signed.as_bytes());
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Whether `server_final` carries the broker's expected signature.
    pub fn broker_proved(&self, exchange: &ScramExchange, server_final: &[u8]) -> bool {
        server_final == format!("v={}", STANDARD.encode(&exchange.expected_signature)).as_bytes()
    }

    fn salted_password(&self, salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut kept = self.salted.lock();
        if let Some(kept) = kept.as_ref() {
            if kept.salt == salt && kept.iterations == iterations {
                return kept.key.clone();
            }
        }
        let mut out = vec![0u8; if self.sha512 { 64 } else { 32 }];
        if self.sha512 {
            pbkdf2::pbkdf2_hmac::<Sha512>(self.password.as_bytes(), salt, iterations, &mut out);
        } else {
            pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), salt, iterations, &mut out);
        }
        *kept = Some(SaltedPassword {
            salt: salt.to_vec(),
            iterations,
            key: out.clone(),
        });
        out
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        } else {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            Sha512::digest(data).to_vec()
        } else {
            Sha256::digest(data).to_vec()
        }
    }
}
