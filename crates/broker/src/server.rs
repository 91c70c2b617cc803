//! Starting and stopping the broker: listeners, their accept loops, `$SYS`, reloading, and
//! graceful shutdown (every connection is told, 5.0 clients with DISCONNECT 0x8B, and waited
//! for).

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
use crate::listener::{Authenticators, Listener};
use crate::memory::Overload;
use crate::revocation::{watch_revocations, RevocationFile};
use crate::sys::run_sys_publisher;
use crate::tls::TlsAcceptor;
use crate::validate::{ConfigProblem, KeyPath};

/// Things an embedder adds to a broker in code.
#[derive(Default)]
pub struct Extensions {
    /// Authenticators supplied in code. Each is available to listeners by its `name()`, after
    /// the configured ones, and is in every chain of a listener that does not list its
    /// authenticators.
    pub authenticators: Vec<Arc<dyn Authenticator>>,
}

/// A running broker.
pub struct Server {
    broker: Arc<Broker>,
    authenticators: Arc<Authenticators>,
    revocation: Option<Arc<RevocationFile>>,
    tls_listeners: Vec<Arc<TlsAcceptor>>,
    authorizers: Arc<Authorizers>,
    listeners: Vec<Arc<Listener>>,
    local_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Binds every listener of `config` and starts serving. Fails if an authenticator cannot
    /// be built (a password file with an error) or a listener cannot bind.
    pub async fn start(config: BrokerConfig) -> io::Result<Server> {
        Server::start_with(config, Extensions::default()).await
    }

    /// [`Server::start`], with authenticators supplied in code.
    pub async fn start_with(config: BrokerConfig, extensions: Extensions) -> io::Result<Server> {
        let prepared = Server::prepare(config, extensions)
            .map_err(|p| io::Error::new(io::ErrorKind::InvalidInput, p.to_string()))?;
        prepared.start().await
    }

    /// Everything [`Server::start_with`] does short of binding sockets: the configuration
    /// validated, every file read (password files, policies, ACLs, the revocation list, TLS
    /// certificates, keys, CA bundles and CRLs), every name resolved. A problem names the key
    /// at fault. Must run inside a tokio runtime (files are watched from here on).
    pub fn prepare(
        config: BrokerConfig,
        extensions: Extensions,
    ) -> Result<Prepared, ConfigProblem> {
        config.validate()?;
        let authenticators = Arc::new(Authenticators::build(&config, extensions.authenticators)?);
        let authorizers = Arc::new(Authorizers::build(&config.authorizers)?);
        let throttle = config
            .throttle
            .enabled
            .then(|| Arc::new(LoginThrottle::new(config.throttle.clone())));
        let mut listeners = Vec::new();
        for (index, listener_config) in config.listeners.iter().enumerate() {
            listeners.push(Arc::new(Listener::build(
                index,
                listener_config,
                &authenticators,
                &authorizers,
                throttle.clone(),
            )?));
        }
        let revocation = match &config.revocation {
            Some(settings) => {
                let (file, list) = RevocationFile::open(&settings.path).map_err(|m| {
                    ConfigProblem::at(KeyPath::root().key("revocation").key("path"), m)
                })?;
                Some((Arc::new(file), Arc::new(list), settings.reload_interval))
            }
            None => None,
        };
        Ok(Prepared {
            config,
            authenticators,
            authorizers,
            listeners,
            revocation,
        })
    }
}

/// A broker ready to start: what [`Server::prepare`] built.
pub struct Prepared {
    config: BrokerConfig,
    authenticators: Arc<Authenticators>,
    authorizers: Arc<Authorizers>,
    listeners: Vec<Arc<Listener>>,
    revocation: Option<(Arc<RevocationFile>, Arc<RevocationList>, u64)>,
}

impl Prepared {
    /// The listener named `name` (its name or bind address), or the first with `None`.
    pub fn listener(&self, name: Option<&str>) -> Option<&Arc<Listener>> {
        match name {
            None => self.listeners.first(),
            Some(name) => self.listeners.iter().find(|l| {
                l.config.name.as_deref() == Some(name) || l.config.bind.to_string() == name
            }),
        }
    }

    /// The revocation list as read from the configured file (empty without one).
    pub fn revocation_list(&self) -> Arc<RevocationList> {
        match &self.revocation {
            Some((_, list, _)) => Arc::clone(list),
            None => Arc::default(),
        }
    }

    /// Binds every listener and starts serving.
    pub async fn start(self) -> io::Result<Server> {
        let Prepared {
            config,
            authenticators,
            authorizers,
            listeners,
            revocation,
        } = self;
        let mut tls_listeners = Vec::new();
        for listener in &listeners {
            if let Some(tls) = &listener.tls {
                tls_listeners.push(Arc::clone(tls));
            }
        }
        let broker = Broker::new(config);
        let (shutdown, _) = watch::channel(false);
        if let Some((_, list, _)) = &revocation {
            broker.set_revocations(Arc::clone(list));
        }
        let mut tasks = JoinSet::new();
        let mut local_addrs = Vec::new();
        let listeners_kept = listeners.clone();
        for listener in listeners.clone() {
            let bind = listener.config.bind;
            let socket = listen(bind, listener.config.listen_backlog)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {bind}: {e}")))?;
            let addr = socket.local_addr()?;
            tracing::info!(listener = %listener.name, address = %addr, authenticators = ?listener.chain.names(), anonymous = listener.config.allow_anonymous, transport = listener.transport_name(), "listening");
            local_addrs.push(addr);
            tasks.spawn(accept_loop(
                socket,
                Arc::clone(&broker),
                listener,
                shutdown.subscribe(),
            ));
        }
        for listener in &listeners {
            let (Some(tls), Some(settings)) = (&listener.tls, &listener.config.tls) else {
                continue;
            };
            if settings.reload_interval > 0 {
                tasks.spawn(watch_tls(
                    Arc::clone(tls),
                    Arc::clone(&broker),
                    Duration::from_secs(settings.reload_interval),
                    shutdown.subscribe(),
                ));
            }
        }
        let reload_interval = broker.config.authorization.reload_interval;
        if reload_interval > 0 && !authorizers.is_empty() {
            tasks.spawn(watch_authorization(
                Arc::clone(&broker),
                Arc::clone(&authorizers),
                listeners.clone(),
                Duration::from_secs(reload_interval),
                shutdown.subscribe(),
            ));
        }
        if let Some((file, _, interval)) = &revocation {
            if *interval > 0 {
                tasks.spawn(watch_revocations(
                    Arc::clone(file),
                    Arc::clone(&broker),
                    Arc::clone(&authenticators),
                    Duration::from_secs(*interval),
                    shutdown.subscribe(),
                ));
            }
        }
        if broker.config.sys_interval > 0 {
            crate::sys::publish_counters(&broker);
            let interval = Duration::from_secs(broker.config.sys_interval);
            tasks.spawn(run_sys_publisher(
                Arc::clone(&broker),
                interval,
                shutdown.subscribe(),
            ));
        }
        Ok(Server {
            broker,
            authenticators,
            revocation: revocation.map(|(file, _, _)| file),
            tls_listeners,
            authorizers,
            listeners: listeners_kept,
            local_addrs,
            shutdown,
            tasks,
        })
    }
}

impl Server {
    /// The addresses the listeners are bound to, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Re-reads what can change while running (password files, TLS certificates) and forgets cached
    /// authentications. Connected clients stay connected. Called on SIGHUP.
    pub fn reload(&self) {
        tracing::info!("reloading");
        self.authenticators.reload();
        if let Some(file) = &self.revocation {
            file.reload(false, &self.broker, &self.authenticators);
        }
        if self.authorizers.reload(false) {
            apply_authorization(&self.broker, &self.authorizers, &self.listeners);
        }
        let mut trust_reloaded = false;
        for tls in &self.tls_listeners {
            match tls.reload() {
                Ok(reloaded) => trust_reloaded |= reloaded,
                Err(e) => tracing::error!("TLS files not reloaded, previous ones kept: {e}"),
            }
        }
        if trust_reloaded {
            // Connected clients whose certificate a new CRL revokes are closed.
            self.broker.permissions_changed();
        }
    }

    /// Stops accepting, tells every connection to close, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Gives every listener its authorizers' current rules and makes connected clients use them.
fn apply_authorization(broker: &Broker, authorizers: &Authorizers, listeners: &[Arc<Listener>]) {
    for listener in listeners {
        listener.refresh_authorization(authorizers);
    }
    broker.permissions_changed();
}

/// Polls a TLS listener's files (certificate, key, CA bundle, CRLs) and reloads what
/// changed; new CRLs are applied to connected clients at once.
async fn watch_tls(
    tls: Arc<TlsAcceptor>,
    broker: Arc<Broker>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => match tls.reload_if_changed() {
                Ok(true) => broker.permissions_changed(),
                Ok(false) => {}
                Err(e) => tracing::error!("TLS files not reloaded, previous ones kept: {e}"),
            },
        }
    }
}

/// Polls policy and ACL files and applies changed ones to connected clients.
async fn watch_authorization(
    broker: Arc<Broker>,
    authorizers: Arc<Authorizers>,
    listeners: Vec<Arc<Listener>>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {
                if authorizers.reload(true) {
                    apply_authorization(&broker, &authorizers, &listeners);
                }
            }
        }
    }
}

/// Counts the connection tasks of a listener, so shutdown can wait for them without keeping a
/// join handle per connection.
#[derive(Default)]
struct LiveConnections {
    count: std::sync::atomic::AtomicUsize,
    all_gone: tokio::sync::Notify,
}

/// Held by a connection task; its drop counts the task out.
struct LiveGuard(Arc<LiveConnections>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.all_gone.notify_waiters();
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
    use std::sync::atomic::Ordering;
    let live = Arc::new(LiveConnections::default());
    let mut rate = ConnectionRate::new(
        config.config.max_connection_rate,
        config.config.max_connection_rate_per_address,
    );
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
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
                    if config.config.tcp_nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    live.count.fetch_add(1, Ordering::AcqRel);
                    let guard = LiveGuard(Arc::clone(&live));
                    let (broker, config, shutdown) = (Arc::clone(&broker), Arc::clone(&config), shutdown.clone());
                    // The connection's future is made inside the task: made outside and moved
                    // in, it would be stored twice in every task.
                    tokio::spawn(async move {
                        let _guard = guard;
                        let _held = held;
                        run_connection(stream, peer, broker, config, shutdown).await;
                    });
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
    // Wait for every connection to finish closing.
    loop {
        let gone = live.all_gone.notified();
        tokio::pin!(gone);
        gone.as_mut().enable();
        if live.count.load(Ordering::Acquire) == 0 {
            return;
        }
        gone.await;
    }
}
