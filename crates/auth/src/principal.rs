//! The identity a connection acts as.
//!
//! A principal is made once at CONNECT by the authentication chain (and again at
//! re-authentication). Every later decision is a question put to it and to the permissions
//! compiled from it. It separates the *client* (the device, e.g. from its certificate) from the
//! *user* (e.g. from a password or a token), because one connection can carry both.

use std::sync::Arc;
use std::time::SystemTime;

use crate::authentication::AuthenticatedBy;
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

/// Where a principal's user name (or own identity) came from. Names of different origins never
/// stand for one another: a session owned by the authenticated user `alice` cannot be taken by
/// a client that merely sent the user name `alice` on a listener that checks nothing, nor by
/// a certificate whose common name is `alice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NameOrigin {
    /// Vouched for by an authenticator (a password it checked, a token's claim, a webhook's
    /// answer). The default: whoever builds a principal says otherwise where it must.
    #[default]
    Authenticated,
    /// Read from the verified TLS client certificate.
    Certificate,
    /// Taken from CONNECT as sent, checked by nobody (an open listener without
    /// authenticators). Permissions for a user never apply to such a name.
    Unverified,
}

impl NameOrigin {
    fn label(self) -> &'static str {
        match self {
            NameOrigin::Authenticated => "user",
            NameOrigin::Certificate => "certificate",
            NameOrigin::Unverified => "unverified user",
        }
    }
}

/// Who owns the sessions a principal opens: a name and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Where the name came from.
    pub origin: NameOrigin,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.origin.label(), self.name)
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
    /// The issuer's distinguished name, as text (with the serial, what a CRL revokes).
    pub issuer: String,
    /// The serial number, lowercase hex of its DER bytes.
    pub serial_hex: String,
}

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Principal {
    /// The MQTT client identifier in use (after assignment, if the server assigned it).
    pub client_id: String,
    /// The user name from CONNECT, or the one an authenticator mapped (a token's `sub`).
    /// This is what `%u` and `${username}` stand for, when it is not unverified.
    pub username: Option<String>,
    /// Where the user name came from.
    pub username_origin: NameOrigin,
    /// The client's (device's) own identity when it differs from the user's, e.g. the
    /// certificate's common name when a password names the user.
    pub client_identity: Option<String>,
    /// Where the client identity came from (a certificate, or an authenticator).
    pub client_identity_origin: NameOrigin,
    /// The client authenticator that vouched for the client identity, when one did beside
    /// the user's (two identities on one CONNECT).
    pub client_identity_by: Option<String>,
    /// Roles, each with where it came from.
    pub roles: Vec<Attribute>,
    /// Groups, each with where it came from.
    pub groups: Vec<Attribute>,
    /// The client certificate, when the connection presented one (boxed: most connections
    /// have none, and every connection carries this field).
    pub certificate: Option<Box<CertificateInfo>>,
    /// The token's claims, when a token authenticated the connection.
    pub claims: Option<Arc<serde_json::Value>>,
    /// What allowed the connection (anonymous access, the certificate, an authenticator).
    pub authenticated_by: AuthenticatedBy,
    /// When the principal's rights end (a token's `exp`).
    pub expires_at: Option<SystemTime>,
    /// Permissions its authenticator granted (a webhook's answer); they come before the
    /// listener's authorizers.
    pub granted: Option<Arc<GrantedRules>>,
    /// The identity provider's tokens from the sign-in (the password grant), for a
    /// `provider` token issuer.
    pub provider_tokens: Option<Arc<crate::authentication::ProviderTokens>>,
}

impl Principal {
    /// A principal for an anonymous connection with this client identifier.
    pub fn anonymous(client_id: impl Into<String>) -> Self {
        Principal {
            client_id: client_id.into(),
            authenticated_by: AuthenticatedBy::Anonymous,
            ..Principal::default()
        }
    }

    /// The principal the chain's allow makes of a client: `identity` as the authenticator
    /// `by` vouched for it, the user name the client sent (kept when the authenticator mapped
    /// none), and the name its verified certificate gives (kept as the client's own identity
    /// when the authenticator gave none). Each name carries where it came from: a user name
    /// allowed by `anonymous` is unverified, one allowed by `certificate` comes from the
    /// certificate.
    pub fn from_allow(
        client_id: String,
        identity: crate::authentication::Identity,
        by: AuthenticatedBy,
        sent_username: Option<String>,
        certificate_name: Option<String>,
        certificate: Option<Box<CertificateInfo>>,
    ) -> Principal {
        let username_origin = match by {
            AuthenticatedBy::Anonymous => NameOrigin::Unverified,
            AuthenticatedBy::Certificate => NameOrigin::Certificate,
            AuthenticatedBy::Authenticator(_) => NameOrigin::Authenticated,
        };
        let (client_identity, client_identity_origin) = match identity.client_identity {
            Some(name) => (Some(name), NameOrigin::Authenticated),
            None => (certificate_name, NameOrigin::Certificate),
        };
        Principal {
            client_id,
            username: identity.username.or(sent_username),
            username_origin,
            client_identity,
            client_identity_origin,
            client_identity_by: identity.client_identity_by,
            roles: identity.roles,
            groups: identity.groups,
            certificate,
            claims: identity.claims,
            authenticated_by: by,
            expires_at: identity.expires_at,
            granted: identity.granted,
            provider_tokens: identity.provider_tokens,
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
    /// identity, each with its origin; `None` for an anonymous principal. A session may be
    /// taken over only by a principal with the same owner.
    pub fn owner(&self) -> Option<Owner> {
        match (&self.username, &self.client_identity) {
            (Some(name), _) => Some(Owner {
                origin: self.username_origin,
                name: name.clone(),
            }),
            (None, Some(name)) => Some(Owner {
                origin: self.client_identity_origin,
                name: name.clone(),
            }),
            (None, None) => None,
        }
    }

    /// The user name, unless nobody verified it: what permissions for a user, `%u` and
    /// `${username}` see.
    pub fn verified_username(&self) -> Option<&str> {
        match self.username_origin {
            NameOrigin::Unverified => None,
            _ => self.username.as_deref(),
        }
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

    #[test]
    fn owners_of_different_origins_never_compare_equal() {
        let user = Principal {
            username: Some("alice".into()),
            ..Principal::anonymous("c")
        };
        let unverified = Principal {
            username_origin: NameOrigin::Unverified,
            ..user.clone()
        };
        let certificate = Principal {
            client_identity: Some("alice".into()),
            client_identity_origin: NameOrigin::Certificate,
            ..Principal::anonymous("c")
        };
        assert_ne!(user.owner(), unverified.owner());
        assert_ne!(user.owner(), certificate.owner());
        assert_ne!(unverified.owner(), certificate.owner());
        assert_eq!(unverified.verified_username(), None);
        assert_eq!(user.verified_username(), Some("alice"));
        assert_eq!(Principal::anonymous("c").owner(), None);
    }
}
