//! Topic name and filter validation, shared subscriptions and matching.

use tollgate_mqtt::topic::{
    is_valid_topic_filter, is_valid_topic_name, matches, split_shared, SharedFilter,
};

#[test]
fn topic_names_without_wildcards_are_valid() {
    for name in ["a", "/", "a/b", "/a", "a/", "//", "$SYS/x", "a b", "é/€"] {
        assert!(is_valid_topic_name(name), "{name:?}");
    }
}

#[test]
fn topic_names_that_are_empty_too_long_or_contain_wildcards_or_nul_are_invalid() {
    let long = "a".repeat(65_536);
    for name in [
        "",
        "+",
        "#",
        "a/+",
        "a/#",
        "a+",
        "a#b",
        "a\0b",
        long.as_str(),
    ] {
        assert!(!is_valid_topic_name(name), "{name:?}");
    }
    assert!(is_valid_topic_name(&"a".repeat(65_535)));
}

#[test]
fn topic_filters_with_whole_level_wildcards_are_valid() {
    for filter in [
        "a",
        "#",
        "+",
        "+/+",
        "/",
        "a/#",
        "a/+/b",
        "+/#",
        "/+",
        "//#",
        "$SYS/#",
        "$share",
        "$share/g/a",
        "$share/g/#",
        "$share/g/+/x",
        "$share/g//",
    ] {
        assert!(is_valid_topic_filter(filter), "{filter:?}");
    }
}

#[test]
fn topic_filters_with_misplaced_wildcards_or_bad_shares_are_invalid() {
    for filter in [
        "",
        "a/#/b",
        "#/a",
        "a#",
        "a/b#",
        "+a",
        "a/+b",
        "a\0",
        "$share/",
        "$share//a",
        "$share/g",
        "$share/g/",
        "$share/g+/a",
        "$share/g#/a",
        "$share/g/a/#/b",
    ] {
        assert!(!is_valid_topic_filter(filter), "{filter:?}");
    }
}

#[test]
fn split_shared_returns_group_and_filter_of_shared_subscriptions_only() {
    assert_eq!(
        split_shared("$share/g/a/b"),
        Some(SharedFilter {
            group: "g",
            filter: "a/b"
        })
    );
    assert_eq!(
        split_shared("$share/g/#"),
        Some(SharedFilter {
            group: "g",
            filter: "#"
        })
    );
    assert_eq!(split_shared("a/b"), None);
    assert_eq!(split_shared("$share"), None);
    assert_eq!(split_shared("$SYS/a"), None);
}

#[test]
fn matching_table() {
    let table: &[(&str, &str, bool)] = &[
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("a/b", "a", false),
        ("a", "a/b", false),
        ("a/+", "a/b", true),
        ("a/+", "a", false),
        ("a/+", "a/b/c", false),
        ("a/+", "a/", true),
        ("+/+", "/", true),
        ("+", "a", true),
        ("+", "/a", false),
        ("/+", "/a", true),
        ("+/b", "a/b", true),
        ("a/#", "a", true),
        ("a/#", "a/b/c", true),
        ("a/#", "a/", true),
        ("a/#", "ab", false),
        ("a/#", "b/a", false),
        ("#", "a", true),
        ("#", "a/b/c", true),
        ("#", "/", true),
        ("+/#", "a", true),
        ("+/#", "a/b", true),
        ("a/+/#", "a/b", true),
        ("a/+/#", "a", false),
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("A", "a", false),
        ("é/+", "é/€", true),
    ];
    for &(filter, topic, expected) in table {
        assert_eq!(matches(filter, topic), expected, "{filter:?} vs {topic:?}");
    }
}

#[test]
fn filters_starting_with_a_wildcard_do_not_match_dollar_topics() {
    assert!(!matches("#", "$SYS/broker/load"));
    assert!(!matches("+/broker/load", "$SYS/broker/load"));
    assert!(!matches("+", "$SYS"));
    assert!(!matches("+/#", "$SYS/x"));
}

#[test]
fn filters_naming_the_dollar_level_match_dollar_topics() {
    assert!(matches("$SYS/#", "$SYS/broker/load"));
    assert!(matches("$SYS/+/load", "$SYS/broker/load"));
    assert!(matches("$SYS", "$SYS"));
    assert!(matches("$SYS/#", "$SYS"));
}

#[test]
fn dollar_later_in_the_topic_is_an_ordinary_character() {
    assert!(matches("#", "a/$b"));
    assert!(matches("a/+", "a/$b"));
}
