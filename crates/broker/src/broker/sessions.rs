//! Sessions as the shared state holds them: opened at CONNECT (resumed, taken over or
//! refused), closed when their connection ends (with the will and the expiry scheduled on the
//! deadline queue), and ended.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tollgate_auth::Owner;
use tollgate_mqtt::Will;

use super::{Broker, NEVER_EXPIRES};
use crate::deadlines::Due;
use crate::session::{Detached, QueueLimits, Session};
use crate::stats::BrokerStats;
use crate::wake::SessionWake;

/// A connection's will as it closes: the will, and the delay it is due after (the will delay
/// interval, at most the session's expiry).
#[derive(Debug, Clone)]
pub struct ClosingWill {
    /// The will.
    pub will: Will,
    /// Seconds until it is due; 0: at once.
    pub delay: u32,
}

/// Refusal to open a session: it exists and belongs to another principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOwnedByAnother;

/// A session handed to a connection at CONNECT.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The session.
    pub session: Arc<Session>,
    /// The connection's generation: the session is the connection's while this is current.
    pub generation: u64,
    /// Whether an existing session was resumed (CONNACK's session present flag).
    pub present: bool,
    /// Wakes this connection when messages are queued for it, or when it is taken over.
    pub wake: Arc<SessionWake>,
}

impl Broker {
    /// A client identifier for a client that sent an empty one.
    pub fn assign_client_id(&self) -> String {
        let n = self.assigned_ids.fetch_add(1, Ordering::Relaxed);
        let start = self.started_at.elapsed().as_nanos() as u64;
        format!(
            "tollgate-{:x}{:08x}",
            n,
            (start ^ (std::process::id() as u64)) as u32
        )
    }

    /// Opens the session of `client_id` for a new connection: resumes the existing one unless
    /// `clean_start`, takes it over from a connection still attached to it (that connection is
    /// woken and finds its generation gone), or creates a new one. An existing session whose
    /// owner is not `owner` is neither resumed nor replaced: it belongs to another principal.
    ///
    /// A session that was not persistent (expiry 0: it lives only as long as its connection)
    /// ends when it is taken over, whatever `clean_start` says: there is nothing to resume
    /// (session present 0), and the old connection's will goes out as it closes. A will
    /// waiting for its delay is cancelled by the new connection, with clean start or not
    /// (MQTT-3.1.2-8).
    pub fn open_session(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        owner: Option<&Owner>,
    ) -> Result<OpenedSession, SessionOwnedByAnother> {
        let mut sessions = self.sessions.lock();
        if let Some(existing) = sessions.get(client_id).cloned() {
            let mut state = existing.state.lock();
            if state.owner() != owner {
                return Err(SessionOwnedByAnother);
            }
            if !clean_start && state.is_persistent() {
                let (generation, wake) = state.resume(expiry_interval);
                state.write_record(client_id);
                drop(state);
                self.deadlines.cancel(existing.id);
                existing.set_online(true);
                return Ok(OpenedSession {
                    session: existing,
                    generation,
                    present: true,
                    wake,
                });
            }
            // The old session ends here; a connection still attached to it is woken and
            // closes (its will, if due at once, goes out then). A will waiting for its delay
            // is cancelled by the new connection.
            let (filters, _cancelled_will) = state.end(client_id);
            drop(state);
            self.deadlines.cancel(existing.id);
            existing.set_online(false);
            sessions.remove(client_id);
            self.remove_filters(&existing, &filters);
        }
        let id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let limits = &self.config.limits;
        let session = Arc::new(Session::new(
            id,
            client_id.into(),
            expiry_interval,
            QueueLimits {
                max_messages: limits.max_queued_messages,
                max_bytes: limits.max_queued_bytes,
                queue_qos0_offline: limits.queue_qos0_offline,
            },
            Arc::clone(&self.memory),
            self.store.clone(),
        ));
        let (generation, wake) = {
            let mut state = session.state.lock();
            let opened = state.open(owner.cloned());
            state.write_record(client_id);
            opened
        };
        session.set_online(true);
        sessions.insert(session.client_id.clone(), session.clone());
        Ok(OpenedSession {
            session,
            generation,
            present: false,
            wake,
        })
    }

    /// Detaches a closing connection from its session. `will` is the will to publish (the
    /// connection decided whether its ending calls for it): published now, or after its delay
    /// unless a new connection resumes the session first. A session with expiry 0 ends now; a
    /// finite one ends when its interval has passed without a new connection. A connection
    /// that was taken over publishes its will only if the takeover ended its session (clean
    /// start, or a session that was not persistent) and the will is due at once: a device
    /// that comes back to its persistent session has not gone away, and a new connection
    /// cancels a delayed will (MQTT-3.1.2-8), as Mosquitto does.
    pub fn close_session(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        will: Option<ClosingWill>,
    ) {
        let detached = {
            let mut state = session.state.lock();
            let detached = state.detach(generation, will.map(|w| (w.will, w.delay)));
            if matches!(detached, Detached::Detached { expiry, .. } if expiry > 0) {
                state.write_record(&session.client_id);
            }
            detached
        };
        let (expiry, delay) = match detached {
            Detached::Stale { ended, will } => {
                // Taken over: its will goes out only if the takeover ended the session and
                // the will is due at once.
                if let (true, Some((will, 0))) = (ended, will) {
                    self.publish_will(will, session.id);
                }
                return;
            }
            Detached::Detached {
                expiry,
                will_delay,
                will_now,
            } => {
                session.set_online(false);
                if let Some(will) = will_now {
                    self.publish_will(will, session.id);
                }
                (expiry, will_delay)
            }
        };
        if expiry == 0 {
            self.end_session(session);
            return;
        }
        let now = crate::clock::now();
        let after = |seconds: u32| now.checked_add(Duration::from_secs(u64::from(seconds)));
        let will_at = (delay > 0).then(|| after(delay)).flatten();
        let expiry_at = (expiry != NEVER_EXPIRES).then(|| after(expiry)).flatten();
        self.deadlines
            .schedule(session, generation, will_at, expiry_at);
    }

    /// A deadline the connection of `generation` left on `session` has come: its will goes
    /// out, or the session ends, unless a connection has come since.
    pub(super) fn session_deadline_due(&self, session: &Arc<Session>, generation: u64, due: Due) {
        match due {
            Due::Will => {
                let will = session.state.lock().take_will(generation);
                if let Some(will) = will {
                    self.publish_will(will, session.id);
                }
            }
            Due::Expiry => {
                let idle = session.state.lock().idle_since(generation);
                if idle {
                    self.end_session(session);
                }
            }
        }
    }

    /// How many sessions have a will delay or an expiry pending.
    pub fn pending_session_deadlines(&self) -> usize {
        self.deadlines.len()
    }

    /// Ends a session: removes it from the registry (if it is still the one registered under
    /// its client identifier) and the trie, and publishes a will still waiting on it.
    pub fn end_session(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock();
        let (filters, pending_will) = {
            let mut state = session.state.lock();
            if state.has_ended() || state.is_attached() {
                return;
            }
            state.end(&session.client_id)
        };
        self.deadlines.cancel(session.id);
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
        drop(sessions);
        self.remove_filters(session, &filters);
        if let Some(will) = pending_will {
            self.publish_will(will, session.id);
        }
    }

    fn remove_filters(&self, session: &Arc<Session>, filters: &[String]) {
        if filters.is_empty() {
            return;
        }
        let mut trie = self.subscriptions.write();
        let mut removed = 0;
        for filter in filters {
            if trie.remove(filter, session.id) {
                removed += 1;
            }
        }
        BrokerStats::sub(&self.stats.subscriptions, removed);
    }
}
