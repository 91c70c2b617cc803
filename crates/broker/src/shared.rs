//! What one connection reaches of the state all connections share, and nothing more: the
//! protocol core ([`crate::connection::Connection`]) is generic over this trait, the running
//! broker implements it ([`Broker`]), and a test can put a fake in its place to see or steer
//! exactly what a connection asks of the rest of the broker.

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use tollgate_auth::permissions::CompiledPermissions;
use tollgate_auth::revocation::RevocationList;
use tollgate_auth::Owner;
use tollgate_mqtt::SubscriptionOptions;

use crate::broker::{
    Broker, ClosingWill, OpenedSession, RouteOutcome, RouteTarget, SessionOwnedByAnother,
};
use crate::config::BrokerConfig;
use crate::events::Hooks;
use crate::memory::MemoryBudget;
use crate::message::Message;
use crate::operator::bans::Ban;
use crate::retained::RetainRefused;
use crate::session::Session;
use crate::stats::BrokerStats;
use crate::wake::SessionWake;

/// The shared state as a connection uses it.
pub trait Shared: Send + Sync + 'static {
    /// The configuration the broker runs with.
    fn config(&self) -> &BrokerConfig;

    /// What messages, deliveries and buffers are charged to.
    fn memory(&self) -> &Arc<MemoryBudget>;

    /// The counters `$SYS` publishes.
    fn stats(&self) -> &BrokerStats;

    /// The embedder's event hooks (audit events go through them too).
    fn hooks(&self) -> &Hooks;

    /// Permissions that allow everything (for connections no authorizer applies to).
    fn allow_all(&self) -> &Arc<CompiledPermissions>;

    /// A client identifier for a client that sent none.
    fn assign_client_id(&self) -> String;

    /// The session for `client_id` at CONNECT: a new one, or the existing one resumed or
    /// taken over; refused when it exists and belongs to another principal.
    fn open_session(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        owner: Option<&Owner>,
    ) -> Result<OpenedSession, SessionOwnedByAnother>;

    /// The connection of `generation` has ended: the session is detached, its will published
    /// or scheduled, its expiry scheduled.
    fn close_session(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        will: Option<ClosingWill>,
    );

    /// Subscribes `session` to `filter`; whether it replaced a subscription it had.
    fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> bool;

    /// Removes `session`'s subscription to `filter`; whether it existed.
    fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> bool;

    /// Calls `f` with each retained message matching `filter`, until it breaks.
    fn for_each_retained(
        &self,
        filter: &str,
        f: impl FnMut(&Arc<Message>) -> ControlFlow<()>,
    ) -> ControlFlow<()>;

    /// Stores (or, with an empty payload, clears) a retained message.
    fn retain(&self, message: Arc<Message>) -> Result<(), RetainRefused>;

    /// Gives `message` to every session subscribed to its topic (`scratch` is reused space).
    fn route(&self, message: &Arc<Message>, scratch: &mut Vec<RouteTarget>) -> RouteOutcome;

    /// Bumped whenever permissions, revocations or CRLs change: a connection that sees a new
    /// value checks its principal and compiles its permissions again.
    fn policy_generation(&self) -> u64;

    /// The revocation list in force.
    fn revocation_list(&self) -> Arc<RevocationList>;

    /// The operator's ban a client falls under (its client identifier, user names, address),
    /// if one does. Without bans (the default): none.
    fn ban_of(&self, client_id: &str, users: [Option<&str>; 2], address: IpAddr) -> Option<Ban> {
        let _ = (client_id, users, address);
        None
    }

    /// The store commit the writes made on this thread since the last call go into, if they
    /// made any (see [`crate::store::take_ticket`]): what the acknowledgement of the packet
    /// just handled waits for. Without a store: none.
    fn take_store_ticket(&self) -> Option<u64> {
        None
    }

    /// The last store commit that is durable (without a store, every one is).
    fn durable(&self) -> u64 {
        u64::MAX
    }

    /// Wakes `wake` once store commit `ticket` is durable.
    fn wake_when_durable(&self, ticket: u64, wake: &Arc<SessionWake>) {
        let _ = ticket;
        wake.notify();
    }

    /// Whether the store's disk is short of space (publishes that need storage are refused).
    fn store_full(&self) -> bool {
        false
    }
}

impl Shared for Broker {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn memory(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }

    fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    fn allow_all(&self) -> &Arc<CompiledPermissions> {
        &self.allow_all
    }

    fn assign_client_id(&self) -> String {
        Broker::assign_client_id(self)
    }

    fn open_session(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        owner: Option<&Owner>,
    ) -> Result<OpenedSession, SessionOwnedByAnother> {
        Broker::open_session(self, client_id, clean_start, expiry_interval, owner)
    }

    fn close_session(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        will: Option<ClosingWill>,
    ) {
        Broker::close_session(self, session, generation, will)
    }

    fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> bool {
        Broker::subscribe(self, session, filter, options, identifier)
    }

    fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> bool {
        Broker::unsubscribe(self, session, filter)
    }

    fn for_each_retained(
        &self,
        filter: &str,
        f: impl FnMut(&Arc<Message>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        Broker::for_each_retained(self, filter, f)
    }

    fn retain(&self, message: Arc<Message>) -> Result<(), RetainRefused> {
        Broker::retain(self, message)
    }

    fn route(&self, message: &Arc<Message>, scratch: &mut Vec<RouteTarget>) -> RouteOutcome {
        Broker::route(self, message, scratch)
    }

    fn policy_generation(&self) -> u64 {
        Broker::policy_generation(self)
    }

    fn revocation_list(&self) -> Arc<RevocationList> {
        Broker::revocation_list(self)
    }

    fn ban_of(&self, client_id: &str, users: [Option<&str>; 2], address: IpAddr) -> Option<Ban> {
        Broker::ban_of(self, client_id, users, Some(address))
    }

    fn take_store_ticket(&self) -> Option<u64> {
        self.store().and_then(|_| crate::store::take_ticket())
    }

    fn durable(&self) -> u64 {
        self.store().map_or(u64::MAX, |store| store.durable())
    }

    fn wake_when_durable(&self, ticket: u64, wake: &Arc<SessionWake>) {
        match self.store() {
            Some(store) => store.wake_when_durable(ticket, wake),
            None => wake.notify(),
        }
    }

    fn store_full(&self) -> bool {
        self.store().is_some_and(|store| store.is_full())
    }
}
