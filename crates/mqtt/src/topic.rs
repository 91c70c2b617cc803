//! Topic names, topic filters, shared subscriptions and matching.
//! (Stub: the signatures are the contract; the bodies are being written.)

/// Whether `name` is a valid topic name for PUBLISH: 1 to 65 535 bytes, no `+` or `#`, no U+0000.
pub fn is_valid_topic_name(name: &str) -> bool {
    let _ = name;
    todo!()
}

/// Whether `filter` is a valid topic filter: non-empty, `#` only alone as the last level, `+`
/// only as a whole level, no U+0000. A `$share/<group>/<filter>` is valid when the group is a
/// non-empty level without wildcards and the filter after it is valid.
pub fn is_valid_topic_filter(filter: &str) -> bool {
    let _ = filter;
    todo!()
}

/// A shared subscription's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name (group).
    pub group: &'a str,
    /// The topic filter after the group.
    pub filter: &'a str,
}

/// Splits `$share/<group>/<filter>`; `None` for a filter that is not shared.
/// Assumes `filter` passed [`is_valid_topic_filter`].
pub fn split_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let _ = filter;
    todo!()
}

/// Whether `topic` (a valid name) matches `filter` (a valid, non-shared filter), with the
/// rule that a filter starting with a wildcard does not match a topic starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    let _ = (filter, topic);
    todo!()
}
