//! Settings of a JWT authenticator (the `jwt` table of an `[[authenticator]]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::token::TokenClaimsConfig;

/// JWT authenticator settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JwtConfig {
    /// Where the token travels and how its claims map to an identity (keys shared with the
    /// other token authenticators, written in this table; an unknown key is refused there).
    #[serde(flatten)]
    pub claims: TokenClaimsConfig,
    /// Algorithms accepted (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// HMAC secret, as text.
    #[serde(default)]
    pub secret: Option<String>,
    /// HMAC secret, base64 (as Auth0 shows it).
    #[serde(default)]
    pub secret_base64: Option<String>,
    /// A PEM public key (RSA, EC or Ed25519).
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// Trust the broker's own `[[token_issuer]]` of this name: its public key, `iss`, `aud`
    /// and algorithm, with no HTTP; none of `secret`, `secret_base64`, `public_key`,
    /// `jwks_url`, `issuer`, `audience` may be given beside it. The token's `acl` claim
    /// becomes permissions granted with the allow (before the listener's authorizers), and
    /// its `client_id`, `client_identity`, `roles` and `groups` claims are read unless other
    /// claims are named.
    #[serde(default)]
    pub token_issuer: Option<String>,
    /// A JWKS URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The issuer: checked in `iss` (and then required); when no key is given, its OpenID
    /// discovery document (`<issuer>/.well-known/openid-configuration`) names the JWKS URL.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted audiences (`aud` must hold one). Required with an `issuer` (unless
    /// `allow_any_audience`): an issuer signs tokens for every one of its clients, ID tokens
    /// included, and only the audience tells the broker's apart. Not checked when empty.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Accept tokens of the `issuer` whatever their audience (the check `audience` would do is
    /// left out on purpose). Off by default; a warning is logged when the authenticator is
    /// built with it.
    #[serde(default)]
    pub allow_any_audience: bool,
    /// Seconds of clock skew allowed on `exp` and `nbf` (at most [`MAX_LEEWAY`](super::MAX_LEEWAY),
    /// a day).
    #[serde(default = "default_leeway")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub leeway: Duration,
    /// Required `typ` header (e.g. `at+jwt` for RFC 9068 access tokens).
    #[serde(default)]
    pub required_typ: Option<String>,
    /// Seconds between JWKS refreshes.
    #[serde(default = "default_jwks_refresh")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub jwks_refresh: Duration,
    /// Least seconds between two JWKS fetches caused by unknown key ids.
    #[serde(default = "default_jwks_min_refetch")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub jwks_min_refetch: Duration,
    /// The most bytes read from the JWKS or the discovery document (1 MiB by default); a
    /// larger answer is a failed fetch.
    #[serde(default = "crate::oauth::default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_min_refetch() -> Duration {
    Duration::from_secs(10)
}

impl Default for JwtConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}
