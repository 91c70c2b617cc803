//! What an authenticator answers: allow (with an identity), deny (with a reason), or next.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::permissions::GrantedRules;
use crate::principal::Attribute;
use crate::secret::Secret;

/// The identity an authenticator vouches for when it allows a connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// The user name to use, when the authenticator maps one (a token's `sub`); `None` keeps
    /// the user name from CONNECT.
    pub username: Option<String>,
    /// The client's own identity, when it differs from the user (a certificate's CN).
    pub client_identity: Option<String>,
    /// The client authenticator that vouched for `client_identity`, when one did (two
    /// identities on one CONNECT: a device's secret beside a user's token).
    pub client_identity_by: Option<String>,
    /// Roles granted.
    pub roles: Vec<Attribute>,
    /// Groups the user belongs to.
    pub groups: Vec<Attribute>,
    /// Token claims, when a token was verified.
    pub claims: Option<Arc<serde_json::Value>>,
    /// When the credentials stop being valid.
    pub expires_at: Option<SystemTime>,
    /// Permissions granted with the allow (a webhook's answer), applied before the
    /// listener's authorizers.
    pub granted: Option<Arc<GrantedRules>>,
    /// The identity provider's tokens, when the authenticator obtained them for the client
    /// (the password grant): what a `provider` token issuer hands the client.
    pub provider_tokens: Option<Arc<ProviderTokens>>,
    /// Authentication data for the client with the allow (CONNACK's, or the AUTH 0x00 of a
    /// re-authentication): the last message of an exchange in several steps (SCRAM's
    /// server-final message).
    pub authentication_data: Option<Vec<u8>>,
}

/// Tokens an identity provider issued for a client's sign-in. Secrets: never logged.
#[derive(Debug, Clone)]
pub struct ProviderTokens {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, if the provider returned one.
    pub refresh_token: Option<Secret>,
    /// When the access token expires (its `exp`, or `expires_in` of the answer).
    pub expires_at: Option<SystemTime>,
    /// Who renews them with the refresh token (the token endpoint that issued them).
    pub refresher: Option<Arc<crate::oauth::TokenRefresher>>,
}

impl PartialEq for ProviderTokens {
    /// The same tokens (whoever would renew them).
    fn eq(&self, other: &ProviderTokens) -> bool {
        self.access_token == other.access_token
            && self.refresh_token == other.refresh_token
            && self.expires_at == other.expires_at
    }
}

/// Why a connection is refused. The broker maps each to a CONNACK code per protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The credentials are wrong (3.x return code 4, 5.0 reason 0x86).
    BadCredentials,
    /// The client is known but may not connect, or presented no credentials where they are
    /// required (3.x 5, 5.0 0x87).
    NotAuthorized,
    /// Temporarily banned after repeated failures (3.x 5, 5.0 0x8A).
    Banned,
    /// Too many attempts: slow down (3.x 3, 5.0 0x9F).
    RateLimited,
    /// The MQTT 5 authentication method is not supported (3.x 4, 5.0 0x8C).
    BadAuthenticationMethod,
    /// A backend needed for the decision failed, and failing closed refuses (3.x 3, 5.0 0x88).
    BackendUnavailable,
    /// Too many authentications are waiting, on the listener or from the address (3.x 3,
    /// 5.0 0x89).
    Busy,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::BadCredentials => "bad user name or password",
            DenyReason::NotAuthorized => "not authorized",
            DenyReason::Banned => "banned",
            DenyReason::RateLimited => "connection rate exceeded",
            DenyReason::BadAuthenticationMethod => "bad authentication method",
            DenyReason::BackendUnavailable => "authentication backend unavailable",
            DenyReason::Busy => "too many authentications waiting",
        })
    }
}

/// One authenticator's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOutcome {
    /// The credentials are good: this is who the client is.
    Allow(Identity),
    /// Final refusal: the chain stops here.
    Deny {
        /// Why.
        reason: DenyReason,
        /// Detail for the audit log (never a secret).
        detail: String,
    },
    /// Not this authenticator's to decide (unknown user, no token, another method): the next
    /// one decides.
    Next,
    /// One more step: the client must answer this challenge (AUTH 0x18) before the
    /// authenticator decides. Only for requests with an MQTT 5 authentication method.
    Continue(super::Challenge),
}

impl AuthOutcome {
    /// A denial with a detail.
    pub fn deny(reason: DenyReason, detail: impl Into<String>) -> Self {
        AuthOutcome::Deny {
            reason,
            detail: detail.into(),
        }
    }
}

/// An authenticator that could not decide: its backend failed (file unreadable, identity
/// provider down, timeout). The chain turns it into a denial or into `Next`, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// What failed, for the log (never a secret).
    pub message: String,
}

impl AuthError {
    /// An error with its message.
    pub fn new(message: impl Into<String>) -> Self {
        AuthError {
            message: message.into(),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}
