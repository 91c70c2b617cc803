//! From a verified token's claims to an [`Identity`]: required claims, the user name claim,
//! the client identifier binding, roles and groups. Shared by every token authenticator (JWT,
//! introspection, password grant), so a token means the same identity whichever way it was
//! verified.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::authentication::{ConnectRequest, Identity};
use crate::principal::{Attribute, Source};

/// How claims map to an identity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimMapping {
    /// Claims that must be present with these values.
    pub required_claims: Vec<(String, Value)>,
    /// The claim naming the user.
    pub username_claim: String,
    /// Whether the CONNECT user name must equal the user name claim.
    pub username_must_match_claim: bool,
    /// The claim the client identifier must equal.
    pub client_id_claim: Option<String>,
    /// Claim paths listing roles.
    pub roles_claims: Vec<String>,
    /// Claim paths listing groups.
    pub groups_claims: Vec<String>,
}

impl ClaimMapping {
    /// The identity `claims` give for `request`, or why they give none (for the audit line;
    /// never a secret). `exp` (seconds since the epoch) becomes the identity's expiry.
    pub fn identity(&self, claims: Value, request: &ConnectRequest) -> Result<Identity, String> {
        for (name, expected) in &self.required_claims {
            if !claim_holds(lookup(&claims, name), expected) {
                return Err(format!("claim {name} does not hold the required value"));
            }
        }
        let Some(username) = lookup(&claims, &self.username_claim)
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(format!("no {} claim", self.username_claim));
        };
        if self.username_must_match_claim && request.username.as_deref() != Some(&username) {
            return Err("user name does not match the token".into());
        }
        if let Some(claim) = &self.client_id_claim {
            if lookup(&claims, claim).and_then(Value::as_str) != Some(request.client_id.as_str()) {
                return Err(format!(
                    "client identifier does not match the {claim} claim"
                ));
            }
        }
        let collect = |paths: &[String]| -> Vec<Attribute> {
            paths
                .iter()
                .flat_map(|path| {
                    strings(lookup(&claims, path))
                        .into_iter()
                        .map(move |v| Attribute::new(v, Source::Claim(path.clone())))
                })
                .collect()
        };
        let roles = collect(&self.roles_claims);
        let groups = collect(&self.groups_claims);
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
        Ok(Identity {
            username: Some(username),
            client_identity: None,
            roles,
            groups,
            claims: Some(Arc::new(claims)),
            expires_at,
            granted: None,
        })
    }
}

/// A claim by whole key first (namespaced claims contain dots), then by dotted path.
pub fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    claims
        .get(path)
        .or_else(|| path.split('.').try_fold(claims, |v, k| v.get(k)))
}

/// The strings of a claim: an array of strings, or a space-separated string (OAuth `scope`).
pub fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Whether a claim holds a required value: equal, or (for arrays and space-separated strings)
/// containing it.
pub fn claim_holds(value: Option<&Value>, expected: &Value) -> bool {
    match (value, expected) {
        (None, _) => false,
        (Some(v), e) if v == e => true,
        (Some(v), Value::String(e)) => strings(Some(v)).iter().any(|s| s == e),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> ConnectRequest {
        let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "dev-1");
        r.username = Some("someone".into());
        r
    }

    fn mapping() -> ClaimMapping {
        ClaimMapping {
            username_claim: "sub".into(),
            ..ClaimMapping::default()
        }
    }

    #[test]
    fn roles_groups_and_expiry_come_from_their_claims() {
        let m = ClaimMapping {
            roles_claims: vec![
                "realm_access.roles".into(),
                "https://x.example/roles".into(),
            ],
            groups_claims: vec!["groups".into()],
            ..mapping()
        };
        let claims = json!({"sub": "u", "exp": 2_000_000_000u64,
            "realm_access": {"roles": ["a"]}, "https://x.example/roles": "b c", "groups": ["g"]});
        let id = m.identity(claims, &request()).unwrap();
        assert_eq!(id.username.as_deref(), Some("u"));
        let roles: Vec<_> = id.roles.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(roles, ["a", "b", "c"]);
        assert_eq!(id.groups[0].source, Source::Claim("groups".into()));
        assert_eq!(
            id.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
    }

    #[test]
    fn required_claims_user_name_and_client_binding_refuse() {
        let required = ClaimMapping {
            required_claims: vec![("scope".into(), json!("mqtt"))],
            ..mapping()
        };
        assert!(required
            .identity(json!({"sub": "u", "scope": "openid mqtt"}), &request())
            .is_ok());
        assert!(required
            .identity(json!({"sub": "u", "scope": "openid"}), &request())
            .is_err());
        assert!(mapping()
            .identity(json!({"name": "u"}), &request())
            .is_err());
        let bound = ClaimMapping {
            client_id_claim: Some("sub".into()),
            ..mapping()
        };
        assert!(bound.identity(json!({"sub": "dev-1"}), &request()).is_ok());
        assert!(bound.identity(json!({"sub": "dev-2"}), &request()).is_err());
        let matching = ClaimMapping {
            username_must_match_claim: true,
            ..mapping()
        };
        assert!(matching
            .identity(json!({"sub": "someone"}), &request())
            .is_ok());
        assert!(matching
            .identity(json!({"sub": "other"}), &request())
            .is_err());
    }
}
