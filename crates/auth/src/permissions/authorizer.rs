//! Authorizers and their chain.
//!
//! An authorizer gives, for a principal, an ordered list of permissions and a default
//! behaviour for when none of them decides: accept, deny, or next (let the next authorizer
//! decide). Authorizers form a chain; for a request, the first authorizer whose permissions
//! decide, or whose default is not `Next`, gives the answer; past the end of the chain the
//! answer is deny. Compiling the chain for a principal (see [`compile`](super::compile()))
//! concatenates the permissions of the authorizers up to the first whose default is not
//! `Next`, which gives the same answers in one list.
//!
//! Sources that need I/O at CONNECT (an HTTP webhook) fit by producing a [`RuleSet`] outside
//! the chain and handing it to [`compile_outcomes`](super::compile_outcomes) beside the
//! chain's own [`AuthorizerChain::outcomes`], or by being wrapped in [`StaticRules`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::principal::Principal;

use super::compile::compile_outcomes;
use super::compiled::CompiledPermissions;
use super::permission::Permission;

/// What an authorizer answers when none of its permissions decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultBehaviour {
    /// Allow.
    Accept,
    /// Deny.
    Deny,
    /// Let the next authorizer of the chain decide (deny at the end of the chain).
    Next,
}

impl fmt::Display for DefaultBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefaultBehaviour::Accept => "accept",
            DefaultBehaviour::Deny => "deny",
            DefaultBehaviour::Next => "next",
        })
    }
}

/// An authorizer's answer for one principal: its permissions, in order, and its default.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet<'a> {
    /// The permissions, first match wins. Borrowed from the authorizer when it keeps them
    /// (policy files), owned when made for the principal (claims, webhooks).
    pub permissions: Vec<Cow<'a, Permission>>,
    /// What to answer when none of them decides.
    pub default: DefaultBehaviour,
}

impl<'a> RuleSet<'a> {
    /// A rule set with no permissions.
    pub fn empty(default: DefaultBehaviour) -> RuleSet<'a> {
        RuleSet {
            permissions: Vec::new(),
            default,
        }
    }

    /// A rule set owning its permissions.
    pub fn owned(permissions: Vec<Permission>, default: DefaultBehaviour) -> RuleSet<'static> {
        RuleSet {
            permissions: permissions.into_iter().map(Cow::Owned).collect(),
            default,
        }
    }
}

/// Why an authorizer could not answer (a malformed claim, an unreachable webhook). The chain
/// fails closed: the compiled permissions deny everything its earlier authorizers did not
/// decide, and keep the message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerError {
    /// What went wrong, for the log.
    pub message: String,
}

impl AuthorizerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> AuthorizerError {
        AuthorizerError {
            message: message.into(),
        }
    }
}

impl fmt::Display for AuthorizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthorizerError {}

/// A source of permissions: a policy file, an ACL file, token claims, rules in code.
///
/// Authorizers are synchronous: everything they need is in memory or in the principal.
pub trait Authorizer: Send + Sync {
    /// The authorizer's name, for explanations (`policy`, `acl_file`, `claims`).
    fn name(&self) -> &str;

    /// The permissions and the default for `principal`.
    fn rules_for<'a>(&'a self, principal: &Principal) -> Result<RuleSet<'a>, AuthorizerError>;
}

/// One authorizer's answer, named, ready to compile.
#[derive(Debug, Clone)]
pub struct AuthorizerOutcome<'a> {
    /// The authorizer's name.
    pub authorizer: Cow<'a, str>,
    /// Its rule set, or why it had none.
    pub result: Result<RuleSet<'a>, AuthorizerError>,
}

/// Fixed permissions, the same for every principal (placeholders are still substituted).
/// Also the way to put rules fetched elsewhere (a webhook's answer) into a chain.
#[derive(Debug, Clone)]
pub struct StaticRules {
    name: String,
    permissions: Vec<Permission>,
    default: DefaultBehaviour,
}

impl StaticRules {
    /// Named fixed permissions with a default.
    pub fn new(
        name: impl Into<String>,
        permissions: Vec<Permission>,
        default: DefaultBehaviour,
    ) -> StaticRules {
        StaticRules {
            name: name.into(),
            permissions,
            default,
        }
    }
}

impl Authorizer for StaticRules {
    fn name(&self) -> &str {
        &self.name
    }

    fn rules_for<'a>(&'a self, _principal: &Principal) -> Result<RuleSet<'a>, AuthorizerError> {
        Ok(RuleSet {
            permissions: self.permissions.iter().map(Cow::Borrowed).collect(),
            default: self.default,
        })
    }
}

/// An ordered chain of authorizers.
#[derive(Clone, Default)]
pub struct AuthorizerChain {
    authorizers: Vec<Arc<dyn Authorizer>>,
}

impl AuthorizerChain {
    /// An empty chain (it denies everything).
    pub fn new() -> AuthorizerChain {
        AuthorizerChain::default()
    }

    /// The chain with `authorizer` added at the end.
    pub fn with(mut self, authorizer: impl Authorizer + 'static) -> AuthorizerChain {
        self.authorizers.push(Arc::new(authorizer));
        self
    }

    /// Adds a shared authorizer at the end.
    pub fn push(&mut self, authorizer: Arc<dyn Authorizer>) {
        self.authorizers.push(authorizer);
    }

    /// The authorizers, in order.
    pub fn authorizers(&self) -> &[Arc<dyn Authorizer>] {
        &self.authorizers
    }

    /// The number of authorizers.
    pub fn len(&self) -> usize {
        self.authorizers.len()
    }

    /// Whether the chain has no authorizer.
    pub fn is_empty(&self) -> bool {
        self.authorizers.is_empty()
    }

    /// Asks the authorizers in order, stopping after the first whose answer ends the chain
    /// (an error, or a default that is not `Next`): later ones could never decide. Rules
    /// the principal was granted at authentication (a webhook's answer) come first.
    pub fn outcomes<'a>(&'a self, principal: &'a Principal) -> Vec<AuthorizerOutcome<'a>> {
        let mut outcomes = Vec::with_capacity(self.authorizers.len() + 1);
        if let Some(granted) = &principal.granted {
            let ends_chain = granted.default != DefaultBehaviour::Next;
            outcomes.push(granted.outcome());
            if ends_chain {
                return outcomes;
            }
        }
        for authorizer in &self.authorizers {
            let result = authorizer.rules_for(principal);
            let ends_chain = !matches!(&result, Ok(set) if set.default == DefaultBehaviour::Next);
            outcomes.push(AuthorizerOutcome {
                authorizer: Cow::Borrowed(authorizer.name()),
                result,
            });
            if ends_chain {
                break;
            }
        }
        outcomes
    }

    /// Compiles the chain's permissions for `principal`.
    pub fn compile(&self, principal: &Principal) -> CompiledPermissions {
        compile_outcomes(principal, self.outcomes(principal))
    }
}

impl fmt::Debug for AuthorizerChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.authorizers.iter().map(|a| a.name()))
            .finish()
    }
}
