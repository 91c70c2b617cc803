//! Tokens handed over MQTT (seed 001): a client already authenticated asks, by a MQTT 5
//! request (PUBLISH to the issuer's `request_topic` with a Response Topic) or by subscribing
//! to its `subscribe_topic` (3.1.1 too), and gets a token it can reconnect with instead of
//! its password: the broker's own short-lived JWT, or the identity provider's token from its
//! sign-in.
//!
//! This module decides the answer; `connection/token_request.rs` is where the requests
//! arrive and the answer is sent, to the asking client only, never routed, never retained,
//! never logged.

mod answer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use tollgate_auth::authentication::ProviderTokens;
use tollgate_auth::oauth::TokenRefresher;
use tollgate_auth::permissions::CompiledPermissions;
use tollgate_auth::token::{SignRefusal, SignerSettings, TokenGrant, TokenSigner, TrustedIssuer};
use tollgate_auth::{Principal, Secret};

use crate::config::{IssuedTokenSource, TokenIssuerConfig, MAX_TOKEN_LIFETIME, MAX_TOKEN_RULES};
use crate::config_cause::{ConfigCause, NamedTable};
use crate::{ConfigProblem, KeyPath};

use crate::request_rate::RequestRate;
pub use answer::{Refusal, TokenAnswer};

/// What the issuer does with a request.
pub enum IssuerStep {
    /// Answer it now.
    Answer(TokenAnswer),
    /// Renew the provider's token first (it is about to expire), then answer with the new
    /// one.
    RefreshFirst {
        /// Who renews it.
        refresher: Arc<TokenRefresher>,
        /// With this.
        refresh_token: Secret,
    },
}

/// One `[[token_issuer]]`, ready to answer.
pub struct TokenIssuer {
    config: TokenIssuerConfig,
    token_topic: String,
    signer: Option<TokenSigner>,
    rate: Mutex<RequestRate>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// The issuer `config` describes (its signing key read); `Err` names the key at fault
    /// and why.
    pub fn new(config: TokenIssuerConfig) -> Result<TokenIssuer, (&'static str, String)> {
        check_settings(&config)?;
        let signer = match (config.source, &config.signing_key) {
            (IssuedTokenSource::Broker, None) => {
                return Err(("signing_key", "must be set for source = \"broker\"".into()))
            }
            (IssuedTokenSource::Broker, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| ("signing_key", format!("{}: {e}", path.display())))?;
                let kid = config.kid.clone().unwrap_or_else(|| config.name.clone());
                let signer = TokenSigner::new(&SignerSettings {
                    pem: &pem,
                    algorithm: &config.algorithm,
                    kid: &kid,
                    issuer: &config.issuer,
                    audience: &config.audience,
                    form: config.permissions,
                    max_rules: config.max_permission_rules,
                })
                .map_err(|why| {
                    let key = if why.starts_with("algorithm") {
                        "algorithm"
                    } else {
                        "signing_key"
                    };
                    (key, format!("{}: {why}", path.display()))
                })?;
                Some(signer)
            }
            (IssuedTokenSource::Provider, Some(_)) => {
                return Err((
                    "signing_key",
                    "is only used with source = \"broker\"".into(),
                ))
            }
            (IssuedTokenSource::Provider, None) => None,
        };
        Ok(TokenIssuer {
            token_topic: config.token_topic(),
            rate: Mutex::new(RequestRate::new(
                config.max_requests_per_minute,
                config.max_tracked_principals,
            )),
            signer,
            config,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The topic MQTT 5 requests are published to.
    pub fn request_topic(&self) -> &str {
        &self.config.request_topic
    }

    /// The filter a subscription asks for a token with.
    pub fn subscribe_topic(&self) -> &str {
        &self.config.subscribe_topic
    }

    /// The topic a subscribed-for token is published on.
    pub fn token_topic(&self) -> &str {
        &self.token_topic
    }

    /// The public key as a JWK, for a broker-signed issuer.
    pub fn jwk(&self) -> Option<serde_json::Value> {
        self.signer.as_ref().map(TokenSigner::jwk)
    }

    /// The answer handing `tokens` (the provider's), as this issuer hands them.
    pub fn provider_answer(&self, tokens: &ProviderTokens, wall: SystemTime) -> TokenAnswer {
        TokenAnswer::provider_token(tokens, self.config.include_refresh_token, wall)
    }

    /// What a JWT authenticator trusting this issuer verifies with (`None` for a `provider`
    /// issuer, whose tokens the provider's own keys verify).
    pub fn trusted(&self) -> Option<TrustedIssuer> {
        self.signer.as_ref().map(TokenSigner::trusted)
    }

    /// The answer to `principal`'s request at `now` (`wall`: the same instant by the wall
    /// clock): its permissions as compiled on its connection (`None`: unrestricted), and
    /// why it is revoked, if it is.
    pub fn answer(
        &self,
        principal: &Principal,
        permissions: Option<&CompiledPermissions>,
        revoked: Option<&str>,
        now: Instant,
        wall: SystemTime,
    ) -> IssuerStep {
        IssuerStep::Answer(self.decide(principal, permissions, revoked, now, wall))
            .or_refresh(self, principal, wall)
    }

    fn decide(
        &self,
        principal: &Principal,
        permissions: Option<&CompiledPermissions>,
        revoked: Option<&str>,
        now: Instant,
        wall: SystemTime,
    ) -> TokenAnswer {
        if let Some(why) = revoked {
            return TokenAnswer::refused(Refusal::Revoked, why);
        }
        if principal.expires_at.is_some_and(|at| at <= wall) {
            return TokenAnswer::refused(Refusal::Expired, "the credentials have expired");
        }
        let key = principal
            .owner()
            .map_or_else(|| principal.client_id.clone(), |owner| owner.to_string());
        if !self.rate.lock().take(&key, now) {
            return TokenAnswer::refused(
                Refusal::RateLimited,
                &format!(
                    "more than {} token requests a minute",
                    self.config.max_requests_per_minute
                ),
            );
        }
        match &self.signer {
            Some(signer) => {
                let grant = TokenGrant {
                    principal,
                    permissions,
                    lifetime: self.config.lifetime,
                    now: wall,
                };
                match signer.sign(&grant) {
                    Ok(signed) => TokenAnswer::broker_token(signed),
                    Err(refusal) => {
                        let kind = match refusal {
                            SignRefusal::NoVerifiedName => Refusal::NotAuthenticated,
                            SignRefusal::CredentialsExpiring => Refusal::Expired,
                            SignRefusal::TooManyRules { .. } => Refusal::TooManyRules,
                            SignRefusal::Signing(_) => Refusal::Failed,
                        };
                        if kind == Refusal::Failed {
                            tracing::error!(issuer = %self.config.name, "token issuer: {refusal}");
                        }
                        TokenAnswer::refused(kind, &refusal.to_string())
                    }
                }
            }
            None => match &principal.provider_tokens {
                Some(tokens) => self.provider_answer(tokens, wall),
                None => TokenAnswer::refused(
                    Refusal::NoProviderToken,
                    "the client did not sign in through the identity provider",
                ),
            },
        }
    }
}

/// The checks of an issuer's settings serde cannot make.
fn check_settings(config: &TokenIssuerConfig) -> Result<(), (&'static str, String)> {
    use tollgate_mqtt::topic::{is_sys, is_valid_topic_filter, is_valid_topic_name};
    let request = &config.request_topic;
    if !is_valid_topic_name(request) || request.is_empty() || is_sys(request) {
        return Err((
            "request_topic",
            format!("`{request}` is not a topic name outside $SYS"),
        ));
    }
    let filter = &config.subscribe_topic;
    let prefix = filter.strip_suffix("/#").unwrap_or(filter);
    if !is_valid_topic_filter(filter)
        || filter.is_empty()
        || is_sys(filter)
        || prefix.contains(['+', '#'])
    {
        return Err((
            "subscribe_topic",
            format!("`{filter}` must be a topic outside $SYS, or one ending in /# with no other wildcard"),
        ));
    }
    if config.lifetime.is_zero() || config.lifetime > MAX_TOKEN_LIFETIME {
        return Err((
            "lifetime",
            format!(
                "must be between 1 and {} seconds",
                MAX_TOKEN_LIFETIME.as_secs()
            ),
        ));
    }
    if config.max_permission_rules > MAX_TOKEN_RULES {
        return Err((
            "max_permission_rules",
            format!("must be at most {MAX_TOKEN_RULES}"),
        ));
    }
    if config.max_tracked_principals == 0 {
        return Err(("max_tracked_principals", "must be at least 1".into()));
    }
    if config.include_refresh_token && config.source != IssuedTokenSource::Provider {
        return Err((
            "include_refresh_token",
            "is only used with source = \"provider\"".into(),
        ));
    }
    Ok(())
}

impl IssuerStep {
    /// For a `provider` issuer whose answer would hand a token expiring within
    /// `refresh_before`: renew it first, when it can be renewed.
    fn or_refresh(
        self,
        issuer: &TokenIssuer,
        principal: &Principal,
        wall: SystemTime,
    ) -> IssuerStep {
        let IssuerStep::Answer(answer) = &self else {
            return self;
        };
        if issuer.signer.is_some() || answer.outcome.is_err() {
            return self;
        }
        let Some(tokens) = &principal.provider_tokens else {
            return self;
        };
        let expiring = tokens.expires_at.is_some_and(|at| {
            at.duration_since(wall).unwrap_or_default() <= issuer.config.refresh_before
        });
        match (expiring, &tokens.refresher, &tokens.refresh_token) {
            (true, Some(refresher), Some(refresh_token)) => IssuerStep::RefreshFirst {
                refresher: Arc::clone(refresher),
                refresh_token: refresh_token.clone(),
            },
            _ => self,
        }
    }
}

/// The configured token issuers, by name.
#[derive(Debug, Default)]
pub struct TokenIssuers {
    by_name: HashMap<String, Arc<TokenIssuer>>,
    /// The names of issuers that could not be built (already reported).
    broken: Vec<String>,
}

impl TokenIssuers {
    /// Builds every `[[token_issuer]]` of `configs`; each that cannot be built is a problem
    /// added to `problems` (at its key).
    pub fn build(configs: &[TokenIssuerConfig], problems: &mut Vec<ConfigProblem>) -> TokenIssuers {
        let mut by_name = HashMap::new();
        let mut broken = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let at = |key: &str| KeyPath::root().key("token_issuer").index(index).key(key);
            if config.name.is_empty() {
                problems.push(ConfigProblem::at(at("name"), ConfigCause::Required));
                continue;
            }
            if by_name.contains_key(&config.name) || broken.contains(&config.name) {
                problems.push(ConfigProblem::at(
                    at("name"),
                    ConfigCause::DuplicateName {
                        table: NamedTable::TokenIssuer,
                        name: config.name.clone(),
                    },
                ));
                continue;
            }
            match TokenIssuer::new(config.clone()) {
                Ok(issuer) => {
                    by_name.insert(config.name.clone(), Arc::new(issuer));
                }
                Err((key, why)) => {
                    broken.push(config.name.clone());
                    problems.push(ConfigProblem::at(
                        at(key),
                        ConfigCause::Table {
                            table: NamedTable::TokenIssuer,
                            name: config.name.clone(),
                            reason: why,
                        },
                    ));
                }
            }
        }
        TokenIssuers { by_name, broken }
    }

    /// Whether `name` is an issuer that could not be built (its problem is reported).
    pub fn is_broken(&self, name: &str) -> bool {
        self.broken.iter().any(|b| b == name)
    }

    /// The issuer named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<TokenIssuer>> {
        self.by_name.get(name)
    }

    /// Every issuer, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TokenIssuer>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tollgate_auth::authentication::{AuthenticatedBy, ProviderTokens};
    use tollgate_auth::Secret;

    use super::*;

    fn provider_issuer(per_minute: u32) -> TokenIssuer {
        TokenIssuer::new(TokenIssuerConfig {
            name: "idp".into(),
            source: IssuedTokenSource::Provider,
            max_requests_per_minute: per_minute,
            ..TokenIssuerConfig::default()
        })
        .unwrap()
    }

    fn signed_in(expires_at: SystemTime) -> Principal {
        Principal {
            username: Some("alice".into()),
            authenticated_by: AuthenticatedBy::Authenticator("idp".into()),
            expires_at: Some(expires_at),
            provider_tokens: Some(Arc::new(ProviderTokens {
                access_token: Secret::new("at"),
                refresh_token: Some(Secret::new("rt")),
                expires_at: Some(expires_at),
                refresher: None,
            })),
            ..Principal::anonymous("alice-1")
        }
    }

    fn refusal(step: IssuerStep) -> Option<Refusal> {
        answered(step).outcome.err()
    }

    fn answered(step: IssuerStep) -> TokenAnswer {
        match step {
            IssuerStep::Answer(answer) => answer,
            IssuerStep::RefreshFirst { .. } => panic!("a refresh, not an answer"),
        }
    }

    #[test]
    fn a_revoked_or_expired_principal_is_refused_before_anything_else() {
        let issuer = provider_issuer(6);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let principal = signed_in(wall + Duration::from_secs(60));
        assert_eq!(
            refusal(issuer.answer(&principal, None, Some("user alice"), now, wall)),
            Some(Refusal::Revoked)
        );
        let expired = signed_in(wall - Duration::from_secs(1));
        let answer = answered(issuer.answer(&expired, None, None, now, wall));
        assert_eq!(answer.outcome.as_ref().err(), Some(&Refusal::Expired));
        let json: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(json["error"], "invalid_grant");
        assert!(json.get("access_token").is_none());
    }

    #[test]
    fn the_provider_token_without_its_refresh_token_unless_configured() {
        let issuer = provider_issuer(6);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let answer = answered(issuer.answer(
            &signed_in(wall + Duration::from_secs(600)),
            None,
            None,
            now,
            wall,
        ));
        let json: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(json["access_token"], "at");
        assert!(json.get("refresh_token").is_none(), "{json}");
        let password_user = Principal {
            provider_tokens: None,
            ..signed_in(wall + Duration::from_secs(600))
        };
        assert_eq!(
            refusal(issuer.answer(&password_user, None, None, now, wall)),
            Some(Refusal::NoProviderToken)
        );
    }

    #[test]
    fn settings_out_of_range_name_their_key() {
        let key = |config: TokenIssuerConfig| TokenIssuer::new(config).err().map(|(k, _)| k);
        let provider = TokenIssuerConfig {
            name: "idp".into(),
            source: IssuedTokenSource::Provider,
            ..TokenIssuerConfig::default()
        };
        for (config, wanted) in [
            (
                TokenIssuerConfig {
                    request_topic: "a/#".into(),
                    ..provider.clone()
                },
                "request_topic",
            ),
            (
                TokenIssuerConfig {
                    request_topic: "$SYS/token".into(),
                    ..provider.clone()
                },
                "request_topic",
            ),
            (
                TokenIssuerConfig {
                    subscribe_topic: "a/#/b".into(),
                    ..provider.clone()
                },
                "subscribe_topic",
            ),
            (
                TokenIssuerConfig {
                    lifetime: Duration::from_secs(86_401),
                    ..provider.clone()
                },
                "lifetime",
            ),
            (
                TokenIssuerConfig {
                    max_permission_rules: MAX_TOKEN_RULES + 1,
                    ..provider.clone()
                },
                "max_permission_rules",
            ),
            (
                TokenIssuerConfig {
                    source: IssuedTokenSource::Broker,
                    ..provider.clone()
                },
                "signing_key",
            ),
        ] {
            assert_eq!(key(config), Some(wanted));
        }
        assert_eq!(key(provider), None);
    }
}
