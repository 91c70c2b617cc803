//! Permissions an authenticator grants with its allow (an HTTP webhook's answer at CONNECT).
//!
//! They travel on the principal and come first when its permissions are compiled, before the
//! listener's authorizers, so a webhook's deny cannot be overridden by a broader policy rule;
//! their default (`next` unless the answer says otherwise) hands undecided requests on.

use std::borrow::Cow;

use crate::principal::Principal;

use super::authorizer::{AuthorizerOutcome, DefaultBehaviour, RuleSet};
use super::compile::compile_outcomes;
use super::compiled::CompiledPermissions;
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

/// The permissions of a principal on a listener with no authorizer: its granted rules, then
/// everything allowed (as for every client of such a listener); `None` when it was granted
/// none (it is then unrestricted).
pub fn compile_granted_only(principal: &Principal) -> Option<CompiledPermissions> {
    let granted = principal.granted.as_ref()?;
    Some(compile_outcomes(
        principal,
        [
            granted.outcome(),
            AuthorizerOutcome {
                authorizer: "default".into(),
                result: Ok(RuleSet::empty(DefaultBehaviour::Accept)),
            },
        ],
    ))
}
