//! Permissions an authenticator grants with its allow (an HTTP webhook's answer at CONNECT).
//!
//! They travel on the principal and come first when its permissions are compiled, before the
//! listener's authorizers, so a webhook's deny cannot be overridden by a broader policy rule;
//! their default (`next` unless the answer says otherwise) hands undecided requests on.

use std::borrow::Cow;

use super::authorizer::{AuthorizerOutcome, DefaultBehaviour, RuleSet};
use super::permission::Permission;

/// Permissions granted at authentication, with their default.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantedRules {
    /// The authenticator that granted them (shown in explanations and audit lines).
    pub authenticator: String,
    /// The permissions, first match wins.
    pub permissions: Vec<Permission>,
    /// What to answer when none of them decides.
    pub default: DefaultBehaviour,
}

impl GrantedRules {
    /// These rules as the first outcome of a chain.
    pub fn outcome(&self) -> AuthorizerOutcome<'_> {
        AuthorizerOutcome {
            authorizer: Cow::Borrowed(&self.authenticator),
            result: Ok(RuleSet {
                permissions: self.permissions.iter().map(Cow::Borrowed).collect(),
                default: self.default,
            }),
        }
    }
}
