//! The running Tollgate broker: listeners, connections, sessions, routing and retained
//! messages.
//!
//! The API is small: [`Server`] starts a broker from a [`BrokerConfig`] (or checks one with
//! [`Server::prepare`], which gives a [`Prepared`]), with [`Extensions`]: authenticators
//! supplied in code and [`EventHook`]s told of every [`Event`]. [`verdict`] is the broker's
//! decision on a client described offline (what `tollgate check` prints). Problems with a
//! configuration are [`ConfigProblems`], each naming its key.
//!
//! Inside (see ARCHITECTURE.md): `server` binds listeners and runs an accept loop per
//! listener; `driver` runs one connection's socket and clock; `connection` is that
//! connection's protocol state machine, free of I/O; `broker` is the state all connections
//! share (`session`s, the subscription trie, the `retained` store); `store` keeps what must
//! survive a restart on disk (persistent sessions, retained messages); `live` applies a new
//! configuration while running; `sys` publishes the `$SYS` counters kept in `stats`;
//! `admin` serves the admin HTTP API and `/metrics`.
//!
//! The modules marked hidden (`connection`, `broker`, `listener`, `session`, `shared`, ...)
//! are public only so that the crate's protocol tests and the fuzz target can drive the
//! protocol core over a fake of the shared state; they are not part of the API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod events;
pub mod verdict;

mod accept;
mod admin;
mod admission;
mod audit_counts;
mod audit_feed;
mod authorization;
mod client_id;
mod clock;
mod config;
mod config_cause;
mod deadlines;
mod device_grant;
mod driver;
mod live;
mod network;
mod request_rate;
mod revocation;
mod server;
mod stop;
mod store;
mod subscriptions;
mod tls;
mod tls_error;
mod token_issuer;
mod transport;
mod validate;
mod wake;
mod websocket;

#[doc(hidden)]
pub mod broker;
#[doc(hidden)]
pub mod connection;
#[doc(hidden)]
pub mod decision_counts;
#[doc(hidden)]
pub mod listener;
#[doc(hidden)]
pub mod memory;
#[doc(hidden)]
pub mod message;
#[doc(hidden)]
pub mod operator;
#[doc(hidden)]
pub mod retained;
#[doc(hidden)]
pub mod session;
#[doc(hidden)]
pub mod shared;
pub mod stats;
#[doc(hidden)]
pub mod sys;

pub use admin::tokens::{file_line as admin_token_line, AdminTokens, Role as AdminRole};
pub use admission::{Admitted, Permissions, Refusal};
pub use broker::Broker;
pub use config::{
    AclFileSource, AdminConfig, AuditConfig, AuthenticatorConfig, AuthenticatorKind,
    AuthorizationConfig, AuthorizerConfig, AuthorizerKind, BrokerConfig, CertIdentityField,
    CertIdentityUse, ClientCertMode, DeniedPublish, DeniedSubscribeCode, FsyncMode,
    IssuedTokenSource, Limits, ListenerConfig, PasswordFileConfig, PasswordKey, PersistenceConfig,
    PolicyFileSource, RevocationConfig, TlsConfig, TokenIssuerConfig, WebSocketConfig,
};
pub use config_cause::{ConfigCause, NamedTable};
pub use events::{Event, EventHook};
pub use live::Reconfigured;
pub use server::{Extensions, Prepared, Server, StartError};
pub use store::{OpenError as StoreOpenError, Recovered};
pub use tls_error::{TlsError, TlsMaterial};
pub use validate::{ConfigProblem, ConfigProblems, KeyPart, KeyPath};
