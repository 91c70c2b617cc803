//! Authentication: who a connecting client is.
//!
//! A listener's [`AuthChain`] asks its [`Authenticator`]s in order; each answers allow, deny or
//! next ([`AuthOutcome`]), or
//! asks the client one more question (MQTT 5 enhanced authentication in several steps:
//! [`Challenge`]). Built-in authenticators live in their own modules
//! ([`crate::password_file`]); an embedder adds its own by implementing the trait.

mod address;
mod authenticator;
mod by;
mod cache;
mod chain;
mod exchange;
mod outcome;
mod request;
mod throttle;

pub use address::{AddressKey, Held, HeldPerAddress, HoldRefused};
pub use authenticator::{Authenticator, BoxFuture};
pub use by::AuthenticatedBy;
pub use cache::AuthCache;
pub use chain::{AuthChain, ChainDecision, ChainEntry, OnError};
pub use exchange::{Challenge, ExchangeState};
pub use outcome::{AuthError, AuthOutcome, DenyReason, Identity, ProviderTokens};
pub use request::ConnectRequest;
pub use throttle::{Attempt, AttemptEnd, LoginThrottle, ThrottleConfig};
