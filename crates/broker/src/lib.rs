//! The running Tollgate broker: listeners, connections, sessions, routing and retained
//! messages.
//!
//! - [`server`] binds listeners and runs an accept loop per listener;
//! - [`driver`] runs one connection's socket and clock;
//! - [`connection`] is that connection's protocol state machine, free of I/O;
//! - [`broker`] is the state all connections share: [`session`]s, the
//!   [`subscriptions`] trie and the [`retained`] store;
//! - [`sys`] publishes the `$SYS` counters kept in [`stats`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod authorization;
pub mod broker;
mod client_id;
pub mod clock;
pub mod config;
pub mod connection;
pub mod deadlines;
pub mod driver;
pub mod events;
pub mod listener;
mod live;
pub mod memory;
pub mod message;
pub mod retained;
pub mod revocation;
pub mod server;
pub mod session;
pub mod shared;
pub mod stats;
pub mod subscriptions;
pub mod sys;
pub mod tls;
pub mod transport;
pub mod validate;
pub mod verdict;
pub mod wake;
pub mod websocket;

pub use admission::{Admitted, Permissions, Refusal};
pub use broker::Broker;
pub use config::{
    AclFileSource, AuthenticatorConfig, AuthorizationConfig, AuthorizerConfig, BrokerConfig,
    CertIdentityField, CertIdentityUse, ClientCertMode, DeniedPublish, DeniedSubscribeCode, Limits,
    ListenerConfig, PasswordFileConfig, PolicyFileSource, RevocationConfig, TlsConfig,
    WebSocketConfig,
};
pub use events::{Event, EventHook};
pub use live::Reconfigured;
pub use server::{Extensions, Prepared, Server};
pub use validate::{ConfigProblem, ConfigProblems, KeyPart, KeyPath};
