//! MQTT topic matching as the permission engine needs it: whether a filter matches a topic,
//! whether one filter *covers* another (every topic the inner one matches, the outer one
//! matches too) and whether two filters *overlap* (some topic matches both).
//!
//! The rules are MQTT's: levels are separated by `/`; `+` matches exactly one level; `#`
//! matches the parent level and any number of levels below it and is only valid as the last
//! level; a topic whose first level starts with `$` (such as `$SYS/...`) is not matched by a
//! filter whose first level is a wildcard. Empty levels are ordinary levels (`a//b` has three).
//! `+/#` covers `#`: both match every topic of one level or more.
//!
//! The answers treat the topic made of one empty level as if it existed, although MQTT forbids
//! the empty topic name. That only matters for filters starting with an empty level, and only
//! errs towards refusing: `/#` and `+` are said to overlap (a deny on `/#` refuses a
//! subscription to `+`), and `/+/#` is said not to cover `/#`.
//!
//! Every function here walks the two strings level by level and allocates nothing. The inputs
//! are expected to be valid (see [`is_valid_topic_name`] and [`is_valid_topic_filter`]); on
//! invalid input the answers are unspecified but the functions do not panic.

// Topic names, filters and matching are the MQTT crate's rules (the broker routes by them), so
// permissions and deliveries cannot disagree on what a filter matches.
pub use tollgate_mqtt::topic::{
    is_valid_plain_filter as is_valid_topic_filter, is_valid_topic_name,
    matches as filter_matches_topic,
};

/// Whether the first level of a filter is a wildcard (`+` or `#`).
fn starts_with_wildcard(filter: &str) -> bool {
    matches!(filter.as_bytes().first(), Some(b'+' | b'#'))
}

/// Whether the first level of a topic or filter starts with `$`.
fn starts_with_dollar(topic_or_filter: &str) -> bool {
    topic_or_filter.as_bytes().first() == Some(&b'$')
}

/// Whether every topic matched by `inner` is also matched by `outer`.
///
/// `a/#` covers `a/+/b` and `a`; `a/+` does not cover `a/#`; `#` does not cover `$SYS/#`.
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    if starts_with_dollar(inner) && starts_with_wildcard(outer) {
        return false;
    }
    let mut outer_levels = outer.split('/');
    let mut inner_levels = inner.split('/');
    let mut first_level = true;
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            (Some("#"), _) => return true,
            (None, None) => return true,
            // `inner` matches any number of levels from here; only `#` (above) covers that,
            // except at the first level, where `+/#` matches every topic `#` matches.
            (Some(o), Some("#")) => {
                return first_level
                    && o == "+"
                    && outer_levels.next() == Some("#")
                    && outer_levels.next().is_none();
            }
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(o), Some(i)) if o == i => {}
            _ => return false,
        }
        first_level = false;
    }
}

/// Whether some topic is matched by both `a` and `b`.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    if (starts_with_wildcard(a) && starts_with_dollar(b))
        || (starts_with_wildcard(b) && starts_with_dollar(a))
    {
        return false;
    }
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_topic_names_and_filters() {
        assert!(is_valid_topic_name("a/b"));
        assert!(is_valid_topic_name("/"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name("a/+"));
        assert!(!is_valid_topic_name("a\0b"));
        assert!(is_valid_topic_filter("a/+/#"));
        assert!(is_valid_topic_filter("#"));
        assert!(!is_valid_topic_filter("a/#/b"));
        assert!(!is_valid_topic_filter("a+"));
        assert!(!is_valid_topic_filter(""));
    }

    #[test]
    fn matches_topics_like_mqtt() {
        assert!(filter_matches_topic("a/#", "a"));
        assert!(filter_matches_topic("a/#", "a/b/c"));
        assert!(filter_matches_topic("+/+", "/finance"));
        assert!(filter_matches_topic("#", "a"));
        assert!(!filter_matches_topic("#", "$SYS/x"));
        assert!(!filter_matches_topic("+/x", "$SYS/x"));
        assert!(filter_matches_topic("$SYS/#", "$SYS/x"));
        assert!(!filter_matches_topic("a/+", "a"));
        assert!(!filter_matches_topic("a/b", "a/b/c"));
    }

    #[test]
    fn covers_whole_filters_only() {
        assert!(filter_covers("a/#", "a/+/b"));
        assert!(filter_covers("a/#", "a"));
        assert!(!filter_covers("a/+", "a/#"));
        assert!(!filter_covers("a/b", "a/+"));
        assert!(filter_covers("+/#", "#"));
        assert!(!filter_covers("a/+/#", "a/#"));
        assert!(!filter_covers("#", "$SYS/#"));
        assert!(filter_covers("#", "+/x"));
        assert!(filter_covers("$SYS/#", "$SYS/+"));
    }

    #[test]
    fn overlaps_when_a_topic_matches_both() {
        assert!(filters_overlap("a/+", "+/b"));
        assert!(filters_overlap("a/#", "a"));
        assert!(!filters_overlap("a/+", "a"));
        assert!(!filters_overlap("#", "$SYS/#"));
        assert!(filters_overlap("$SYS/#", "$SYS/+"));
        assert!(!filters_overlap("a/b", "a/c"));
    }
}
