//! From a verified token's claims to an [`Identity`]: required claims, the user name claim,
//! the client identifier binding, roles and groups. Shared by every token authenticator (JWT,
//! introspection, password grant), so a token means the same identity whichever way it was
//! verified.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::authentication::{ConnectRequest, Identity};
use crate::principal::{Attribute, Source};

use super::time::{at_unix_secs, numeric_date};

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
    /// The claim naming the client's (device's) own identity, beside the user's.
    pub client_identity_claim: Option<String>,
    /// Claim paths listing roles.
    pub roles_claims: Vec<String>,
    /// Claim paths listing groups.
    pub groups_claims: Vec<String>,
    /// Whether the token must be bound to the client certificate (`cnf` `x5t#S256`).
    pub certificate_binding: super::CertificateBinding,
}

impl ClaimMapping {
    /// The identity `claims` give for `request`, or why they give none (for the audit line;
    /// never a secret). `exp` (seconds since the epoch) becomes the identity's expiry, at most
    /// [`MAX_EXPIRY`](super::MAX_EXPIRY) from now; an `exp` that is not a non-negative number
    /// gives none. Claims of any shape give an answer, never a panic: a user name or client
    /// binding claim that is not a string refuses, roles and groups keep only strings.
    pub fn identity(&self, claims: Value, request: &ConnectRequest) -> Result<Identity, String> {
        for (name, expected) in &self.required_claims {
            if !claim_holds(lookup(&claims, name), expected) {
                return Err(format!("claim {name} does not hold the required value"));
            }
        }
        self.certificate_binding
            .check(&claims, request.certificate.as_ref())?;
        let username = match lookup(&claims, &self.username_claim) {
            None | Some(Value::Null) => return Err(format!("no {} claim", self.username_claim)),
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(format!("the {} claim is not a string", self.username_claim)),
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
        let client_identity = match self.client_identity_claim.as_deref() {
            None => None,
            Some(claim) => match lookup(&claims, claim) {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) => Some(name.clone()),
                Some(_) => return Err(format!("the {claim} claim is not a string")),
            },
        };
        let roles = collect(&self.roles_claims);
        let groups = collect(&self.groups_claims);
        let expires_at = match numeric_date(claims.get("exp")) {
            Ok(exp) => exp.map(|secs| at_unix_secs(secs, SystemTime::now())),
            Err(why) => return Err(format!("the exp claim is malformed ({why})")),
        };
        Ok(Identity {
            username: Some(username),
            client_identity,
            client_identity_by: None,
            roles,
            groups,
            claims: Some(Arc::new(claims)),
            expires_at,
            granted: None,
            provider_tokens: None,
            authentication_data: None,
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
    use crate::token::MAX_EXPIRY;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

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

    #[test]
    fn hostile_claim_values_give_an_answer_never_a_panic() {
        let m = ClaimMapping {
            client_id_claim: Some("azp".into()),
            roles_claims: vec!["realm_access.roles".into(), "roles".into()],
            groups_claims: vec!["groups".into()],
            ..mapping()
        };
        let hostile = [
            json!(u64::MAX),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(-1),
            json!(1e300),
            json!(-1e300),
            json!(0.5),
            json!("x"),
            json!(null),
            json!(true),
            json!([]),
            json!([1, "a", null, {"b": 2}, ["c"]]),
            json!({"roles": {"deeper": [1]}}),
        ];
        let base = json!({"sub": "u", "azp": "dev-1", "exp": 2_000_000_000u64});
        for value in &hostile {
            for claim in ["sub", "azp", "exp", "realm_access", "roles", "groups"] {
                let mut claims = base.clone();
                claims[claim] = value.clone();
                let result = m.identity(claims, &request());
                match claim {
                    "sub" => assert_eq!(result.is_ok(), value.is_string(), "sub = {value}"),
                    "azp" => assert!(result.is_err(), "azp = {value}"),
                    "exp" => {
                        if let Ok(id) = &result {
                            let exp = id.expires_at;
                            assert!(
                                exp.is_none_or(|e| e <= SystemTime::now() + MAX_EXPIRY),
                                "exp = {value}: {exp:?}"
                            );
                        }
                    }
                    _ => {
                        // Only strings become roles and groups; anything else is left out.
                        let id = result.unwrap_or_else(|e| panic!("{claim} = {value}: {e}"));
                        let expected: Vec<&str> = match (claim, value) {
                            ("realm_access", _) => vec![],
                            (_, Value::String(s)) => vec![s.as_str()],
                            (_, Value::Array(items)) => {
                                items.iter().filter_map(Value::as_str).collect()
                            }
                            _ => vec![],
                        };
                        let got: Vec<&str> = id
                            .roles
                            .iter()
                            .chain(&id.groups)
                            .map(|a| a.value.as_str())
                            .collect();
                        assert_eq!(got, expected, "{claim} = {value}");
                    }
                }
            }
        }
        // The expiry of the hostile-but-valid dates: capped, absent, or refused.
        let exp = |v: Value| {
            let mut claims = base.clone();
            claims["exp"] = v;
            m.identity(claims, &request()).map(|id| id.expires_at)
        };
        let far = exp(json!(u64::MAX)).unwrap().unwrap();
        let now = SystemTime::now();
        assert!(far > now + MAX_EXPIRY - Duration::from_secs(3600) && far <= now + MAX_EXPIRY);
        assert!(exp(json!(i64::MAX)).unwrap().unwrap() <= SystemTime::now() + MAX_EXPIRY);
        assert_eq!(exp(json!(null)).unwrap(), None);
        assert_eq!(
            exp(json!(2_000_000_000.75)).unwrap(),
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        for malformed in [
            json!(-1),
            json!(1e300),
            json!("2000000000"),
            json!([1]),
            json!({}),
        ] {
            assert!(exp(malformed.clone()).is_err(), "exp = {malformed}");
        }
    }
}
