//! Subscriptions are allowed only when the whole requested filter lies inside what is
//! allowed; a deny (or a refusing allow) that overlaps it first refuses it.

use tollgate_auth::permissions::{
    Activity, AuthorizerChain, CompiledPermissions, DecidedBy, DefaultBehaviour, Permission,
    QosSet, Reason, StaticRules,
};
use tollgate_auth::Principal;
use tollgate_mqtt::QoS;

fn compile(rules: Vec<Permission>) -> CompiledPermissions {
    AuthorizerChain::new()
        .with(StaticRules::new("test", rules, DefaultBehaviour::Deny))
        .compile(&Principal::anonymous("c"))
}

#[test]
fn an_allow_must_cover_the_whole_filter() {
    let p = compile(vec![
        Permission::allow("a/#").unwrap(),
        Permission::allow("b/+").unwrap(),
    ]);
    assert!(p.check_subscribe("a/+/b", QoS::AtMostOnce, false).allowed);
    assert!(p.check_subscribe("a", QoS::AtMostOnce, false).allowed);
    assert!(p.check_subscribe("b/x", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_subscribe("b/#", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_subscribe("#", QoS::AtMostOnce, false).allowed);
}

#[test]
fn an_allow_that_only_overlaps_passes_over_to_a_later_cover() {
    let p = compile(vec![
        Permission::allow("a/b").unwrap(),
        Permission::allow("a/#").unwrap(),
    ]);
    let d = p.check_subscribe("a/+", QoS::AtMostOnce, false);
    assert!(d.allowed);
    assert_eq!(d.decided_by, DecidedBy::Rule(1));
}

#[test]
fn an_overlapping_deny_before_the_cover_withholds_its_part_at_delivery() {
    let p = compile(vec![
        Permission::deny("a/secret").unwrap(),
        Permission::allow("a/#").unwrap(),
    ]);
    assert!(
        p.check_subscribe("a/public", QoS::AtMostOnce, false)
            .allowed
    );
    // The deny only overlaps `a/+`: the subscription is granted by the cover…
    let d = p.check_subscribe("a/+", QoS::AtMostOnce, false);
    assert!(d.allowed);
    assert_eq!(d.decided_by, DecidedBy::Rule(1));
    // …and what the deny holds back is withheld message by message.
    assert!(p.check_receive("a/public", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_receive("a/secret", QoS::AtMostOnce, false).allowed);
    // A deny that covers the requested filter refuses it.
    let d = p.check_subscribe("a/secret", QoS::AtMostOnce, false);
    assert!(!d.allowed);
    assert_eq!(
        (d.decided_by, d.reason),
        (DecidedBy::Rule(0), Reason::RuleDenies)
    );
}

#[test]
fn an_overlapping_allow_with_narrower_qos_withholds_its_part_at_that_qos() {
    let p = compile(vec![
        Permission::allow("a/b")
            .unwrap()
            .with_qos(QosSet::only(0).unwrap()),
        Permission::allow("a/#").unwrap(),
    ]);
    assert!(p.check_subscribe("a/+", QoS::AtMostOnce, false).allowed);
    assert!(p.check_subscribe("a/+", QoS::AtLeastOnce, false).allowed);
    assert!(!p.check_receive("a/b", QoS::AtLeastOnce, false).allowed);
    assert!(p.check_receive("a/b", QoS::AtMostOnce, false).allowed);
    let d = p.check_subscribe("a/b", QoS::AtLeastOnce, false);
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::QosNotPermitted);
}

#[test]
fn a_deny_for_other_qos_levels_passes_over() {
    let p = compile(vec![
        Permission::deny("a/#")
            .unwrap()
            .with_qos(QosSet::only(2).unwrap()),
        Permission::allow("a/#").unwrap(),
    ]);
    assert!(p.check_subscribe("a/+", QoS::AtLeastOnce, false).allowed);
    assert!(!p.check_subscribe("a/+", QoS::ExactlyOnce, false).allowed);
    assert!(p.check_publish("a/x", QoS::AtLeastOnce, false).allowed);
    assert!(!p.check_publish("a/x", QoS::ExactlyOnce, false).allowed);
}

#[test]
fn shared_subscriptions_need_a_rule_that_covers_them() {
    let p = compile(vec![
        Permission::allow("jobs/#")
            .unwrap()
            .for_activity(Activity::Subscribe)
            .with_shared_subscriptions(false),
        Permission::allow("work/#").unwrap(),
        Permission::deny("other/#")
            .unwrap()
            .with_shared_subscriptions(false),
        Permission::allow("other/#").unwrap(),
    ]);
    assert!(p.check_subscribe("jobs/+", QoS::AtMostOnce, false).allowed);
    let shared = p.check_subscribe("jobs/+", QoS::AtMostOnce, true);
    assert!(!shared.allowed);
    assert_eq!(shared.reason, Reason::SharedSubscriptionNotPermitted);
    assert!(p.check_subscribe("work/+", QoS::AtMostOnce, true).allowed);
    // A deny that does not cover shared subscriptions leaves them to later rules.
    assert!(!p.check_subscribe("other/x", QoS::AtMostOnce, false).allowed);
    assert!(p.check_subscribe("other/x", QoS::AtMostOnce, true).allowed);
}

#[test]
fn dollar_topics_are_not_reached_by_leading_wildcards() {
    let p = compile(vec![
        Permission::allow("#").unwrap(),
        Permission::allow("$SYS/broker/#")
            .unwrap()
            .for_activity(Activity::Subscribe),
    ]);
    assert!(p.check_subscribe("#", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_subscribe("$SYS/#", QoS::AtMostOnce, false).allowed);
    assert!(
        p.check_subscribe("$SYS/broker/+", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(
        !p.check_publish("$SYS/broker/x", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(
        p.check_receive("$SYS/broker/x", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(
        !p.check_receive("$SYS/other", QoS::AtMostOnce, false)
            .allowed
    );
    // A leading-wildcard deny does not reach `$SYS` either.
    let p = compile(vec![
        Permission::deny("#").unwrap(),
        Permission::allow("$SYS/#").unwrap(),
    ]);
    assert!(p.check_subscribe("$SYS/#", QoS::AtMostOnce, false).allowed);
}

#[test]
fn invalid_requests_are_denied() {
    // (A QoS above 2 cannot be asked: it is not a `QoS`.)
    let p = compile(vec![Permission::allow("#").unwrap()]);
    for (allowed, what) in [
        (
            p.check_publish("a/+", QoS::AtMostOnce, false).allowed,
            "wildcard topic",
        ),
        (
            p.check_publish("", QoS::AtMostOnce, false).allowed,
            "empty topic",
        ),
        (
            p.check_subscribe("a/#/b", QoS::AtMostOnce, false).allowed,
            "bad filter",
        ),
        (
            p.check_receive("a/#", QoS::AtMostOnce, false).allowed,
            "wildcard topic",
        ),
    ] {
        assert!(!allowed, "{what}");
    }
    assert_eq!(
        p.check_publish("a/+", QoS::AtMostOnce, false).reason,
        Reason::InvalidRequest
    );
}
