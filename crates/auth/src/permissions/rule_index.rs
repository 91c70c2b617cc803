//! The index that finds the first deciding rule without looking at the rules that cannot
//! match: a trie over the levels of the rules' filters.
//!
//! Each node is a filter prefix. It keeps the rules whose filter ends there (`exact`) or
//! continues with `#` there (`multi`), its literal children (by level text), and its `+`
//! child. Rules are inserted by ascending index, so every list is sorted and the first rule of
//! a list that applies is the one with the lowest index.
//!
//! A request has a *class*: publish or subscribe, its QoS, and one flag (retain for a publish,
//! shared for a subscription), twelve in all. For each rule the index keeps a bit mask over the
//! classes for which it is *decisive*: for a publish, the rule decides when it matches; for a
//! subscription, it decides when its filter covers the requested one. (A rule that merely
//! overlaps a requested filter never decides the subscription: what it refuses inside it is
//! withheld message by message at delivery.) Each node keeps the lowest index of any rule below
//! it, so the search skips every subtree that cannot beat the best rule found so far.
//!
//! - **Publish** walks the topic's levels, following the literal child and the `+` child, and
//!   reading the `multi` rules at each node and the `exact` and `multi` rules at the end.
//!   Only subtrees that match the topic are entered, so the cost is bounded by the topic's
//!   depth and the number of wildcard branches, not by the number of rules.
//! - **Subscribe** walks the requested filter the same way while the rules' filters still
//!   *cover* it: a requested `+` is covered only by a rule's `+` or `#`, a requested `#` only by
//!   a rule's `#`.
//!
//! A topic whose first level starts with `$` skips the root's `+` and `#`, and a requested
//! filter starting with a wildcard skips the root's literal children that start with `$`.

use std::collections::HashMap;

use super::level_hasher::BuildLevelHasher;

/// The number of request classes: publish and subscribe, times QoS 0..=2, times one flag.
pub(crate) const CLASSES: usize = 12;

/// The first subscription class.
const SUBSCRIPTION_CLASSES: usize = 6;

/// No rule.
const NONE: u32 = u32::MAX;

/// The class of a publish.
pub(crate) fn publish_class(qos: u8, retain: bool) -> usize {
    usize::from(qos) * 2 + usize::from(retain)
}

/// The class of a subscription (or a receive through one).
pub(crate) fn subscription_class(qos: u8, shared: bool) -> usize {
    SUBSCRIPTION_CLASSES + usize::from(qos) * 2 + usize::from(shared)
}

/// The QoS and the retain flag of a publish class, if it is one.
pub(crate) fn publish_class_parts(class: usize) -> Option<(u8, bool)> {
    (class < SUBSCRIPTION_CLASSES).then_some(((class / 2) as u8, class % 2 == 1))
}

/// The QoS and the shared flag of a subscription class, if it is one.
pub(crate) fn subscription_class_parts(class: usize) -> Option<(u8, bool)> {
    let class = class.checked_sub(SUBSCRIPTION_CLASSES)?;
    (class < SUBSCRIPTION_CLASSES).then_some(((class / 2) as u8, class % 2 == 1))
}

/// A rule as a node's list holds it.
#[derive(Debug, Clone, Copy)]
struct IndexedRule {
    index: u32,
    decisive: u16,
}

/// Literal children: a short list scanned in place, or a hash map when there are many.
#[derive(Debug)]
enum Children {
    Few(Vec<(Box<str>, u32)>),
    Many(HashMap<Box<str>, u32, BuildLevelHasher>),
}

const FEW_CHILDREN: usize = 8;

impl Children {
    #[inline]
    fn get(&self, level: &str) -> Option<u32> {
        match self {
            Children::Few(list) => list
                .iter()
                .find(|(key, _)| key.as_ref() == level)
                .map(|(_, node)| *node),
            Children::Many(map) => map.get(level).copied(),
        }
    }

    fn insert(&mut self, level: &str, node: u32) {
        match self {
            Children::Few(list) if list.len() < FEW_CHILDREN => list.push((level.into(), node)),
            Children::Few(list) => {
                let mut map: HashMap<Box<str>, u32, BuildLevelHasher> =
                    std::mem::take(list).into_iter().collect();
                map.insert(level.into(), node);
                *self = Children::Many(map);
            }
            Children::Many(map) => {
                map.insert(level.into(), node);
            }
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            Children::Few(list) => list.shrink_to_fit(),
            Children::Many(map) => map.shrink_to_fit(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&str, u32)> + '_> {
        match self {
            Children::Few(list) => Box::new(list.iter().map(|(k, n)| (k.as_ref(), *n))),
            Children::Many(map) => Box::new(map.iter().map(|(k, n)| (k.as_ref(), *n))),
        }
    }
}

#[derive(Debug)]
struct TrieNode {
    literal: Children,
    plus: Option<u32>,
    exact: Vec<IndexedRule>,
    multi: Vec<IndexedRule>,
    /// The lowest index of any rule below (a lower bound for every class).
    min_rule: u32,
}

impl TrieNode {
    fn new() -> TrieNode {
        TrieNode {
            literal: Children::Few(Vec::new()),
            plus: None,
            exact: Vec::new(),
            multi: Vec::new(),
            min_rule: NONE,
        }
    }
}

/// A rule to put in the index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry<'a> {
    /// The rule's index in the compiled list.
    pub index: usize,
    /// Its concrete, valid filter.
    pub filter: &'a str,
    /// Bit `c` set: decisive for class `c`.
    pub decisive: u16,
}

/// The trie of all the rules.
#[derive(Debug)]
pub(crate) struct RuleTrie {
    nodes: Vec<TrieNode>,
}

const ROOT: u32 = 0;

#[inline]
fn has_class(mask: u16, class: usize) -> bool {
    mask & (1 << class) != 0
}

/// Splits off the first level: `("a", Some("b/c"))` for `"a/b/c"`, `("a", None)` for `"a"`.
#[inline]
fn split_level(rest: &str) -> (&str, Option<&str>) {
    match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

/// Lowers `best` to the first rule of `list` whose `mask` has `class`, if lower.
#[inline]
fn first_in(list: &[IndexedRule], mask: fn(&IndexedRule) -> u16, class: usize, best: &mut u32) {
    for rule in list {
        if rule.index >= *best {
            return;
        }
        if has_class(mask(rule), class) {
            *best = rule.index;
            return;
        }
    }
}

fn decisive(rule: &IndexedRule) -> u16 {
    rule.decisive
}

fn min_index(list: &[IndexedRule]) -> u32 {
    list.first().map_or(NONE, |r| r.index)
}

impl RuleTrie {
    /// Builds the trie; `entries` must come by ascending index.
    pub(crate) fn build<'a>(entries: impl IntoIterator<Item = IndexEntry<'a>>) -> RuleTrie {
        let mut nodes = vec![TrieNode::new()];
        for entry in entries {
            let rule = IndexedRule {
                index: u32::try_from(entry.index).unwrap_or(NONE - 1),
                decisive: entry.decisive,
            };
            let mut node = ROOT;
            let mut levels = entry.filter.split('/');
            loop {
                match levels.next() {
                    None => {
                        nodes[node as usize].exact.push(rule);
                        break;
                    }
                    Some("#") => {
                        nodes[node as usize].multi.push(rule);
                        break;
                    }
                    Some("+") => {
                        node = match nodes[node as usize].plus {
                            Some(child) => child,
                            None => {
                                let child = nodes.len() as u32;
                                nodes.push(TrieNode::new());
                                nodes[node as usize].plus = Some(child);
                                child
                            }
                        };
                    }
                    Some(level) => {
                        node = match nodes[node as usize].literal.get(level) {
                            Some(child) => child,
                            None => {
                                let child = nodes.len() as u32;
                                nodes.push(TrieNode::new());
                                nodes[node as usize].literal.insert(level, child);
                                child
                            }
                        };
                    }
                }
            }
        }
        // Children always come after their parent: summarise from the last node back.
        for id in (0..nodes.len()).rev() {
            let mut min_rule;
            {
                let node = &nodes[id];
                min_rule = min_index(&node.exact).min(min_index(&node.multi));
                if let Some(plus) = node.plus {
                    min_rule = min_rule.min(nodes[plus as usize].min_rule);
                }
                for (_, child_id) in node.literal.iter() {
                    min_rule = min_rule.min(nodes[child_id as usize].min_rule);
                }
            }
            let node = &mut nodes[id];
            node.min_rule = min_rule;
            node.exact.shrink_to_fit();
            node.multi.shrink_to_fit();
            node.literal.shrink_to_fit();
        }
        nodes.shrink_to_fit();
        RuleTrie { nodes }
    }

    /// The lowest index of a rule that matches `topic` and is decisive for `class`.
    pub(crate) fn first_publish_decider(&self, topic: &str, class: usize) -> Option<usize> {
        let mut best = NONE;
        self.walk_topic(ROOT, Some(topic), true, class, &mut best);
        (best != NONE).then_some(best as usize)
    }

    fn walk_topic(
        &self,
        node_id: u32,
        remaining: Option<&str>,
        at_root: bool,
        class: usize,
        best: &mut u32,
    ) {
        let node = &self.nodes[node_id as usize];
        if node.min_rule >= *best {
            return;
        }
        let Some(rest) = remaining else {
            first_in(&node.exact, decisive, class, best);
            first_in(&node.multi, decisive, class, best);
            return;
        };
        let (level, after) = split_level(rest);
        let dollar = at_root && level.starts_with('$');
        if !dollar {
            first_in(&node.multi, decisive, class, best);
        }
        if let Some(child) = node.literal.get(level) {
            self.walk_topic(child, after, false, class, best);
        }
        if !dollar {
            if let Some(plus) = node.plus {
                self.walk_topic(plus, after, false, class, best);
            }
        }
    }

    /// The lowest index of a rule that decides a subscription to `filter` in `class`: a
    /// decisive rule whose filter covers it.
    pub(crate) fn first_subscription_decider(&self, filter: &str, class: usize) -> Option<usize> {
        let mut best = NONE;
        self.walk_covering(ROOT, Some(filter), true, class, &mut best);
        (best != NONE).then_some(best as usize)
    }

    /// Walks nodes whose prefix covers the requested filter's prefix.
    fn walk_covering(
        &self,
        node_id: u32,
        remaining: Option<&str>,
        at_root: bool,
        class: usize,
        best: &mut u32,
    ) {
        let node = &self.nodes[node_id as usize];
        if node.min_rule >= *best {
            return;
        }
        let Some(rest) = remaining else {
            first_in(&node.exact, decisive, class, best);
            first_in(&node.multi, decisive, class, best);
            return;
        };
        let (level, after) = split_level(rest);
        match level {
            "#" => {
                // Only `prefix/#` covers; everything else below merely overlaps.
                first_in(&node.multi, decisive, class, best);
                if at_root {
                    // `+/#` covers `#`: no topic is the empty string.
                    if let Some(plus) = node.plus {
                        first_in(&self.nodes[plus as usize].multi, decisive, class, best);
                    }
                }
            }
            "+" => {
                first_in(&node.multi, decisive, class, best);
                if let Some(plus) = node.plus {
                    self.walk_covering(plus, after, false, class, best);
                }
            }
            literal => {
                let dollar = at_root && literal.starts_with('$');
                if !dollar {
                    first_in(&node.multi, decisive, class, best);
                }
                if let Some(child) = node.literal.get(literal) {
                    self.walk_covering(child, after, false, class, best);
                }
                if !dollar {
                    if let Some(plus) = node.plus {
                        self.walk_covering(plus, after, false, class, best);
                    }
                }
            }
        }
    }

    /// The number of nodes (for tests and sizing).
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(filters: &[&str]) -> RuleTrie {
        RuleTrie::build(
            filters
                .iter()
                .enumerate()
                .map(|(index, filter)| IndexEntry {
                    index,
                    filter,
                    decisive: 0b11_1111,
                }),
        )
    }

    #[test]
    fn shares_prefixes() {
        let t = trie(&["a/b", "a/c", "a/+/d", "a/#"]);
        // root, a, b, c, +, d
        assert_eq!(t.node_count(), 6);
    }

    #[test]
    fn finds_the_lowest_matching_rule_for_a_topic() {
        let t = trie(&["x/#", "a/b", "a/+", "#", "a/#"]);
        assert_eq!(t.first_publish_decider("a/b", 0), Some(1));
        assert_eq!(t.first_publish_decider("a/c", 0), Some(2));
        assert_eq!(t.first_publish_decider("a", 0), Some(3));
        assert_eq!(t.first_publish_decider("x", 0), Some(0));
        assert_eq!(t.first_publish_decider("$SYS/a", 0), None);
    }

    #[test]
    fn switches_to_a_map_with_many_children() {
        let filters: Vec<String> = (0..100).map(|i| format!("t/{i}/x")).collect();
        let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
        let t = trie(&refs);
        assert_eq!(t.first_publish_decider("t/57/x", 0), Some(57));
        assert_eq!(t.first_publish_decider("t/100/x", 0), None);
    }
}
