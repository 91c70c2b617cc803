//! Opaque access tokens, checked at the provider's introspection endpoint (RFC 7662).
//!
//! The broker posts the token (as a confidential client, Basic or form credentials) and reads
//! the answer: `active: false` refuses; an active token's fields (`sub`, `username`,
//! `client_id`, `scope`, `exp`…) are its claims, mapped to an identity the same way as a JWT's.
//! An active answer is cached, keyed by a SHA-256 of the token, until the token's `exp` or the
//! cache TTL, whichever comes first; a refusal is never cached. An endpoint that cannot be
//! reached, answers with an error status or with something that is not an introspection
//! response is a backend failure (the chain fails closed unless `on_error = "next"`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::client::{ClientAuthMethod, ClientCredentials, HttpCaller};
use crate::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, DenyReason,
};
use crate::jwt::unix_now;
use crate::secret::Secret;
use crate::token::{
    numeric_date, ClaimMapping, TokenClaimsConfig, TokenLocation, TokenSource, MAX_EXPIRY,
};
use crate::SetupError;

/// Most introspection answers kept; beyond it, expired ones are dropped, then all.
const MAX_CACHED: usize = 100_000;

/// Settings of an introspection authenticator (the `introspection` table of an
/// `[[authenticator]]`).
#[derive(Clone, Deserialize)]
pub struct IntrospectionConfig {
    /// The introspection endpoint URL.
    pub endpoint: String,
    /// The broker's client id at the provider.
    pub client_id: String,
    /// The broker's client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// `basic` (the default) or `post`.
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// The `token_type_hint` sent (`access_token`); empty to send none.
    #[serde(default = "default_hint")]
    pub token_type_hint: String,
    /// Where the token travels and how the answer's fields map to an identity (keys shared
    /// with the other token authenticators, written in this table; an unknown key is refused
    /// there). `scope` works as a roles claim: a space-separated string. Requiring an `iss`
    /// needs an `aud` too (unless `allow_any_audience`): the issuer's tokens for every one of
    /// its clients would be active.
    #[serde(flatten)]
    pub claims: TokenClaimsConfig,
    /// With `iss` in `required_claims`: accept the issuer's tokens whatever their audience
    /// (no `aud` in `required_claims`, on purpose). Off by default; a warning is logged when
    /// the authenticator is built with it.
    #[serde(default)]
    pub allow_any_audience: bool,
    /// Most seconds an active answer is reused (never past the token's `exp`); 0 asks every
    /// time.
    #[serde(default = "default_cache_ttl")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub cache_ttl: Duration,
    /// Seconds the endpoint has to answer.
    #[serde(default = "default_timeout")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub timeout: Duration,
    /// Seconds between checks of a connected client's token (0, the default: only at CONNECT
    /// and re-authentication). The endpoint is asked again once the cached answer is older
    /// than `cache_ttl`; an inactive answer disconnects the client (5.0: 0x87).
    #[serde(default)]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub recheck_interval: Duration,
    /// The most bytes read from the endpoint's answer (1 MiB by default); a larger answer is a
    /// backend failure.
    #[serde(default = "super::client::default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// The most calls to the endpoint at once (64 by default); a further authentication waits
    /// for one to end, within the broker's `auth_timeout`.
    #[serde(default = "super::client::default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

impl fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("claims", &self.claims)
            .field("allow_any_audience", &self.allow_any_audience)
            .field("cache_ttl", &self.cache_ttl)
            .field("recheck_interval", &self.recheck_interval)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish_non_exhaustive()
    }
}

fn default_hint() -> String {
    "access_token".into()
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// An active answer, and until when it may be reused.
type CachedAnswer = (Arc<Value>, Instant);

/// The introspection authenticator.
pub struct IntrospectionAuthenticator {
    name: String,
    endpoint: String,
    hint: String,
    credentials: ClientCredentials,
    source: TokenSource,
    mapping: ClaimMapping,
    cache_ttl: Duration,
    recheck: Option<Duration>,
    http: HttpCaller,
    cache: Mutex<HashMap<[u8; 32], CachedAnswer>>,
}

impl IntrospectionAuthenticator {
    /// Builds the authenticator.
    pub fn new(
        name: impl Into<String>,
        config: IntrospectionConfig,
    ) -> Result<IntrospectionAuthenticator, SetupError> {
        if !(config.endpoint.starts_with("https://") || config.endpoint.starts_with("http://")) {
            return Err(SetupError::NotHttpUrl {
                key: "endpoint",
                url: config.endpoint.clone(),
            });
        }
        let source = config.claims.token_source();
        source.validate()?;
        let name = name.into();
        check_audience(&name, &config)?;
        Ok(IntrospectionAuthenticator {
            name,
            endpoint: config.endpoint.clone(),
            hint: config.token_type_hint.clone(),
            credentials: ClientCredentials {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                method: config.client_auth,
            },
            mapping: config.claims.claim_mapping(),
            source,
            cache_ttl: config.cache_ttl,
            recheck: (!config.recheck_interval.is_zero()).then_some(config.recheck_interval),
            http: HttpCaller::new(
                config.timeout.max(Duration::from_secs(1)),
                config.max_concurrent_requests,
                config.max_response_bytes,
            )?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The token's fields, from the cache or the endpoint; `Ok(None)` for an inactive token.
    async fn introspect(&self, token: &str) -> Result<Option<Arc<Value>>, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((claims, until)) = self.cache.lock().get(&key) {
            if *until > now {
                return Ok(Some(Arc::clone(claims)));
            }
        }
        let mut params = vec![("token", token)];
        if !self.hint.is_empty() {
            params.push(("token_type_hint", &self.hint));
        }
        let fail = |e: String| AuthError::new(format!("introspection at {}: {e}", self.endpoint));
        let request = self
            .credentials
            .post_form(self.http.client(), &self.endpoint, &params);
        let (status, body) = self
            .http
            .call(request, &self.endpoint)
            .await
            .map_err(fail)?;
        if status == reqwest::StatusCode::BAD_REQUEST {
            // Some providers answer a token of a kind they do not introspect (a JWT) with
            // `unsupported_token_type` rather than `active: false`: the token is no good here.
            let body: Option<Value> = serde_json::from_slice(&body).ok();
            let code = body
                .as_ref()
                .and_then(|b| b.get("error"))
                .and_then(Value::as_str);
            if code == Some("unsupported_token_type") {
                return Ok(None);
            }
            return Err(fail(format!(
                "HTTP status {status} ({})",
                code.unwrap_or("no error code")
            )));
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP status {status}")));
        }
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| fail(format!("answer is not JSON: {e}")))?;
        let Some(active) = answer.get("active").and_then(Value::as_bool) else {
            return Err(fail("answer has no boolean `active`".into()));
        };
        if !active {
            return Ok(None);
        }
        let mut claims = answer;
        if let Some(object) = claims.as_object_mut() {
            object.remove("active");
        }
        // A malformed `exp` or `nbf` is the endpoint misbehaving: never cached, never believed.
        let (exp, _) = answer_times(&claims).map_err(fail)?;
        let claims = Arc::new(claims);
        let mut ttl = self.cache_ttl;
        if let Some(exp) = exp {
            ttl = ttl.min(Duration::from_secs(exp.saturating_sub(unix_now())));
        }
        // `cache_ttl` is any number an operator wrote: past 100 years it is 100 years, and the
        // sum is checked all the same (an answer that cannot be dated is not kept).
        let ttl = ttl.min(MAX_EXPIRY);
        if let (false, Some(until)) = (ttl.is_zero(), now.checked_add(ttl)) {
            let mut cache = self.cache.lock();
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (_, until)| *until > now);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(key, (Arc::clone(&claims), until));
        }
        Ok(Some(claims))
    }

    async fn judge(&self, request: &ConnectRequest, token: &str) -> Result<AuthOutcome, AuthError> {
        let Some(claims) = self.introspect(token).await? else {
            return Ok(AuthOutcome::deny(
                DenyReason::BadCredentials,
                "token is not active",
            ));
        };
        let (exp, nbf) = answer_times(&claims)
            .map_err(|e| AuthError::new(format!("introspection at {}: {e}", self.endpoint)))?;
        let now = unix_now();
        if exp.is_some_and(|exp| exp <= now) {
            return Ok(AuthOutcome::deny(
                DenyReason::BadCredentials,
                "token expired",
            ));
        }
        if nbf.is_some_and(|nbf| nbf > now) {
            return Ok(AuthOutcome::deny(
                DenyReason::BadCredentials,
                "token not yet valid (nbf)",
            ));
        }
        match self.mapping.identity((*claims).clone(), request) {
            Ok(identity) => Ok(AuthOutcome::Allow(identity)),
            Err(why) => Ok(AuthOutcome::deny(DenyReason::BadCredentials, why)),
        }
    }

    /// Forgets every cached answer (after a revocation).
    pub fn flush(&self) {
        self.cache.lock().clear();
    }
}

/// An answer's `exp` and `nbf` as seconds since the epoch; `Err` when either is present but
/// not a non-negative number (a string, a negative number, `1e300`…): the endpoint misbehaves,
/// a backend failure. A date too far ahead is kept as it is here and capped (100 years from
/// now) where it becomes the identity's expiry.
fn answer_times(claims: &Value) -> Result<(Option<u64>, Option<u64>), String> {
    let field = |name: &str| {
        numeric_date(claims.get(name))
            .map_err(|why| format!("answer has a malformed {name} ({why})"))
    };
    Ok((field("exp")?, field("nbf")?))
}

/// The rule of a `jwt` table, where the issuer is checked through `required_claims`: an
/// `iss` needs an `aud`, unless `allow_any_audience` says the operator means it.
fn check_audience(name: &str, config: &IntrospectionConfig) -> Result<(), SetupError> {
    let checks_issuer = config.claims.required_claims.contains_key("iss");
    let checks_audience = config.claims.required_claims.contains_key("aud");
    if config.allow_any_audience && checks_audience {
        return Err(SetupError::AudienceContradiction {
            audience_key: "required_claims.aud",
        });
    }
    if !checks_issuer || checks_audience {
        return Ok(());
    }
    if !config.allow_any_audience {
        return Err(SetupError::IssuerWithoutAudience {
            audience_key: "required_claims.aud",
            requested: None,
        });
    }
    tracing::warn!(
        authenticator = name,
        "allow_any_audience = true: active tokens of the required issuer are accepted \
         whatever their audience"
    );
    Ok(())
}

impl Authenticator for IntrospectionAuthenticator {
    fn name(&self) -> &str {
        &self.name
    }

    fn recheck_interval(&self) -> Option<Duration> {
        self.recheck
    }

    fn username_is_secret(&self) -> bool {
        self.source.location == TokenLocation::Username
    }

    fn username_names_user(&self, request: &ConnectRequest) -> bool {
        self.source
            .username_names_user(request, self.mapping.username_must_match_claim)
    }

    fn depends_on_client_id(&self) -> bool {
        self.mapping.client_id_claim.is_some()
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            match self.source.token(request) {
                None | Some("") => Ok(AuthOutcome::Next),
                Some(token) => self.judge(request, token).await,
            }
        })
    }
}
