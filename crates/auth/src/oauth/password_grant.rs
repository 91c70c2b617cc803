//! The OAuth 2.0 password grant, forwarded: the broker exchanges the CONNECT user name and
//! password at the provider's token endpoint (RFC 6749 §4.3) and verifies the access token it
//! gets back as a JWT; the identity comes from that token, not from the user name sent.
//!
//! This is the `authenticateWithCredentials` flow of the Auth0/mosca article, for clients that
//! can only send a user name and password. The provider refusing the grant (`400`/`401`, e.g.
//! `invalid_grant`) refuses the client; a provider that cannot be reached or answers with
//! anything else is a backend failure (fail closed unless `on_error = "next"`). Put the
//! authenticator's `cache_ttl` above 0 to spare the provider a grant per reconnect: the chain
//! caches the allow (never past the token's `exp`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::client::{ClientAuthMethod, ClientCredentials, HttpCaller};
use super::refresh::TokenRefresher;
use crate::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, DenyReason, ProviderTokens,
};
use crate::jwt::{JwtAuthenticator, JwtConfig};
use crate::secret::Secret;
use crate::SetupError;

/// Settings of a password-grant authenticator (the `password_grant` table of an
/// `[[authenticator]]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordGrantConfig {
    /// The provider's token endpoint.
    pub token_endpoint: String,
    /// The broker's client id at the provider.
    pub client_id: String,
    /// The broker's client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// `basic` (the default) or `post`.
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// The `scope` requested, if any (`openid mqtt`).
    #[serde(default)]
    pub scope: Option<String>,
    /// The `audience` requested, if any (Auth0 wants one for a JWT access token).
    #[serde(default)]
    pub audience: Option<String>,
    /// More form parameters (`realm`, `connection`…).
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    /// Seconds the endpoint has to answer.
    #[serde(default = "default_timeout")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub timeout: Duration,
    /// The most bytes read from the endpoint's answer (1 MiB by default); a larger answer is a
    /// backend failure.
    #[serde(default = "super::client::default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// The most calls to the token endpoint at once (64 by default); a further authentication waits
    /// for one to end, within the broker's `auth_timeout`.
    #[serde(default = "super::client::default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// How the returned access token is verified, and how its claims map to the identity:
    /// a `jwt` table (its `token_from` and `username_marker` do not apply). As in any `jwt`
    /// table, an `issuer` needs an `audience` (or `allow_any_audience = true`).
    pub verify: JwtConfig,
}

impl fmt::Debug for PasswordGrantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordGrantConfig")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish_non_exhaustive()
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The password-grant authenticator.
pub struct PasswordGrantAuthenticator {
    name: String,
    endpoint: String,
    credentials: ClientCredentials,
    params: Vec<(String, String)>,
    http: HttpCaller,
    verifier: Arc<JwtAuthenticator>,
    /// Renews the tokens it obtained (handed with them to a `provider` token issuer).
    refresher: Arc<TokenRefresher>,
}

impl PasswordGrantAuthenticator {
    /// Builds the authenticator (inside a tokio runtime when the verifier fetches keys).
    pub fn new(
        name: impl Into<String>,
        config: PasswordGrantConfig,
    ) -> Result<PasswordGrantAuthenticator, SetupError> {
        let name = name.into();
        if !(config.token_endpoint.starts_with("https://")
            || config.token_endpoint.starts_with("http://"))
        {
            return Err(SetupError::NotHttpUrl {
                key: "token_endpoint",
                url: config.token_endpoint.clone(),
            });
        }
        let mut params = vec![("grant_type".to_owned(), "password".to_owned())];
        if let Some(scope) = &config.scope {
            params.push(("scope".into(), scope.clone()));
        }
        if let Some(audience) = &config.audience {
            params.push(("audience".into(), audience.clone()));
        }
        params.extend(config.extra_params.clone());
        let verify = &config.verify;
        if let (Some(_), Some(requested), true, false) = (
            &verify.issuer,
            &config.audience,
            verify.audience.is_empty(),
            verify.allow_any_audience,
        ) {
            // The same rule as a `jwt` table's, with the audience asked for as the hint.
            return Err(SetupError::Verify(Box::new(
                SetupError::IssuerWithoutAudience {
                    audience_key: "audience",
                    requested: Some(requested.clone()),
                },
            )));
        }
        let verifier = Arc::new(
            JwtAuthenticator::new(name.clone(), config.verify)
                .map_err(|e| SetupError::Verify(Box::new(e)))?,
        );
        let credentials = ClientCredentials {
            client_id: config.client_id,
            client_secret: config.client_secret,
            method: config.client_auth,
        };
        let refresher = Arc::new(TokenRefresher::new(
            config.token_endpoint.clone(),
            credentials.clone(),
            config.timeout.max(Duration::from_secs(1)),
            config.max_response_bytes,
            Arc::clone(&verifier),
        )?);
        Ok(PasswordGrantAuthenticator {
            name,
            endpoint: config.token_endpoint,
            credentials,
            refresher,
            params,
            http: HttpCaller::new(
                config.timeout.max(Duration::from_secs(1)),
                config.max_concurrent_requests,
                config.max_response_bytes,
            )?,
            verifier,
        })
    }

    async fn grant(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Result<Granted, String>, AuthError> {
        let mut form: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        form.push(("username", username));
        form.push(("password", password));
        let fail = |e: String| AuthError::new(format!("token endpoint {}: {e}", self.endpoint));
        let request = self
            .credentials
            .post_form(self.http.client(), &self.endpoint, &form);
        // Whatever the status, an answer too large (or cut off) is the provider failing.
        let (status, body) = self
            .http
            .call(request, &self.endpoint)
            .await
            .map_err(fail)?;
        let body: Option<Value> = serde_json::from_slice(&body).ok();
        // The OAuth error code, if the answer has one.
        let code = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str);
        // RFC 6749 says 400 (401 for client authentication); Auth0 answers a wrong password
        // with 403 and `invalid_grant`.
        let refusal_status = [
            reqwest::StatusCode::BAD_REQUEST,
            reqwest::StatusCode::UNAUTHORIZED,
            reqwest::StatusCode::FORBIDDEN,
        ];
        if refusal_status.contains(&status) {
            match code {
                // A 403 without an OAuth error is a proxy or firewall, not the provider.
                None if status == reqwest::StatusCode::FORBIDDEN => {
                    return Err(fail(format!("HTTP status {status}")));
                }
                // A misconfigured broker client is the operator's problem, not the user's.
                Some(
                    code @ ("invalid_client" | "unauthorized_client" | "unsupported_grant_type"),
                ) => {
                    return Err(fail(format!("the provider refused the broker: {code}")));
                }
                _ => {
                    return Ok(Err(format!(
                        "grant refused: {}",
                        code.unwrap_or("no error code")
                    )))
                }
            }
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP status {status}")));
        }
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match field("access_token") {
            Some(access_token) => Ok(Ok(Granted {
                access_token,
                refresh_token: field("refresh_token"),
            })),
            None => Err(fail("answer has no access_token".into())),
        }
    }
}

/// What the token endpoint granted.
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
}

impl Authenticator for PasswordGrantAuthenticator {
    fn name(&self) -> &str {
        &self.name
    }

    fn depends_on_client_id(&self) -> bool {
        self.verifier.depends_on_client_id()
    }

    fn key_fetches(&self) -> Option<crate::jwt::KeyFetches> {
        self.verifier.key_fetches()
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            let (Some(username), Some(password)) = (&request.username, &request.password) else {
                return Ok(AuthOutcome::Next);
            };
            let Ok(password) = std::str::from_utf8(password.expose()) else {
                return Ok(AuthOutcome::deny(
                    DenyReason::BadCredentials,
                    "password is not UTF-8",
                ));
            };
            match self.grant(username, password).await? {
                Err(why) => Ok(AuthOutcome::deny(DenyReason::BadCredentials, why)),
                Ok(granted) => match self.verifier.verify(request, &granted.access_token).await? {
                    AuthOutcome::Deny { reason, detail } => Ok(AuthOutcome::Deny {
                        reason,
                        detail: format!("the provider's token: {detail}"),
                    }),
                    AuthOutcome::Allow(mut identity) => {
                        // Kept for a `provider` token issuer, which hands them to the client.
                        identity.provider_tokens = Some(Arc::new(ProviderTokens {
                            access_token: Secret::new(granted.access_token),
                            refresh_token: granted.refresh_token.map(Secret::new),
                            expires_at: identity.expires_at,
                            refresher: Some(Arc::clone(&self.refresher)),
                        }));
                        Ok(AuthOutcome::Allow(identity))
                    }
                    // A JWT verifier neither passes nor asks: both mean the token is not one.
                    AuthOutcome::Next | AuthOutcome::Continue(_) => Ok(AuthOutcome::Next),
                },
            }
        })
    }
}
