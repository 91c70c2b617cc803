//! The examples of HiveMQ's authorization documentation, reproduced: the three topic
//! permission ordering examples, the blacklist and the whitelist.

use tollgate_auth::permissions::{
    Activity, AuthorizerChain, CompiledPermissions, DecidedBy, DefaultBehaviour, Permission,
    QosSet, Reason, RetainCoverage, StaticRules,
};
use tollgate_auth::Principal;
use tollgate_mqtt::QoS;

fn compile(
    rules: Vec<Permission>,
    default: DefaultBehaviour,
    client_id: &str,
) -> CompiledPermissions {
    AuthorizerChain::new()
        .with(StaticRules::new("example", rules, default))
        .compile(&Principal::anonymous(client_id))
}

fn qos(level: u8) -> QosSet {
    QosSet::only(level).unwrap()
}

#[test]
fn example_1_the_first_permission_for_a_topic_decides_its_qos() {
    let p = compile(
        vec![
            Permission::allow("client/+/status")
                .unwrap()
                .with_qos(qos(1)),
            Permission::allow("client/+/status").unwrap(),
        ],
        DefaultBehaviour::Deny,
        "c",
    );
    let at_qos_1 = p.check_publish("client/a/status", QoS::AtLeastOnce, false);
    assert!(at_qos_1.allowed);
    assert_eq!(at_qos_1.decided_by, DecidedBy::Rule(0));
    // The second permission would allow QoS 2 but is never reached.
    let at_qos_2 = p.check_publish("client/a/status", QoS::ExactlyOnce, false);
    assert!(!at_qos_2.allowed);
    assert_eq!(at_qos_2.decided_by, DecidedBy::Rule(0));
    assert_eq!(at_qos_2.reason, Reason::QosNotPermitted);
    let subscribe = p.check_subscribe("client/+/status", QoS::ExactlyOnce, false);
    assert!(!subscribe.allowed);
    assert_eq!(subscribe.decided_by, DecidedBy::Rule(0));
    assert!(
        p.check_subscribe("client/+/status", QoS::AtLeastOnce, false)
            .allowed
    );
}

#[test]
fn example_2_allow_before_deny_keeps_the_status_topics() {
    let p = compile(
        vec![
            Permission::allow("client/+/status").unwrap(),
            Permission::deny("client/#").unwrap(),
        ],
        DefaultBehaviour::Deny,
        "c",
    );
    let status = p.check_publish("client/a/status", QoS::AtMostOnce, false);
    assert!(status.allowed);
    assert_eq!(status.decided_by, DecidedBy::Rule(0));
    let other = p.check_publish("client/a/other", QoS::AtMostOnce, false);
    assert!(!other.allowed);
    assert_eq!(other.decided_by, DecidedBy::Rule(1));
    assert_eq!(other.reason, Reason::RuleDenies);
    assert!(
        p.check_subscribe("client/+/status", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(
        !p.check_subscribe("client/#", QoS::AtMostOnce, false)
            .allowed
    );
}

#[test]
fn example_3_deny_first_hides_the_later_allow() {
    let p = compile(
        vec![
            Permission::deny("client/#").unwrap(),
            Permission::allow("client/+/status").unwrap(),
        ],
        DefaultBehaviour::Deny,
        "c",
    );
    let status = p.check_publish("client/a/status", QoS::AtMostOnce, false);
    assert!(!status.allowed);
    assert_eq!(status.decided_by, DecidedBy::Rule(0));
    let subscribe = p.check_subscribe("client/+/status", QoS::AtMostOnce, false);
    assert!(!subscribe.allowed);
    assert_eq!(subscribe.decided_by, DecidedBy::Rule(0));
    // The explanation names the allow rule that matched too late.
    let explanation = p.explain(&tollgate_auth::permissions::Request::Publish {
        topic: "client/a/status",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    assert_eq!(explanation.deciding_rule.as_ref().unwrap().index, 0);
    assert_eq!(explanation.later_matches.len(), 1);
    assert_eq!(explanation.later_matches[0].index, 1);
}

#[test]
fn blacklist_denies_other_client_topics_and_accepts_the_rest() {
    let rules = vec![
        Permission::allow("client/%c").unwrap().with_qos(qos(1)),
        Permission::deny("client/#")
            .unwrap()
            .for_activity(Activity::Subscribe),
    ];
    let p = compile(rules, DefaultBehaviour::Accept, "me");
    assert!(
        p.check_subscribe("client/me", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        !p.check_subscribe("client/other", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        !p.check_subscribe("client/+", QoS::AtLeastOnce, false)
            .allowed
    );
    let elsewhere = p.check_subscribe("weather/+", QoS::ExactlyOnce, false);
    assert!(elsewhere.allowed);
    assert_eq!(elsewhere.reason, Reason::DefaultAccept);
    // The deny is for subscriptions only.
    assert!(
        p.check_publish("client/other", QoS::AtMostOnce, false)
            .allowed
    );
}

#[test]
fn whitelist_allows_only_what_is_listed() {
    let rules = vec![
        Permission::allow("client/%c")
            .unwrap()
            .with_qos(qos(1))
            .for_activity(Activity::Subscribe),
        Permission::allow("client/#")
            .unwrap()
            .for_activity(Activity::Publish)
            .with_retain(RetainCoverage::NotRetained),
    ];
    let p = compile(rules, DefaultBehaviour::Deny, "me");
    assert!(
        p.check_subscribe("client/me", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        !p.check_subscribe("client/other", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        p.check_publish("client/other", QoS::ExactlyOnce, false)
            .allowed
    );
    let retained = p.check_publish("client/other", QoS::AtMostOnce, true);
    assert!(!retained.allowed);
    assert_eq!(retained.reason, Reason::RetainNotPermitted);
    let elsewhere = p.check_publish("weather", QoS::AtMostOnce, false);
    assert!(!elsewhere.allowed);
    assert_eq!(elsewhere.reason, Reason::DefaultDeny);
}
