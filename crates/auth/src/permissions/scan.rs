//! The plain ordered scan: the definition of which rule decides, one rule after another.
//! The index must agree with it exactly (a property test checks that), and `explain` uses it.

use super::compiled::{CompiledRule, SubscriptionJudgement};
use super::topic_match::{filter_covers, filter_matches_topic, filters_overlap};

/// The first rule that decides a publish: the first publish rule whose filter matches the
/// topic and that does not pass over it.
pub(crate) fn first_publish_decider(
    rules: &[CompiledRule],
    topic: &str,
    qos: u8,
    retain: bool,
) -> Option<usize> {
    rules.iter().position(|rule| {
        rule.activity.includes_publish()
            && filter_matches_topic(&rule.filter, topic)
            && rule.judge_publish(qos, retain).is_some()
    })
}

/// The first rule that decides a subscription to `filter` (or a receive on a topic, which is
/// a filter without wildcards): the first subscribe rule whose filter covers the requested one
/// and that refuses or allows it. A rule that only overlaps the requested filter does not
/// decide the subscription; for a refusing rule, its part is withheld at delivery instead.
pub(crate) fn first_subscription_decider(
    rules: &[CompiledRule],
    filter: &str,
    qos: u8,
    shared: bool,
) -> Option<usize> {
    rules.iter().position(|rule| {
        if !rule.activity.includes_subscribe() || !filters_overlap(&rule.filter, filter) {
            return false;
        }
        match rule.judge_subscription(qos, shared) {
            SubscriptionJudgement::Refuses(_) | SubscriptionJudgement::AllowsIfCovering => {
                filter_covers(&rule.filter, filter)
            }
            SubscriptionJudgement::PassesOver => false,
        }
    })
}
