//! One queue for the deadlines of sessions without a connection: a will waiting for its delay
//! and the session's expiry.
//!
//! Each session has at most one entry, replaced when its connection closes again and removed
//! when a connection resumes or ends it, so the queue never holds more than the registry
//! does (a device that reconnects a million times with a year's expiry leaves one entry, not
//! a million sleeping tasks). One task sleeps until the earliest deadline and hands what is
//! due back to the broker.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Instant;
use tokio::sync::Notify;

use crate::session::Session;

/// What came due for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// The will left by the connection of this generation has waited its delay.
    Will,
    /// The session has been without a connection for its expiry interval.
    Expiry,
}

/// A session's pending deadlines.
#[derive(Debug)]
struct Entry {
    session: Weak<Session>,
    /// The generation of the connection that left: a later connection makes both moot.
    generation: u64,
    will: Option<Instant>,
    expiry: Option<Instant>,
}

#[derive(Debug, Default)]
struct Queue {
    /// (when, session id, what): ordered by time.
    by_time: BTreeSet<(Instant, u64, Due)>,
    by_session: HashMap<u64, Entry>,
    /// Whether the task that waits on the queue runs.
    started: bool,
    /// Set when the broker goes: the task ends.
    closed: bool,
}

impl Queue {
    fn remove(&mut self, session_id: u64) {
        if let Some(entry) = self.by_session.remove(&session_id) {
            if let Some(at) = entry.will {
                self.by_time.remove(&(at, session_id, Due::Will));
            }
            if let Some(at) = entry.expiry {
                self.by_time.remove(&(at, session_id, Due::Expiry));
            }
        }
    }

    /// Takes the earliest deadline if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(Arc<Session>, u64, Due)> {
        loop {
            let &(at, id, due) = self.by_time.first()?;
            if at > now {
                return None;
            }
            self.by_time.pop_first();
            let entry = self.by_session.get_mut(&id)?;
            match due {
                Due::Will => entry.will = None,
                Due::Expiry => entry.expiry = None,
            }
            let session = entry.session.upgrade();
            let generation = entry.generation;
            if entry.will.is_none() && entry.expiry.is_none() {
                self.by_session.remove(&id);
            }
            if let Some(session) = session {
                return Some((session, generation, due));
            }
        }
    }
}

/// What is called with a session's deadline as it comes due: the session, the generation
/// of the connection that left the deadline, and what came due.
pub type OnDue = Box<dyn Fn(Arc<Session>, u64, Due) + Send + Sync>;

/// The deadline queue of a broker's sessions.
pub struct SessionDeadlines {
    queue: Mutex<Queue>,
    changed: Notify,
    on_due: OnDue,
}

impl std::fmt::Debug for SessionDeadlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDeadlines")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl SessionDeadlines {
    /// An empty queue handing what comes due to `on_due` (from the queue's task).
    pub fn new(on_due: OnDue) -> SessionDeadlines {
        SessionDeadlines {
            queue: Mutex::default(),
            changed: Notify::new(),
            on_due,
        }
    }

    /// Sets the deadlines of `session`, left by the connection of `generation`, replacing any
    /// it had. The first call starts the queue's task, so it must be made inside the runtime.
    pub fn schedule(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        will: Option<Instant>,
        expiry: Option<Instant>,
    ) {
        let mut queue = self.queue.lock();
        queue.remove(session.id);
        if will.is_none() && expiry.is_none() {
            return;
        }
        if let Some(at) = will {
            queue.by_time.insert((at, session.id, Due::Will));
        }
        if let Some(at) = expiry {
            queue.by_time.insert((at, session.id, Due::Expiry));
        }
        queue.by_session.insert(
            session.id,
            Entry {
                session: Arc::downgrade(session),
                generation,
                will,
                expiry,
            },
        );
        let start = !std::mem::replace(&mut queue.started, true);
        drop(queue);
        if start {
            tokio::spawn(Arc::clone(self).run());
        } else {
            self.changed.notify_one();
        }
    }

    /// Forgets the deadlines of the session `session_id` (a connection resumed it, or it
    /// ended).
    pub fn cancel(&self, session_id: u64) {
        self.queue.lock().remove(session_id);
    }

    /// How many sessions have deadlines pending.
    pub fn len(&self) -> usize {
        self.queue.lock().by_session.len()
    }

    /// Ends the queue's task (the broker is going).
    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.changed.notify_one();
    }

    async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut queue = self.queue.lock();
                if queue.closed {
                    return;
                }
                let now = crate::clock::now();
                let mut due = Vec::new();
                while let Some(item) = queue.pop_due(now) {
                    due.push(item);
                }
                let next = queue.by_time.first().map(|&(at, _, _)| at);
                drop(queue);
                for (session, generation, what) in due {
                    (self.on_due)(session, generation, what);
                }
                next
            };
            let changed = self.changed.notified();
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(crate::clock::on_tokio(at)) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}
