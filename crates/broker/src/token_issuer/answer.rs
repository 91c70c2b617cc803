//! The answer to a token request, as the client reads it: the JSON of an OAuth 2.0 token
//! response (RFC 6749 §5.1: `access_token`, `token_type`, `expires_in`, and
//! `refresh_token` where one is handed) or of an error response (§5.2: `error`,
//! `error_description`).

use std::time::SystemTime;

use serde_json::{json, Value};
use tollgate_auth::authentication::ProviderTokens;
use tollgate_auth::token::SignedToken;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The principal's permissions do not allow asking (the publish or subscribe was denied).
    NotAuthorized,
    /// The principal or its token is revoked.
    Revoked,
    /// The principal's credentials have expired (or expire within the second).
    Expired,
    /// More requests than the issuer allows a principal per minute.
    RateLimited,
    /// Nobody vouched for the client's name (anonymous access, an unverified user name).
    NotAuthenticated,
    /// The principal has more permission rules than a token carries.
    TooManyRules,
    /// A `provider` issuer, and the client did not sign in through the provider.
    NoProviderToken,
    /// The request has no Response Topic (MQTT 5 request/response needs one).
    NoResponseTopic,
    /// The broker could not sign (its key is broken; logged).
    Failed,
}

impl Refusal {
    /// The OAuth error code the client is given.
    pub fn error_code(self) -> &'static str {
        match self {
            Refusal::NotAuthorized | Refusal::NotAuthenticated => "access_denied",
            Refusal::Revoked | Refusal::Expired | Refusal::NoProviderToken => "invalid_grant",
            Refusal::RateLimited => "slow_down",
            Refusal::TooManyRules | Refusal::NoResponseTopic => "invalid_request",
            Refusal::Failed => "server_error",
        }
    }

    /// The label of the metric and the audit line.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotAuthorized => "not_authorized",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
            Refusal::RateLimited => "rate_limited",
            Refusal::NotAuthenticated => "not_authenticated",
            Refusal::TooManyRules => "too_many_rules",
            Refusal::NoProviderToken => "no_provider_token",
            Refusal::NoResponseTopic => "no_response_topic",
            Refusal::Failed => "failed",
        }
    }
}

/// What the client is sent.
pub struct TokenAnswer {
    /// The JSON payload (it holds the token: never logged).
    pub payload: Vec<u8>,
    /// Issued (with the `jti` of a broker-signed token and the seconds it lives), or refused.
    pub outcome: Result<(Option<String>, u64), Refusal>,
    /// The refusal's description (what the client reads).
    pub description: String,
}

impl TokenAnswer {
    /// A refusal.
    pub fn refused(refusal: Refusal, description: &str) -> TokenAnswer {
        let payload = json!({
            "error": refusal.error_code(),
            "error_description": description,
        });
        TokenAnswer {
            payload: payload.to_string().into_bytes(),
            outcome: Err(refusal),
            description: description.to_owned(),
        }
    }

    /// A token the broker signed.
    pub fn broker_token(signed: SignedToken) -> TokenAnswer {
        let token = String::from_utf8_lossy(signed.token.expose());
        let payload = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": signed.expires_in,
            "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
        });
        TokenAnswer {
            payload: payload.to_string().into_bytes(),
            outcome: Ok((Some(signed.jti), signed.expires_in)),
            description: String::new(),
        }
    }

    /// The provider's tokens (the refresh token only when `with_refresh`).
    pub fn provider_token(
        tokens: &ProviderTokens,
        with_refresh: bool,
        now: SystemTime,
    ) -> TokenAnswer {
        let expires_in = tokens
            .expires_at
            .and_then(|at| at.duration_since(now).ok())
            .map(|left| left.as_secs());
        let mut payload = json!({
            "access_token": String::from_utf8_lossy(tokens.access_token.expose()),
            "token_type": "Bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        });
        if let Some(expires_in) = expires_in {
            payload["expires_in"] = Value::from(expires_in);
        }
        if let (true, Some(refresh)) = (with_refresh, &tokens.refresh_token) {
            payload["refresh_token"] = Value::from(String::from_utf8_lossy(refresh.expose()));
        }
        TokenAnswer {
            payload: payload.to_string().into_bytes(),
            outcome: Ok((None, expires_in.unwrap_or(0))),
            description: String::new(),
        }
    }
}
