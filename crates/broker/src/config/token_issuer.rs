//! A `[[token_issuer]]`: tokens handed over MQTT to clients that are already authenticated
//! (see docs/authentication.md, "Tokens over MQTT"). Listeners name the one they offer.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tollgate_auth::token::PermissionsForm;

/// The longest `lifetime` a broker-signed token may have (a day).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// The most `max_permission_rules` may be.
pub const MAX_TOKEN_RULES: usize = 4096;

/// Where an issuer's tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuedTokenSource {
    /// The broker signs a short-lived JWT itself (`signing_key`).
    #[default]
    Broker,
    /// The identity provider's own token, from the client's sign-in through the
    /// password-grant authenticator (access token, and the refresh token with
    /// `include_refresh_token`).
    Provider,
}

/// One token issuer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenIssuerConfig {
    /// The name listeners (`token_issuer = "..."`) and JWT authenticators
    /// (`jwt.token_issuer = "..."`) use.
    pub name: String,
    /// `broker` (the default) or `provider`.
    pub source: IssuedTokenSource,
    /// The PKCS#8 PEM private key the broker signs with (`source = "broker"`; required).
    pub signing_key: Option<PathBuf>,
    /// `ES256` (the default, a P-256 key) or `EdDSA` (an Ed25519 key).
    pub algorithm: String,
    /// The key id in the token's header and the JWKS (the issuer's name when not set).
    pub kid: Option<String>,
    /// The `iss` of its tokens (`tollgate`).
    pub issuer: String,
    /// The `aud` of its tokens (`tollgate`).
    pub audience: String,
    /// Seconds a broker-signed token lives (900); never longer than the credentials it was
    /// issued for. At most a day.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub lifetime: Duration,
    /// How the token carries the principal's permissions: `acl` (the default), `aif` or
    /// `none`.
    pub permissions: PermissionsForm,
    /// The most permission rules a token carries (256, at most 4096); a principal with more
    /// is refused a token (`permissions = "none"` issues one without them).
    pub max_permission_rules: usize,
    /// The topic MQTT 5 clients publish a request to, with a Response Topic and Correlation
    /// Data (`$tollgate/token/request`).
    pub request_topic: String,
    /// The filter a client (3.1.1 or 5.0) subscribes to for a token (`$tollgate/token`;
    /// `access_token/#` gives the seed's exact form). The subscription is answered and not
    /// kept: the token goes to that one subscriber, on the filter's topic (a trailing `/#`
    /// becomes `/token`).
    pub subscribe_topic: String,
    /// Requests one principal may make per minute (6; a burst of as many); more are refused
    /// until the minute refills. 0 refuses every request.
    pub max_requests_per_minute: u32,
    /// Most principals whose request rate is tracked at once (100 000); when full, and no
    /// entry has refilled, a new principal's request is refused.
    pub max_tracked_principals: usize,
    /// With `source = "provider"`: hand the provider's refresh token too (off).
    pub include_refresh_token: bool,
    /// With `source = "provider"`: a request within this many seconds of the provider
    /// token's expiry renews it first with its refresh token (60), and the connection's
    /// principal with it.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub refresh_before: Duration,
}

impl Default for TokenIssuerConfig {
    fn default() -> Self {
        TokenIssuerConfig {
            name: String::new(),
            source: IssuedTokenSource::Broker,
            signing_key: None,
            algorithm: "ES256".to_owned(),
            kid: None,
            issuer: "tollgate".to_owned(),
            audience: "tollgate".to_owned(),
            lifetime: Duration::from_secs(900),
            permissions: PermissionsForm::Acl,
            max_permission_rules: 256,
            request_topic: "$tollgate/token/request".to_owned(),
            subscribe_topic: "$tollgate/token".to_owned(),
            max_requests_per_minute: 6,
            max_tracked_principals: 100_000,
            include_refresh_token: false,
            refresh_before: Duration::from_secs(60),
        }
    }
}

impl TokenIssuerConfig {
    /// The topic a token subscribed for is published on: the filter, with a trailing `/#`
    /// made `/token`.
    pub fn token_topic(&self) -> String {
        match self.subscribe_topic.strip_suffix("/#") {
            Some(prefix) => format!("{prefix}/token"),
            None => self.subscribe_topic.clone(),
        }
    }
}
