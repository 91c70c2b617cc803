//! Authentication by JWT access tokens (Keycloak, Auth0, Okta, Azure AD, any OpenID
//! provider): the signature against the configured keys, the standard claims, then the
//! identity the claims give.
//!
//! A credential that does not look like a JWT is not this authenticator's (next), so it can
//! stand in a chain before a password file. A JWT that fails any check is refused (bad user
//! name or password), with the cause in the audit line; a key set that cannot be fetched is a
//! backend failure (fail closed unless `on_error = next`).

mod config;
mod keys;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

pub use crate::token::{TokenClaimsConfig, TokenLocation};
pub use config::JwtConfig;
pub use keys::{
    pem_public_key, KeyError, KeyFamily, KeyFetches, KeyStore, RemoteSource, VerificationKey,
};

use crate::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, DenyReason,
};
use crate::permissions::{DefaultBehaviour, GrantedRules};
use crate::policy::{ClaimsAuthorizer, ClaimsSettings};
use crate::token::{ClaimMapping, TokenSource, TrustedIssuer};
use crate::SetupError;

/// The largest `leeway` accepted (a day): clock skew is seconds, and the validation's
/// arithmetic must stay within the clock.
pub const MAX_LEEWAY: Duration = Duration::from_secs(86_400);

/// The JWT authenticator.
pub struct JwtAuthenticator {
    name: String,
    config: JwtConfig,
    keys: Arc<KeyStore>,
    validation: Validation,
    source: TokenSource,
    mapping: ClaimMapping,
    /// For an authenticator trusting the broker's own issuer: reads the `acl` claim into
    /// permissions granted with the allow.
    acl_grants: Option<ClaimsAuthorizer>,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, SetupError> {
    let alg = match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(SetupError::UnknownAlgorithm(other.to_owned())),
    };
    Ok(alg)
}

impl JwtAuthenticator {
    /// Builds the authenticator: reads fixed keys, sets up fetching. Must run inside a tokio
    /// runtime when keys are fetched (they are refreshed in the background).
    pub fn new(name: impl Into<String>, config: JwtConfig) -> Result<JwtAuthenticator, SetupError> {
        if let Some(issuer) = &config.token_issuer {
            return Err(SetupError::TokenIssuerUnresolved(issuer.clone()));
        }
        JwtAuthenticator::build(name.into(), config, None)
    }

    /// An authenticator for the tokens of the broker's own `issuer` (`token_issuer` in the
    /// table): its key, `iss`, `aud` and algorithm; the `acl` claim granted as permissions;
    /// the issuer's identity claims read unless the table names others.
    pub fn trusting(
        name: impl Into<String>,
        mut config: JwtConfig,
        issuer: TrustedIssuer,
    ) -> Result<JwtAuthenticator, SetupError> {
        let beside = [
            ("secret", config.secret.is_some()),
            ("secret_base64", config.secret_base64.is_some()),
            ("public_key", config.public_key.is_some()),
            ("jwks_url", config.jwks_url.is_some()),
            ("issuer", config.issuer.is_some()),
            ("audience", !config.audience.is_empty()),
            ("allow_any_audience", config.allow_any_audience),
        ];
        if let Some((key, _)) = beside.iter().find(|(_, given)| *given) {
            return Err(SetupError::TokenIssuerBesideKeys(key));
        }
        config.token_issuer = None;
        config.issuer = Some(issuer.issuer);
        config.audience = vec![issuer.audience];
        config.algorithms = vec![format!("{:?}", issuer.algorithm)];
        let claims = &mut config.claims;
        if claims.roles_claims.is_empty() {
            claims.roles_claims = vec!["roles".into()];
        }
        if claims.groups_claims.is_empty() {
            claims.groups_claims = vec!["groups".into()];
        }
        claims
            .client_id_claim
            .get_or_insert_with(|| "client_id".into());
        claims
            .client_identity_claim
            .get_or_insert_with(|| "client_identity".into());
        JwtAuthenticator::build(name.into(), config, Some(issuer.key))
    }

    fn build(
        name: String,
        config: JwtConfig,
        trusted_key: Option<VerificationKey>,
    ) -> Result<JwtAuthenticator, SetupError> {
        let acl_grants = trusted_key.is_some().then(|| {
            ClaimsAuthorizer::new(ClaimsSettings::default()).expect("the default templates parse")
        });
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(&first) = algorithms.first() else {
            return Err(SetupError::NoAlgorithm);
        };
        let source = config.claims.token_source();
        source.validate()?;
        check_audience(&name, &config)?;
        let mapping = config.claims.claim_mapping();
        let mut fixed: Vec<VerificationKey> = trusted_key.into_iter().collect();
        if let Some(secret) = &config.secret {
            fixed.push(VerificationKey {
                kid: None,
                family: KeyFamily::Hmac,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(secret) = &config.secret_base64 {
            let key = DecodingKey::from_base64_secret(secret)
                .map_err(|e| SetupError::SecretNotBase64(e.to_string()))?;
            fixed.push(VerificationKey {
                kid: None,
                family: KeyFamily::Hmac,
                key,
            });
        }
        if let Some(path) = &config.public_key {
            let refused = |reason: String| SetupError::PublicKey {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
            fixed.push(pem_public_key(&pem).map_err(refused)?);
        }
        crate::oauth::check_max_response_bytes(config.max_response_bytes)?;
        let min_refetch = config.jwks_min_refetch;
        let limit = config.max_response_bytes;
        let keys = match (&config.jwks_url, &config.issuer, fixed.is_empty()) {
            (Some(url), _, true) => Arc::new(KeyStore::remote(
                RemoteSource::Jwks(url.clone()),
                min_refetch,
                limit,
            )?),
            (None, Some(issuer), true) => Arc::new(KeyStore::remote(
                RemoteSource::Issuer(issuer.clone()),
                min_refetch,
                limit,
            )?),
            (None, None, true) => return Err(SetupError::NoKey),
            (Some(_), _, false) => return Err(SetupError::FixedKeysAndJwks),
            (None, _, false) => Arc::new(KeyStore::fixed(fixed)),
        };
        let hmac_allowed = algorithms
            .iter()
            .any(|a| KeyFamily::of(*a) == Some(KeyFamily::Hmac));
        if hmac_allowed
            && (config.public_key.is_some()
                || config.jwks_url.is_some()
                || config.issuer.is_some()
                    && config.secret.is_none()
                    && config.secret_base64.is_none())
        {
            // An HMAC algorithm next to public keys invites algorithm confusion.
            return Err(SetupError::HmacBesidePublicKeys);
        }
        if config.leeway > MAX_LEEWAY {
            // jsonwebtoken computes `now - leeway`: a leeway past the clock would overflow.
            return Err(SetupError::LeewayTooLong(config.leeway));
        }
        let mut validation = Validation::new(first);
        validation.algorithms = algorithms;
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let keys_for_refresh = Arc::clone(&keys);
        if config.jwks_url.is_some()
            || (config.issuer.is_some()
                && config.secret.is_none()
                && config.secret_base64.is_none()
                && config.public_key.is_none())
        {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let interval = config.jwks_refresh.max(Duration::from_secs(1));
                handle.spawn(async move { keys_for_refresh.refresh_every(interval) });
            }
        }
        Ok(JwtAuthenticator {
            name,
            config,
            keys,
            validation,
            source,
            mapping,
            acl_grants,
        })
    }

    /// The token in `request`, if it carries one where this authenticator looks.
    fn token<'r>(&self, request: &'r ConnectRequest) -> Option<&'r str> {
        self.source
            .token(request)
            .filter(|token| looks_like_jwt(token))
    }

    /// Verifies `token` (however it arrived) for `request`: allow with the identity its claims
    /// give, or deny with the reason. `Err` when the keys cannot be had.
    pub async fn verify(
        &self,
        request: &ConnectRequest,
        token: &str,
    ) -> Result<AuthOutcome, AuthError> {
        if !looks_like_jwt(token) {
            return Ok(AuthOutcome::deny(DenyReason::BadCredentials, "not a JWT"));
        }
        self.judge(request, token).await
    }

    async fn judge(&self, request: &ConnectRequest, token: &str) -> Result<AuthOutcome, AuthError> {
        let deny = |detail: String| Ok(AuthOutcome::deny(DenyReason::BadCredentials, detail));
        let header = match decode_header(token) {
            Ok(h) => h,
            Err(e) => return deny(format!("malformed token: {e}")),
        };
        if !self.validation.algorithms.contains(&header.alg) {
            return deny(format!("algorithm {:?} not accepted", header.alg));
        }
        if let Some(typ) = &self.config.required_typ {
            if !header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(typ))
            {
                return deny(format!("typ must be {typ}"));
            }
        }
        let keys = match self.keys.keys_for(header.kid.as_deref(), header.alg).await {
            Ok(keys) => keys,
            Err(KeyError::Unknown(why)) => return deny(why),
            Err(KeyError::Unavailable(why)) => return Err(AuthError::new(why)),
        };
        // jsonwebtoken wants every algorithm of a validation to suit the key: validate with
        // exactly the token's algorithm, which the allow-list has already admitted.
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut last_error = None;
        let mut claims = None;
        for key in &keys {
            match decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let Some(claims) = claims else {
            let why = match last_error.as_ref().map(|e| e.kind()) {
                Some(ErrorKind::ExpiredSignature) => "token expired".to_owned(),
                Some(ErrorKind::ImmatureSignature) => "token not yet valid (nbf)".to_owned(),
                Some(ErrorKind::InvalidIssuer) => "wrong issuer".to_owned(),
                Some(ErrorKind::InvalidAudience) => "wrong audience".to_owned(),
                Some(ErrorKind::InvalidSignature) => "bad signature".to_owned(),
                Some(ErrorKind::MissingRequiredClaim(c)) => format!("missing claim {c}"),
                Some(other) => format!("invalid token: {other:?}"),
                None => "no key".to_owned(),
            };
            return deny(why);
        };
        let granted = match (&self.acl_grants, claims.get("acl")) {
            (Some(reader), Some(acl)) => match reader.acl_permissions("acl", acl) {
                Ok(permissions) => Some(Arc::new(GrantedRules {
                    authenticator: self.name.clone(),
                    permissions,
                    // The issuer's snapshot is whole when it says what decided without a
                    // rule; otherwise the listener's authorizers go on.
                    default: match claims.get("acl_default").and_then(|d| d.as_str()) {
                        Some("accept") => DefaultBehaviour::Accept,
                        Some("deny") => DefaultBehaviour::Deny,
                        _ => DefaultBehaviour::Next,
                    },
                })),
                Err(e) => return deny(format!("malformed acl claim: {e}")),
            },
            _ => None,
        };
        match self.mapping.identity(claims, request) {
            Ok(mut identity) => {
                identity.granted = granted;
                Ok(AuthOutcome::Allow(identity))
            }
            Err(why) => deny(why),
        }
    }
}

impl Authenticator for JwtAuthenticator {
    fn name(&self) -> &str {
        &self.name
    }

    fn username_is_secret(&self) -> bool {
        self.source.location == TokenLocation::Username
    }

    fn username_names_user(&self, request: &ConnectRequest) -> bool {
        self.source
            .username_names_user(request, self.mapping.username_must_match_claim)
    }

    fn depends_on_client_id(&self) -> bool {
        self.config.claims.client_id_claim.is_some()
    }

    fn key_fetches(&self) -> Option<KeyFetches> {
        self.keys.fetches()
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            match self.token(request) {
                None => Ok(AuthOutcome::Next),
                Some(token) => self.judge(request, token).await,
            }
        })
    }
}

/// An issuer signs tokens for every client it has (ID tokens too, whose `aud` is the client
/// they were issued to): with an issuer and no audience, any of them would be accepted. So an
/// issuer needs an audience, unless `allow_any_audience` says the operator means it.
fn check_audience(name: &str, config: &JwtConfig) -> Result<(), SetupError> {
    if config.allow_any_audience && !config.audience.is_empty() {
        return Err(SetupError::AudienceContradiction {
            audience_key: "audience",
        });
    }
    let Some(issuer) = &config.issuer else {
        return Ok(());
    };
    if !config.audience.is_empty() {
        return Ok(());
    }
    if !config.allow_any_audience {
        return Err(SetupError::IssuerWithoutAudience {
            audience_key: "audience",
            requested: None,
        });
    }
    tracing::warn!(
        authenticator = name,
        issuer = %issuer,
        "allow_any_audience = true: tokens issued by this issuer for any of its clients \
         (ID tokens included) are accepted, whatever their audience"
    );
    Ok(())
}

/// Three base64url segments separated by dots.
fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    parts.next().is_none()
        && ok(a)
        && ok(b)
        && ok(c)
        && a.is_some_and(|a| !a.is_empty())
        && b.is_some_and(|b| !b.is_empty())
}

/// Seconds since the epoch, for expiry arithmetic in tests and callers.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
