//! What operators read of the connected clients and do to them (the admin API): a snapshot
//! of each client's principal, connection and session, and the kick.

use std::sync::Arc;

use tollgate_auth::Principal;

use super::Broker;
use crate::session::{AttachedConnection, Session, SessionState, SessionSubscription};

/// A connected client, as an operator sees it.
#[derive(Debug, Clone)]
pub struct ConnectedClient {
    /// The client identifier.
    pub client_id: Arc<str>,
    /// Who it is.
    pub principal: Arc<Principal>,
    /// Where it came from.
    pub connection: Arc<AttachedConnection>,
    /// Whether its session outlives the connection.
    pub persistent: bool,
    /// Deliveries waiting in its queue.
    pub queued: usize,
    /// QoS 1/2 deliveries sent and not yet acknowledged.
    pub inflight: usize,
}

/// A client's subscriptions, sorted by filter.
pub type Subscriptions = Vec<(String, SessionSubscription)>;

/// A session no connection is attached to, as an operator sees it.
#[derive(Debug, Clone)]
pub struct OfflineSession {
    /// The client identifier.
    pub client_id: Arc<str>,
    /// Who owns it (`None`: anonymous).
    pub owner: Option<tollgate_auth::Owner>,
    /// Its session expiry interval, seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// Deliveries waiting for the client.
    pub queued: usize,
    /// QoS 1/2 deliveries sent before it left and not yet acknowledged.
    pub inflight: usize,
}

/// What ending a session by hand found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSession {
    /// The session was ended (its will published, if one was waiting).
    Ended,
    /// A client is connected to it: it is kicked first, not ended under it.
    Connected,
    /// There is no session with that identifier.
    Missing,
}

impl Broker {
    /// Every connected client, sorted by client identifier.
    pub fn connected_clients(&self) -> Vec<ConnectedClient> {
        let mut clients: Vec<ConnectedClient> = self
            .all_sessions()
            .iter()
            .filter_map(|session| connected(session).map(|(client, _)| client))
            .collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        clients
    }

    /// The client connected with `client_id`, with its subscriptions.
    pub fn connected_client(&self, client_id: &str) -> Option<(ConnectedClient, Subscriptions)> {
        let session = self.sessions.lock().get(client_id).cloned()?;
        connected(&session)
    }

    /// Closes the connection attached to `client_id`'s session (5.0: DISCONNECT 0x98), `by`
    /// the named admin token; false when no client is connected with that identifier. The
    /// session itself lives on as its expiry interval says.
    pub fn kick(&self, client_id: &str, by: &str) -> bool {
        let Some(session) = self.sessions.lock().get(client_id).cloned() else {
            return false;
        };
        let kicked = session.state.lock().kick(by);
        kicked
    }

    /// Every session no connection is attached to, sorted by client identifier, with its
    /// subscriptions.
    pub fn offline_sessions(&self) -> Vec<(OfflineSession, Subscriptions)> {
        let mut sessions: Vec<_> = self
            .all_sessions()
            .iter()
            .filter_map(|s| offline(s))
            .collect();
        sessions.sort_by(|a, b| a.0.client_id.cmp(&b.0.client_id));
        sessions
    }

    /// Ends the offline session of `client_id` (an operator's delete): its queued messages
    /// and subscriptions go, and a will waiting for its delay is published.
    pub fn end_offline_session(&self, client_id: &str) -> EndSession {
        let Some(session) = self.sessions.lock().get(client_id).cloned() else {
            return EndSession::Missing;
        };
        let attached = session.state.lock().is_attached();
        if attached {
            return EndSession::Connected;
        }
        self.end_session(&session);
        EndSession::Ended
    }

    /// What every session holds and where its connection came from (for `/metrics`; visits
    /// every session, a lock each).
    pub fn session_census(&self) -> SessionCensus {
        let mut census = SessionCensus::default();
        for session in self.all_sessions() {
            let state = session.state.lock();
            census.queued += state.queued() as u64;
            census.inflight += state.inflight_len() as u64;
            match state.attached_connection() {
                Some(connection) => {
                    let by = &mut census.connected_by_listener;
                    match by.iter_mut().find(|(l, _)| *l == connection.listener) {
                        Some((_, n)) => *n += 1,
                        None => by.push((Arc::clone(&connection.listener), 1)),
                    }
                }
                None => census.offline += 1,
            }
        }
        census
    }

    fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().values().cloned().collect()
    }
}

fn connected(session: &Session) -> Option<(ConnectedClient, Subscriptions)> {
    let state = session.state.lock();
    let principal = state.attached_principal()?;
    let connection = state.attached_connection()?;
    let subscriptions = sorted_subscriptions(&state);
    let client = ConnectedClient {
        client_id: Arc::clone(&session.client_id),
        principal,
        connection,
        persistent: state.is_persistent(),
        queued: state.queued(),
        inflight: state.inflight_len(),
    };
    Some((client, subscriptions))
}

fn offline(session: &Session) -> Option<(OfflineSession, Subscriptions)> {
    let state = session.state.lock();
    if state.is_attached() || state.has_ended() {
        return None;
    }
    let subscriptions = sorted_subscriptions(&state);
    let offline = OfflineSession {
        client_id: Arc::clone(&session.client_id),
        owner: state.owner().cloned(),
        expiry_interval: state.expiry_interval(),
        queued: state.queued(),
        inflight: state.inflight_len(),
    };
    Some((offline, subscriptions))
}

fn sorted_subscriptions(state: &SessionState) -> Subscriptions {
    let mut subscriptions: Subscriptions = state
        .subscriptions()
        .iter()
        .map(|(filter, subscription)| (filter.clone(), *subscription))
        .collect();
    subscriptions.sort_by(|a, b| a.0.cmp(&b.0));
    subscriptions
}

/// The sessions counted at one moment ([`Broker::session_census`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionCensus {
    /// Deliveries waiting in session queues, connected or not.
    pub queued: u64,
    /// QoS 1 and 2 deliveries sent and not yet acknowledged.
    pub inflight: u64,
    /// Sessions with no connection attached (persistent sessions kept for their client).
    pub offline: u64,
    /// Sessions with a connection attached, by the listener it came in on.
    pub connected_by_listener: Vec<(Arc<str>, u64)>,
}
