//! The proof-of-possession key a token names in its `cnf` claim (RFC 7800), and the check of
//! a MAC or signature made with it: HS256 with a symmetric key the authorization server
//! shares with the broker by key id, or Ed25519 with the client's public key in the token.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use sha2::Sha256;

use crate::secret::{constant_time_eq, Secret};

/// A client's proof-of-possession key.
#[derive(Clone)]
pub enum PopKey {
    /// A symmetric key (HS256), found by the token's `cnf.kid` among the configured keys.
    Symmetric {
        /// The key id.
        kid: String,
        /// The key.
        key: Secret,
    },
    /// An Ed25519 public key, from the token's `cnf.jwk` (`kty` OKP, `crv` Ed25519).
    Ed25519 {
        /// The key's `x`, base64url.
        x: String,
    },
}

impl std::fmt::Debug for PopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PopKey::Symmetric { kid, .. } => write!(f, "Symmetric({kid})"),
            PopKey::Ed25519 { x } => write!(f, "Ed25519({x})"),
        }
    }
}

impl PopKey {
    /// The key `claims.cnf` names: a `jwk` (Ed25519) or a `kid` among `symmetric` keys. A
    /// symmetric key in the clear inside the token (`jwk` of `kty` oct) is refused: RFC 9431
    /// requires it encrypted (JWE), which is not supported.
    pub fn from_claims(
        claims: &Value,
        symmetric: &BTreeMap<String, Secret>,
    ) -> Result<PopKey, String> {
        let cnf = claims.get("cnf").ok_or("the token has no cnf claim")?;
        if let Some(jwk) = cnf.get("jwk") {
            let field = |name: &str| jwk.get(name).and_then(Value::as_str);
            return match (field("kty"), field("crv"), field("x")) {
                (Some("OKP"), Some("Ed25519"), Some(x)) => {
                    let raw = URL_SAFE_NO_PAD
                        .decode(x)
                        .map_err(|_| "cnf jwk x is not base64url")?;
                    if raw.len() != 32 {
                        return Err("cnf jwk x is not an Ed25519 public key".into());
                    }
                    Ok(PopKey::Ed25519 { x: x.to_owned() })
                }
                (Some("oct"), _, _) => Err(
                    "cnf jwk is a symmetric key in the clear (JWE-encrypted tokens are not supported: name it by kid)"
                        .into(),
                ),
                _ => Err("cnf jwk is not an Ed25519 key (kty OKP, crv Ed25519)".into()),
            };
        }
        if let Some(kid) = cnf.get("kid").and_then(Value::as_str) {
            return match symmetric.get(kid) {
                Some(key) => Ok(PopKey::Symmetric {
                    kid: kid.to_owned(),
                    key: key.clone(),
                }),
                None => Err(format!("cnf kid {kid} is not a configured symmetric key")),
            };
        }
        Err("cnf has neither a jwk nor a kid".into())
    }

    /// Whether `proof` is this key's MAC (HS256, 32 bytes) or signature (Ed25519, 64
    /// bytes) over `message`. Compares MACs in constant time.
    pub fn verifies(&self, message: &[u8], proof: &[u8]) -> bool {
        match self {
            PopKey::Symmetric { key, .. } => {
                let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()) else {
                    return false;
                };
                mac.update(message);
                constant_time_eq(&mac.finalize().into_bytes(), proof)
            }
            PopKey::Ed25519 { x } => {
                if proof.len() != 64 {
                    return false;
                }
                let Ok(key) = DecodingKey::from_ed_components(x) else {
                    return false;
                };
                jsonwebtoken::crypto::verify(
                    &URL_SAFE_NO_PAD.encode(proof),
                    message,
                    &key,
                    Algorithm::EdDSA,
                )
                .unwrap_or(false)
            }
        }
    }
}
