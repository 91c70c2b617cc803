//! The state every connection shares: sessions by client identifier, the subscription trie,
//! the retained messages and the counters; and what happens to a message between the
//! connection that received it and the sessions that want it.
//!
//! Locks: the session registry is taken only to open and close sessions; the trie is read
//! (shared) on publish and written on (un)subscribe; each session has its own mutex. A thread
//! never holds a session's mutex while it takes the registry or the trie.
//!
//! This file holds the state and the policy it applies (revocations, the policy generation);
//! `sessions.rs` opens, closes and ends sessions and runs their deadlines; `routing.rs`
//! subscribes, retains and routes messages to sessions; `clients.rs` is what the admin API
//! reads of connected clients and the kick.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tollgate_auth::permissions::CompiledPermissions;
use tollgate_auth::revocation::RevocationList;
use tollgate_auth::Principal;

use crate::config::BrokerConfig;
use crate::deadlines::{OnDue, SessionDeadlines};
use crate::events::Hooks;
use crate::memory::MemoryBudget;
use crate::operator::bans::BanList;
use crate::operator::revocations::OperatorRevocations;
use crate::retained::RetainedStore;
use crate::session::Session;
use crate::stats::BrokerStats;
use crate::stop::StopSignal;
use crate::store::Store;
use crate::subscriptions::SubscriptionTrie;

mod clients;
mod operator;
mod restore;
mod routing;
mod sessions;

pub use clients::{ConnectedClient, EndSession, OfflineSession, SessionCensus, Subscriptions};
pub use operator::{Banned, ListFull};
pub use routing::{RouteOutcome, RouteTarget};
pub use sessions::{ClosingWill, OpenedSession, SessionOwnedByAnother};

/// A session expiry interval meaning "never".
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    /// The configuration it runs with.
    pub config: BrokerConfig,
    /// Counters for `$SYS`.
    pub stats: BrokerStats,
    /// When the broker started.
    pub started_at: Instant,
    /// Permissions that allow everything, shared by connections no authorizer applies to.
    pub allow_all: Arc<CompiledPermissions>,
    /// What every message, delivery and connection buffer is charged to.
    pub memory: Arc<MemoryBudget>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    subscriptions: RwLock<SubscriptionTrie<Arc<Session>>>,
    retained: RwLock<RetainedStore>,
    next_session_id: AtomicU64,
    assigned_ids: AtomicU64,
    policy_generation: AtomicU64,
    /// The revocation list in force: the file's entries and the API's.
    revocations: RwLock<Arc<RevocationList>>,
    /// The revocation file's entries.
    file_revocations: RwLock<Arc<RevocationList>>,
    /// Revocations made through the admin API.
    operator_revocations: Mutex<OperatorRevocations>,
    /// Bans made through the admin API.
    bans: RwLock<BanList>,
    /// Will delays and expiries of sessions without a connection.
    deadlines: Arc<SessionDeadlines>,
    /// The embedder's event hooks.
    pub hooks: Hooks,
    /// Where persistent sessions and retained messages are kept, when persistence is on.
    store: Option<Arc<Store>>,
    /// Tells every connection to close when the server stops.
    stop: StopSignal,
}

/// What `broker`'s deadline queue does with a deadline that came due.
fn session_deadlines_of(broker: Weak<Broker>) -> OnDue {
    Box::new(move |session, generation, due| {
        if let Some(broker) = broker.upgrade() {
            broker.session_deadline_due(&session, generation, due);
        }
    })
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.deadlines.close();
    }
}

impl Broker {
    /// A broker with no sessions, subscriptions or retained messages.
    pub fn new(config: BrokerConfig) -> Arc<Broker> {
        Broker::with_hooks(config, Hooks::default())
    }

    /// [`Broker::new`], telling `hooks` of what happens.
    pub fn with_hooks(config: BrokerConfig, hooks: Hooks) -> Arc<Broker> {
        Broker::with_store(config, hooks, None)
    }

    /// A broker keeping what must survive a restart in `store` (empty as yet: see
    /// [`crate::store::recovery`] for loading what a store holds).
    pub fn with_store(
        config: BrokerConfig,
        hooks: Hooks,
        store: Option<Arc<Store>>,
    ) -> Arc<Broker> {
        let memory = MemoryBudget::new(config.limits.max_memory);
        Arc::new_cyclic(|broker: &Weak<Broker>| Broker {
            deadlines: Arc::new(SessionDeadlines::new(session_deadlines_of(broker.clone()))),
            config,
            stats: BrokerStats::default(),
            started_at: crate::clock::now(),
            allow_all: Arc::new(CompiledPermissions::allow_all()),
            memory,
            sessions: Mutex::new(HashMap::new()),
            subscriptions: RwLock::new(SubscriptionTrie::new()),
            retained: RwLock::new(RetainedStore::new()),
            next_session_id: AtomicU64::new(1),
            assigned_ids: AtomicU64::new(0),
            policy_generation: AtomicU64::new(0),
            revocations: RwLock::new(Arc::default()),
            file_revocations: RwLock::new(Arc::default()),
            operator_revocations: Mutex::new(OperatorRevocations::default()),
            bans: RwLock::new(BanList::default()),
            hooks,
            store,
            stop: StopSignal::default(),
        })
    }

    /// The signal that tells every connection to close when the server stops.
    pub(crate) fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// The store, when persistence is on.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// The principal connected with `client_id`, if a connection is attached to that session.
    pub fn connected_principal(&self, client_id: &str) -> Option<Arc<Principal>> {
        let session = self.sessions.lock().get(client_id).cloned()?;
        let principal = session.state.lock().attached_principal();
        principal
    }

    /// The revocation list in force now.
    pub fn revocation_list(&self) -> Arc<RevocationList> {
        Arc::clone(&self.revocations.read())
    }

    /// Bumped whenever authorization rules change; connections compare it with the one
    /// their permissions were compiled at.
    pub fn policy_generation(&self) -> u64 {
        self.policy_generation.load(Ordering::Acquire)
    }

    /// Authorization rules changed: every connected client compiles its permissions again
    /// (woken now, so subscriptions no longer allowed stop at once).
    pub fn permissions_changed(&self) {
        self.policy_generation.fetch_add(1, Ordering::AcqRel);
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            session.state.lock().notify_attached();
        }
    }

    /// How many sessions exist (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }
}
