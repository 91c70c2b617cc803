//! The MQTT-TLS profile of ACE (RFC 9431): the MQTT 5 authentication method `ace`, in which a
//! client presents an access token and proves it holds the token's proof-of-possession key.
//!
//! CONNECT carries `Authentication Method = "ace"` and `Authentication Data` = a two-byte
//! token length, the token (a JWT signed by the authorization server), and then either
//! - the MAC or signature, made with the PoP key, over the TLS exporter value of the
//!   connection (label `EXPORTER-ACE-MQTT-Sign-Challenge`, empty context, 32 bytes: RFC 9431
//!   section 2.2.4.2.1), which binds the proof to this TLS session; or
//! - nothing: the broker then challenges (section 2.2.4.2.2) with AUTH 0x18 carrying an
//!   8-byte nonce, and the client answers with AUTH 0x18 carrying its own 8-byte nonce and the
//!   MAC or signature over the broker's nonce followed by its own.
//!
//! The PoP key is the token's `cnf` ([`PopKey`]): an Ed25519 `jwk`, or a `kid` naming a
//! symmetric key the authorization server shares with the broker (HS256). The token's claims
//! become the identity as for any JWT (`verify`, a JWT authenticator's settings): its `scope`
//! (AIF-MQTT) is read by a `claims` authorizer, its `exp` ends the connection (0x87).
//! Refusals are 0x87 (Not authorized).
//!
//! MQTT 3.1.1 clients (section 6.1) send the user name `ace` followed by the token (base64url
//! without padding) and, as the password, the MAC or signature over the TLS exporter value.

mod pop;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use pop::PopKey;

use crate::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, Challenge, ConnectRequest, DenyReason,
    ExchangeState, Identity,
};
use crate::jwt::{JwtAuthenticator, JwtConfig};
use crate::secret::Secret;
use crate::token::CertificateBinding;
use crate::SetupError;

/// The authentication method's name.
pub const METHOD: &str = "ace";

/// The TLS exporter label of RFC 9431 section 2.2.4.2.1.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-ACE-MQTT-Sign-Challenge";

/// Length of the TLS exporter value, and of each nonce of the challenge.
pub const EXPORTER_LEN: usize = 32;

/// Length of the broker's and the client's nonces in a challenge.
pub const NONCE_LEN: usize = 8;

/// Settings of an `ace` authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AceConfig {
    /// How the access token is verified: a JWT authenticator's settings (issuer, audience,
    /// keys or JWKS, claim mapping). `certificate_binding` is not used: the PoP key is.
    pub verify: JwtConfig,
    /// Symmetric PoP keys the authorization server shares with the broker, by key id
    /// (`cnf.kid`), base64url.
    #[serde(default)]
    pub symmetric_keys: BTreeMap<String, String>,
    /// Where a refused client gets a token: sent in the refusal's CONNACK as the user
    /// property `ace_as_hint` (RFC 9431 section 2.4.1), a JSON object of these.
    pub ace_as_hint: Option<AsHint>,
}

/// The authorization server hint of a refusal (RFC 9200 section 5.3's parameters).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AsHint {
    /// The authorization server's URI (`AS`).
    #[serde(rename = "AS", alias = "as")]
    pub authorization_server: String,
    /// The audience to ask a token for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The scope to ask for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The `ace` authenticator.
pub struct AceAuthenticator {
    name: String,
    verifier: JwtAuthenticator,
    symmetric_keys: BTreeMap<String, Secret>,
    /// `ace_as_hint`, as the JSON text sent.
    as_hint: Option<String>,
}

/// A challenge waiting for the client's answer.
struct Challenged {
    nonce: [u8; NONCE_LEN],
    key: PopKey,
    identity: Identity,
}

impl AceAuthenticator {
    /// Builds it (inside a tokio runtime when the verifier fetches keys).
    pub fn new(name: impl Into<String>, config: AceConfig) -> Result<AceAuthenticator, SetupError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let name = name.into();
        let mut symmetric_keys = BTreeMap::new();
        for (kid, key) in &config.symmetric_keys {
            let bytes = URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .ok()
                .filter(|k| k.len() >= 16)
                .ok_or_else(|| SetupError::SymmetricKey(kid.clone()))?;
            symmetric_keys.insert(kid.clone(), Secret::new(bytes));
        }
        let mut verify = config.verify;
        verify.claims.certificate_binding = CertificateBinding::Off;
        let verifier = JwtAuthenticator::new(format!("{name}:verify"), verify)
            .map_err(|e| SetupError::Verify(Box::new(e)))?;
        let as_hint = config
            .ace_as_hint
            .as_ref()
            .map(|hint| serde_json::to_string(hint).expect("a hint is plain strings"));
        Ok(AceAuthenticator {
            name,
            verifier,
            symmetric_keys,
            as_hint,
        })
    }

    /// The identity `token` gives and the PoP key it names, or why it is refused.
    async fn verified(
        &self,
        request: &ConnectRequest,
        token: &str,
    ) -> Result<Result<(Identity, PopKey), String>, AuthError> {
        let identity = match self.verifier.verify(request, token).await? {
            AuthOutcome::Allow(identity) => identity,
            AuthOutcome::Deny { detail, .. } => return Ok(Err(detail)),
            AuthOutcome::Next | AuthOutcome::Continue(_) => {
                return Ok(Err("the token is not a JWT".into()))
            }
        };
        let claims = identity.claims.clone().unwrap_or_default();
        Ok(PopKey::from_claims(&claims, &self.symmetric_keys).map(|key| (identity, key)))
    }

    async fn first_step(&self, request: &ConnectRequest) -> Result<AuthOutcome, AuthError> {
        let refuse = |detail: &str| Ok(AuthOutcome::deny(DenyReason::NotAuthorized, detail));
        let data = request.authentication_bytes();
        let Some((token, proof)) = split_token(data) else {
            return refuse("no token in the authentication data");
        };
        let Ok(token) = std::str::from_utf8(token) else {
            return refuse("the token is not a JWT");
        };
        let (identity, key) = match self.verified(request, token).await? {
            Ok(verified) => verified,
            Err(why) => return Ok(AuthOutcome::deny(DenyReason::NotAuthorized, why)),
        };
        if !proof.is_empty() {
            // Proof over this TLS session's exporter value.
            let Some(exporter) = &request.tls_exporter else {
                return refuse(
                    "a proof over the TLS exporter needs TLS, and a re-authentication the challenge",
                );
            };
            return Ok(proved(&key, exporter.expose(), proof, identity));
        }
        let nonce = crate::random_bytes::<NONCE_LEN>();
        let user = identity.username.clone();
        Ok(AuthOutcome::Continue(Challenge {
            data: nonce.to_vec(),
            state: ExchangeState::new(
                self.name.as_str(),
                user,
                Challenged {
                    nonce,
                    key,
                    identity,
                },
            ),
        }))
    }

    /// The 3.1.1 form: user name `ace` ‖ base64url(token), password the proof over the TLS
    /// exporter value. A user name that is not `ace` and a base64url JWT is not this
    /// authenticator's.
    async fn v311(&self, request: &ConnectRequest) -> Result<AuthOutcome, AuthError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let Some(encoded) = request
            .username
            .as_deref()
            .and_then(|u| u.strip_prefix(METHOD))
        else {
            return Ok(AuthOutcome::Next);
        };
        let refuse = |detail: &str| Ok(AuthOutcome::deny(DenyReason::NotAuthorized, detail));
        let token = URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|t| String::from_utf8(t).ok())
            .filter(|t| t.split('.').count() == 3);
        let Some(token) = token else {
            // A user name that merely starts with `ace` (`acevedo`): not this authenticator's.
            return Ok(AuthOutcome::Next);
        };
        let Some(proof) = request.password.as_ref().filter(|p| !p.is_empty()) else {
            return refuse("no proof of possession in the password");
        };
        let Some(exporter) = &request.tls_exporter else {
            return refuse("a proof over the TLS exporter needs TLS");
        };
        let (identity, key) = match self.verified(request, &token).await? {
            Ok(verified) => verified,
            Err(why) => return Ok(AuthOutcome::deny(DenyReason::NotAuthorized, why)),
        };
        Ok(proved(&key, exporter.expose(), proof.expose(), identity))
    }

    fn answer(&self, challenged: &Challenged, request: &ConnectRequest) -> AuthOutcome {
        let data = request.authentication_bytes();
        if data.len() <= NONCE_LEN {
            return AuthOutcome::deny(DenyReason::NotAuthorized, "the answer has no proof");
        }
        let (client_nonce, proof) = data.split_at(NONCE_LEN);
        let mut signed = [0u8; 2 * NONCE_LEN];
        signed[..NONCE_LEN].copy_from_slice(&challenged.nonce);
        signed[NONCE_LEN..].copy_from_slice(client_nonce);
        proved(&challenged.key, &signed, proof, challenged.identity.clone())
    }
}

/// Allows `identity` when `proof` is `key`'s MAC or signature over `message`.
fn proved(key: &PopKey, message: &[u8], proof: &[u8], identity: Identity) -> AuthOutcome {
    if key.verifies(message, proof) {
        AuthOutcome::Allow(identity)
    } else {
        AuthOutcome::deny(DenyReason::NotAuthorized, "wrong proof of possession")
    }
}

/// `Token Length (2 bytes) | Token | rest`: the token and the rest, or `None` when the length
/// is missing, zero or runs past the data.
fn split_token(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = data.split_first_chunk::<2>()?;
    let length = u16::from_be_bytes(*length) as usize;
    if length == 0 || length > rest.len() {
        return None;
    }
    Some(rest.split_at(length))
}

impl Authenticator for AceAuthenticator {
    fn name(&self) -> &str {
        &self.name
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            if request.authentication_method.is_none() && request.protocol_level < 5 {
                return self.v311(request).await;
            }
            if request.authentication_method.as_deref() != Some(METHOD) {
                return Ok(AuthOutcome::Next);
            }
            match &request.exchange {
                None => self.first_step(request).await,
                Some(state) => Ok(match state.get::<Challenged>() {
                    Some(challenged) => self.answer(challenged, request),
                    None => AuthOutcome::deny(DenyReason::NotAuthorized, "not an ace exchange"),
                }),
            }
        })
    }

    fn username_names_user(&self, _request: &ConnectRequest) -> bool {
        false
    }

    fn cacheable(&self) -> bool {
        // Every connection proves possession again: a cached allow of one proof would admit
        // its replay on another TLS session.
        false
    }

    fn refusal_user_properties(&self) -> Vec<(String, String)> {
        self.as_hint
            .iter()
            .map(|hint| ("ace_as_hint".to_owned(), hint.clone()))
            .collect()
    }

    fn username_is_secret(&self) -> bool {
        // The 3.1.1 form carries the token in the user name.
        true
    }

    fn key_fetches(&self) -> Option<crate::jwt::KeyFetches> {
        self.verifier.key_fetches()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_split_from_the_proof_by_its_length() {
        assert_eq!(
            split_token(b"\x00\x03abcPROOF"),
            Some((&b"abc"[..], &b"PROOF"[..]))
        );
        assert_eq!(split_token(b"\x00\x03abc"), Some((&b"abc"[..], &b""[..])));
        assert_eq!(split_token(b"\x00\x04abc"), None);
        assert_eq!(split_token(b"\x00\x00"), None);
        assert_eq!(split_token(b"\x00"), None);
        assert_eq!(split_token(b""), None);
    }
}
