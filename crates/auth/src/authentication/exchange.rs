//! Authentication in several steps (MQTT 5 enhanced authentication: CONNECT, then AUTH
//! 0x18 each way until CONNACK): what an authenticator asks the client, and what it keeps
//! until the client answers.
//!
//! An authenticator that needs another message answers [`super::AuthOutcome::Continue`] with
//! a [`Challenge`]: the data to send in AUTH 0x18 and an [`ExchangeState`] that the
//! connection holds (so it goes when the connection does: the authenticator keeps nothing
//! per client). The client's answer comes back as a request carrying that state, and the
//! chain gives it to the same authenticator alone.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What an authenticator keeps between two steps of one exchange, opaque to everyone else.
#[derive(Clone)]
pub struct ExchangeState {
    /// The authenticator that started the exchange, which alone continues it.
    by: Arc<str>,
    /// The user the exchange is for, as the client named it (not yet verified): what failed
    /// attempts are throttled under.
    user: Option<String>,
    state: Arc<dyn Any + Send + Sync>,
    /// With two identities on one CONNECT: the client's, already allowed, which joins the
    /// user's when the exchange allows.
    client: Option<Arc<ExchangeClient>>,
}

/// The client's own identity, allowed by a client authenticator, waiting for the user's
/// exchange to end.
#[derive(Debug, Clone)]
pub(super) struct ExchangeClient {
    /// What the client authenticator gave.
    pub identity: super::Identity,
    /// The client identity's name.
    pub name: String,
    /// The client authenticator.
    pub by: super::AuthenticatedBy,
}

impl ExchangeState {
    /// `state` kept for the authenticator named `by`, for the (unverified) `user`.
    pub fn new(
        by: impl Into<Arc<str>>,
        user: Option<String>,
        state: impl Any + Send + Sync,
    ) -> Self {
        ExchangeState {
            by: by.into(),
            user,
            state: Arc::new(state),
            client: None,
        }
    }

    /// The state with the client's identity waiting beside it.
    pub(super) fn with_client(mut self, client: ExchangeClient) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    /// The client's identity waiting beside the exchange, if any.
    pub(super) fn client(&self) -> Option<&ExchangeClient> {
        self.client.as_deref()
    }

    /// The authenticator that continues the exchange.
    pub fn by(&self) -> &str {
        &self.by
    }

    /// The user the client named.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The state, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.state.downcast_ref()
    }
}

impl fmt::Debug for ExchangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeState")
            .field("by", &self.by)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ExchangeState {
    /// The same state (not merely an equal one).
    fn eq(&self, other: &ExchangeState) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

/// An authenticator's question to the client: AUTH 0x18 with `data`, the answer to be given
/// back with `state`.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// The authentication data to send.
    pub data: Vec<u8>,
    /// What the authenticator needs with the answer.
    pub state: ExchangeState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_found_only_as_its_own_type() {
        let state = ExchangeState::new("scram", Some("alice".into()), 42u32);
        assert_eq!(state.get::<u32>(), Some(&42));
        assert_eq!(state.get::<String>(), None);
        assert_eq!(state.by(), "scram");
        assert_eq!(state.user(), Some("alice"));
        assert_eq!(state.clone(), state);
        assert_ne!(ExchangeState::new("scram", None, 42u32), state);
    }
}
