//! Starting and stopping the broker: listeners (each with its accept loop, `accept.rs`),
//! `$SYS`, and graceful shutdown (every connection is told, 5.0 clients with DISCONNECT 0x8B,
//! and waited for). What changes while it runs (reloads, a new configuration) is `live.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use tollgate_auth::authentication::{Authenticator, LoginThrottle};
use tollgate_auth::policy::SourceError;
use tollgate_auth::revocation::RevocationList;

use crate::accept::{accept_loop, listen};
use crate::admin::jwt::AdminJwt;
use crate::admin::tokens::AdminTokens;
use crate::admin::AdminState;
use crate::audit_feed::file::AuditFile;
use crate::authorization::Authorizers;
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::config_cause::ConfigCause;
use crate::device_grant::DeviceGrants;
use crate::events::{EventHook, Hooks};
use crate::listener::{Authenticators, Listener};
use crate::live::{Applied, Live, Reconfigured};
use crate::revocation::RevocationFile;
use crate::store::{Recovered, Store};
use crate::sys::run_sys_publisher;
use crate::tls::TlsAcceptor;
use crate::token_issuer::TokenIssuers;
use crate::validate::{ConfigProblem, ConfigProblems, KeyPath};

/// Things an embedder adds to a broker in code.
#[derive(Default)]
pub struct Extensions {
    /// Authenticators supplied in code. Each is available to listeners by its `name()`, after
    /// the configured ones, and is in every chain of a listener that does not list its
    /// authenticators.
    pub authenticators: Vec<Arc<dyn Authenticator>>,
    /// Code told of connections, disconnections, publishes, deliveries and audited decisions
    /// (see [`crate::events`]).
    pub hooks: Vec<Arc<dyn EventHook>>,
}

/// Why a broker did not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration has problems (every one found, each naming its key).
    Config(ConfigProblems),
    /// The store (`[persistence] path`) could not be opened.
    Store(crate::store::OpenError),
    /// A listener's socket could not be bound.
    Bind {
        /// The listener's name.
        listener: String,
        /// The address it binds.
        address: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The audit file's writer thread could not be started.
    AuditFile(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(problems) => problems.fmt(f),
            StartError::Store(error) => error.fmt(f),
            StartError::Bind {
                listener,
                address,
                source,
            } => write!(
                f,
                "listener `{listener}`: cannot listen on {address}: {source}"
            ),
            StartError::AuditFile(e) => write!(f, "audit file: cannot start its writer: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(_) => None,
            StartError::Store(error) => Some(error),
            StartError::Bind { source, .. } | StartError::AuditFile(source) => Some(source),
        }
    }
}

impl From<StartError> for io::Error {
    fn from(error: StartError) -> io::Error {
        let kind = match &error {
            StartError::Config(_) => io::ErrorKind::InvalidInput,
            StartError::Store(_) => io::ErrorKind::Other,
            StartError::Bind { source, .. } | StartError::AuditFile(source) => source.kind(),
        };
        io::Error::new(kind, error.to_string())
    }
}

/// A running broker.
pub struct Server {
    broker: Arc<Broker>,
    /// The admin listener's address and state, when `[admin]` is configured.
    admin: Option<(SocketAddr, Arc<AdminState>)>,
    live: Arc<Live>,
    local_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    recovered: Recovered,
    /// The audit file's writer, when `[audit] file` is set.
    audit_writer: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds every listener of `config` and starts serving. Fails if an authenticator cannot
    /// be built (a password file with an error) or a listener cannot bind.
    pub async fn start(config: BrokerConfig) -> Result<Server, StartError> {
        Server::start_with(config, Extensions::default()).await
    }

    /// [`Server::start`], with authenticators supplied in code.
    pub async fn start_with(
        config: BrokerConfig,
        extensions: Extensions,
    ) -> Result<Server, StartError> {
        let prepared = Server::prepare(config, extensions).map_err(StartError::Config)?;
        prepared.start().await
    }

    /// Everything [`Server::start_with`] does short of binding sockets: the configuration
    /// validated, every file read (password files, policies, ACLs, the revocation list, TLS
    /// certificates, keys, CA bundles and CRLs), every name resolved. Every problem is
    /// reported, each naming the key at fault. Must run inside a tokio runtime (files are
    /// watched from here on).
    pub fn prepare(
        config: BrokerConfig,
        extensions: Extensions,
    ) -> Result<Prepared, ConfigProblems> {
        let mut problems = match config.validate() {
            Ok(()) => Vec::new(),
            Err(found) => found.into_iter().collect(),
        };
        let custom = extensions.authenticators;
        let hooks = Hooks::new(extensions.hooks);
        let token_issuers = Arc::new(TokenIssuers::build(&config.token_issuers, &mut problems));
        let device_grants = DeviceGrants::build(&config.device_grants, &mut problems);
        let authenticators = Arc::new(Authenticators::build(
            &config,
            custom.clone(),
            &token_issuers,
            hooks.feed(),
            &mut problems,
        ));
        let authorizers = Arc::new(Authorizers::build(&config.authorizers, &mut problems));
        let throttle = config
            .throttle
            .enabled
            .then(|| Arc::new(LoginThrottle::new(config.throttle.clone())));
        let mut listeners = Vec::new();
        for (index, listener_config) in config.listeners.iter().enumerate() {
            if let Some(listener) = Listener::build(
                index,
                listener_config,
                (&token_issuers, &device_grants),
                &authenticators,
                &authorizers,
                throttle.clone(),
                &mut problems,
            ) {
                listeners.push(Arc::new(listener));
            }
        }
        let revocation =
            config.revocation.as_ref().and_then(|settings| {
                match RevocationFile::open(&settings.path) {
                    Ok((file, list)) => Some((Arc::new(file), Arc::new(list))),
                    Err(m) => {
                        problems.push(ConfigProblem::at(
                            KeyPath::root().key("revocation").key("path"),
                            ConfigCause::Source(m),
                        ));
                        None
                    }
                }
            });
        let admin_tokens = config.admin.as_ref().and_then(|admin| {
            let path = admin.token_file.as_ref()?;
            match AdminTokens::load(path) {
                Ok(tokens) => Some(tokens),
                Err(e) => {
                    problems.push(ConfigProblem::at(
                        KeyPath::root().key("admin").key("token_file"),
                        ConfigCause::Source(e),
                    ));
                    None
                }
            }
        });
        let audit_file = config.audit.file.as_ref().and_then(|path| {
            match AuditFile::open(&config.audit, path) {
                Ok(file) => Some(file),
                Err(e) => {
                    problems.push(ConfigProblem::at(
                        KeyPath::root().key("audit").key("file"),
                        ConfigCause::Source(SourceError::at(
                            &path.display().to_string(),
                            None,
                            None,
                            e.to_string(),
                        )),
                    ));
                    None
                }
            }
        });
        let admin_tls = config
            .admin
            .as_ref()
            .and_then(|admin| admin.tls.as_ref())
            .and_then(|settings| match TlsAcceptor::new(settings) {
                Ok(tls) => Some(Arc::new(tls)),
                Err(error) => {
                    problems.push(ConfigProblem::at(
                        KeyPath::root().key("admin").key("tls").key(error.key()),
                        ConfigCause::Tls {
                            listener: "admin".to_owned(),
                            error,
                        },
                    ));
                    None
                }
            });
        let admin_jwt = config.admin.as_ref().and_then(|admin| {
            let settings = admin.jwt.clone()?;
            let read = Some(admin.jwt_read_role.clone()).filter(|r| !r.is_empty());
            match AdminJwt::new(settings, admin.jwt_admin_role.clone(), read) {
                Ok(jwt) => Some(Arc::new(jwt)),
                Err(error) => {
                    problems.push(ConfigProblem::at(
                        KeyPath::root().key("admin").key("jwt"),
                        ConfigCause::Authenticator {
                            name: "admin.jwt".to_owned(),
                            error,
                        },
                    ));
                    None
                }
            }
        });
        ConfigProblems::check(problems)?;
        Ok(Prepared {
            config,
            admin_tokens,
            authenticators,
            authorizers,
            token_issuers,
            listeners,
            revocation,
            throttle,
            custom,
            hooks,
            audit_file,
            admin_tls,
            admin_jwt,
        })
    }
}

/// A broker ready to start: what [`Server::prepare`] built.
pub struct Prepared {
    config: BrokerConfig,
    admin_tokens: Option<AdminTokens>,
    authenticators: Arc<Authenticators>,
    authorizers: Arc<Authorizers>,
    token_issuers: Arc<TokenIssuers>,
    listeners: Vec<Arc<Listener>>,
    revocation: Option<(Arc<RevocationFile>, Arc<RevocationList>)>,
    throttle: Option<Arc<LoginThrottle>>,
    custom: Vec<Arc<dyn Authenticator>>,
    hooks: Hooks,
    audit_file: Option<AuditFile>,
    /// The admin listener's TLS, when `[admin] tls` is set.
    admin_tls: Option<Arc<TlsAcceptor>>,
    /// JWT admin tokens, when `[admin] jwt` is set.
    admin_jwt: Option<Arc<AdminJwt>>,
}

impl Prepared {
    /// The listener named `name` (its name or bind address), or the first with `None`.
    pub fn listener(&self, name: Option<&str>) -> Option<&Arc<Listener>> {
        match name {
            None => self.listeners.first(),
            Some(name) => self
                .listeners
                .iter()
                .find(|l| *l.name == *name || l.socket.0.to_string() == name),
        }
    }

    /// The policy files of the configured authorizers.
    pub fn policy_files(&self) -> Vec<std::path::PathBuf> {
        self.config
            .authorizers
            .iter()
            .filter_map(|a| a.policy_file.as_ref().map(|p| p.path.clone()))
            .collect()
    }

    /// The revocation list as read from the configured file (empty without one).
    pub fn revocation_list(&self) -> Arc<RevocationList> {
        match &self.revocation {
            Some((_, list)) => Arc::clone(list),
            None => Arc::default(),
        }
    }

    /// Binds every listener and starts serving.
    pub async fn start(self) -> Result<Server, StartError> {
        let Prepared {
            config,
            admin_tokens,
            authenticators,
            authorizers,
            token_issuers,
            listeners,
            revocation,
            throttle,
            custom,
            hooks,
            audit_file,
            admin_tls,
            admin_jwt,
        } = self;
        let audit_writer = match audit_file {
            Some(file) => Some(file.start(&hooks.feed()).map_err(StartError::AuditFile)?),
            None => None,
        };
        let store = match config.persistence.path {
            Some(_) => Some(Store::open(&config.persistence).map_err(StartError::Store)?),
            None => None,
        };
        let broker = Broker::with_store(config.clone(), hooks, store);
        let recovered = broker.restore();
        match broker.store() {
            Some(store) => log_recovered(store, &recovered),
            None => tracing::debug!(
                "persistence off: sessions and retained messages are kept in memory only"
            ),
        }
        let (shutdown, _) = watch::channel(false);
        if let Some((_, list)) = &revocation {
            broker.set_revocations(Arc::clone(list));
        }
        let mut tasks = JoinSet::new();
        let mut local_addrs = Vec::new();
        for listener in &listeners {
            let (bind, backlog) = listener.socket;
            let bind_error = |source| StartError::Bind {
                listener: listener.name.to_string(),
                address: bind,
                source,
            };
            let socket = listen(bind, backlog).map_err(bind_error)?;
            let addr = socket.local_addr().map_err(bind_error)?;
            let policy = listener.policy();
            tracing::info!(listener = %listener.name, address = %addr, authenticators = ?policy.chain.names(), anonymous = policy.config.allow_anonymous, transport = policy.transport_name(), "listening");
            local_addrs.push(addr);
            tasks.spawn(accept_loop(
                socket,
                Arc::clone(&broker),
                Arc::clone(listener),
                shutdown.subscribe(),
            ));
        }
        let live = Arc::new(Live::new(
            Arc::clone(&broker),
            listeners,
            custom,
            Applied {
                config,
                authenticators,
                authorizers,
                token_issuers,
                throttle,
                revocation: revocation.map(|(file, _)| file),
            },
        ));
        tasks.spawn(Arc::clone(&live).watch_files(shutdown.subscribe()));
        let mut admin = None;
        if let (Some(settings), Some(tokens)) = (&broker.config.admin, admin_tokens) {
            let bind_error = |source| StartError::Bind {
                listener: "admin".to_owned(),
                address: settings.bind,
                source,
            };
            let socket = listen(settings.bind, 128).map_err(bind_error)?;
            let addr = socket.local_addr().map_err(bind_error)?;
            if tokens.is_empty() {
                tracing::warn!(file = ?settings.token_file, "the admin token file lists no token: every admin request is refused");
            }
            tracing::info!(address = %addr, tokens = tokens.len(), tls = admin_tls.is_some(), "admin API listening");
            let state = Arc::new(AdminState::new(
                Arc::clone(&broker),
                Arc::clone(&live),
                settings.clone(),
                tokens,
                admin_tls,
                admin_jwt,
            ));
            tasks.spawn(crate::admin::serve(
                socket,
                Arc::clone(&state),
                shutdown.subscribe(),
            ));
            admin = Some((addr, state));
        }
        if !broker.config.sys_interval.is_zero() {
            crate::sys::publish_counters(&broker);
            let interval = broker.config.sys_interval;
            tasks.spawn(run_sys_publisher(
                Arc::clone(&broker),
                interval,
                shutdown.subscribe(),
            ));
        }
        Ok(Server {
            broker,
            admin,
            live,
            local_addrs,
            shutdown,
            tasks,
            recovered,
            audit_writer,
        })
    }
}

/// The log lines of a restart: what was restored, and (loudly) what was lost.
fn log_recovered(store: &Store, found: &Recovered) {
    tracing::info!(store = %store.path().display(), fsync = ?store.fsync_mode(), sessions = found.sessions, subscriptions = found.subscriptions, deliveries = found.deliveries, retained = found.retained, bans = found.bans, revocations = found.revocations, expired_sessions = found.expired, wills_published = found.wills_published, damaged_records = found.damaged, dropped_records = found.dropped, journal_bytes_cut = found.journal_bytes_cut, elapsed_ms = found.elapsed.as_millis() as u64, "persistence on: state restored");
    if found.damaged > 0 {
        tracing::error!(
            damaged_records = found.damaged,
            "records of the store were damaged and dropped: what they held is lost"
        );
    }
    if let Some(aside) = &found.moved_aside {
        tracing::error!(moved_to = %aside.display(), "the store was damaged and moved aside: the broker started empty");
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::shutdown`] still writes what its store has pending
    /// and closes it (the committer thread stops, and the store's lock goes with the last
    /// session holding it).
    fn drop(&mut self) {
        self.broker.stop_signal().stop();
        if let Some(store) = self.broker.store() {
            store.close();
        }
    }
}

impl Server {
    /// The addresses the listeners are bound to, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// What the start found in the store: what was restored and what was dropped (a
    /// journal tail cut off, damaged records, a store moved aside). Empty without
    /// persistence.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The address the admin listener is bound to, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(addr, _)| *addr)
    }

    /// Reads the admin token file again (on reload and SIGHUP).
    fn reload_admin_tokens(&self) {
        if let Some((_, state)) = &self.admin {
            state.reload_tokens();
        }
    }

    /// Re-reads what can change in place (password files, policy and ACL files, the
    /// revocation list, TLS certificates, keys and CRLs) and forgets cached authentications.
    /// Connected clients stay connected.
    pub fn reload(&self) {
        self.live.reload();
        self.reload_admin_tokens();
    }

    /// Applies a new configuration to the running broker (the binary does on SIGHUP, after
    /// reading its file again): it is checked and built completely first, so a problem
    /// changes nothing; then the authenticators, authorizers, throttle, revocation list and
    /// each listener's policy are replaced. New connections use the new settings; connected
    /// clients keep their connection, get permissions compiled from the new authorizers, and
    /// are checked against the new revocation list and CRLs. What needs a restart (a
    /// listener's address, the broker-wide limits, ...) keeps its running value and is listed
    /// in the answer.
    pub fn reconfigure(&self, config: BrokerConfig) -> Result<Reconfigured, ConfigProblems> {
        let reconfigured = self.live.reconfigure(config)?;
        self.reload_admin_tokens();
        Ok(reconfigured)
    }

    /// Stops accepting, tells every connection to close, and waits for them; then writes
    /// what the store still has pending and closes it.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.broker.stop_signal().stop();
        while self.tasks.join_next().await.is_some() {}
        if let Some(store) = self.broker.store().cloned() {
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
        }
        // Event streams end; the audit file gets every event before this point.
        self.broker.hooks.feed().close();
        if let Some(writer) = self.audit_writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}
