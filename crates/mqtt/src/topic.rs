//! Topic names, topic filters, shared subscriptions and matching.

/// The prefix of a shared subscription's filter.
const SHARE_PREFIX: &str = "$share/";

/// Whether `topic` is under `$SYS`, the broker's own topics: readable as permissions say,
/// never written by a client (publish or will). As Mosquitto, any topic beginning with `$SYS`.
pub fn is_sys(topic: &str) -> bool {
    topic.starts_with("$SYS")
}

/// Whether `name` is a valid topic name for PUBLISH: 1 to 65 535 bytes, no `+` or `#`, no U+0000.
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= usize::from(u16::MAX)
        && !name.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
}

/// Whether `filter` is a valid topic filter: non-empty, `#` only alone as the last level, `+`
/// only as a whole level, no U+0000. A `$share/<group>/<filter>` is valid when the group is a
/// non-empty level without wildcards and the filter after it is valid.
pub fn is_valid_topic_filter(filter: &str) -> bool {
    if filter.len() > usize::from(u16::MAX) {
        return false;
    }
    match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => match rest.split_once('/') {
            Some((group, inner)) => {
                !group.is_empty()
                    && !group.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
                    && is_valid_plain_filter(inner)
            }
            None => false,
        },
        None => is_valid_plain_filter(filter),
    }
}

/// The rules of [`is_valid_topic_filter`] without the shared-subscription form.
pub fn is_valid_plain_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        let ok = match level {
            "#" => is_last,
            "+" => true,
            _ => !level.bytes().any(|b| b == b'+' || b == b'#'),
        };
        if !ok {
            return false;
        }
    }
    true
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
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, filter) = rest.split_once('/')?;
    Some(SharedFilter { group, filter })
}

/// Whether `topic` (a valid name) matches `filter` (a valid, non-shared filter), with the
/// rule that a filter starting with a wildcard does not match a topic starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `#` matches the rest, including nothing at all (`a/#` matches `a`).
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) => {
                if f != t {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}
