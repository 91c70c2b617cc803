//! The trait every authenticator implements, built in or supplied by an embedder.

use std::future::Future;
use std::pin::Pin;

use super::outcome::{AuthError, AuthOutcome};
use super::request::ConnectRequest;

/// A boxed future, so authenticators of different types can stand in one chain.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whether a connection's credentials are good.
///
/// Implementations answer [`AuthOutcome::Allow`] with the identity they vouch for,
/// [`AuthOutcome::Deny`] to refuse at once, or [`AuthOutcome::Next`] when the credentials are
/// not theirs to judge. An `Err` means the backend failed; the chain logs it and, by default,
/// refuses (fail closed).
///
/// ```
/// use tollgate_auth::authentication::{Authenticator, AuthOutcome, BoxFuture, ConnectRequest, AuthError, Identity};
///
/// /// Lets in the client whose identifier is `admin-console`, and no one else.
/// struct ConsoleOnly;
///
/// impl Authenticator for ConsoleOnly {
///     fn name(&self) -> &str {
///         "console-only"
///     }
///     fn authenticate<'a>(&'a self, request: &'a ConnectRequest) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
///         Box::pin(async move {
///             Ok(if request.client_id == "admin-console" { AuthOutcome::Allow(Identity::default()) } else { AuthOutcome::Next })
///         })
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync {
    /// The name used in logs, audit lines and configuration (`password_file`, `jwt:auth0`…).
    fn name(&self) -> &str;

    /// Judges one connection attempt.
    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>>;

    /// A number that changes whenever the authenticator's data changes (a password file was
    /// reloaded); cached results from an older revision are not used.
    fn revision(&self) -> u64 {
        0
    }

    /// Whether the decision depends on the client identifier (a token bound to one client
    /// does). When it does not, a cached allow serves the same credentials under any client
    /// identifier. The default, `true`, is the safe answer.
    fn depends_on_client_id(&self) -> bool {
        true
    }

    /// How often a connection this authenticator allowed is checked again with the same
    /// credentials while it stays connected (an introspection endpoint or a webhook that may
    /// change its answer: a token revoked at the provider). `None`: never.
    fn recheck_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether the user name field may carry a secret for this authenticator (a token sent
    /// as the user name); audit lines then leave the user name out.
    fn username_is_secret(&self) -> bool {
        false
    }

    /// Whether the user name in `request`, if this authenticator judges the request, names
    /// the user it checks (so failed logins may be throttled per that name). A marker such as
    /// `JWT`, a token sent as the user name, or a free user name beside a token names nobody:
    /// throttling by it would let anyone lock out every device that sends it.
    fn username_names_user(&self, request: &ConnectRequest) -> bool {
        let _ = request;
        true
    }

    /// Whether the decision depends on the client's address (a webhook is told it). When it
    /// does, a cached allow serves only the same address.
    fn depends_on_peer(&self) -> bool {
        false
    }

    /// Whether an allow may be remembered (`cache_ttl`) and serve the same credentials again.
    /// `false` for a proof bound to the connection (RFC 9431's proof over the TLS exporter, or
    /// a password that is such a proof): a cached allow would admit a replay on another.
    fn cacheable(&self) -> bool {
        true
    }

    /// MQTT 5 user properties for the CONNACK of a connection this authenticator refused
    /// (RFC 9431's `ace_as_hint`: where to get a token). None by default.
    fn refusal_user_properties(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// How often the authenticator fetched the key set it verifies tokens with (a JWKS), and
    /// how often that failed; `None` when it fetches none.
    fn key_fetches(&self) -> Option<crate::jwt::KeyFetches> {
        None
    }
}
