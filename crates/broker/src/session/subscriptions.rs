//! A session's subscriptions: recorded by full filter, charged to the memory budget, and
//! written to the store while the session is persistent. (The routing copy is the broker's
//! subscription trie.)

use std::collections::HashMap;

use tollgate_mqtt::SubscriptionOptions;

use super::SessionState;
use crate::store::{records, Space};

/// A subscription as the session records it (the trie holds the routing copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSubscription {
    /// Options subscribed with.
    pub options: SubscriptionOptions,
    /// 5.0 subscription identifier.
    pub identifier: Option<u32>,
}

impl SessionState {
    /// The subscriptions, by full filter.
    pub fn subscriptions(&self) -> &HashMap<String, SessionSubscription> {
        &self.subscriptions
    }

    /// Bytes the subscriptions' filters hold.
    pub fn subscription_bytes(&self) -> usize {
        self.subscription_bytes
    }

    /// Records a subscription (replacing one to the same filter); its bytes are charged to
    /// the memory budget (twice: the session's copy and the trie's).
    pub fn add_subscription(&mut self, filter: &str, subscription: SessionSubscription) {
        if self
            .subscriptions
            .insert(filter.to_owned(), subscription)
            .is_none()
        {
            self.subscription_bytes += filter.len();
            self.budget.charge(subscription_cost(filter));
        }
        if let Some(store) = self.persisting() {
            store.put(
                Space::Subscriptions,
                records::subscription_key(self.uid, filter),
                records::encode_subscription(subscription.options, subscription.identifier),
            );
        }
    }

    /// Forgets a subscription. Returns whether it existed.
    pub fn remove_subscription(&mut self, filter: &str) -> bool {
        let existed = self.subscriptions.remove(filter).is_some();
        if existed {
            self.subscription_bytes -= filter.len();
            self.budget.release(subscription_cost(filter));
            if let Some(store) = self.store.as_deref().filter(|_| self.in_store) {
                store.delete(
                    Space::Subscriptions,
                    records::subscription_key(self.uid, filter),
                );
            }
        }
        existed
    }

    /// Takes every subscription's filter (the session ends).
    pub fn take_subscriptions(&mut self) -> Vec<String> {
        let filters: Vec<String> = self.subscriptions.drain().map(|(f, _)| f).collect();
        for filter in &filters {
            self.budget.release(subscription_cost(filter));
        }
        self.subscription_bytes = 0;
        filters
    }
}

/// What one subscription costs in memory: its filter twice (the session's record and the
/// trie's entry) and their bookkeeping.
fn subscription_cost(filter: &str) -> usize {
    2 * filter.len() + 128
}
