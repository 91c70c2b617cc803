//! Retained messages, stored in a tree of topic levels so that a subscription's filter finds
//! the messages it matches without scanning every retained topic.
//!
//! Topics are as deep as `max_topic_levels` allows, so nothing here recurses: walks use an
//! explicit stack, removal prunes in one pass down, and dropping a subtree is a loop.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Node {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

impl Drop for Node {
    /// Drops the subtree with a loop: a node's children are taken out before it goes, so no
    /// drop nests inside another.
    fn drop(&mut self) {
        let mut pending: Vec<Node> = self.children.drain().map(|(_, n)| n).collect();
        while let Some(mut node) = pending.pop() {
            pending.extend(node.children.drain().map(|(_, n)| n));
        }
    }
}

/// Why a retained message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainRefused {
    /// A new topic beyond the most topics allowed.
    TooManyTopics,
    /// More bytes than the store may hold.
    TooManyBytes,
}

/// The store's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedLimits {
    /// Most topics with a retained message.
    pub max_messages: usize,
    /// Most bytes (message footprints) held.
    pub max_bytes: usize,
}

impl RetainedLimits {
    /// No bounds (tests).
    pub const UNBOUNDED: RetainedLimits = RetainedLimits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// The last retained message of every topic that has one.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    len: usize,
    bytes: usize,
}

/// A node still to visit: the node, the filter's levels still to match, whether it is the root.
type Step<'a> = (&'a Node, Option<&'a str>, bool);

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

    /// Bytes held (the sum of the stored messages' footprints).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stores `message` as the retained message of its topic, or clears the topic's retained
    /// message when the payload is empty. Clearing is always done; a new topic beyond
    /// `limits.max_messages`, or a message that would take the store past `limits.max_bytes`,
    /// is refused (the topic keeps what it had).
    pub fn set(
        &mut self,
        message: Arc<Message>,
        limits: RetainedLimits,
    ) -> Result<(), RetainRefused> {
        if message.publish.payload.is_empty() {
            self.clear(&message.publish.topic);
            return Ok(());
        }
        let old_bytes = self.get(&message.publish.topic).map(|m| m.footprint());
        if old_bytes.is_none() && self.len >= limits.max_messages {
            return Err(RetainRefused::TooManyTopics);
        }
        let bytes_after = self.bytes - old_bytes.unwrap_or(0) + message.footprint();
        if bytes_after > limits.max_bytes {
            return Err(RetainRefused::TooManyBytes);
        }
        let mut node = &mut self.root;
        let mut rest = Some(message.publish.topic.as_str());
        while let Some(r) = rest {
            let (level, tail) = next_level(r);
            node = node.children.entry(level.into()).or_default();
            rest = tail;
        }
        if node.message.replace(Arc::clone(&message)).is_none() {
            self.len += 1;
        }
        self.bytes = bytes_after;
        Ok(())
    }

    /// The retained message of `topic`, if any.
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Whether `topic` has a retained message.
    pub fn contains(&self, topic: &str) -> bool {
        self.get(topic).is_some()
    }

    /// Removes the retained message of `topic`, if any, and the branch that held only it.
    pub fn clear(&mut self, topic: &str) {
        // Walk down once, noting the deepest node that stays whatever happens below it (the
        // root, or a node with a message or another child): the branch under it is cut off
        // when the topic's node ends up empty.
        let mut cut: (usize, &str) = (0, "");
        let mut node = &self.root;
        for (depth, level) in topic.split('/').enumerate() {
            if depth == 0 || node.message.is_some() || node.children.len() > 1 {
                cut = (depth, level);
            }
            match node.children.get(level) {
                Some(child) => node = child,
                None => return,
            }
        }
        if node.message.is_none() {
            return;
        }
        let prune = node.children.is_empty();
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.get_mut(level).expect("walked above");
        }
        let removed = node.message.take().expect("checked above");
        self.len -= 1;
        self.bytes -= removed.footprint();
        if prune {
            let (cut_depth, cut_level) = cut;
            let mut parent = &mut self.root;
            for level in topic.split('/').take(cut_depth) {
                parent = parent.children.get_mut(level).expect("walked above");
            }
            parent.children.remove(cut_level);
        }
    }

    /// Calls `f` with every retained message whose topic matches `filter` (a valid, non-shared
    /// filter; a leading wildcard does not match `$` topics), until `f` breaks.
    pub fn for_each_match(
        &self,
        filter: &str,
        mut f: impl FnMut(&Arc<Message>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut stack: SmallVec<[Step<'_>; 32]> = SmallVec::new();
        stack.push((&self.root, Some(filter), true));
        while let Some((node, rest, first)) = stack.pop() {
            let Some(r) = rest else {
                if let Some(m) = &node.message {
                    f(m)?;
                }
                continue;
            };
            let (level, tail) = next_level(r);
            match level {
                "#" => {
                    // `#` matches this level's parent too, and everything below.
                    if let (Some(m), false) = (&node.message, first) {
                        f(m)?;
                    }
                    for (name, child) in &node.children {
                        if first && name.starts_with('$') {
                            continue;
                        }
                        Self::each_below(child, &mut f)?;
                    }
                }
                "+" => {
                    for (name, child) in &node.children {
                        if first && name.starts_with('$') {
                            continue;
                        }
                        stack.push((child, tail, false));
                    }
                }
                _ => {
                    if let Some(child) = node.children.get(level) {
                        stack.push((child, tail, false));
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Calls `f` with the message of `node` and of every node below it, until `f` breaks.
    fn each_below(
        node: &Node,
        f: &mut impl FnMut(&Arc<Message>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut stack: Vec<&Node> = vec![node];
        while let Some(node) = stack.pop() {
            if let Some(m) = &node.message {
                f(m)?;
            }
            stack.extend(node.children.values());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;
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
        let _ = store.for_each_match(filter, |m| {
            out.push(m.publish.topic.clone());
            ControlFlow::Continue(())
        });
        out.sort();
        out
    }

    fn at_most(max_messages: usize) -> RetainedLimits {
        RetainedLimits {
            max_messages,
            max_bytes: usize::MAX,
        }
    }

    #[test]
    fn set_replace_and_clear_with_empty_payload() {
        let mut store = RetainedStore::new();
        store.set(msg("a/b", "1"), at_most(1)).unwrap();
        assert!(
            store.set(msg("a/b", "2"), at_most(1)).is_ok(),
            "replacing is allowed at the limit"
        );
        assert_eq!(
            store.set(msg("c", "3"), at_most(1)),
            Err(RetainRefused::TooManyTopics),
            "a new topic beyond the limit is refused"
        );
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.get("a/b").map(|m| m.publish.payload.clone()),
            Some(Bytes::from_static(b"2"))
        );
        store.set(msg("a/b", ""), at_most(1)).unwrap();
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
        assert!(store.root.is_empty(), "cleared branches are pruned");
    }

    #[test]
    fn clearing_prunes_only_the_branch_that_held_nothing_else() {
        let mut store = RetainedStore::new();
        for t in ["a", "a/b/c/d", "a/b/x", "z/y"] {
            store.set(msg(t, "p"), RetainedLimits::UNBOUNDED).unwrap();
        }
        store.clear("a/b/c/d");
        assert_eq!(topics(&store, "#"), vec!["a", "a/b/x", "z/y"]);
        assert!(!store.root.children["a"].children["b"]
            .children
            .contains_key("c"));
        store.clear("a/b/x");
        assert!(store.root.children["a"].children.is_empty());
        store.clear("a");
        store.clear("z/y");
        assert!(store.root.is_empty());
        store.clear("never/was");
    }

    #[test]
    fn bytes_are_bounded_and_replacing_counts_the_difference() {
        let mut store = RetainedStore::new();
        let one = msg("a", "1");
        let limits = RetainedLimits {
            max_messages: usize::MAX,
            max_bytes: one.footprint() + 4,
        };
        store.set(one, limits).unwrap();
        assert_eq!(
            store.set(msg("b", "2"), limits),
            Err(RetainRefused::TooManyBytes)
        );
        store.set(msg("a", "12345"), limits).unwrap();
        assert_eq!(
            store.set(msg("a", "123456"), limits),
            Err(RetainRefused::TooManyBytes)
        );
        assert_eq!(store.bytes(), msg("a", "12345").footprint());
    }

    #[test]
    fn filters_find_matching_retained_topics() {
        let mut store = RetainedStore::new();
        for t in ["a", "a/b", "a/b/c", "a/x", "b/b", "/", "$SYS/x"] {
            store.set(msg(t, "p"), RetainedLimits::UNBOUNDED).unwrap();
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

    #[test]
    fn a_walk_stops_when_told() {
        let mut store = RetainedStore::new();
        for i in 0..10 {
            store
                .set(msg(&format!("t/{i}"), "p"), RetainedLimits::UNBOUNDED)
                .unwrap();
        }
        let mut seen = 0;
        let flow = store.for_each_match("#", |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((flow, seen), (ControlFlow::Break(()), 3));
    }

    #[test]
    fn a_topic_of_65_000_levels_is_stored_walked_cleared_and_dropped_without_recursion() {
        let deep = "/".repeat(65_000);
        let mut store = RetainedStore::new();
        store
            .set(msg(&deep, "p"), RetainedLimits::UNBOUNDED)
            .unwrap();
        store
            .set(msg(&format!("{deep}x"), "q"), RetainedLimits::UNBOUNDED)
            .unwrap();
        assert_eq!(topics(&store, "#").len(), 2);
        assert_eq!(topics(&store, &format!("{deep}+")).len(), 2);
        assert_eq!(topics(&store, &format!("{deep}x")).len(), 1);
        store.clear(&format!("{deep}x"));
        assert_eq!(store.len(), 1);
        drop(store);
    }
}
