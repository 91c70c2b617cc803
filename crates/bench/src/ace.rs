//! The client's side of an RFC 9431 `ace` login for the connect-rate scenarios: CONNECT with
//! the token, then the answer to the broker's challenge (AUTH 0x18, 8-byte nonce) with the
//! client's nonce and an Ed25519 signature over both nonces.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};

/// A token and the Ed25519 key it is bound to.
pub struct AceLogin {
    token: String,
    key: EncodingKey,
    nonces: AtomicU64,
}

impl std::fmt::Debug for AceLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AceLogin")
    }
}

impl AceLogin {
    /// The token (a JWT whose `cnf.jwk` is the key's public half) and the key (PKCS#8 PEM).
    pub fn new(token: &str, key_pem: &[u8]) -> Result<AceLogin, String> {
        let key = EncodingKey::from_ed_pem(key_pem).map_err(|e| format!("--ace-key: {e}"))?;
        Ok(AceLogin {
            token: token.to_owned(),
            key,
            nonces: AtomicU64::new(0),
        })
    }

    /// CONNECT's authentication data: `Token Length | Token` (the broker then challenges).
    pub fn connect_data(&self) -> Vec<u8> {
        let mut data = (self.token.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(self.token.as_bytes());
        data
    }

    /// The answer to the broker's nonce: the client's nonce and the signature over both.
    pub fn answer(&self, broker_nonce: &[u8]) -> Result<Vec<u8>, String> {
        let client_nonce = self.nonces.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mut signed = broker_nonce.to_vec();
        signed.extend_from_slice(&client_nonce);
        let signature = jsonwebtoken::crypto::sign(&signed, &self.key, Algorithm::EdDSA)
            .map_err(|e| format!("signing: {e}"))?;
        let mut data = client_nonce.to_vec();
        data.extend(
            URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|e| format!("signature: {e}"))?,
        );
        Ok(data)
    }
}
