//! Listeners as the running broker holds them: their settings and their authentication chain,
//! built from the configured (and embedder-supplied) authenticators.

use std::net::SocketAddr;
use std::sync::Arc;

use tollgate_auth::audit::AuditObserver;
use tollgate_auth::authentication::{
    AuthCache, AuthChain, Authenticator, ChainEntry, HeldPerAddress, LoginThrottle, OnError,
};
use tollgate_auth::jwt::{JwtAuthenticator, KeyFetches};
use tollgate_auth::oauth::{IntrospectionAuthenticator, PasswordGrantAuthenticator};
use tollgate_auth::password_file::PasswordFile;
use tollgate_auth::webhook::WebhookAuthenticator;

use parking_lot::RwLock;
use tollgate_auth::permissions::AuthorizerChain;
use tollgate_auth::{CertificateInfo, SetupError};

use crate::authorization::Authorizers;
use crate::config::{
    AuthenticatorConfig, AuthenticatorKind, BrokerConfig, CertIdentityField, CertIdentityUse,
    ClientCertMode, ListenerConfig, PasswordKey,
};
use crate::config_cause::{ConfigCause, NamedTable};
use crate::device_grant::{DeviceGrant, DeviceGrants};
use crate::tls::TlsAcceptor;
use crate::token_issuer::{TokenIssuer, TokenIssuers};
use crate::validate::{ConfigProblem, KeyPath};

/// How many cached authentications an authenticator keeps at most.
const AUTH_CACHE_CAPACITY: usize = 100_000;

/// A listener as long as the broker runs: its name, its socket's settings, the connections
/// it holds, and its policy, which a reconfiguration replaces (new connections, every
/// re-check and every permission refresh use the current one).
pub struct Listener {
    /// Name for logs and audit lines (fixed: a new name needs a restart).
    pub name: Arc<str>,
    /// The address it is bound to and its listen backlog (fixed: the socket is bound once).
    pub socket: (SocketAddr, u32),
    /// The connections open on this listener, per address and in all (its limits follow the
    /// policy).
    pub connections: Arc<HeldPerAddress>,
    /// The authorizer chain whose permissions clients of this listener get; `None`: no
    /// authorizer is configured, clients are unrestricted (but for read-only `$SYS`).
    /// Swapped when policy files are reloaded.
    pub authorization: RwLock<Option<Arc<AuthorizerChain>>>,
    policy: RwLock<Arc<ListenerPolicy>>,
}

/// The authorizer chain of listener `index` (named `name`, with `config`); `None` when it
/// names an authorizer that is not configured, which is added to `problems`.
pub fn authorization_for(
    index: usize,
    name: &str,
    config: &ListenerConfig,
    authorizers: &Authorizers,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<Arc<AuthorizerChain>>> {
    authorizers
        .chain_for(name, config.authorizers.as_deref())
        .map_err(|m| {
            problems.push(ConfigProblem::at(
                KeyPath::root()
                    .key("listener")
                    .index(index)
                    .key("authorizers"),
                m,
            ))
        })
        .ok()
}

/// What a listener does with the connections it accepts: its settings, its TLS acceptor and
/// its authentication chain.
pub struct ListenerPolicy {
    /// Settings.
    pub config: ListenerConfig,
    /// Who may connect here.
    pub chain: AuthChain,
    /// TLS, when the listener has it.
    pub tls: Option<Arc<TlsAcceptor>>,
    /// The token issuer its clients may ask, when it names one.
    pub token_issuer: Option<Arc<TokenIssuer>>,
    /// The device grant its clients may start, when it names one.
    pub device_grant: Option<Arc<DeviceGrant>>,
}

impl ListenerPolicy {
    /// Builds the policy of listener `index` of the configuration from its settings (loading
    /// its TLS files) and the authenticators; `None` when it has problems, which are added to
    /// `problems`.
    pub fn build(
        index: usize,
        config: &ListenerConfig,
        authenticators: &Authenticators,
        issuers: &TokenIssuers,
        grants: &DeviceGrants,
        throttle: Option<Arc<LoginThrottle>>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<ListenerPolicy> {
        let name = config.display_name();
        let at = || KeyPath::root().key("listener").index(index);
        let tls = match &config.tls {
            Some(settings) => match TlsAcceptor::new(settings) {
                Ok(tls) => Some(Some(Arc::new(tls))),
                Err(error) => {
                    problems.push(ConfigProblem::at(
                        at().key("tls").key(error.key()),
                        ConfigCause::Tls {
                            listener: name.to_string(),
                            error,
                        },
                    ));
                    None
                }
            },
            None => Some(None),
        };
        let chain = authenticators
            .chain_for(config, throttle)
            .map_err(|m| problems.push(ConfigProblem::at(at().key("authenticators"), m)))
            .ok();
        let token_issuer = match &config.token_issuer {
            None => Some(None),
            Some(issuer) => match issuers.get(issuer) {
                Some(found) => Some(Some(Arc::clone(found))),
                None => {
                    if !issuers.is_broken(issuer) {
                        problems.push(ConfigProblem::at(
                            at().key("token_issuer"),
                            ConfigCause::NotConfigured {
                                listener: name.to_string(),
                                table: NamedTable::TokenIssuer,
                                name: issuer.clone(),
                            },
                        ));
                    }
                    None
                }
            },
        };
        let device_grant = match &config.device_grant {
            None => Some(None),
            Some(grant) => match grants.get(grant) {
                Some(found) => Some(Some(Arc::clone(found))),
                None => {
                    if !grants.is_broken(grant) {
                        problems.push(ConfigProblem::at(
                            at().key("device_grant"),
                            ConfigCause::NotConfigured {
                                listener: name.to_string(),
                                table: NamedTable::DeviceGrant,
                                name: grant.clone(),
                            },
                        ));
                    }
                    None
                }
            },
        };
        Some(ListenerPolicy {
            config: config.clone(),
            chain: chain?,
            tls: tls?,
            token_issuer: token_issuer?,
            device_grant: device_grant?,
        })
    }

    /// The name a verified client certificate gives the client, per the listener's settings.
    pub fn certificate_identity(&self, certificate: &CertificateInfo) -> Option<String> {
        let settings = self.config.tls.as_ref()?;
        match settings.identity {
            CertIdentityField::Cn => certificate.common_name.clone(),
            CertIdentityField::San => certificate.subject_alt_names.first().cloned(),
            CertIdentityField::Fingerprint => Some(certificate.fingerprint_sha256.clone()),
        }
    }

    /// What the listener speaks, for logs.
    pub fn transport_name(&self) -> &'static str {
        match (self.tls.is_some(), self.config.websocket.is_some()) {
            (false, false) => "MQTT over TCP",
            (true, false) => "MQTT over TLS",
            (false, true) => "MQTT over WebSocket",
            (true, true) => "MQTT over secure WebSocket",
        }
    }

    /// Whether a client certificate's name becomes the user name (and no password is asked).
    pub fn certificate_is_username(&self) -> bool {
        self.config
            .tls
            .as_ref()
            .is_some_and(|t| t.identity_as == CertIdentityUse::Username)
    }
}

impl Listener {
    /// Builds the listener `index` of the configuration from its settings (loading its TLS
    /// files), the authenticators and the authorizers; `None` when it has problems, which are
    /// added to `problems`.
    pub fn build(
        index: usize,
        config: &ListenerConfig,
        offers: (&TokenIssuers, &DeviceGrants),
        authenticators: &Authenticators,
        authorizers: &Authorizers,
        throttle: Option<Arc<LoginThrottle>>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<Listener> {
        let (issuers, grants) = offers;
        let policy = ListenerPolicy::build(
            index,
            config,
            authenticators,
            issuers,
            grants,
            throttle,
            problems,
        );
        let name: Arc<str> = config.display_name().into();
        let authorization = authorization_for(index, &name, config, authorizers, problems);
        Some(Listener {
            name,
            socket: (config.bind, config.listen_backlog),
            connections: HeldPerAddress::new(
                config.max_connections_per_address,
                config.max_connections,
            ),
            authorization: RwLock::new(authorization?),
            policy: RwLock::new(Arc::new(policy?)),
        })
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<ListenerPolicy> {
        Arc::clone(&self.policy.read())
    }

    /// Replaces the policy and takes the current rules of `authorizers` (a reconfiguration):
    /// connections accepted from now on, and every check of a connected client, use them.
    pub fn set_policy(&self, policy: ListenerPolicy, authorizers: &Authorizers) {
        self.connections.set_limits(
            policy.config.max_connections_per_address,
            policy.config.max_connections,
        );
        *self.policy.write() = Arc::new(policy);
        self.refresh_authorization(authorizers);
    }

    /// Takes the current rules of `authorizers` (after a reload).
    pub fn refresh_authorization(&self, authorizers: &Authorizers) {
        let policy = self.policy();
        match authorizers.chain_for(&self.name, policy.config.authorizers.as_deref()) {
            Ok(chain) => *self.authorization.write() = chain,
            Err(e) => tracing::error!(listener = %self.name, "authorization not refreshed: {e}"),
        }
    }
}

struct Named {
    authenticator: Arc<dyn Authenticator>,
    on_error: OnError,
    cache: Option<Arc<AuthCache>>,
}

impl Named {
    fn entry(&self) -> ChainEntry {
        ChainEntry {
            authenticator: Arc::clone(&self.authenticator),
            on_error: self.on_error,
            cache: self.cache.clone(),
        }
    }
}

/// Every authenticator of the broker, by name, shared by the listeners' chains.
pub struct Authenticators {
    named: Vec<Named>,
    /// The names of configured authenticators that could not be built (the configuration is
    /// refused; they are only remembered so listeners naming them are not reported again).
    broken: Vec<String>,
    password_files: Vec<Arc<PasswordFile>>,
    introspections: Vec<Arc<IntrospectionAuthenticator>>,
    /// Told of every chain decision's audit event (the audit feed).
    observer: Arc<dyn AuditObserver>,
}

impl Authenticators {
    /// Builds the configured authenticators, then appends `custom` ones (supplied in code;
    /// they fail closed and are not cached). Each one that cannot be built adds its problem to
    /// `problems` and is left out, remembered by name so that the listeners naming it are not
    /// reported again. Must run inside a tokio runtime (files are watched).
    pub fn build(
        config: &BrokerConfig,
        custom: Vec<Arc<dyn Authenticator>>,
        issuers: &TokenIssuers,
        observer: Arc<dyn AuditObserver>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Authenticators {
        let mut named = Vec::new();
        let mut password_files = Vec::new();
        let mut introspections = Vec::new();
        let mut broken = Vec::new();
        for (index, a) in config.authenticators.iter().enumerate() {
            match build_one(index, a, issuers, &mut password_files, &mut introspections) {
                Ok(authenticator) if !authenticator.cacheable() && !a.cache_ttl.is_zero() => {
                    problems.push(ConfigProblem::at(
                        KeyPath::root()
                            .key("authenticator")
                            .index(index)
                            .key("cache_ttl"),
                        ConfigCause::Table {
                            table: NamedTable::Authenticator,
                            name: a.name.clone(),
                            reason: "this authenticator checks a proof bound to each connection, \
                                     which a cached allow would let be replayed: remove cache_ttl"
                                .into(),
                        },
                    ));
                    broken.push(a.name.clone());
                }
                Ok(authenticator) => {
                    let cache = (!a.cache_ttl.is_zero())
                        .then(|| Arc::new(AuthCache::new(a.cache_ttl, AUTH_CACHE_CAPACITY)));
                    named.push((
                        index,
                        Named {
                            authenticator,
                            on_error: a.on_error,
                            cache,
                        },
                    ));
                }
                Err(problem) => {
                    problems.push(*problem);
                    broken.push(a.name.clone());
                }
            }
        }
        let configured = config.authenticators.len();
        for (offset, authenticator) in custom.into_iter().enumerate() {
            named.push((
                configured + offset,
                Named {
                    authenticator,
                    on_error: OnError::Deny,
                    cache: None,
                },
            ));
        }
        let mut seen: Vec<&str> = broken.iter().map(String::as_str).collect();
        for (index, n) in &named {
            let name = n.authenticator.name();
            if seen.contains(&name) {
                problems.push(ConfigProblem::at(
                    KeyPath::root()
                        .key("authenticator")
                        .index(*index)
                        .key("name"),
                    ConfigCause::DuplicateName {
                        table: NamedTable::Authenticator,
                        name: name.to_owned(),
                    },
                ));
            }
            seen.push(name);
        }
        Authenticators {
            named: named.into_iter().map(|(_, n)| n).collect(),
            broken,
            password_files,
            introspections,
            observer,
        }
    }

    /// The chain of `listener`: its listed authenticators in order, or all of them.
    pub fn chain_for(
        &self,
        listener: &ListenerConfig,
        throttle: Option<Arc<LoginThrottle>>,
    ) -> Result<AuthChain, ConfigCause> {
        let clients = self.named_entries(listener, &listener.client_authenticators)?;
        let entries = match &listener.authenticators {
            // All of them, but those that authenticate the client itself.
            None => self
                .named
                .iter()
                .filter(|n| {
                    !listener
                        .client_authenticators
                        .iter()
                        .any(|c| c == n.authenticator.name())
                })
                .map(Named::entry)
                .collect(),
            Some(names) => self.named_entries(listener, names)?,
        };
        let accepts_certificates = listener
            .tls
            .as_ref()
            .is_some_and(|t| t.client_certs != ClientCertMode::None);
        Ok(AuthChain::new(
            entries,
            listener.allow_anonymous,
            accepts_certificates,
            throttle,
        )
        .with_client_authenticators(clients)
        .with_observer(Some(Arc::clone(&self.observer)))
        .with_pending_limits(
            listener.max_pending_authentications_per_address,
            listener.max_pending_authentications,
        ))
    }

    /// The chain entries of the authenticators `names` (those that could not be built are
    /// left out: their problem is reported already).
    fn named_entries(
        &self,
        listener: &ListenerConfig,
        names: &[String],
    ) -> Result<Vec<ChainEntry>, ConfigCause> {
        names
            .iter()
            .filter(|name| !self.broken.contains(name))
            .map(|name| {
                self.named
                    .iter()
                    .find(|n| n.authenticator.name() == name)
                    .map(Named::entry)
                    .ok_or_else(|| ConfigCause::NotConfigured {
                        listener: listener.display_name().to_string(),
                        table: NamedTable::Authenticator,
                        name: name.clone(),
                    })
            })
            .collect()
    }

    /// Reads every password file again (SIGHUP) and forgets cached authentications and
    /// introspection answers. (TLS certificates are reloaded by their listeners.)
    pub fn reload(&self) {
        for file in &self.password_files {
            if let Err(e) = file.reload() {
                tracing::error!("password file not reloaded, previous users kept: {e}");
            }
        }
        self.forget_cached();
    }

    /// The key-set fetches of every authenticator that fetches one (a JWKS), by name, since
    /// it was built (at start or by a reconfiguration).
    pub fn key_fetches(&self) -> Vec<(&str, KeyFetches)> {
        self.named
            .iter()
            .filter_map(|n| {
                let a = &n.authenticator;
                a.key_fetches().map(|fetches| (a.name(), fetches))
            })
            .collect()
    }

    /// Forgets cached authentications and introspection answers (a revocation must not be
    /// outlived by a cached allow).
    pub fn forget_cached(&self) {
        for n in &self.named {
            if let Some(cache) = &n.cache {
                cache.flush();
            }
        }
        for introspection in &self.introspections {
            introspection.flush();
        }
    }
}

/// Builds the authenticator `index` of the configuration (`password_files` and
/// `introspections` collect those SIGHUP reloads and a revocation flushes).
fn build_one(
    index: usize,
    a: &AuthenticatorConfig,
    issuers: &TokenIssuers,
    password_files: &mut Vec<Arc<PasswordFile>>,
    introspections: &mut Vec<Arc<IntrospectionAuthenticator>>,
) -> Result<Arc<dyn Authenticator>, Box<ConfigProblem>> {
    let at = || KeyPath::root().key("authenticator").index(index);
    let kind = a
        .kind()
        .map_err(|m| ConfigProblem::at(at().key("name"), m))?;
    let table = at().key(kind.table());
    // At the key the cause names, within the kind's table.
    let invalid = |e: SetupError| {
        let key = e.key_path().into_iter().fold(table.clone(), KeyPath::key);
        Box::new(ConfigProblem::at(
            key,
            ConfigCause::Authenticator {
                name: a.name.clone(),
                error: e,
            },
        ))
    };
    Ok(match kind {
        AuthenticatorKind::PasswordFile(settings) => {
            let file = PasswordFile::open(&a.name, &settings.path, settings.max_parallel_hashes)
                .map_err(|e| {
                    Box::new(ConfigProblem::at(
                        table.clone().key("path"),
                        ConfigCause::PasswordFile(e),
                    ))
                })?;
            let file = Arc::new(match settings.key {
                PasswordKey::Username => file,
                PasswordKey::ClientId => file.keyed_by_client_id(),
            });
            if !settings.reload_interval.is_zero() {
                file.watch(settings.reload_interval);
            }
            password_files.push(Arc::clone(&file));
            file
        }
        AuthenticatorKind::Jwt(settings) => match &settings.token_issuer {
            None => Arc::new(JwtAuthenticator::new(&a.name, settings.clone()).map_err(invalid)?),
            Some(issuer) => {
                let trusted = issuers
                    .get(issuer)
                    .and_then(|i| i.trusted())
                    .ok_or_else(|| invalid(SetupError::TokenIssuerUnresolved(issuer.clone())))?;
                Arc::new(
                    JwtAuthenticator::trusting(&a.name, settings.clone(), trusted)
                        .map_err(invalid)?,
                )
            }
        },
        AuthenticatorKind::Introspection(settings) => {
            let introspection = Arc::new(
                IntrospectionAuthenticator::new(&a.name, settings.clone()).map_err(invalid)?,
            );
            introspections.push(Arc::clone(&introspection));
            introspection
        }
        AuthenticatorKind::PasswordGrant(settings) => {
            Arc::new(PasswordGrantAuthenticator::new(&a.name, settings.clone()).map_err(invalid)?)
        }
        AuthenticatorKind::Webhook(settings) => {
            Arc::new(WebhookAuthenticator::new(&a.name, settings.clone()).map_err(invalid)?)
        }
        AuthenticatorKind::Ace(settings) => Arc::new(
            tollgate_auth::ace::AceAuthenticator::new(&a.name, settings.clone())
                .map_err(invalid)?,
        ),
    })
}
