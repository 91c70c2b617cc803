//! The subscription trie: which sessions want a message published to a topic.
//!
//! One node per topic-filter level, so matching a topic walks at most three branches per level
//! (the literal level, `+`, `#`) and never looks at filters that cannot match. A node's `+` and
//! `#` children are held beside its map of literal levels, so the wildcard branches cost no
//! hashing. Shared subscriptions (`$share/group/filter`) live in the node of
//! their filter, one group per share name, and each message goes to one member of each group.
//!
//! The trie is generic over the subscriber so it can be tested on its own; the broker stores
//! sessions in it. Nothing here recurses: matching walks with an explicit stack, removal
//! prunes in one pass down, and dropping a subtree is a loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use smallvec::SmallVec;
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

/// A node's children: literal levels in a map, the two wildcards in slots of their own.
#[derive(Debug)]
struct Children<S> {
    literal: HashMap<Box<str>, Node<S>>,
    plus: Option<Box<Node<S>>>,
    hash: Option<Box<Node<S>>>,
}

impl<S> Children<S> {
    fn get(&self, level: &str) -> Option<&Node<S>> {
        match level {
            "+" => self.plus.as_deref(),
            "#" => self.hash.as_deref(),
            _ => self.literal.get(level),
        }
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut Node<S>> {
        match level {
            "+" => self.plus.as_deref_mut(),
            "#" => self.hash.as_deref_mut(),
            _ => self.literal.get_mut(level),
        }
    }

    /// The child for `level`, created empty if there is none.
    fn entry(&mut self, level: &str) -> &mut Node<S> {
        match level {
            "+" => self.plus.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => self.literal.entry(level.into()).or_default(),
        }
    }

    fn remove(&mut self, level: &str) {
        match level {
            "+" => self.plus = None,
            "#" => self.hash = None,
            _ => {
                self.literal.remove(level);
            }
        }
    }

    fn len(&self) -> usize {
        self.literal.len() + usize::from(self.plus.is_some()) + usize::from(self.hash.is_some())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every child out, leaving none.
    fn drain(&mut self) -> impl Iterator<Item = Node<S>> + '_ {
        let wildcards = [self.plus.take(), self.hash.take()];
        self.literal
            .drain()
            .map(|(_, node)| node)
            .chain(wildcards.into_iter().flatten().map(|node| *node))
    }
}

#[derive(Debug)]
struct Node<S> {
    children: Children<S>,
    subscribers: Vec<SubscriptionEntry<S>>,
    shared: Vec<SharedGroup<S>>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Node {
            children: Children {
                literal: HashMap::new(),
                plus: None,
                hash: None,
            },
            subscribers: Vec::new(),
            shared: Vec::new(),
        }
    }
}

impl<S> Node<S> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.shared.is_empty()
    }

    /// Whether the node stays when the branch below it goes: it holds subscriptions itself, or
    /// another child.
    fn holds_more_than(&self, one_child: bool) -> bool {
        !self.subscribers.is_empty()
            || !self.shared.is_empty()
            || self.children.len() > usize::from(one_child)
    }
}

impl<S> Drop for Node<S> {
    /// Drops the subtree with a loop: a node's children are taken out before it goes.
    fn drop(&mut self) {
        let mut pending: Vec<Node<S>> = self.children.drain().collect();
        while let Some(mut node) = pending.pop() {
            pending.extend(node.children.drain());
        }
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

/// A node still to visit: the node, the topic's levels still to match, whether it is the root.
type Step<'a, S> = (&'a Node<S>, Option<&'a str>, bool);

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
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie holds no subscription.
    #[cfg(test)]
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
            node = node.children.entry(level);
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
        // Walk down once, noting the deepest node that stays whatever happens below it: the
        // branch under it is cut off if the filter's node ends up empty.
        let mut cut: (usize, &str) = (0, "");
        let mut node = &self.root;
        for (depth, level) in filter.split('/').enumerate() {
            if depth == 0 || node.holds_more_than(true) {
                cut = (depth, level);
            }
            match node.children.get(level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.get_mut(level).expect("walked above");
        }
        let removed = match group {
            None => {
                let before = node.subscribers.len();
                node.subscribers
                    .retain(|e| e.subscriber.subscriber_id() != id);
                before != node.subscribers.len()
            }
            Some(name) => match node.shared.iter().position(|g| &*g.name == name) {
                None => false,
                Some(index) => {
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
        };
        if !removed {
            return false;
        }
        self.len -= 1;
        if node.is_empty() {
            let (cut_depth, cut_level) = cut;
            let mut parent = &mut self.root;
            for level in filter.split('/').take(cut_depth) {
                parent = parent.children.get_mut(level).expect("walked above");
            }
            parent.children.remove(cut_level);
        }
        true
    }

    /// Calls `f` for every subscription matching `topic`: every ordinary subscription, and one
    /// chosen member (round robin, online members first) of every shared group.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&SubscriptionEntry<S>)) {
        // (node, the topic's levels still to match, whether the node is the root); each node
        // pushes at most two more, so the stack holds at most one entry per level plus one.
        let mut stack: SmallVec<[Step<'_, S>; 32]> = SmallVec::new();
        stack.push((&self.root, Some(topic), true));
        while let Some((node, rest, first)) = stack.pop() {
            let Some(r) = rest else {
                Self::emit(node, &mut f);
                if let Some(hash) = node.children.hash.as_deref() {
                    Self::emit(hash, &mut f);
                }
                continue;
            };
            let (level, tail) = next_level(r);
            if let Some(child) = node.children.literal.get(level) {
                stack.push((child, tail, false));
            }
            if first && level.starts_with('$') {
                continue;
            }
            if let Some(child) = node.children.plus.as_deref() {
                stack.push((child, tail, false));
            }
            if let Some(hash) = node.children.hash.as_deref() {
                Self::emit(hash, &mut f);
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
        assert!(trie.remove("+/+", 5));
        assert!(trie.remove("#", 4));
        assert_eq!(matching(&trie, "a/b"), vec![1, 2, 3]);
        assert_eq!(matching(&trie, "x/y"), Vec::<u64>::new());
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
    fn a_filter_of_65_000_levels_is_inserted_matched_removed_and_dropped_without_recursion() {
        let deep = "+/".repeat(32_500) + "#";
        let mut trie = SubscriptionTrie::new();
        trie.insert(&deep, entry(1));
        trie.insert(&format!("{deep}/x").replace("#/x", "x"), entry(2));
        let topic = "a/".repeat(40_000);
        assert_eq!(matching(&trie, &topic), vec![1]);
        assert!(trie.remove(&deep, 1));
        assert!(trie.remove(&format!("{deep}/x").replace("#/x", "x"), 2));
        assert!(trie.root.is_empty());
        trie.insert(&deep, entry(3));
        drop(trie);
    }

    #[test]
    fn removing_one_filter_keeps_the_branches_others_need() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/b/c", entry(1));
        trie.insert("a/b", entry(2));
        trie.insert("a/x/y", entry(3));
        assert!(trie.remove("a/b/c", 1));
        assert_eq!(matching(&trie, "a/b"), vec![2]);
        assert_eq!(matching(&trie, "a/x/y"), vec![3]);
        let b = trie
            .root
            .children
            .get("a")
            .and_then(|a| a.children.get("b"));
        assert!(b.expect("a/b is kept").children.get("c").is_none());
        assert!(!trie.remove("a/b/c", 1));
        assert!(!trie.remove("a/q", 2));
        assert!(trie.remove("a/x/y", 3));
        assert!(trie.remove("a/b", 2));
        assert!(trie.root.is_empty());
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
