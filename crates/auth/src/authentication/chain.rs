//! The ordered chain of authenticators of a listener.
//!
//! Each authenticator in turn may allow (the chain stops: this is who the client is), deny
//! (the chain stops: refused), or pass to the next. An authenticator whose backend fails is
//! logged and, unless configured otherwise, refuses (fail closed). When every authenticator
//! passes, the chain decides from what the client presented: nothing at all is anonymous access
//! (allowed only where the listener allows it), a verified client certificate alone is allowed
//! where the listener accepts certificates, and anything else is refused.
//!
//! Every decision is written as one audit line (target `tollgate::audit`), without secrets.
//!
//! A CONNECT's authentication first takes a place among the listener's waiting
//! authentications (bounded in all and per address: beyond, `Busy`), then reserves an
//! attempt with the throttle (see `throttle.rs`) before any authenticator runs. A re-check or
//! a re-authentication of a connected client ([`AuthChain::recheck`]) is neither limited nor
//! throttled, and never answered from the cache.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use super::address::HeldPerAddress;
use super::authenticator::Authenticator;
use super::by::AuthenticatedBy;
use super::cache::AuthCache;
use super::exchange::ExchangeClient;
use super::outcome::{AuthOutcome, DenyReason, Identity};
use super::request::ConnectRequest;
use super::throttle::{AttemptEnd, LoginThrottle};
use crate::audit::{AuditEvent, AuditObserver, Outcome as AuditOutcome};
use crate::log::Escaped;

/// What the chain does when an authenticator's backend fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse the connection (fail closed). The default.
    #[default]
    Deny,
    /// Ask the next authenticator.
    Next,
}

/// One authenticator in a chain, with its error policy and optional cache.
pub struct ChainEntry {
    /// The authenticator.
    pub authenticator: Arc<dyn Authenticator>,
    /// What a backend failure means.
    pub on_error: OnError,
    /// Cache of its allows, if enabled.
    pub cache: Option<Arc<AuthCache>>,
}

/// The chain's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainDecision {
    /// Allowed.
    Allowed {
        /// Who the client is.
        identity: Identity,
        /// What allowed it: anonymous access, the certificate, or an authenticator.
        by: AuthenticatedBy,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: DenyReason,
        /// Which authenticator refused, if one did (`None`: the end of the chain or the throttle).
        by: Option<String>,
        /// Detail for the log.
        detail: String,
    },
    /// Not decided yet: the authenticator `by` asks the client `challenge` (AUTH 0x18), and
    /// decides on its answer (a request carrying the challenge's state).
    Continue {
        /// The authenticator asking.
        by: String,
        /// What to send, and what to give back with the answer.
        challenge: super::Challenge,
    },
}

/// The authenticators of one listener, in order.
pub struct AuthChain {
    entries: Vec<ChainEntry>,
    /// The authenticators of the client's own identity (a device's secret in the password),
    /// asked first when there are any; the user's credentials then go to `entries`.
    clients: Vec<ChainEntry>,
    allow_anonymous: bool,
    accept_certificate: bool,
    throttle: Option<Arc<LoginThrottle>>,
    /// Whether an authenticator reads a token from the user name (audit lines leave it out).
    username_is_secret: bool,
    /// Whether an authenticator checks its connections again.
    rechecks: bool,
    /// Authentications under way, limited per address and in all.
    pending: Arc<HeldPerAddress>,
    /// Told of each decision's audit event.
    observer: Option<Arc<dyn AuditObserver>>,
}

impl AuthChain {
    /// A chain of `entries`. `allow_anonymous`: a client presenting nothing may connect.
    /// `accept_certificate`: a client presenting only a verified certificate may connect.
    pub fn new(
        entries: Vec<ChainEntry>,
        allow_anonymous: bool,
        accept_certificate: bool,
        throttle: Option<Arc<LoginThrottle>>,
    ) -> Self {
        let username_is_secret = entries.iter().any(|e| e.authenticator.username_is_secret());
        let rechecks = entries
            .iter()
            .any(|e| e.authenticator.recheck_interval().is_some());
        AuthChain {
            entries,
            clients: Vec::new(),
            allow_anonymous,
            accept_certificate,
            throttle,
            username_is_secret,
            rechecks,
            pending: HeldPerAddress::new(0, 0),
            observer: None,
        }
    }

    /// Authenticates the client itself first with `clients` (a device's identifier and its
    /// secret in the password): one of them must allow, and the name it gives (else the
    /// client identifier) is the principal's client identity. The user's credentials (the
    /// user name, the authentication data; the password went to the client) then go to the
    /// chain's authenticators; a client presenting none is the device alone, named after it.
    pub fn with_client_authenticators(mut self, clients: Vec<ChainEntry>) -> Self {
        self.rechecks |= clients
            .iter()
            .any(|e| e.authenticator.recheck_interval().is_some());
        self.clients = clients;
        self
    }

    /// Names of the client authenticators, in order.
    pub fn client_names(&self) -> Vec<&str> {
        self.clients
            .iter()
            .map(|e| e.authenticator.name())
            .collect()
    }

    /// Tells `observer` of the audit event of every decision, as its line is written.
    pub fn with_observer(mut self, observer: Option<Arc<dyn AuditObserver>>) -> Self {
        self.observer = observer;
        self
    }

    /// Limits the authentications under way at once: `per_address` from one address (IPv6:
    /// one /64), `total` in all (0: no limit). Beyond them a CONNECT is refused as `Busy`.
    pub fn with_pending_limits(mut self, per_address: usize, total: usize) -> Self {
        self.pending = HeldPerAddress::new(per_address, total);
        self
    }

    /// The user name `request` is throttled under: its user name, unless an authenticator of
    /// the chain would read it as a marker, a token or a free name beside a token.
    fn throttled_name<'r>(&self, request: &'r ConnectRequest) -> Option<&'r str> {
        if let Some(user) = request.exchange.as_ref().and_then(|e| e.user()) {
            // An exchange in several steps names its user in its own messages.
            return Some(user);
        }
        let name = request.username.as_deref()?;
        self.entries
            .iter()
            .all(|e| e.authenticator.username_names_user(request))
            .then_some(name)
    }

    /// How often a connection allowed by `by` is checked again (only authenticators check
    /// again).
    pub fn recheck_interval(&self, by: &AuthenticatedBy) -> Option<std::time::Duration> {
        let name = by.authenticator_name()?;
        self.entries
            .iter()
            .chain(&self.clients)
            .find(|e| e.authenticator.name() == name)
            .and_then(|e| e.authenticator.recheck_interval())
    }

    /// The CONNACK user properties of a refusal by the authenticator `by` (an `ace`
    /// authenticator's `ace_as_hint`).
    pub fn refusal_user_properties(&self, by: &str) -> Vec<(String, String)> {
        self.entries
            .iter()
            .chain(&self.clients)
            .find(|e| e.authenticator.name() == by)
            .map(|e| e.authenticator.refusal_user_properties())
            .unwrap_or_default()
    }

    /// Whether any authenticator of the chain checks its connections again.
    pub fn rechecks(&self) -> bool {
        self.rechecks
    }

    /// Names of the authenticators, in order.
    pub fn names(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|e| e.authenticator.name())
            .collect()
    }

    /// Forgets every cached allow of every authenticator.
    pub fn flush_caches(&self) {
        for entry in self.entries.iter().chain(&self.clients) {
            if let Some(cache) = &entry.cache {
                cache.flush();
            }
        }
    }

    /// Decides one connection attempt (a CONNECT).
    pub async fn authenticate(&self, request: &ConnectRequest) -> ChainDecision {
        // Refusals by the pending limit and the throttle cost an attacker nothing: they get no
        // audit line each (the caller counts them and logs the count once per interval).
        let Ok(_waiting) = self.pending.try_hold(request.peer.ip()) else {
            return ChainDecision::Refused {
                reason: DenyReason::Busy,
                by: None,
                detail: "too many authentications waiting".into(),
            };
        };
        // Only attempts with credentials are throttled: one without any guesses nothing, and
        // refusing it would lock out anonymous or certificate-only clients behind an address.
        let guesses = request.username.is_some()
            || request.password.is_some()
            || request.authentication_data.is_some();
        let attempt = match (&self.throttle, guesses) {
            (Some(throttle), true) => {
                match throttle.begin(
                    request.peer.ip(),
                    self.throttled_name(request),
                    Instant::now(),
                ) {
                    Ok(attempt) => Some(attempt),
                    Err(reason) => {
                        // No audit line each: a flood of throttled attempts is counted and
                        // logged once per interval by the throttle, not line by line.
                        return ChainDecision::Refused {
                            reason,
                            by: None,
                            detail: "too many failed logins".into(),
                        };
                    }
                }
            }
            _ => None,
        };
        let decision = self.decide(request, true).await;
        audit(
            request,
            &decision,
            self.username_is_secret,
            self.observer.as_deref(),
        );
        if let Some(attempt) = attempt {
            // A challenge ends this step undecided; the answer is an attempt of its own.
            let end = match &decision {
                ChainDecision::Refused {
                    reason: DenyReason::BadCredentials,
                    ..
                } => AttemptEnd::BadCredentials,
                ChainDecision::Allowed { identity, by } if *by != AuthenticatedBy::Anonymous => {
                    AttemptEnd::Allowed(
                        identity.username.as_deref().or(request.username.as_deref()),
                    )
                }
                _ => AttemptEnd::Undecided,
            };
            attempt.end(end, Instant::now());
        }
        decision
    }

    /// Decides again for a connected client (a re-check, a re-authentication): never
    /// throttled or limited, never answered from the cache.
    pub async fn recheck(&self, request: &ConnectRequest) -> ChainDecision {
        let decision = self.decide(request, false).await;
        audit(
            request,
            &decision,
            self.username_is_secret,
            self.observer.as_deref(),
        );
        decision
    }

    async fn decide(&self, request: &ConnectRequest, use_cache: bool) -> ChainDecision {
        if let Some(exchange) = &request.exchange {
            // The answer to a challenge goes to the authenticator that asked, alone.
            let entry = self
                .entries
                .iter()
                .chain(&self.clients)
                .find(|e| e.authenticator.name() == exchange.by());
            return match entry {
                Some(entry) => match self.ask(std::slice::from_ref(entry), request, false).await {
                    Some(ChainDecision::Allowed { identity, by }) => {
                        let identity = match exchange.client() {
                            Some(c) => {
                                join_client(identity, c.identity.clone(), c.name.clone(), &c.by)
                            }
                            None => identity,
                        };
                        ChainDecision::Allowed { identity, by }
                    }
                    Some(ChainDecision::Continue { by, mut challenge }) => {
                        if let Some(client) = exchange.client() {
                            challenge.state = challenge.state.with_client(client.clone());
                        }
                        ChainDecision::Continue { by, challenge }
                    }
                    Some(refused) => refused,
                    None => ChainDecision::Refused {
                        reason: DenyReason::NotAuthorized,
                        by: Some(exchange.by().to_owned()),
                        detail: "the exchange ended without a decision".into(),
                    },
                },
                None => ChainDecision::Refused {
                    reason: DenyReason::NotAuthorized,
                    by: None,
                    detail: "the authenticator of the exchange is gone (reconfigured)".into(),
                },
            };
        }
        if self.clients.is_empty() || !use_cache && request.password.is_none() {
            // One identity; or a re-authentication, which presents the user's new token and
            // not the client's secret again: the client identity the connection has stays.
            return match self.ask(&self.entries, request, use_cache).await {
                Some(decision) => decision,
                None => self.end_of_chain(request),
            };
        }
        self.decide_client_and_user(request, use_cache).await
    }

    /// Two identities on one CONNECT: the client's, by the client authenticators (from the
    /// client identifier and the password), then the user's, by the others (from what is
    /// left: the user name, the authentication data).
    async fn decide_client_and_user(
        &self,
        request: &ConnectRequest,
        use_cache: bool,
    ) -> ChainDecision {
        let (client, client_by) = match self.ask(&self.clients, request, use_cache).await {
            Some(ChainDecision::Allowed { identity, by }) => (identity, by),
            Some(ChainDecision::Refused { reason, by, detail }) => {
                return ChainDecision::Refused {
                    reason,
                    by,
                    detail: format!("the client: {detail}"),
                }
            }
            Some(ChainDecision::Continue { by, .. }) => {
                // A client secret is checked from the password, in one step.
                return ChainDecision::Refused {
                    reason: DenyReason::NotAuthorized,
                    by: Some(by),
                    detail: "the client: a client authenticator cannot ask questions".into(),
                };
            }
            None => {
                return ChainDecision::Refused {
                    reason: if request.password.is_some() {
                        DenyReason::BadCredentials
                    } else {
                        DenyReason::NotAuthorized
                    },
                    by: None,
                    detail: "no client authenticator accepted the client".into(),
                }
            }
        };
        let client_name = client
            .username
            .clone()
            .unwrap_or_else(|| request.client_id.clone());
        let user_request = ConnectRequest {
            password: None,
            ..request.clone()
        };
        let user = match self.ask(&self.entries, &user_request, use_cache).await {
            Some(decision) => decision,
            None if user_request.authentication_method.is_none()
                && user_request.authentication_data.is_none() =>
            {
                // No user credentials: the device alone (a user name beside them names
                // nobody anyone checked, and is not taken).
                ChainDecision::Allowed {
                    identity: Identity {
                        username: Some(client_name.clone()),
                        ..Identity::default()
                    },
                    by: client_by.clone(),
                }
            }
            None => self.end_of_chain(&user_request),
        };
        match user {
            ChainDecision::Allowed { identity, by } => ChainDecision::Allowed {
                identity: join_client(identity, client, client_name, &client_by),
                by,
            },
            ChainDecision::Continue { by, mut challenge } => {
                // The user's authenticator asks a question: the client's identity waits with
                // the exchange, and joins the user's when the answer is allowed.
                challenge.state = challenge.state.with_client(ExchangeClient {
                    identity: client,
                    name: client_name,
                    by: client_by,
                });
                ChainDecision::Continue { by, challenge }
            }
            refused => refused,
        }
    }

    /// Asks `entries` in order: the first allow or deny, or `None` when all pass.
    async fn ask(
        &self,
        entries: &[ChainEntry],
        request: &ConnectRequest,
        use_cache: bool,
    ) -> Option<ChainDecision> {
        for entry in entries {
            let authenticator = &entry.authenticator;
            let name = authenticator.name();
            // The answer to a challenge is never cached: its allow came from a proof bound
            // to that one exchange, and a cached allow would admit a replay of the answer.
            let cache = entry
                .cache
                .as_ref()
                .filter(|_| request.exchange.is_none() && authenticator.cacheable());
            let key = cache.map(|_| {
                AuthCache::key(
                    request,
                    authenticator.depends_on_client_id(),
                    authenticator.depends_on_peer(),
                )
            });
            if let (Some(cache), Some(key), true) = (cache, key.as_ref(), use_cache) {
                if let Some(identity) = cache.get(key, authenticator.revision(), Instant::now()) {
                    return Some(ChainDecision::Allowed {
                        identity,
                        by: AuthenticatedBy::authenticator(name),
                    });
                }
            }
            let revision = authenticator.revision();
            match authenticator.authenticate(request).await {
                Ok(AuthOutcome::Allow(identity)) => {
                    if let (Some(cache), Some(key)) = (cache, key) {
                        cache.put(key, identity.clone(), revision, Instant::now());
                    }
                    return Some(ChainDecision::Allowed {
                        identity,
                        by: AuthenticatedBy::authenticator(name),
                    });
                }
                Ok(AuthOutcome::Deny { reason, detail }) => {
                    return Some(ChainDecision::Refused {
                        reason,
                        by: Some(name.to_owned()),
                        detail,
                    });
                }
                Ok(AuthOutcome::Continue(challenge)) => {
                    return Some(ChainDecision::Continue {
                        by: name.to_owned(),
                        challenge,
                    });
                }
                Ok(AuthOutcome::Next) => {}
                Err(error) => {
                    tracing::warn!(authenticator = name, error = %Escaped(&error.message), on_error = ?entry.on_error, "authentication backend failed");
                    if entry.on_error == OnError::Deny {
                        return Some(ChainDecision::Refused {
                            reason: DenyReason::BackendUnavailable,
                            by: Some(name.to_owned()),
                            detail: error.message,
                        });
                    }
                }
            }
        }
        None
    }

    fn end_of_chain(&self, request: &ConnectRequest) -> ChainDecision {
        if request.authentication_method.is_some() {
            // An MQTT 5 authentication method no authenticator took up cannot be completed.
            return ChainDecision::Refused {
                reason: DenyReason::BadAuthenticationMethod,
                by: None,
                detail: "no authenticator supports the authentication method".into(),
            };
        }
        if request.username.is_some() || request.password.is_some() {
            if self.entries.is_empty() && self.allow_anonymous {
                // No authenticator at all on an open listener: the user name is taken as
                // given, unverified, as Mosquitto does with allow_anonymous and no password file.
                return ChainDecision::Allowed {
                    identity: Identity::default(),
                    by: AuthenticatedBy::Anonymous,
                };
            }
            return ChainDecision::Refused {
                reason: DenyReason::BadCredentials,
                by: None,
                detail: "no authenticator accepted the credentials".into(),
            };
        }
        if request.certificate.is_some() && self.accept_certificate {
            return ChainDecision::Allowed {
                identity: Identity::default(),
                by: AuthenticatedBy::Certificate,
            };
        }
        if self.allow_anonymous {
            return ChainDecision::Allowed {
                identity: Identity::default(),
                by: AuthenticatedBy::Anonymous,
            };
        }
        ChainDecision::Refused {
            reason: DenyReason::NotAuthorized,
            by: None,
            detail: "credentials required".into(),
        }
    }
}

/// The user's `identity` joined with the client's (two identities on one CONNECT): the
/// client identity and who vouched for it, both sets of roles and groups, the earlier expiry.
fn join_client(
    mut identity: Identity,
    client: Identity,
    client_name: String,
    client_by: &AuthenticatedBy,
) -> Identity {
    identity.client_identity = Some(client_name);
    identity.client_identity_by = client_by.authenticator_name().map(str::to_owned);
    identity.roles.extend(client.roles);
    identity.groups.extend(client.groups);
    identity.expires_at = match (identity.expires_at, client.expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    identity
}

/// Writes the audit line of one decision. Where an authenticator of the chain reads a token
/// from the user name field, the user name sent is not written (it may be a token); an allow
/// writes the user name the authenticator mapped instead, when it mapped one.
fn audit(
    request: &ConnectRequest,
    decision: &ChainDecision,
    username_is_secret: bool,
    observer: Option<&dyn AuditObserver>,
) {
    let sent = match (&request.username, username_is_secret) {
        (Some(_), true) => "<redacted>",
        (Some(name), false) => name.as_str(),
        (None, _) => "",
    };
    let (username, authenticator, outcome) = match decision {
        // Undecided: the step that decides writes the line.
        ChainDecision::Continue { .. } => return,
        ChainDecision::Allowed { by, identity } => (
            identity.username.as_deref().unwrap_or(sent),
            by.as_str(),
            AuditOutcome::Allowed,
        ),
        ChainDecision::Refused { reason, by, detail } => (
            sent,
            by.as_deref().unwrap_or("-"),
            AuditOutcome::Refused { reason, detail },
        ),
    };
    let client = match decision {
        ChainDecision::Allowed { identity, .. } => identity
            .client_identity
            .as_deref()
            .zip(identity.client_identity_by.as_deref()),
        ChainDecision::Refused { .. } | ChainDecision::Continue { .. } => None,
    };
    let event = AuditEvent::Authentication {
        listener: &request.listener,
        peer: request.peer,
        client_id: &request.client_id,
        username,
        authenticator,
        client,
        outcome,
    };
    event.record();
    if let Some(observer) = observer {
        observer.observe(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authentication::{AuthError, BoxFuture};
    use crate::secret::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Answers with a fixed outcome and counts its calls.
    struct Fixed {
        name: &'static str,
        answer: Result<AuthOutcome, AuthError>,
        calls: AtomicUsize,
        per_client: bool,
    }

    impl Fixed {
        fn new(name: &'static str, answer: Result<AuthOutcome, AuthError>) -> Arc<Self> {
            Arc::new(Fixed {
                name,
                answer,
                calls: AtomicUsize::new(0),
                per_client: true,
            })
        }
    }

    impl Authenticator for Fixed {
        fn name(&self) -> &str {
            self.name
        }
        fn depends_on_client_id(&self) -> bool {
            self.per_client
        }
        fn authenticate<'a>(
            &'a self,
            _: &'a ConnectRequest,
        ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let answer = self.answer.clone();
            Box::pin(async move { answer })
        }
    }

    fn entry(a: Arc<Fixed>, on_error: OnError) -> ChainEntry {
        ChainEntry {
            authenticator: a,
            on_error,
            cache: None,
        }
    }

    fn with_password() -> ConnectRequest {
        let mut r = ConnectRequest::new("l", "127.0.0.1:5000".parse().unwrap(), "c");
        r.username = Some("u".into());
        r.password = Some(Secret::new("p"));
        r
    }

    fn allow() -> Result<AuthOutcome, AuthError> {
        Ok(AuthOutcome::Allow(Identity::default()))
    }

    #[tokio::test]
    async fn first_allow_or_deny_wins_and_next_passes_on() {
        let next = Fixed::new("next", Ok(AuthOutcome::Next));
        let deny = Fixed::new(
            "deny",
            Ok(AuthOutcome::deny(DenyReason::BadCredentials, "wrong")),
        );
        let allow = Fixed::new("allow", allow());
        let chain = AuthChain::new(
            vec![
                entry(next.clone(), OnError::Deny),
                entry(deny.clone(), OnError::Deny),
                entry(allow.clone(), OnError::Deny),
            ],
            false,
            false,
            None,
        );
        match chain.authenticate(&with_password()).await {
            ChainDecision::Refused {
                reason: DenyReason::BadCredentials,
                by: Some(by),
                ..
            } => assert_eq!(by, "deny"),
            other => panic!("{other:?}"),
        }
        assert_eq!(allow.calls.load(Ordering::Relaxed), 0, "a deny is final");
        let chain = AuthChain::new(
            vec![entry(next, OnError::Deny), entry(allow, OnError::Deny)],
            false,
            false,
            None,
        );
        assert!(
            matches!(chain.authenticate(&with_password()).await, ChainDecision::Allowed { by, .. } if by == AuthenticatedBy::authenticator("allow"))
        );
    }

    #[tokio::test]
    async fn backend_error_denies_unless_configured_to_pass() {
        let broken = Fixed::new("broken", Err(AuthError::new("connection refused")));
        let allow = Fixed::new("allow", allow());
        let closed = AuthChain::new(
            vec![
                entry(broken.clone(), OnError::Deny),
                entry(allow.clone(), OnError::Deny),
            ],
            true,
            false,
            None,
        );
        assert!(matches!(
            closed.authenticate(&with_password()).await,
            ChainDecision::Refused {
                reason: DenyReason::BackendUnavailable,
                ..
            }
        ));
        let lenient = AuthChain::new(
            vec![entry(broken, OnError::Next), entry(allow, OnError::Deny)],
            false,
            false,
            None,
        );
        assert!(matches!(
            lenient.authenticate(&with_password()).await,
            ChainDecision::Allowed { .. }
        ));
    }

    #[tokio::test]
    async fn end_of_chain_refuses_credentials_and_allows_anonymous_only_where_configured() {
        let next = || Fixed::new("next", Ok(AuthOutcome::Next));
        let anonymous = ConnectRequest::new("l", "127.0.0.1:5000".parse().unwrap(), "c");
        let open = AuthChain::new(vec![entry(next(), OnError::Deny)], true, false, None);
        assert!(
            matches!(open.authenticate(&anonymous).await, ChainDecision::Allowed { by, .. } if by == AuthenticatedBy::Anonymous)
        );
        assert!(matches!(
            open.authenticate(&with_password()).await,
            ChainDecision::Refused {
                reason: DenyReason::BadCredentials,
                ..
            }
        ));
        let closed = AuthChain::new(vec![entry(next(), OnError::Deny)], false, false, None);
        assert!(matches!(
            closed.authenticate(&anonymous).await,
            ChainDecision::Refused {
                reason: DenyReason::NotAuthorized,
                ..
            }
        ));
        let empty_closed = AuthChain::new(vec![], false, false, None);
        assert!(matches!(
            empty_closed.authenticate(&anonymous).await,
            ChainDecision::Refused {
                reason: DenyReason::NotAuthorized,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn cached_allow_skips_the_authenticator_and_denials_are_not_cached() {
        let allow = Fixed::new("allow", allow());
        let cache = Arc::new(AuthCache::new(std::time::Duration::from_secs(60), 10));
        let chain = AuthChain::new(
            vec![ChainEntry {
                authenticator: allow.clone(),
                on_error: OnError::Deny,
                cache: Some(cache.clone()),
            }],
            false,
            false,
            None,
        );
        for _ in 0..3 {
            assert!(matches!(
                chain.authenticate(&with_password()).await,
                ChainDecision::Allowed { .. }
            ));
        }
        assert_eq!(allow.calls.load(Ordering::Relaxed), 1);
        chain.flush_caches();
        chain.authenticate(&with_password()).await;
        assert_eq!(allow.calls.load(Ordering::Relaxed), 2);

        let deny = Fixed::new(
            "deny",
            Ok(AuthOutcome::deny(DenyReason::BadCredentials, "wrong")),
        );
        let fresh = Arc::new(AuthCache::new(std::time::Duration::from_secs(60), 10));
        let chain = AuthChain::new(
            vec![ChainEntry {
                authenticator: deny.clone(),
                on_error: OnError::Deny,
                cache: Some(fresh.clone()),
            }],
            false,
            false,
            None,
        );
        chain.authenticate(&with_password()).await;
        chain.authenticate(&with_password()).await;
        assert_eq!(deny.calls.load(Ordering::Relaxed), 2);
        assert!(fresh.is_empty());
    }

    #[tokio::test]
    async fn attempts_without_credentials_are_not_throttled() {
        use super::super::throttle::ThrottleConfig;
        let throttle = Arc::new(LoginThrottle::new(ThrottleConfig {
            free_failures: 0,
            address_free_failures: 0,
            initial_backoff_ms: Duration::from_secs(60),
            ..ThrottleConfig::default()
        }));
        throttle
            .begin("127.0.0.1".parse().unwrap(), None, Instant::now())
            .unwrap()
            .end(
                super::super::throttle::AttemptEnd::BadCredentials,
                Instant::now(),
            );
        let chain = AuthChain::new(vec![], true, false, Some(throttle));
        let anonymous = ConnectRequest::new("l", "127.0.0.1:5000".parse().unwrap(), "c");
        assert!(matches!(
            chain.authenticate(&anonymous).await,
            ChainDecision::Allowed { .. }
        ));
    }

    #[tokio::test]
    async fn a_cached_allow_serves_other_client_ids_only_when_the_authenticator_allows_it() {
        for per_client in [true, false] {
            let auth = Arc::new(Fixed {
                name: "a",
                answer: allow(),
                calls: AtomicUsize::new(0),
                per_client,
            });
            let cache = Arc::new(AuthCache::new(std::time::Duration::from_secs(60), 10));
            let chain = AuthChain::new(
                vec![ChainEntry {
                    authenticator: auth.clone(),
                    on_error: OnError::Deny,
                    cache: Some(cache),
                }],
                false,
                false,
                None,
            );
            let mut request = with_password();
            chain.authenticate(&request).await;
            request.client_id = "another-device".into();
            chain.authenticate(&request).await;
            assert_eq!(
                auth.calls.load(Ordering::Relaxed),
                if per_client { 2 } else { 1 },
                "per_client = {per_client}"
            );
        }
    }

    #[tokio::test]
    async fn throttle_refuses_before_the_authenticators_after_repeated_failures() {
        use super::super::throttle::ThrottleConfig;
        let deny = Fixed::new(
            "deny",
            Ok(AuthOutcome::deny(DenyReason::BadCredentials, "wrong")),
        );
        let throttle = Arc::new(LoginThrottle::new(ThrottleConfig {
            free_failures: 1,
            initial_backoff_ms: Duration::from_secs(60),
            ..ThrottleConfig::default()
        }));
        let chain = AuthChain::new(
            vec![entry(deny.clone(), OnError::Deny)],
            false,
            false,
            Some(throttle),
        );
        chain.authenticate(&with_password()).await;
        chain.authenticate(&with_password()).await;
        assert!(matches!(
            chain.authenticate(&with_password()).await,
            ChainDecision::Refused {
                reason: DenyReason::RateLimited,
                ..
            }
        ));
        assert_eq!(
            deny.calls.load(Ordering::Relaxed),
            2,
            "the throttled attempt never reached the authenticator"
        );
    }

    #[tokio::test]
    async fn rechecks_of_connected_clients_are_never_throttled_nor_answered_from_the_cache() {
        use super::super::throttle::ThrottleConfig;
        let allow = Fixed::new("allow", allow());
        let throttle = Arc::new(LoginThrottle::new(ThrottleConfig {
            free_failures: 0,
            address_free_failures: 0,
            initial_backoff_ms: Duration::from_secs(600),
            ..ThrottleConfig::default()
        }));
        let request = with_password();
        throttle
            .begin(request.peer.ip(), Some("u"), Instant::now())
            .unwrap()
            .end(
                super::super::throttle::AttemptEnd::BadCredentials,
                Instant::now(),
            );
        let cache = Arc::new(AuthCache::new(std::time::Duration::from_secs(60), 10));
        let chain = AuthChain::new(
            vec![ChainEntry {
                authenticator: allow.clone(),
                on_error: OnError::Deny,
                cache: Some(cache.clone()),
            }],
            false,
            false,
            Some(throttle),
        );
        assert!(matches!(
            chain.authenticate(&request).await,
            ChainDecision::Refused {
                reason: DenyReason::RateLimited,
                ..
            }
        ));
        for _ in 0..3 {
            assert!(matches!(
                chain.recheck(&request).await,
                ChainDecision::Allowed { .. }
            ));
        }
        assert_eq!(
            allow.calls.load(Ordering::Relaxed),
            3,
            "every re-check asked the authenticator"
        );
    }

    #[tokio::test]
    async fn a_marker_user_name_is_not_throttled() {
        use super::super::throttle::ThrottleConfig;
        struct Marker;
        impl Authenticator for Marker {
            fn name(&self) -> &str {
                "marker"
            }
            fn authenticate<'a>(
                &'a self,
                _: &'a ConnectRequest,
            ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
                Box::pin(async { Ok(AuthOutcome::deny(DenyReason::BadCredentials, "bad token")) })
            }
            fn username_names_user(&self, request: &ConnectRequest) -> bool {
                request.username.as_deref() != Some("u")
            }
        }
        let throttle = Arc::new(LoginThrottle::new(ThrottleConfig {
            free_failures: 0,
            address_free_failures: 100,
            initial_backoff_ms: Duration::from_secs(600),
            ..ThrottleConfig::default()
        }));
        let chain = AuthChain::new(
            vec![ChainEntry {
                authenticator: Arc::new(Marker),
                on_error: OnError::Deny,
                cache: None,
            }],
            false,
            false,
            Some(throttle),
        );
        for i in 0..5 {
            // One address, which has failures (so a user-name lock would apply to it).
            let request = with_password();
            assert!(
                matches!(
                    chain.authenticate(&request).await,
                    ChainDecision::Refused {
                        reason: DenyReason::BadCredentials,
                        ..
                    }
                ),
                "attempt {i} was checked, not throttled by the marker"
            );
        }
    }
}
