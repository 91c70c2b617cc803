//! Retained messages, stored in a tree of topic levels so that a subscription's filter finds
//! the messages it matches without scanning every retained topic.

use std::collections::HashMap;
use std::sync::Arc;

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

/// The last retained message of every topic that has one.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    len: usize,
}

fn next_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, tail)) => (level, Some(tail)),
        None => (rest, None),
    }
}

impl RetainedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many topics have a retained message.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no topic has a retained message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `message` as the retained message of its topic, or clears the topic's retained
    /// message when the payload is empty. A new topic beyond `limit` topics is refused
    /// (returns false); replacing or clearing is always done.
    pub fn set(&mut self, message: Arc<Message>, limit: usize) -> bool {
        let topic = message.publish.topic.clone();
        if message.publish.payload.is_empty() {
            self.clear(&topic);
            return true;
        }
        if self.len >= limit && !self.contains(&topic) {
            return false;
        }
        let mut node = &mut self.root;
        let mut rest = Some(topic.as_str());
        while let Some(r) = rest {
            let (level, tail) = next_level(r);
            node = node.children.entry(level.into()).or_default();
            rest = tail;
        }
        if node.message.replace(message).is_none() {
            self.len += 1;
        }
        true
    }

    /// Whether `topic` has a retained message.
    pub fn contains(&self, topic: &str) -> bool {
        let mut node = &self.root;
        for level in topic.split('/') {
            match node.children.get(level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.message.is_some()
    }

    /// Removes the retained message of `topic`, if any.
    pub fn clear(&mut self, topic: &str) {
        if Self::clear_in(&mut self.root, Some(topic)) {
            self.len -= 1;
        }
    }

    fn clear_in(node: &mut Node, rest: Option<&str>) -> bool {
        match rest {
            None => node.message.take().is_some(),
            Some(r) => {
                let (level, tail) = next_level(r);
                let Some(child) = node.children.get_mut(level) else {
                    return false;
                };
                let removed = Self::clear_in(child, tail);
                if child.is_empty() {
                    node.children.remove(level);
                }
                removed
            }
        }
    }

    /// Calls `f` with every retained message whose topic matches `filter` (a valid, non-shared
    /// filter; a leading wildcard does not match `$` topics).
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&Arc<Message>)) {
        Self::walk(&self.root, Some(filter), true, &mut f);
    }

    fn walk(node: &Node, rest: Option<&str>, first: bool, f: &mut impl FnMut(&Arc<Message>)) {
        let Some(r) = rest else {
            if let Some(m) = &node.message {
                f(m);
            }
            return;
        };
        let (level, tail) = next_level(r);
        match level {
            "#" => {
                // `#` matches this level's parent too, and everything below.
                if let Some(m) = &node.message {
                    if !first {
                        f(m);
                    }
                }
                for (name, child) in &node.children {
                    if first && name.starts_with('$') {
                        continue;
                    }
                    Self::all_below(child, f);
                }
            }
            "+" => {
                for (name, child) in &node.children {
                    if first && name.starts_with('$') {
                        continue;
                    }
                    Self::walk(child, tail, false, f);
                }
            }
            _ => {
                if let Some(child) = node.children.get(level) {
                    Self::walk(child, tail, false, f);
                }
            }
        }
    }

    fn all_below(node: &Node, f: &mut impl FnMut(&Arc<Message>)) {
        if let Some(m) = &node.message {
            f(m);
        }
        for child in node.children.values() {
            Self::all_below(child, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::time::Instant;
    use tollgate_mqtt::Publish;

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        let publish = Publish {
            topic: topic.into(),
            payload: Bytes::from_static(payload.as_bytes()),
            retain: true,
            ..Publish::default()
        };
        Message::new(publish, 0, Instant::now())
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        store.for_each_match(filter, |m| out.push(m.publish.topic.clone()));
        out.sort();
        out
    }

    #[test]
    fn set_replace_and_clear_with_empty_payload() {
        let mut store = RetainedStore::new();
        store.set(msg("a/b", "1"), 1);
        assert!(
            store.set(msg("a/b", "2"), 1),
            "replacing is allowed at the limit"
        );
        assert!(
            !store.set(msg("c", "3"), 1),
            "a new topic beyond the limit is refused"
        );
        assert_eq!(store.len(), 1);
        let mut payloads = Vec::new();
        store.for_each_match("a/b", |m| payloads.push(m.publish.payload.clone()));
        assert_eq!(payloads, vec![Bytes::from_static(b"2")]);
        store.set(msg("a/b", ""), 1);
        assert!(store.is_empty());
        assert!(store.root.is_empty(), "cleared branches are pruned");
    }

    #[test]
    fn filters_find_matching_retained_topics() {
        let mut store = RetainedStore::new();
        for t in ["a", "a/b", "a/b/c", "a/x", "b/b", "/", "$SYS/x"] {
            store.set(msg(t, "p"), usize::MAX);
        }
        assert_eq!(topics(&store, "a/#"), vec!["a", "a/b", "a/b/c", "a/x"]);
        assert_eq!(topics(&store, "a/+"), vec!["a/b", "a/x"]);
        assert_eq!(topics(&store, "+/b"), vec!["a/b", "b/b"]);
        assert_eq!(
            topics(&store, "#"),
            vec!["/", "a", "a/b", "a/b/c", "a/x", "b/b"]
        );
        assert_eq!(topics(&store, "+/+"), vec!["/", "a/b", "a/x", "b/b"]);
        assert_eq!(topics(&store, "$SYS/#"), vec!["$SYS/x"]);
        assert_eq!(topics(&store, "a/b/c/#"), vec!["a/b/c"]);
    }
}
