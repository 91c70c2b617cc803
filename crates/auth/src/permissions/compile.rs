//! Compiling: from a chain's rule sets and a principal to [`CompiledPermissions`].
//!
//! Done once per principal (at CONNECT, at re-authentication, after a policy reload): the
//! rule sets are concatenated in chain order up to the first authorizer whose default is not
//! `Next` (or that failed), each permission's placeholders are substituted (a permission may
//! yield no rule, one, or one per role), and the indexes are built.

use std::sync::Arc;

use crate::principal::Principal;

use super::authorizer::{AuthorizerChain, AuthorizerOutcome, DefaultBehaviour};
use super::compiled::{CompileNote, CompiledPermissions, CompiledRule, DefaultDecision};
use super::decision::Reason;

/// Compiles `chain` for `principal`.
pub fn compile(principal: &Principal, chain: &AuthorizerChain) -> CompiledPermissions {
    chain.compile(principal)
}

/// Compiles rule sets obtained elsewhere (for instance the chain's
/// [`outcomes`](AuthorizerChain::outcomes) with a webhook's answer spliced in), in order.
pub fn compile_outcomes<'a>(
    principal: &Principal,
    outcomes: impl IntoIterator<Item = AuthorizerOutcome<'a>>,
) -> CompiledPermissions {
    let mut rules = Vec::new();
    let mut authorizers = Vec::new();
    let mut notes = Vec::new();
    let mut default = DefaultDecision {
        allowed: false,
        reason: Reason::EndOfChain,
        authorizer: None,
    };
    for outcome in outcomes {
        let authorizer = authorizers.len();
        authorizers.push(outcome.authorizer.to_string());
        let set = match outcome.result {
            Ok(set) => set,
            Err(error) => {
                notes.push(CompileNote {
                    authorizer: outcome.authorizer.to_string(),
                    origin: None,
                    message: format!("failed, denying what it would decide: {error}"),
                });
                default = DefaultDecision {
                    allowed: false,
                    reason: Reason::AuthorizerFailed,
                    authorizer: Some(authorizer),
                };
                break;
            }
        };
        for permission in set.permissions.iter() {
            let mut emit = |filter: Arc<str>| {
                rules.push(CompiledRule {
                    filter,
                    template: permission.filter.text().clone(),
                    effect: permission.effect,
                    activity: permission.activity,
                    qos: permission.qos,
                    retain: permission.retain,
                    shared_subscriptions: permission.shared_subscriptions,
                    origin: permission.origin.clone(),
                    authorizer,
                });
            };
            let mut note = |message: String| {
                notes.push(CompileNote {
                    authorizer: outcome.authorizer.to_string(),
                    origin: Some(permission.origin.clone()),
                    message,
                });
            };
            permission
                .filter
                .expand(principal, permission.effect, &mut emit, &mut note);
        }
        let (allowed, reason) = match set.default {
            DefaultBehaviour::Next => continue,
            DefaultBehaviour::Accept => (true, Reason::DefaultAccept),
            DefaultBehaviour::Deny => (false, Reason::DefaultDeny),
        };
        default = DefaultDecision {
            allowed,
            reason,
            authorizer: Some(authorizer),
        };
        break;
    }
    CompiledPermissions::new(rules, authorizers, default, notes)
}
