//! The subscription trie: which sessions want a message published to a topic.
//!
//! One node per topic-filter level; `+` and `#` are ordinary child keys, so matching a topic
//! walks at most three branches per level (the literal level, `+`, `#`) and never looks at
//! filters that cannot match. Shared subscriptions (`$share/group/filter`) live in the node of
//! their filter, one group per share name, and each message goes to one member of each group.
//!
//! The trie is generic over the subscriber so it can be tested on its own; the broker stores
//! sessions in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_mqtt::topic::split_shared;
use tollgate_mqtt::SubscriptionOptions;

/// What the trie needs to know of a subscriber.
pub trait Subscriber: Clone {
    /// A stable identity: one subscription per (subscriber, filter).
    fn subscriber_id(&self) -> u64;
    /// Whether the subscriber can take a message now; shared groups prefer those that can.
    fn is_online(&self) -> bool {
        true
    }
}

/// One subscription of one subscriber.
#[derive(Debug, Clone)]
pub struct SubscriptionEntry<S> {
    /// Who subscribed.
    pub subscriber: S,
    /// The options it subscribed with.
    pub options: SubscriptionOptions,
    /// The 5.0 subscription identifier given with it.
    pub identifier: Option<u32>,
}

#[derive(Debug)]
struct SharedGroup<S> {
    name: Box<str>,
    members: Vec<SubscriptionEntry<S>>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Node<S> {
    children: HashMap<Box<str>, Node<S>>,
    subscribers: Vec<SubscriptionEntry<S>>,
    shared: Vec<SharedGroup<S>>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            subscribers: Vec::new(),
            shared: Vec::new(),
        }
    }
}

impl<S> Node<S> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.shared.is_empty()
    }
}

/// All subscriptions of all sessions, indexed by topic filter.
#[derive(Debug)]
pub struct SubscriptionTrie<S> {
    root: Node<S>,
    len: usize,
}

impl<S> Default for SubscriptionTrie<S> {
    fn default() -> Self {
        SubscriptionTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

/// Splits `filter` into its first level and the rest (`None` after the last level).
fn next_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, tail)) => (level, Some(tail)),
        None => (rest, None),
    }
}

impl<S: Subscriber> SubscriptionTrie<S> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many subscriptions the trie holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds or replaces the subscription of `entry.subscriber` to `filter` (which may be a
    /// shared filter). Returns true when it already existed and was replaced.
    pub fn insert(&mut self, filter: &str, entry: SubscriptionEntry<S>) -> bool {
        let (group, filter) = match split_shared(filter) {
            Some(shared) => (Some(shared.group), shared.filter),
            None => (None, filter),
        };
        let mut node = &mut self.root;
        let mut rest = Some(filter);
        while let Some(r) = rest {
            let (level, tail) = next_level(r);
            node = node.children.entry(level.into()).or_default();
            rest = tail;
        }
        let id = entry.subscriber.subscriber_id();
        let list = match group {
            None => &mut node.subscribers,
            Some(name) => {
                let index = match node.shared.iter().position(|g| &*g.name == name) {
                    Some(i) => i,
                    None => {
                        node.shared.push(SharedGroup {
                            name: name.into(),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        node.shared.len() - 1
                    }
                };
                &mut node.shared[index].members
            }
        };
        if let Some(existing) = list.iter_mut().find(|e| e.subscriber.subscriber_id() == id) {
            *existing = entry;
            true
        } else {
            list.push(entry);
            self.len += 1;
            false
        }
    }

    /// Removes the subscription of subscriber `id` to `filter`. Returns whether it existed.
    pub fn remove(&mut self, filter: &str, id: u64) -> bool {
        let (group, filter) = match split_shared(filter) {
            Some(shared) => (Some(shared.group), shared.filter),
            None => (None, filter),
        };
        let removed = Self::remove_in(&mut self.root, Some(filter), group, id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node<S>, rest: Option<&str>, group: Option<&str>, id: u64) -> bool {
        match rest {
            None => match group {
                None => {
                    let before = node.subscribers.len();
                    node.subscribers
                        .retain(|e| e.subscriber.subscriber_id() != id);
                    before != node.subscribers.len()
                }
                Some(name) => {
                    let Some(index) = node.shared.iter().position(|g| &*g.name == name) else {
                        return false;
                    };
                    let members = &mut node.shared[index].members;
                    let before = members.len();
                    members.retain(|e| e.subscriber.subscriber_id() != id);
                    let removed = before != members.len();
                    if members.is_empty() {
                        node.shared.swap_remove(index);
                    }
                    removed
                }
            },
            Some(r) => {
                let (level, tail) = next_level(r);
                let Some(child) = node.children.get_mut(level) else {
                    return false;
                };
                let removed = Self::remove_in(child, tail, group, id);
                if child.is_empty() {
                    node.children.remove(level);
                }
                removed
            }
        }
    }

    /// Calls `f` for every subscription matching `topic`: every ordinary subscription, and one
    /// chosen member (round robin, online members first) of every shared group.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&SubscriptionEntry<S>)) {
        Self::walk(&self.root, Some(topic), true, &mut f);
    }

    fn walk(
        node: &Node<S>,
        rest: Option<&str>,
        first: bool,
        f: &mut impl FnMut(&SubscriptionEntry<S>),
    ) {
        match rest {
            None => {
                Self::emit(node, f);
                if let Some(hash) = node.children.get("#") {
                    Self::emit(hash, f);
                }
            }
            Some(r) => {
                let (level, tail) = next_level(r);
                if let Some(child) = node.children.get(level) {
                    Self::walk(child, tail, false, f);
                }
                if first && level.starts_with('$') {
                    return;
                }
                if let Some(child) = node.children.get("+") {
                    Self::walk(child, tail, false, f);
                }
                if let Some(hash) = node.children.get("#") {
                    Self::emit(hash, f);
                }
            }
        }
    }

    fn emit(node: &Node<S>, f: &mut impl FnMut(&SubscriptionEntry<S>)) {
        for entry in &node.subscribers {
            f(entry);
        }
        for group in &node.shared {
            let n = group.members.len();
            if n == 0 {
                continue;
            }
            let start = group.next.fetch_add(1, Ordering::Relaxed) % n;
            let chosen = (0..n)
                .map(|i| &group.members[(start + i) % n])
                .find(|e| e.subscriber.is_online())
                .unwrap_or(&group.members[start]);
            f(chosen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_mqtt::QoS;

    #[derive(Clone, Debug, PartialEq)]
    struct Sub(u64);
    impl Subscriber for Sub {
        fn subscriber_id(&self) -> u64 {
            self.0
        }
    }

    fn entry(id: u64) -> SubscriptionEntry<Sub> {
        SubscriptionEntry {
            subscriber: Sub(id),
            options: SubscriptionOptions::default(),
            identifier: None,
        }
    }

    fn matching(trie: &SubscriptionTrie<Sub>, topic: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        trie.for_each_match(topic, |e| ids.push(e.subscriber.0));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn literal_plus_and_hash_filters_match_as_the_spec_says() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/b", entry(1));
        trie.insert("a/+", entry(2));
        trie.insert("a/#", entry(3));
        trie.insert("#", entry(4));
        trie.insert("+/+", entry(5));
        trie.insert("a/b/c", entry(6));
        assert_eq!(matching(&trie, "a/b"), vec![1, 2, 3, 4, 5]);
        assert_eq!(matching(&trie, "a"), vec![3, 4]);
        assert_eq!(matching(&trie, "a/b/c"), vec![3, 4, 6]);
        assert_eq!(matching(&trie, "/"), vec![4, 5]);
        assert_eq!(matching(&trie, "x/y/z"), vec![4]);
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("#", entry(1));
        trie.insert("+/broker/x", entry(2));
        trie.insert("$SYS/#", entry(3));
        trie.insert("$SYS/broker/+", entry(4));
        assert_eq!(matching(&trie, "$SYS/broker/x"), vec![3, 4]);
        assert_eq!(matching(&trie, "SYS/broker/x"), vec![1, 2]);
    }

    #[test]
    fn insert_replaces_the_same_subscribers_subscription_and_remove_prunes() {
        let mut trie = SubscriptionTrie::new();
        assert!(!trie.insert("a/b", entry(1)));
        let mut e = entry(1);
        e.options.qos = QoS::ExactlyOnce;
        assert!(trie.insert("a/b", e));
        assert_eq!(trie.len(), 1);
        let mut qos = Vec::new();
        trie.for_each_match("a/b", |e| qos.push(e.options.qos));
        assert_eq!(qos, vec![QoS::ExactlyOnce]);
        assert!(trie.remove("a/b", 1));
        assert!(!trie.remove("a/b", 1));
        assert!(trie.is_empty());
        assert!(trie.root.is_empty(), "empty nodes are pruned");
    }

    #[test]
    fn shared_group_delivers_each_message_to_one_member_in_turn() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("$share/g/t/+", entry(1));
        trie.insert("$share/g/t/+", entry(2));
        trie.insert("$share/h/t/+", entry(3));
        trie.insert("t/+", entry(4));
        let mut counts = [0usize; 5];
        for _ in 0..10 {
            let got = matching(&trie, "t/x");
            assert_eq!(
                got.len(),
                3,
                "one per group plus the plain subscription: {got:?}"
            );
            for id in got {
                counts[id as usize] += 1;
            }
        }
        assert_eq!(counts, [0, 5, 5, 10, 10]);
        assert!(trie.remove("$share/g/t/+", 1));
        assert_eq!(matching(&trie, "t/x"), vec![2, 3, 4]);
    }
}
