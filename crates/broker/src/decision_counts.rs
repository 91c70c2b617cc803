//! Counts of the authorization decisions, allowing and denying, for `/metrics`: by action
//! (publish, subscribe, receive), result, the authorizer whose rule or default decided, and
//! whether a rule or a default did.
//!
//! Every PUBLISH and every delivery is decided, so a decision is counted where the connection
//! makes it, in its own [`LocalDecisions`], and added to the shared counts with its other
//! counts after each round of work. The label values come from a fixed set or from the
//! configuration (authorizer names), never from a client; the rule itself (its file and
//! line) is not a label, as a policy of ten thousand rules would make ten thousand series:
//! `POST /api/v1/authorize` and the audit lines name it.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::RwLock;
use tollgate_auth::permissions::{CompiledPermissions, DecidedBy, Decision};

use crate::stats::BrokerStats;

/// The action decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedAction {
    /// A PUBLISH from the client.
    Publish,
    /// A SUBSCRIBE from the client (its final decision, after any lowering of the QoS).
    Subscribe,
    /// A message about to be sent to the client.
    Receive,
}

impl DecidedAction {
    /// Every action, in label order.
    pub const ALL: [DecidedAction; 3] = [
        DecidedAction::Publish,
        DecidedAction::Subscribe,
        DecidedAction::Receive,
    ];

    /// Its `action` label.
    pub fn label(self) -> &'static str {
        match self {
            DecidedAction::Publish => "publish",
            DecidedAction::Subscribe => "subscribe",
            DecidedAction::Receive => "receive",
        }
    }
}

/// The label of decisions no authorizer made (the end of the chain, an invalid request).
pub const NO_AUTHORIZER: &str = "-";

/// Authorizer names counted apart; decisions of any further name count under `other` (names
/// come from the configuration, so this is only a backstop).
pub const MAX_AUTHORIZER_NAMES: usize = 256;

/// action × result × decided by.
const SLOTS: usize = 3 * 2 * 2;

fn slot(action: DecidedAction, allowed: bool, by_rule: bool) -> usize {
    (action as usize) * 4 + usize::from(allowed) * 2 + usize::from(by_rule)
}

/// One counted combination, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionCount<'a> {
    /// The authorizer that decided ([`NO_AUTHORIZER`] when none did).
    pub authorizer: &'a str,
    /// The action decided.
    pub action: DecidedAction,
    /// Whether it was allowed.
    pub allowed: bool,
    /// Whether a rule decided (otherwise a default).
    pub by_rule: bool,
    /// How many such decisions.
    pub count: u64,
}

/// One authorizer's counts, shared by every connection.
#[derive(Debug, Default)]
pub struct AuthorizerTally {
    counts: [AtomicU64; SLOTS],
}

/// Every authorizer's counts, by name.
#[derive(Debug, Default)]
pub struct DecisionCounts {
    by_authorizer: RwLock<Vec<(Arc<str>, Arc<AuthorizerTally>)>>,
}

impl DecisionCounts {
    /// The counts of the authorizer called `name` (made on first use).
    pub fn tally(&self, name: &str) -> Arc<AuthorizerTally> {
        if let Some((_, tally)) = self.by_authorizer.read().iter().find(|(n, _)| &**n == name) {
            return Arc::clone(tally);
        }
        let mut all = self.by_authorizer.write();
        let name = if all.len() >= MAX_AUTHORIZER_NAMES {
            "other"
        } else {
            name
        };
        if let Some((_, tally)) = all.iter().find(|(n, _)| &**n == name) {
            return Arc::clone(tally);
        }
        let tally = Arc::new(AuthorizerTally::default());
        all.push((name.into(), Arc::clone(&tally)));
        tally
    }

    /// Calls `each` with every combination counted so far.
    pub fn for_each(&self, mut each: impl FnMut(DecisionCount<'_>)) {
        for (name, tally) in self.by_authorizer.read().iter() {
            for action in DecidedAction::ALL {
                for allowed in [true, false] {
                    for by_rule in [true, false] {
                        let count = BrokerStats::get(&tally.counts[slot(action, allowed, by_rule)]);
                        if count > 0 {
                            each(DecisionCount {
                                authorizer: name,
                                action,
                                allowed,
                                by_rule,
                                count,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// The decisions one connection made since its counts were last added to the broker's: a
/// slot per authorizer of its compiled permissions, and one for decisions none made.
#[derive(Debug)]
pub struct LocalDecisions {
    tallies: Box<[Arc<AuthorizerTally>]>,
    counts: Box<[[u32; SLOTS]]>,
}

impl LocalDecisions {
    /// Counts for the decisions of `permissions`.
    pub fn new(shared: &DecisionCounts, permissions: &CompiledPermissions) -> LocalDecisions {
        let tallies: Box<[Arc<AuthorizerTally>]> = (0..permissions.authorizer_count())
            .map(|i| shared.tally(permissions.authorizer_name(i).unwrap_or(NO_AUTHORIZER)))
            .chain(std::iter::once(shared.tally(NO_AUTHORIZER)))
            .collect();
        let counts = vec![[0; SLOTS]; tallies.len()].into_boxed_slice();
        LocalDecisions { tallies, counts }
    }

    /// Counts `decision`, made by `permissions` (the ones these counts were made for).
    pub fn count(
        &mut self,
        permissions: &CompiledPermissions,
        action: DecidedAction,
        decision: &Decision,
    ) {
        let last = self.counts.len() - 1;
        let authorizer = permissions
            .deciding_authorizer(decision)
            .map_or(last, |i| i.min(last));
        let by_rule = matches!(decision.decided_by, DecidedBy::Rule(_));
        let count = &mut self.counts[authorizer][slot(action, decision.allowed, by_rule)];
        *count = count.saturating_add(1);
    }

    /// Adds the counts to the broker's and resets them.
    pub fn flush(&mut self) {
        for (tally, counts) in self.tallies.iter().zip(self.counts.iter_mut()) {
            for (shared, count) in tally.counts.iter().zip(counts.iter_mut()) {
                BrokerStats::add(shared, u64::from(*count));
                *count = 0;
            }
        }
    }
}

impl Drop for LocalDecisions {
    fn drop(&mut self) {
        self.flush();
    }
}
