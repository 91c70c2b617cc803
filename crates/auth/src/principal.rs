//! The identity a connection acts as.
//!
//! A principal is made once at CONNECT by the authentication chain (and again at
//! re-authentication). Every later decision is a question put to it and to the permissions
//! compiled from it. It separates the *client* (the device, e.g. from its certificate) from the
//! *user* (e.g. from a password or a token), because one connection can carry both.

use std::sync::Arc;
use std::time::SystemTime;

use crate::permissions::GrantedRules;

/// Where a piece of identity came from, for audit lines and `tollgate check`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The CONNECT packet itself (client identifier, user name).
    Connect,
    /// A named authenticator of the chain (e.g. `password_file`, `jwt:keycloak`).
    Authenticator(String),
    /// A field of the TLS client certificate.
    Certificate,
    /// A claim of a token, by its path (e.g. `realm_access.roles`).
    Claim(String),
    /// A policy file, with its path.
    PolicyFile(String),
}

/// A value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The value (a role name, a group name…).
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

impl Attribute {
    /// An attribute with its source.
    pub fn new(value: impl Into<String>, source: Source) -> Self {
        Attribute {
            value: value.into(),
            source,
        }
    }
}

/// What the broker knows of a TLS client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateInfo {
    /// Subject common name.
    pub common_name: Option<String>,
    /// Subject alternative names (DNS names, e-mail addresses, URIs), as text.
    pub subject_alt_names: Vec<String>,
    /// SHA-256 fingerprint of the DER certificate, lowercase hex.
    pub fingerprint_sha256: String,
}

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Principal {
    /// The MQTT client identifier in use (after assignment, if the server assigned it).
    pub client_id: String,
    /// The user name from CONNECT, or the one an authenticator mapped (a token's `sub`).
    /// This is what `%u` and `${username}` stand for.
    pub username: Option<String>,
    /// The client's (device's) own identity when it differs from the user's, e.g. the
    /// certificate's common name when a password names the user.
    pub client_identity: Option<String>,
    /// Roles, each with where it came from.
    pub roles: Vec<Attribute>,
    /// Groups, each with where it came from.
    pub groups: Vec<Attribute>,
    /// The client certificate, when the connection presented one (boxed: most connections
    /// have none, and every connection carries this field).
    pub certificate: Option<Box<CertificateInfo>>,
    /// The token's claims, when a token authenticated the connection.
    pub claims: Option<Arc<serde_json::Value>>,
    /// The authenticator that allowed the connection (`anonymous` when none was needed).
    pub authenticated_by: String,
    /// When the principal's rights end (a token's `exp`).
    pub expires_at: Option<SystemTime>,
    /// Permissions its authenticator granted (a webhook's answer); they come before the
    /// listener's authorizers.
    pub granted: Option<Arc<GrantedRules>>,
}

impl Principal {
    /// A principal for an anonymous connection with this client identifier.
    pub fn anonymous(client_id: impl Into<String>) -> Self {
        Principal {
            client_id: client_id.into(),
            authenticated_by: "anonymous".into(),
            ..Principal::default()
        }
    }

    /// The value of a claim by dotted path (`realm_access.roles`, `https://example.com/roles`
    /// can be given with the path as one segment by the caller), if the principal has claims.
    pub fn claim(&self, path: &str) -> Option<&serde_json::Value> {
        let claims = self.claims.as_deref()?;
        if let Some(v) = claims.get(path) {
            return Some(v);
        }
        path.split('.').try_fold(claims, |v, key| v.get(key))
    }

    /// Who owns the sessions this principal opens: the user name, else the client's own
    /// identity; `None` for an anonymous principal. A session may be taken over only by a
    /// principal with the same owner.
    pub fn owner(&self) -> Option<&str> {
        self.username.as_deref().or(self.client_identity.as_deref())
    }

    /// Whether the principal has role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.value == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_looks_up_whole_keys_first_then_dotted_paths() {
        let claims = serde_json::json!({
            "sub": "dev-1",
            "realm_access": { "roles": ["device"] },
            "https://example.com/roles": ["admin"],
        });
        let p = Principal {
            claims: Some(Arc::new(claims)),
            ..Principal::anonymous("c")
        };
        assert_eq!(p.claim("sub"), Some(&serde_json::json!("dev-1")));
        assert_eq!(
            p.claim("realm_access.roles"),
            Some(&serde_json::json!(["device"]))
        );
        assert_eq!(
            p.claim("https://example.com/roles"),
            Some(&serde_json::json!(["admin"]))
        );
        assert_eq!(p.claim("missing.path"), None);
    }
}
