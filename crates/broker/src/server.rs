//! Starting and stopping the broker: listeners, their accept loops, `$SYS`, and graceful
//! shutdown (every connection is told, 5.0 clients with DISCONNECT 0x8B, and waited for).
//! What changes while it runs (reloads, a new configuration) is `live.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use tollgate_auth::authentication::{AddressKey, Authenticator, LoginThrottle};
use tollgate_auth::revocation::RevocationList;

use crate::authorization::Authorizers;
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::driver::run_connection;
use crate::events::{EventHook, Hooks};
use crate::listener::{Authenticators, Listener};
use crate::live::{Applied, Live, Reconfigured};
use crate::memory::Overload;
use crate::revocation::RevocationFile;
use crate::store::{Recovered, Store};
use crate::sys::run_sys_publisher;
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
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(_) => None,
            StartError::Store(error) => Some(error),
            StartError::Bind { source, .. } => Some(source),
        }
    }
}

impl From<StartError> for io::Error {
    fn from(error: StartError) -> io::Error {
        let kind = match &error {
            StartError::Config(_) => io::ErrorKind::InvalidInput,
            StartError::Store(_) => io::ErrorKind::Other,
            StartError::Bind { source, .. } => source.kind(),
        };
        io::Error::new(kind, error.to_string())
    }
}

/// A running broker.
pub struct Server {
    broker: Arc<Broker>,
    live: Arc<Live>,
    local_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    recovered: Recovered,
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
        let authenticators = Arc::new(Authenticators::build(
            &config,
            custom.clone(),
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
                            m,
                        ));
                        None
                    }
                }
            });
        ConfigProblems::check(problems)?;
        Ok(Prepared {
            config,
            authenticators,
            authorizers,
            listeners,
            revocation,
            throttle,
            custom,
            hooks,
        })
    }
}

/// A broker ready to start: what [`Server::prepare`] built.
pub struct Prepared {
    config: BrokerConfig,
    authenticators: Arc<Authenticators>,
    authorizers: Arc<Authorizers>,
    listeners: Vec<Arc<Listener>>,
    revocation: Option<(Arc<RevocationFile>, Arc<RevocationList>)>,
    throttle: Option<Arc<LoginThrottle>>,
    custom: Vec<Arc<dyn Authenticator>>,
    hooks: Hooks,
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
            authenticators,
            authorizers,
            listeners,
            revocation,
            throttle,
            custom,
            hooks,
        } = self;
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
                throttle,
                revocation: revocation.map(|(file, _)| file),
            },
        ));
        tasks.spawn(Arc::clone(&live).watch_files(shutdown.subscribe()));
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
            live,
            local_addrs,
            shutdown,
            tasks,
            recovered,
        })
    }
}

/// The log lines of a restart: what was restored, and (loudly) what was lost.
fn log_recovered(store: &Store, found: &Recovered) {
    tracing::info!(store = %store.path().display(), fsync = ?store.fsync_mode(), sessions = found.sessions, subscriptions = found.subscriptions, deliveries = found.deliveries, retained = found.retained, expired_sessions = found.expired, wills_published = found.wills_published, damaged_records = found.damaged, dropped_records = found.dropped, journal_bytes_cut = found.journal_bytes_cut, elapsed_ms = found.elapsed.as_millis() as u64, "persistence on: state restored");
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

    /// Re-reads what can change in place (password files, policy and ACL files, the
    /// revocation list, TLS certificates, keys and CRLs) and forgets cached authentications.
    /// Connected clients stay connected.
    pub fn reload(&self) {
        self.live.reload();
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
        self.live.reconfigure(config)
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
    }
}

/// A listening socket on `bind` with a listen backlog of `backlog`.
fn listen(bind: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if bind.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    socket.listen(backlog.max(1))
}

/// New connections allowed per second, as a bucket of tokens refilled continuously (a burst
/// of one second's worth is allowed).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_second: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: per_second,
            at: now,
        }
    }

    /// Takes a token if there is one at `now`.
    fn take(&mut self, per_second: f64, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(per_second);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Most addresses whose connection rate is tracked at once.
const RATE_TRACKED_ADDRESSES: usize = 100_000;

/// The connection rate of a listener, in all and per address (IPv6: per /64), so that one
/// address flooding the listener is held to its own rate and leaves the rest to others.
struct ConnectionRate {
    per_second: f64,
    per_address: f64,
    listener: Bucket,
    addresses: HashMap<AddressKey, Bucket>,
}

impl ConnectionRate {
    fn new(per_second: u32, per_address: u32) -> ConnectionRate {
        let now = Instant::now();
        ConnectionRate {
            per_second: f64::from(per_second),
            per_address: f64::from(per_address),
            listener: Bucket::full(f64::from(per_second), now),
            addresses: HashMap::new(),
        }
    }

    /// The rates it was made with: in all, per address.
    fn settings(&self) -> (u32, u32) {
        (self.per_second as u32, self.per_address as u32)
    }

    /// Whether one more connection from `address` may be accepted now.
    fn admit(&mut self, address: std::net::IpAddr) -> bool {
        let now = Instant::now();
        if self.per_address > 0.0 {
            let key = AddressKey::of(address);
            if self.addresses.len() >= RATE_TRACKED_ADDRESSES && !self.addresses.contains_key(&key)
            {
                // Forget the addresses whose bucket has refilled: they are as good as new.
                let per_address = self.per_address;
                self.addresses.retain(|_, b| {
                    b.tokens + now.duration_since(b.at).as_secs_f64() * per_address < per_address
                });
            }
            let per_address = self.per_address;
            let bucket = self
                .addresses
                .entry(key)
                .or_insert_with(|| Bucket::full(per_address, now));
            if !bucket.take(per_address, now) {
                return false;
            }
        }
        self.per_second <= 0.0 || self.listener.take(self.per_second, now)
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: Arc<Listener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rate = ConnectionRate::new(0, 0);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let policy = config.policy();
                    let rates = (policy.config.max_connection_rate, policy.config.max_connection_rate_per_address);
                    if rate.settings() != rates {
                        rate = ConnectionRate::new(rates.0, rates.1);
                    }
                    // Limits apply before anything else is spent on the connection (no TLS
                    // handshake, no task): a refused one is simply closed.
                    // The address's own limit first: an address at its cap does not use up
                    // the listener's rate for everyone else.
                    let Ok(held) = config.connections.try_hold(peer.ip()) else {
                        broker.memory.record(Overload::ConnectionLimited);
                        continue;
                    };
                    if !rate.admit(peer.ip()) {
                        broker.memory.record(Overload::ConnectionLimited);
                        continue;
                    }
                    if policy.config.tcp_nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    // Spawned as it is, with no async block around it: a wrapper would store
                    // what it captures a second time in every connection's task.
                    tokio::spawn(run_connection(
                        stream,
                        peer,
                        Arc::clone(&broker),
                        Arc::clone(&config),
                        held,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    // Wait for every connection to finish closing: each task holds its place in the
    // listener's connection count until it ends.
    config.connections.none_held().await;
}
