//! What a session shows operators: where the connection attached to it came from and what
//! it has moved, whether
//! an operator asked for that connection to be closed (a kick), and its expiry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tollgate_mqtt::ProtocolVersion;

use super::SessionState;
use crate::stats::LocalCounts;

/// What a connection has moved so far: added to by its own task after each round of work
/// (uncontended atomics), read by the admin API.
#[derive(Debug, Default)]
pub struct ConnectionTraffic {
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
}

/// A [`ConnectionTraffic`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Bytes read from the client.
    pub bytes_received: u64,
    /// Bytes written to the client.
    pub bytes_sent: u64,
    /// PUBLISH packets from the client.
    pub messages_received: u64,
    /// PUBLISH packets to the client.
    pub messages_sent: u64,
}

impl ConnectionTraffic {
    /// Adds one round's counts.
    pub fn add(&self, counts: &LocalCounts) {
        let add = |to: &AtomicU64, n: u64| {
            if n > 0 {
                to.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.bytes_received, counts.bytes_received);
        add(&self.bytes_sent, counts.bytes_sent);
        add(&self.messages_received, counts.received.messages_total());
        add(&self.messages_sent, counts.sent.messages_total());
    }

    /// The counts now.
    pub fn read(&self) -> TrafficCounts {
        TrafficCounts {
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
        }
    }
}

/// The connection attached to a session, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct AttachedConnection {
    /// The listener it came in on.
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The protocol version it speaks.
    pub version: ProtocolVersion,
    /// When its CONNECT was accepted (the protocol core's clock: see `crate::clock`).
    pub connected_at: Instant,
    /// What it has moved since.
    pub traffic: Arc<ConnectionTraffic>,
}

impl SessionState {
    /// The session expiry interval, seconds (`u32::MAX`: never).
    pub fn expiry_interval(&self) -> u32 {
        self.expiry_interval
    }

    /// Records where the connection attached now came from (at CONNECT).
    pub fn set_connection(&mut self, connection: AttachedConnection) {
        self.connection = Some(Arc::new(connection));
    }

    /// The connection attached now, if one is.
    pub fn attached_connection(&self) -> Option<Arc<AttachedConnection>> {
        self.attached.then(|| self.connection.clone()).flatten()
    }

    /// Asks the connection attached now to close (an operator's kick, `by` the name of the
    /// admin token); false when none is attached. It is woken and closes with DISCONNECT
    /// 0x98 (5.0) at its next turn.
    pub fn kick(&mut self, by: &str) -> bool {
        if !self.attached {
            return false;
        }
        self.kick = Some((self.generation, Arc::from(by)));
        self.wake.notify();
        true
    }

    /// Who asked the connection of `generation` to close, if someone did.
    pub fn kicked_by(&self, generation: u64) -> Option<Arc<str>> {
        match &self.kick {
            Some((kicked, by)) if *kicked == generation => Some(Arc::clone(by)),
            _ => None,
        }
    }
}
