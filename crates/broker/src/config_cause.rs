//! Why the broker refuses a configuration: one [`ConfigCause`] variant per cause, carried by
//! every [`crate::ConfigProblem`] beside the key it is about.

use std::fmt;

use tollgate_auth::password_file::PasswordFileError;
use tollgate_auth::policy::SourceError;
use tollgate_auth::SetupError;

use crate::tls_error::TlsError;

/// The two kinds of named table a listener refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedTable {
    /// An `[[authenticator]]`.
    Authenticator,
    /// An `[[authorizer]]`.
    Authorizer,
    /// A `[[token_issuer]]`.
    TokenIssuer,
    /// A `[[device_grant]]`.
    DeviceGrant,
}

impl NamedTable {
    /// The kind tables one of these must have exactly one of.
    fn kind_tables(self) -> &'static str {
        match self {
            NamedTable::Authenticator => {
                "password_file, jwt, introspection, password_grant, webhook or ace"
            }
            NamedTable::Authorizer => "policy_file, acl_file or claims",
            NamedTable::TokenIssuer | NamedTable::DeviceGrant => "none",
        }
    }
}

impl fmt::Display for NamedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamedTable::Authenticator => "authenticator",
            NamedTable::Authorizer => "authorizer",
            NamedTable::TokenIssuer => "token issuer",
            NamedTable::DeviceGrant => "device grant",
        })
    }
}

/// What is wrong with a configuration at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigCause {
    /// There is no `[[listener]]`.
    NoListener,
    /// A number below its least value.
    AtLeast(u64),
    /// A byte count below its least value.
    AtLeastBytes(u64),
    /// A byte count outside its range.
    BytesBetween {
        /// The least allowed.
        low: u64,
        /// The most allowed.
        high: u64,
        /// The value given.
        value: u64,
    },
    /// A number outside its range.
    Between {
        /// The least allowed.
        low: u64,
        /// The most allowed.
        high: u64,
        /// The value given.
        value: u64,
    },
    /// A QoS other than 0, 1 or 2.
    NotAQos(u64),
    /// A memory budget that is neither 0 (none) nor at least 1 MiB.
    MemoryBudgetTooSmall,
    /// A value that must not be empty is.
    Empty,
    /// A key that only means something with another setting, which is not given.
    OnlyWith(&'static str),
    /// A persistence setting without `persistence.path` (persistence is off without one).
    PersistenceWithoutPath,
    /// Two tables of a kind with the same name.
    DuplicateName {
        /// Which kind of table.
        table: NamedTable,
        /// The name.
        name: String,
    },
    /// A listener names a table that is not configured.
    NotConfigured {
        /// The listener's name.
        listener: String,
        /// Which kind of table.
        table: NamedTable,
        /// The name it gives.
        name: String,
    },
    /// A table with no kind table, or with more than one.
    KindTable {
        /// Which kind of table.
        table: NamedTable,
        /// Its name.
        name: String,
    },
    /// An authenticator's settings cannot be used.
    Authenticator {
        /// The authenticator's name.
        name: String,
        /// Why.
        error: SetupError,
    },
    /// A setting that has no default is missing.
    Required,
    /// A password file cannot be read or has an error.
    PasswordFile(PasswordFileError),
    /// A policy file, ACL file, claims template or revocation file cannot be read or has an
    /// error (with its own file, line and key).
    Source(SourceError),
    /// A token issuer or a device grant cannot be built (its signing key, a topic, a bound).
    Table {
        /// Which kind of table.
        table: NamedTable,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A listener's TLS material cannot be used.
    Tls {
        /// The listener's name.
        listener: String,
        /// Why.
        error: TlsError,
    },
}

impl fmt::Display for ConfigCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigCause::NoListener => f.write_str("at least one [[listener]] is needed"),
            ConfigCause::AtLeast(least) => write!(f, "must be at least {least}"),
            ConfigCause::AtLeastBytes(least) => write!(f, "must be at least {least} bytes"),
            ConfigCause::Between { low, high, value } => {
                write!(f, "must be between {low} and {high}, not {value}")
            }
            ConfigCause::BytesBetween { low, high, value } => {
                write!(f, "must be between {low} and {high} bytes, not {value}")
            }
            ConfigCause::NotAQos(value) => write!(f, "must be 0, 1 or 2, not {value}"),
            ConfigCause::MemoryBudgetTooSmall => {
                f.write_str("must be 0 (no budget) or at least 1 MiB")
            }
            ConfigCause::Empty => f.write_str("must not be empty"),
            ConfigCause::OnlyWith(setting) => write!(f, "is only used with {setting}"),
            ConfigCause::PersistenceWithoutPath => {
                f.write_str("is needed: persistence is on only when a path is set")
            }
            ConfigCause::DuplicateName { table, name } => {
                write!(f, "two {table}s are named `{name}`")
            }
            ConfigCause::NotConfigured {
                listener,
                table,
                name,
            } => write!(
                f,
                "listener `{listener}` names {table} `{name}`, which is not configured"
            ),
            ConfigCause::KindTable { table, name } => write!(
                f,
                "{table} `{name}` needs exactly one kind table: {}",
                table.kind_tables()
            ),
            ConfigCause::Authenticator { name, error } => {
                write!(f, "authenticator `{name}`: {error}")
            }
            ConfigCause::Required => f.write_str("must be set"),
            ConfigCause::PasswordFile(error) => write!(f, "{error}"),
            ConfigCause::Source(error) => write!(f, "{error}"),
            ConfigCause::Tls { listener, error } => write!(f, "listener `{listener}`: {error}"),
            ConfigCause::Table {
                table,
                name,
                reason,
            } => write!(f, "{table} `{name}`: {reason}"),
        }
    }
}
