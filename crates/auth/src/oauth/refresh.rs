//! Renewing a provider's access token with its refresh token (RFC 6749 §6), for a client
//! that signed in through the password grant: a `provider` token issuer asked for a token
//! that is about to expire gets a fresh one this way, and the connection's principal is
//! renewed with it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::client::{ClientCredentials, HttpCaller};
use crate::authentication::{AuthOutcome, ConnectRequest, Identity, ProviderTokens};
use crate::jwt::JwtAuthenticator;
use crate::secret::Secret;
use crate::SetupError;

/// The token endpoint, the broker's client there, and how its tokens are verified.
pub struct TokenRefresher {
    endpoint: String,
    credentials: ClientCredentials,
    http: HttpCaller,
    verifier: Arc<JwtAuthenticator>,
}

impl std::fmt::Debug for TokenRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRefresher")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl TokenRefresher {
    /// A refresher calling `endpoint` as `credentials`, within `timeout`, reading at most
    /// `max_response_bytes`, verifying the new access token with `verifier`.
    pub(crate) fn new(
        endpoint: String,
        credentials: ClientCredentials,
        timeout: Duration,
        max_response_bytes: usize,
        verifier: Arc<JwtAuthenticator>,
    ) -> Result<TokenRefresher, SetupError> {
        Ok(TokenRefresher {
            endpoint,
            credentials,
            http: HttpCaller::new(timeout, 4, max_response_bytes)?,
            verifier,
        })
    }

    /// Trades `refresh_token` for new tokens, for the client of `request`: `Ok(Ok(identity))`
    /// with the new tokens in it (the refresh token kept when the provider gives no new one),
    /// `Ok(Err(why))` when the provider refuses (`invalid_grant`: revoked, expired) or the
    /// new token does not verify, `Err` when the provider cannot be reached or answers
    /// otherwise.
    pub async fn refresh(
        self: &Arc<Self>,
        refresh_token: &Secret,
        request: &ConnectRequest,
    ) -> Result<Result<Identity, String>, String> {
        let token = String::from_utf8_lossy(refresh_token.expose()).into_owned();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
        ];
        let url = &self.endpoint;
        let call = self.credentials.post_form(self.http.client(), url, &form);
        let (status, body) = self
            .http
            .call(call, url)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("{url}: HTTP status {status}, not JSON"))?;
        let field = |name: &str| answer.get(name).and_then(Value::as_str);
        if [400, 401, 403].contains(&status.as_u16()) {
            return match field("error") {
                Some(
                    code @ ("invalid_client" | "unauthorized_client" | "unsupported_grant_type"),
                ) => Err(format!("{url}: the provider refused the broker: {code}")),
                Some(code) => Ok(Err(format!("refresh refused: {code}"))),
                None => Err(format!("{url}: HTTP status {status} without an error code")),
            };
        }
        if !status.is_success() {
            return Err(format!("{url}: HTTP status {status}"));
        }
        let Some(access_token) = field("access_token") else {
            return Err(format!("{url}: answer has no access_token"));
        };
        match self.verifier.verify(request, access_token).await {
            Ok(AuthOutcome::Allow(mut identity)) => {
                identity.provider_tokens = Some(Arc::new(ProviderTokens {
                    access_token: Secret::new(access_token),
                    refresh_token: Some(
                        field("refresh_token").map_or_else(|| refresh_token.clone(), Secret::new),
                    ),
                    expires_at: identity.expires_at,
                    refresher: Some(Arc::clone(self)),
                }));
                Ok(Ok(identity))
            }
            Ok(AuthOutcome::Deny { detail, .. }) => {
                Ok(Err(format!("the provider's token: {detail}")))
            }
            Ok(AuthOutcome::Next | AuthOutcome::Continue(_)) => {
                Ok(Err("the provider's token: not a JWT".into()))
            }
            Err(e) => Err(e.message),
        }
    }
}
