//! The chain: the first decision that is not `next` wins, the end of the chain denies, a
//! failing authorizer fails closed, and rule sets from elsewhere (a webhook) splice in.

use std::borrow::Cow;

use tollgate_auth::permissions::{
    compile, compile_outcomes, Authorizer, AuthorizerChain, AuthorizerError, AuthorizerOutcome,
    DecidedBy, DefaultBehaviour, Permission, Reason, RuleOrigin, RuleSet, StaticRules,
};
use tollgate_auth::Principal;
use tollgate_mqtt::QoS;

fn rules(name: &str, filters: &[&str], default: DefaultBehaviour) -> StaticRules {
    StaticRules::new(
        name,
        filters
            .iter()
            .map(|f| Permission::allow(f).unwrap())
            .collect(),
        default,
    )
}

struct Failing;

impl Authorizer for Failing {
    fn name(&self) -> &str {
        "failing"
    }

    fn rules_for<'a>(&'a self, _: &Principal) -> Result<RuleSet<'a>, AuthorizerError> {
        Err(AuthorizerError::new("backend unreachable"))
    }
}

#[test]
fn next_passes_to_the_following_authorizer() {
    let chain = AuthorizerChain::new()
        .with(rules("first", &["a/#"], DefaultBehaviour::Next))
        .with(rules("second", &["b/#"], DefaultBehaviour::Deny));
    let p = compile(&Principal::anonymous("c"), &chain);
    assert!(p.check_publish("a/1", QoS::AtMostOnce, false).allowed);
    let b = p.check_publish("b/1", QoS::AtMostOnce, false);
    assert!(b.allowed);
    assert_eq!(p.rule(b.rule_index().unwrap()).unwrap().authorizer, 1);
    assert_eq!(p.authorizer_name(1), Some("second"));
    let c = p.check_publish("c", QoS::AtMostOnce, false);
    assert_eq!(c.reason, Reason::DefaultDeny);
    assert_eq!(p.default_decision().authorizer, Some(1));
}

#[test]
fn a_default_that_is_not_next_ends_the_chain() {
    let chain = AuthorizerChain::new()
        .with(rules("first", &["a/#"], DefaultBehaviour::Accept))
        .with(rules("second", &["b/#"], DefaultBehaviour::Deny));
    let principal = Principal::anonymous("c");
    let outcomes = chain.outcomes(&principal);
    assert_eq!(outcomes.len(), 1, "the second authorizer is not asked");
    let p = chain.compile(&Principal::anonymous("c"));
    assert_eq!(p.rules().len(), 1);
    assert_eq!(
        p.check_publish("anything", QoS::AtMostOnce, false).reason,
        Reason::DefaultAccept
    );
}

#[test]
fn the_end_of_the_chain_denies() {
    let chain = AuthorizerChain::new().with(rules("only", &["a"], DefaultBehaviour::Next));
    let p = chain.compile(&Principal::anonymous("c"));
    let d = p.check_publish("b", QoS::AtMostOnce, false);
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::EndOfChain);
    assert_eq!(d.decided_by, DecidedBy::Default);
    let empty = AuthorizerChain::new().compile(&Principal::anonymous("c"));
    assert_eq!(
        empty.check_publish("a", QoS::AtMostOnce, false).reason,
        Reason::EndOfChain
    );
}

#[test]
fn a_failing_authorizer_fails_closed_after_the_rules_before_it() {
    let chain = AuthorizerChain::new()
        .with(rules("first", &["a/#"], DefaultBehaviour::Next))
        .with(Failing)
        .with(rules("never", &["#"], DefaultBehaviour::Accept));
    let p = chain.compile(&Principal::anonymous("c"));
    assert!(p.check_publish("a/1", QoS::AtMostOnce, false).allowed);
    let d = p.check_publish("b", QoS::AtMostOnce, false);
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::AuthorizerFailed);
    assert_eq!(p.notes().len(), 1);
    assert!(p.notes()[0].to_string().contains("backend unreachable"));
    assert_eq!(
        p.describe(&d).to_string(),
        "denied: an authorizer failed (authorizer `failing`)"
    );
}

#[test]
fn a_webhook_answer_splices_into_the_chain() {
    let chain = AuthorizerChain::new().with(rules("policy", &["a/#"], DefaultBehaviour::Next));
    let principal = Principal::anonymous("c");
    let webhook = AuthorizerOutcome {
        authorizer: Cow::Borrowed("webhook"),
        result: Ok(RuleSet::owned(
            vec![Permission::allow("w/%c")
                .unwrap()
                .with_origin(RuleOrigin::Webhook {
                    name: "hook".into(),
                    entry: 0,
                })],
            DefaultBehaviour::Deny,
        )),
    };
    let outcomes = chain.outcomes(&principal).into_iter().chain([webhook]);
    let p = compile_outcomes(&principal, outcomes);
    let d = p.check_publish("w/c", QoS::AtMostOnce, false);
    assert!(d.allowed);
    assert_eq!(
        p.describe(&d).to_string(),
        "allowed by rule 1: allow all `w/%c` (`w/c`) from webhook `hook` entry 0 via `webhook`"
    );
}

#[test]
fn allow_all_and_deny_all() {
    assert!(
        tollgate_auth::permissions::CompiledPermissions::allow_all()
            .check_subscribe("#", QoS::ExactlyOnce, true)
            .allowed
    );
    assert!(
        !tollgate_auth::permissions::CompiledPermissions::deny_all()
            .check_publish("a", QoS::AtMostOnce, false)
            .allowed
    );
}

#[test]
fn compiled_permissions_and_chains_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<tollgate_auth::permissions::CompiledPermissions>();
    shareable::<AuthorizerChain>();
    shareable::<tollgate_auth::permissions::Decision>();
}
