//! Why an authenticator could not be built from its settings.
//!
//! One variant per cause, each knowing the key of the authenticator's table it concerns, so
//! that the broker reports it at that key (file, line and key) and an embedder can match on
//! the cause rather than on a message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why an authenticator's settings were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// A URL setting is not an `http://` or `https://` URL.
    NotHttpUrl {
        /// The key (`endpoint`, `token_endpoint`, `url`).
        key: &'static str,
        /// The value given.
        url: String,
    },
    /// `algorithms` is empty.
    NoAlgorithm,
    /// `algorithms` names one that is not supported (`none` never is).
    UnknownAlgorithm(String),
    /// A JWT authenticator with neither a fixed key nor a JWKS URL nor an issuer.
    NoKey,
    /// Fixed keys (`secret`, `public_key`) and a `jwks_url` side by side.
    FixedKeysAndJwks,
    /// An HMAC algorithm accepted beside public keys (algorithm confusion).
    HmacBesidePublicKeys,
    /// `leeway` is longer than [`MAX_LEEWAY`](crate::jwt::MAX_LEEWAY).
    LeewayTooLong(Duration),
    /// `secret_base64` is not base64.
    SecretNotBase64(String),
    /// `public_key` cannot be read or holds no supported key.
    PublicKey {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `allow_any_audience = true` beside an audience (`audience`, or `required_claims.aud`).
    AudienceContradiction {
        /// The key holding the audience.
        audience_key: &'static str,
    },
    /// An issuer and no audience, without `allow_any_audience`: every token of the issuer,
    /// for any of its clients, would be accepted.
    IssuerWithoutAudience {
        /// The key that takes the audience (`audience`, `required_claims.aud`).
        audience_key: &'static str,
        /// For the password grant: the audience requested from the token endpoint, to suggest.
        requested: Option<String>,
    },
    /// `token_from = "authentication_data"` without an `authentication_method`.
    AuthenticationMethodMissing,
    /// `max_response_bytes` is 0.
    NoResponseBytes,
    /// `max_concurrent_requests` is 0 or more than the runtime allows.
    ConcurrentRequestsOutOfRange {
        /// The value given.
        given: usize,
        /// The most allowed.
        most: usize,
    },
    /// The HTTP client could not be built (the TLS roots, typically).
    HttpClient(String),
    /// A `headers` name is not a header name.
    HeaderName(String),
    /// The value of the `headers` entry with this name is not a header value.
    HeaderValue(String),
    /// The password grant's `verify` table was refused.
    Verify(Box<SetupError>),
    /// A device grant with neither an `issuer` nor both endpoints.
    NoEndpoint,
    /// `token_issuer` beside keys, an issuer or an audience of the table's own.
    TokenIssuerBesideKeys(&'static str),
    /// `token_issuer` given where it cannot be resolved (a JWT authenticator built without
    /// the broker's token issuers).
    TokenIssuerUnresolved(String),
    /// An `ace` authenticator's `symmetric_keys` entry (this key id) is not base64url of at
    /// least 16 bytes.
    SymmetricKey(String),
}

impl SetupError {
    /// The path of the key at fault within the authenticator's table (empty when it is the
    /// table as a whole).
    pub fn key_path(&self) -> Vec<&'static str> {
        match self {
            SetupError::NotHttpUrl { key, .. } => vec![key],
            SetupError::NoAlgorithm
            | SetupError::UnknownAlgorithm(_)
            | SetupError::HmacBesidePublicKeys => vec!["algorithms"],
            SetupError::NoKey | SetupError::HttpClient(_) => Vec::new(),
            SetupError::FixedKeysAndJwks => vec!["jwks_url"],
            SetupError::LeewayTooLong(_) => vec!["leeway"],
            SetupError::SecretNotBase64(_) => vec!["secret_base64"],
            SetupError::PublicKey { .. } => vec!["public_key"],
            SetupError::AudienceContradiction { .. } => vec!["allow_any_audience"],
            SetupError::IssuerWithoutAudience { audience_key, .. } => {
                audience_key.split('.').collect()
            }
            SetupError::AuthenticationMethodMissing => vec!["authentication_method"],
            SetupError::NoResponseBytes => vec!["max_response_bytes"],
            SetupError::ConcurrentRequestsOutOfRange { .. } => vec!["max_concurrent_requests"],
            SetupError::HeaderName(_) | SetupError::HeaderValue(_) => vec!["headers"],
            SetupError::NoEndpoint => vec!["issuer"],
            SetupError::TokenIssuerBesideKeys(_) | SetupError::TokenIssuerUnresolved(_) => {
                vec!["token_issuer"]
            }
            SetupError::SymmetricKey(_) => vec!["symmetric_keys"],
            SetupError::Verify(inner) => {
                let mut path = vec!["verify"];
                path.extend(inner.key_path());
                path
            }
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::NotHttpUrl { key, url } => {
                write!(f, "{key} `{url}` is not an http(s) URL")
            }
            SetupError::NoAlgorithm => f.write_str("algorithms must name at least one algorithm"),
            SetupError::UnknownAlgorithm(name) => write!(
                f,
                "unknown or unsupported algorithm `{name}` (`none` is never accepted)"
            ),
            SetupError::NoKey => f.write_str(
                "a JWT authenticator needs a key: secret, secret_base64, public_key, jwks_url or issuer",
            ),
            SetupError::FixedKeysAndJwks => {
                f.write_str("give either fixed keys (secret, public_key) or jwks_url, not both")
            }
            SetupError::HmacBesidePublicKeys => {
                f.write_str("HS* algorithms are only accepted with a secret, not with public keys")
            }
            SetupError::LeewayTooLong(leeway) => write!(
                f,
                "leeway must be at most {} seconds, not {}",
                crate::jwt::MAX_LEEWAY.as_secs(),
                leeway.as_secs()
            ),
            SetupError::SecretNotBase64(why) => write!(f, "secret_base64: {why}"),
            SetupError::PublicKey { path, reason } => write!(f, "{}: {reason}", path.display()),
            SetupError::AudienceContradiction { audience_key } => write!(
                f,
                "allow_any_audience = true and {audience_key} contradict each other: remove one"
            ),
            SetupError::IssuerWithoutAudience {
                audience_key,
                requested,
            } => {
                write!(
                    f,
                    "this authenticator has an issuer but no audience: tokens issued for any \
                     client of that issuer (ID tokens included) would be accepted; set \
                     {audience_key} = "
                )?;
                match requested {
                    Some(requested) => write!(f, "[\"{requested}\"] (the audience requested)")?,
                    None => f.write_str("...")?,
                }
                f.write_str(" or allow_any_audience = true")
            }
            SetupError::AuthenticationMethodMissing => {
                f.write_str("token_from = \"authentication_data\" needs authentication_method")
            }
            SetupError::NoResponseBytes => f.write_str("max_response_bytes must be at least 1"),
            SetupError::ConcurrentRequestsOutOfRange { given, most } => write!(
                f,
                "max_concurrent_requests must be between 1 and {most}, not {given}"
            ),
            SetupError::HttpClient(why) => write!(f, "HTTP client: {why}"),
            SetupError::HeaderName(name) => write!(f, "headers: `{name}` is not a header name"),
            SetupError::HeaderValue(name) => {
                write!(f, "headers: the value of `{name}` is not a header value")
            }
            SetupError::Verify(inner) => write!(f, "verify: {inner}"),
            SetupError::NoEndpoint => f.write_str(
                "give the provider's issuer (its discovery document names the endpoints), or \
                 both device_authorization_endpoint and token_endpoint",
            ),
            SetupError::TokenIssuerBesideKeys(key) => write!(
                f,
                "token_issuer takes the issuer's key, issuer and audience: remove {key}"
            ),
            SetupError::TokenIssuerUnresolved(name) => {
                write!(f, "token_issuer `{name}`: no such [[token_issuer]]")
            }
            SetupError::SymmetricKey(kid) => {
                write!(f, "symmetric_keys: the key of `{kid}` is not base64url of at least 16 bytes")
            }
        }
    }
}

impl std::error::Error for SetupError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_in_verify_is_placed_under_verify() {
        let e = SetupError::Verify(Box::new(SetupError::IssuerWithoutAudience {
            audience_key: "audience",
            requested: Some("mqtt".into()),
        }));
        assert_eq!(e.key_path(), ["verify", "audience"]);
        assert!(e.to_string().contains("[\"mqtt\"]"), "{e}");
    }

    #[test]
    fn a_nested_audience_key_is_a_path() {
        let e = SetupError::IssuerWithoutAudience {
            audience_key: "required_claims.aud",
            requested: None,
        };
        assert_eq!(e.key_path(), ["required_claims", "aud"]);
    }

    #[test]
    fn a_table_wide_cause_has_no_key() {
        assert!(SetupError::NoKey.key_path().is_empty());
    }
}
