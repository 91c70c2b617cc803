//! The compiled index gives exactly the decision (and the deciding rule) of the plain ordered
//! scan, on random rule sets and random topics and filters.

use proptest::prelude::*;
use tollgate_auth::permissions::topic_match::{is_valid_topic_filter, is_valid_topic_name};
use tollgate_auth::permissions::{
    Activity, AuthorizerChain, DefaultBehaviour, Effect, Permission, QosSet, Request,
    RetainCoverage, RuleOrigin, StaticRules, TopicTemplate,
};
use tollgate_auth::Principal;
use tollgate_mqtt::QoS;

const LITERALS: [&str; 13] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "$s", "",
];

fn literal_level() -> impl Strategy<Value = &'static str> {
    // Few literals most of the time (many collisions), all of them sometimes (many children).
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "$s", ""]),
        1 => prop::sample::select(LITERALS.to_vec()),
    ]
}

fn level() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => literal_level(), 1 => Just("+")]
}

/// A valid filter: levels, maybe `#` (the empty string, which is no filter, becomes `#`).
fn filter() -> impl Strategy<Value = String> {
    (prop::collection::vec(level(), 0..=4), any::<bool>()).prop_map(|(mut levels, multi)| {
        if multi {
            levels.push("#");
        }
        let filter = levels.join("/");
        if filter.is_empty() {
            "#".to_owned()
        } else {
            filter
        }
    })
}

/// A valid topic name (the empty string, which is no topic, becomes `a`).
fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(literal_level(), 1..=5).prop_map(|levels| {
        let topic = levels.join("/");
        if topic.is_empty() {
            "a".to_owned()
        } else {
            topic
        }
    })
}

fn permission() -> impl Strategy<Value = Permission> {
    (
        filter(),
        any::<bool>(),
        0..3u8,
        1..8u8,
        0..3u8,
        any::<bool>(),
    )
        .prop_map(|(filter, allow, activity, qos_bits, retain, shared)| {
            let effect = if allow { Effect::Allow } else { Effect::Deny };
            let qos = QosSet::from_levels((0..3).filter(|q| qos_bits & (1 << q) != 0)).unwrap();
            Permission::new(
                effect,
                TopicTemplate::literal(&filter).unwrap(),
                RuleOrigin::code("proptest"),
            )
            .for_activity(
                [Activity::Publish, Activity::Subscribe, Activity::All][activity as usize],
            )
            .with_qos(qos)
            .with_retain(
                [
                    RetainCoverage::All,
                    RetainCoverage::RetainedOnly,
                    RetainCoverage::NotRetained,
                ][retain as usize],
            )
            .with_shared_subscriptions(shared)
        })
}

fn default_behaviour() -> impl Strategy<Value = DefaultBehaviour> {
    prop::sample::select(vec![
        DefaultBehaviour::Accept,
        DefaultBehaviour::Deny,
        DefaultBehaviour::Next,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn index_and_scan_agree(
        rules in prop::collection::vec(permission(), 0..40),
        default in default_behaviour(),
        topics in prop::collection::vec(topic(), 8),
        filters in prop::collection::vec(filter(), 8),
        qos in (0..3u8).prop_map(|q| QoS::from_u8(q).unwrap()),
        flag in any::<bool>(),
    ) {
        let chain = AuthorizerChain::new().with(StaticRules::new("random", rules, default));
        let compiled = chain.compile(&Principal::anonymous("c"));
        for topic in &topics {
            prop_assert!(is_valid_topic_name(topic));
            for request in [
                Request::Publish { topic, qos, retain: flag },
                Request::Receive { topic, qos, shared: flag },
                Request::Subscribe { filter: topic, qos, shared: flag },
            ] {
                prop_assert_eq!(compiled.check(&request), compiled.check_by_scan(&request), "{}", request);
            }
        }
        for filter in &filters {
            prop_assert!(is_valid_topic_filter(filter));
            let request = Request::Subscribe { filter, qos, shared: flag };
            prop_assert_eq!(compiled.check(&request), compiled.check_by_scan(&request), "{}", request);
        }
    }

    #[test]
    fn index_and_scan_agree_on_many_rules_with_a_shared_prefix(
        rules in prop::collection::vec(permission(), 50..200),
        topics in prop::collection::vec(topic(), 16),
        filters in prop::collection::vec(filter(), 16),
        qos in (0..3u8).prop_map(|q| QoS::from_u8(q).unwrap()),
        flag in any::<bool>(),
    ) {
        let chain = AuthorizerChain::new().with(StaticRules::new("random", rules, DefaultBehaviour::Deny));
        let compiled = chain.compile(&Principal::anonymous("c"));
        for topic in &topics {
            let request = Request::Publish { topic, qos, retain: flag };
            prop_assert_eq!(compiled.check(&request), compiled.check_by_scan(&request), "{}", request);
        }
        for filter in &filters {
            prop_assert!(is_valid_topic_filter(filter));
            let request = Request::Subscribe { filter, qos, shared: flag };
            prop_assert_eq!(compiled.check(&request), compiled.check_by_scan(&request), "{}", request);
        }
    }
}
