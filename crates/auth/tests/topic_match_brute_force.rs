//! `filter_covers` and `filters_overlap` checked against their definitions over a finite
//! universe of topics, large enough to hold a witness for every pair of small filters, with an
//! independent matcher.

use proptest::prelude::*;
use tollgate_auth::permissions::topic_match::{
    filter_covers, filter_matches_topic, filters_overlap, is_valid_topic_filter,
};

const TOPIC_LEVELS: [&str; 5] = ["a", "b", "$s", "", "z"];
const FILTER_LEVELS: [&str; 6] = ["a", "b", "$s", "", "+", "#"];

/// An independent matcher: recursive over level lists.
fn matches(filter: &[&str], topic: &[&str], first: bool) -> bool {
    match (filter.first(), topic.first()) {
        (Some(&"#"), _) => !(first && topic.first().is_some_and(|t| t.starts_with('$'))),
        (None, None) => true,
        (Some(&"+"), Some(t)) => {
            !(first && t.starts_with('$')) && matches(&filter[1..], &topic[1..], false)
        }
        (Some(f), Some(t)) => f == t && matches(&filter[1..], &topic[1..], false),
        _ => false,
    }
}

fn universe() -> Vec<Vec<&'static str>> {
    let mut all: Vec<Vec<&'static str>> = Vec::new();
    let mut layer: Vec<Vec<&'static str>> = vec![Vec::new()];
    for _ in 0..5 {
        let mut next = Vec::new();
        for prefix in &layer {
            for level in TOPIC_LEVELS {
                let mut t = prefix.clone();
                t.push(level);
                next.push(t);
            }
        }
        all.extend(next.iter().cloned());
        layer = next;
    }
    // The topic of one empty level stays in: the functions treat it as a topic (see their
    // documentation), which errs towards refusing.
    all
}

fn filter_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FILTER_LEVELS.to_vec()), 1..=3)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("valid filter", |f| is_valid_topic_filter(f))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn covers_and_overlaps_agree_with_their_definitions(
        a in filter_strategy(),
        b in filter_strategy(),
    ) {
        let topics = universe();
        let a_levels: Vec<&str> = a.split('/').collect();
        let b_levels: Vec<&str> = b.split('/').collect();
        let mut covers = true;
        let mut overlaps = false;
        for topic in &topics {
            let in_a = matches(&a_levels, topic, true);
            let in_b = matches(&b_levels, topic, true);
            prop_assert_eq!(in_a, filter_matches_topic(&a, &topic.join("/")));
            if in_b && !in_a {
                covers = false;
            }
            if in_a && in_b {
                overlaps = true;
            }
        }
        prop_assert_eq!(filter_covers(&a, &b), covers, "covers({}, {})", a, b);
        prop_assert_eq!(filters_overlap(&a, &b), overlaps, "overlaps({}, {})", a, b);
    }
}
