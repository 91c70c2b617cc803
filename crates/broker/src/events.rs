//! What happens in the broker, told to code that embeds it: a client connected or
//! disconnected, a message was published or delivered, an audited decision was taken.
//!
//! An embedder registers [`EventHook`]s in [`crate::Extensions::hooks`]; every hook sees every
//! [`Event`], in the order the connection that caused it took them, on that connection's task.
//! A hook must therefore be quick and must not block (hand work to a channel of its own); with
//! no hook registered an event costs one branch. A hook that panics is contained: the panic is
//! logged, the other hooks are still told, and the connection goes on. The audit lines are written whether or not a
//! hook is registered: [`Event::Audit`] is the same event, typed.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tollgate_auth::audit::AuditEvent;

use crate::audit_counts::AuditCounts;
use crate::audit_feed::{self, AuditFeed};
use tollgate_auth::audit::AuditObserver;
use tollgate_mqtt::{ProtocolVersion, QoS, ReasonCode};

/// One thing that happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A CONNECT was accepted (CONNACK 0 sent).
    Connected {
        /// The listener's name.
        listener: &'a str,
        /// The client's address.
        peer: SocketAddr,
        /// The client identifier (assigned by the broker if the client sent none).
        client_id: &'a str,
        /// The principal's user name, if it has one.
        username: Option<&'a str>,
        /// The protocol version the client speaks.
        version: ProtocolVersion,
        /// Whether an existing session was resumed.
        session_present: bool,
    },
    /// A connected client's connection ended.
    Disconnected {
        /// The client identifier.
        client_id: &'a str,
        /// Why (the 5.0 reason code; 0 for a normal DISCONNECT).
        reason: ReasonCode,
        /// Whether the client ended it with DISCONNECT.
        by_client: bool,
    },
    /// A client's PUBLISH was allowed and is being routed.
    Published {
        /// The publishing client.
        client_id: &'a str,
        /// The topic.
        topic: &'a str,
        /// The QoS it was published with.
        qos: QoS,
        /// Whether it is retained.
        retain: bool,
        /// The payload.
        payload: &'a [u8],
    },
    /// A message was written to a client (a PUBLISH, first sent or sent again).
    Delivered {
        /// The receiving client.
        client_id: &'a str,
        /// The topic.
        topic: &'a str,
        /// The QoS it is delivered with.
        qos: QoS,
    },
    /// An audited decision (the same event the audit line records).
    Audit(&'a AuditEvent<'a>),
}

/// Code told of every [`Event`].
pub trait EventHook: Send + Sync + 'static {
    /// Called for each event, on the task of the connection it concerns: quick, never blocking.
    fn on_event(&self, event: &Event<'_>);
}

/// The hooks registered, shared by every connection, and the counts of audited decisions.
#[derive(Clone, Default)]
pub struct Hooks {
    hooks: Arc<[Arc<dyn EventHook>]>,
    counts: Arc<AuditCounts>,
    feed: Arc<AuditFeed>,
}

impl Hooks {
    /// The hooks of `hooks`, in that order.
    pub fn new(hooks: Vec<Arc<dyn EventHook>>) -> Hooks {
        Hooks {
            hooks: hooks.into(),
            counts: Arc::default(),
            feed: Arc::default(),
        }
    }

    /// Whether no hook is registered (events need not be built).
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Whether a connect or disconnect event needs to be built: a hook is registered or the
    /// audit feed has a listener.
    pub fn observes_connections(&self) -> bool {
        !self.is_empty() || self.feed.wanted()
    }

    /// The audit feed (the event stream's and the audit file's source).
    pub(crate) fn feed(&self) -> Arc<AuditFeed> {
        Arc::clone(&self.feed)
    }

    /// The counts of audited decisions (for `/metrics`).
    pub(crate) fn counts(&self) -> &AuditCounts {
        &self.counts
    }

    /// Tells every hook of `event` (and the audit feed of connects and disconnects).
    pub fn emit(&self, event: &Event<'_>) {
        if self.feed.wanted() {
            if let Some(fed) = audit_feed::json::connection_event(event) {
                self.feed.publish(fed);
            }
        }
        for hook in self.hooks.iter() {
            let told = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                hook.on_event(event);
            }));
            if told.is_err() {
                tracing::error!("an event hook panicked; the broker goes on");
            }
        }
    }

    /// Writes the audit line of `event`, and tells every hook.
    pub fn audit(&self, event: AuditEvent<'_>) {
        event.record();
        self.counts.count(&event);
        self.feed.observe(&event);
        if !self.is_empty() {
            self.emit(&Event::Audit(&event));
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooks({})", self.hooks.len())
    }
}
