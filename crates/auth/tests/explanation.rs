//! What `tollgate check` prints: the decision, the deciding rule with its origin, the rules
//! passed over before it and those that matched after it.

use tollgate_auth::permissions::{AuthorizerChain, Request, RuleRelation, RuleVerdict};
use tollgate_auth::policy::PolicyFile;
use tollgate_auth::Principal;
use tollgate_mqtt::QoS;

const POLICY: &str = r##"
[[patterns]]
filter = "a/b"
activity = "subscribe"
[[patterns]]
filter = "a/secret"
effect = "deny"
[[patterns]]
filter = "a/#"
[[patterns]]
filter = "+/+"
"##;

#[test]
fn explains_the_decider_what_passed_over_and_what_came_after() {
    let permissions = AuthorizerChain::new()
        .with(PolicyFile::parse(POLICY, "policy.toml").unwrap())
        .compile(&Principal::anonymous("c"));
    let explanation = permissions.explain(&Request::Subscribe {
        filter: "a/+",
        qos: QoS::AtLeastOnce,
        shared: false,
    });
    assert!(explanation.decision.allowed);
    let decider = explanation.deciding_rule.as_ref().unwrap();
    assert_eq!(decider.index, 2);
    assert_eq!(decider.relation, RuleRelation::Covers);
    assert_eq!(explanation.passed_over.len(), 2);
    assert_eq!(explanation.passed_over[0].verdict, RuleVerdict::PassesOver);
    assert!(matches!(
        explanation.passed_over[1].verdict,
        RuleVerdict::WithholdsPart(_)
    ));
    assert_eq!(explanation.later_matches.len(), 1);
    assert_eq!(
        explanation.to_string(),
        "subscribe `a/+` QoS 1: ALLOWED
  allowed by rule 2: allow all `a/#` from policy.toml:8 (patterns) via `policy`
  matched before it, without deciding:
    rule 0: allow subscribe `a/b` from policy.toml:2 (patterns) via `policy` — overlaps without covering, passes over
    rule 1: deny all `a/secret` from policy.toml:5 (patterns) via `policy` — overlaps without covering: its messages are withheld at delivery (denied by rule)
  also matched after it (ignored: first match wins):
    rule 3: allow all `+/+` from policy.toml:10 (patterns) via `policy` — covers, would allow
"
    );
    // The part the deny rule holds back: a message on a/secret is not delivered.
    assert!(
        !permissions
            .check_receive("a/secret", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        permissions
            .check_receive("a/other", QoS::AtLeastOnce, false)
            .allowed
    );
}

#[test]
fn explains_a_default_decision() {
    let permissions = AuthorizerChain::new()
        .with(PolicyFile::parse(POLICY, "policy.toml").unwrap())
        .compile(&Principal::anonymous("c"));
    let explanation = permissions.explain(&Request::Publish {
        topic: "x/y/z",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    assert_eq!(
        explanation.to_string(),
        "publish `x/y/z` QoS 0: DENIED\n  denied by default (authorizer `policy`)\n"
    );
}
