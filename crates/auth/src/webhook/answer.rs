//! What a webhook answers, and how the answer becomes an authentication outcome.
//!
//! ```json
//! { "result": "allow",
//!   "username": "alice", "client_identity": "sensor-7",
//!   "roles": ["operator"], "groups": ["plant-3"],
//!   "expires_in": 3600,
//!   "claims": { "tenant": "acme" },
//!   "permissions": [ { "filter": "plant/3/#", "action": "sub" },
//!                    { "filter": "plant/3/cmd/#", "action": "pub", "qos": [0, 1] } ],
//!   "default": "next" }
//! ```
//!
//! `result` is `allow`, `deny` (with an optional `reason`: `bad_credentials`, the default,
//! `not_authorized` or `banned`, and an optional `detail` for the audit line) or `next`.
//! Everything else is optional. `permissions` take the `acl` claim's shape (see
//! `policy::ClaimsAuthorizer`) and are applied before the listener's authorizers; `default`
//! (`next` unless given) says what happens to requests none of them decides. `expires_at`
//! (seconds since the epoch) or `expires_in` (seconds from now) ends the principal's rights;
//! each is a non-negative integer, and one further ahead than 100 years counts as 100 years.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::authentication::{AuthOutcome, DenyReason, Identity};
use crate::permissions::{DefaultBehaviour, GrantedRules, RuleOrigin};
use crate::policy::ClaimsAuthorizer;
use crate::principal::{Attribute, Source};
use crate::token::{after_secs, at_unix_secs};

/// A webhook's answer, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAnswer {
    result: Verdict,
    #[serde(default)]
    reason: Option<Reason>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    client_identity: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    claims: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    permissions: Option<Value>,
    #[serde(default)]
    default: Option<DefaultBehaviour>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Allow,
    Deny,
    Next,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reason {
    BadCredentials,
    NotAuthorized,
    Banned,
}

impl WebhookAnswer {
    /// The outcome this answer means for the authenticator called `name`; `Err` when the
    /// answer is malformed (its permissions do not parse with `parser`), which the chain
    /// treats as a backend failure.
    pub fn into_outcome(
        self,
        name: &str,
        parser: &ClaimsAuthorizer,
        now: SystemTime,
    ) -> Result<AuthOutcome, String> {
        match self.result {
            Verdict::Next => return Ok(AuthOutcome::Next),
            Verdict::Deny => {
                let reason = match self.reason {
                    None | Some(Reason::BadCredentials) => DenyReason::BadCredentials,
                    Some(Reason::NotAuthorized) => DenyReason::NotAuthorized,
                    Some(Reason::Banned) => DenyReason::Banned,
                };
                let detail = self
                    .detail
                    .map(|d| format!("webhook: {d}"))
                    .unwrap_or_else(|| "webhook refused".into());
                return Ok(AuthOutcome::deny(reason, detail));
            }
            Verdict::Allow => {}
        }
        let source = || Source::Authenticator(name.to_owned());
        let expires_at = match (self.expires_at, self.expires_in) {
            (Some(_), Some(_)) => return Err("both expires_at and expires_in".into()),
            // Checked: any u64 may come (a type other than a non-negative integer does not
            // parse); one too far ahead is taken as 100 years from now (`token::MAX_EXPIRY`).
            (Some(at), None) => Some(at_unix_secs(at, now)),
            (None, Some(secs)) => Some(after_secs(secs, now)),
            (None, None) => None,
        };
        let granted = match self.permissions {
            None => None,
            Some(list) => {
                let mut permissions = parser
                    .acl_permissions("permissions", &list)
                    .map_err(|e| e.message)?;
                for (entry, permission) in permissions.iter_mut().enumerate() {
                    permission.origin = Arc::new(RuleOrigin::Webhook {
                        name: name.to_owned(),
                        entry,
                    });
                }
                Some(Arc::new(GrantedRules {
                    authenticator: name.to_owned(),
                    permissions,
                    default: self.default.unwrap_or(DefaultBehaviour::Next),
                }))
            }
        };
        if granted.is_none() && self.default.is_some() {
            return Err("`default` without `permissions`".into());
        }
        Ok(AuthOutcome::Allow(Identity {
            username: self.username,
            client_identity: self.client_identity,
            client_identity_by: None,
            roles: self
                .roles
                .into_iter()
                .map(|r| Attribute::new(r, source()))
                .collect(),
            groups: self
                .groups
                .into_iter()
                .map(|g| Attribute::new(g, source()))
                .collect(),
            claims: self.claims.map(|c| Arc::new(Value::Object(c))),
            expires_at,
            granted,
            provider_tokens: None,
            authentication_data: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ClaimsSettings;
    use crate::token::MAX_EXPIRY;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn outcome(answer: Value) -> Result<AuthOutcome, String> {
        let answer: WebhookAnswer = serde_json::from_value(answer).map_err(|e| e.to_string())?;
        let parser = ClaimsAuthorizer::new(ClaimsSettings::default()).unwrap();
        answer.into_outcome("hook", &parser, UNIX_EPOCH + Duration::from_secs(1000))
    }

    #[test]
    fn an_allow_carries_identity_expiry_and_permissions_with_their_origin() {
        let AuthOutcome::Allow(id) = outcome(json!({
            "result": "allow", "username": "alice", "roles": ["op"], "expires_in": 60,
            "claims": {"tenant": "acme"},
            "permissions": [{"filter": "a/#", "action": "sub"}, {"filter": "b", "access": "deny"}],
            "default": "deny"
        }))
        .unwrap() else {
            panic!("not an allow")
        };
        assert_eq!(id.username.as_deref(), Some("alice"));
        assert_eq!(id.roles[0].source, Source::Authenticator("hook".into()));
        assert_eq!(id.expires_at, Some(UNIX_EPOCH + Duration::from_secs(1060)));
        assert_eq!(id.claims.unwrap()["tenant"], "acme");
        let granted = id.granted.unwrap();
        assert_eq!(granted.default, DefaultBehaviour::Deny);
        assert_eq!(granted.permissions.len(), 2);
        assert_eq!(
            *granted.permissions[1].origin,
            RuleOrigin::Webhook {
                name: "hook".into(),
                entry: 1
            }
        );
    }

    #[test]
    fn deny_and_next_and_their_reasons() {
        assert_eq!(
            outcome(json!({"result": "next"})).unwrap(),
            AuthOutcome::Next
        );
        assert!(matches!(
            outcome(json!({"result": "deny"})).unwrap(),
            AuthOutcome::Deny {
                reason: DenyReason::BadCredentials,
                ..
            }
        ));
        assert!(matches!(
            outcome(json!({"result": "deny", "reason": "banned", "detail": "x"})).unwrap(),
            AuthOutcome::Deny {
                reason: DenyReason::Banned,
                ..
            }
        ));
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(outcome(json!({"result": "maybe"})).is_err());
        assert!(outcome(json!({"result": "allow", "colour": "red"})).is_err());
        assert!(outcome(json!({"result": "allow", "permissions": [{"filter": "a/#/b"}]})).is_err());
        assert!(outcome(json!({"result": "allow", "permissions": {"filter": "a"}})).is_err());
        assert!(outcome(json!({"result": "allow", "expires_at": 5, "expires_in": 5})).is_err());
        assert!(outcome(json!({"result": "allow", "default": "deny"})).is_err());
    }

    #[test]
    fn hostile_expiries_are_capped_or_malformed_never_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let expiry = |field: &str, value: Value| {
            outcome(json!({"result": "allow", field: value})).map(|o| match o {
                AuthOutcome::Allow(id) => id.expires_at,
                other => panic!("{other:?}"),
            })
        };
        for field in ["expires_at", "expires_in"] {
            for far in [json!(u64::MAX), json!(i64::MAX)] {
                assert_eq!(expiry(field, far), Ok(Some(now + MAX_EXPIRY)), "{field}");
            }
            assert_eq!(expiry(field, json!(null)), Ok(None), "{field}");
            for malformed in [
                json!(-1),
                json!(1e300),
                json!(1.5),
                json!("60"),
                json!([60]),
                json!({"secs": 60}),
                json!(true),
            ] {
                assert!(
                    expiry(field, malformed.clone()).is_err(),
                    "{field} = {malformed}"
                );
            }
        }
    }
}
