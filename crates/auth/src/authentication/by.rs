//! Who vouched for a client: the chain's own rules (anonymous access, a verified certificate)
//! or one of its authenticators, by name. Typed, so an authenticator that happens to be named
//! `anonymous` or `certificate` is still an authenticator: what a name is worth (verified,
//! unverified, from a certificate) follows from the variant, never from the text.

use std::fmt;
use std::sync::Arc;

/// What allowed a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum AuthenticatedBy {
    /// No credentials were needed: the listener allows anonymous access (a user name sent is
    /// unverified).
    #[default]
    Anonymous,
    /// The verified client certificate (`certificate_identity = "username"`, or a listener
    /// where the certificate suffices).
    Certificate,
    /// The authenticator of this name.
    Authenticator(Arc<str>),
}

impl AuthenticatedBy {
    /// The authenticator of this name.
    pub fn authenticator(name: &str) -> AuthenticatedBy {
        AuthenticatedBy::Authenticator(name.into())
    }

    /// As logs, audit lines and `tollgate check` write it: `anonymous`, `certificate` or the
    /// authenticator's name.
    pub fn as_str(&self) -> &str {
        match self {
            AuthenticatedBy::Anonymous => "anonymous",
            AuthenticatedBy::Certificate => "certificate",
            AuthenticatedBy::Authenticator(name) => name,
        }
    }

    /// The authenticator's name, when an authenticator allowed it.
    pub fn authenticator_name(&self) -> Option<&str> {
        match self {
            AuthenticatedBy::Authenticator(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for AuthenticatedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authenticator_named_like_a_rule_is_still_an_authenticator() {
        let named = AuthenticatedBy::authenticator("certificate");
        assert_ne!(named, AuthenticatedBy::Certificate);
        assert_eq!(named.authenticator_name(), Some("certificate"));
        assert_eq!(AuthenticatedBy::Certificate.authenticator_name(), None);
        assert_eq!(AuthenticatedBy::Anonymous.to_string(), "anonymous");
    }
}
