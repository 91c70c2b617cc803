//! What a session shows operators: where the connection attached to it came from, whether
//! an operator asked for that connection to be closed (a kick), and its expiry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tollgate_mqtt::ProtocolVersion;

use super::SessionState;

/// The connection attached to a session, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedConnection {
    /// The listener it came in on.
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The protocol version it speaks.
    pub version: ProtocolVersion,
    /// When its CONNECT was accepted (the protocol core's clock: see `crate::clock`).
    pub connected_at: Instant,
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
