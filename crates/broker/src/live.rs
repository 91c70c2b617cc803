//! What changes while the broker runs, and how: files re-read in place ([`Live::reload`]:
//! password files, policy and ACL files, the revocation list, TLS material), a whole new
//! configuration applied ([`Live::reconfigure`]: the binary's SIGHUP, after it read its TOML
//! file again), and the one task that polls watched files.
//!
//! A new configuration is built completely (every file read, every name resolved) before any
//! of it is applied, so a bad one changes nothing. What a running broker cannot take without a
//! restart (a listener's socket, the broker-wide limits, the runtime) is listed, logged and
//! left as it was; everything else applies at once: new connections use the new listener
//! policy (authentication chain, TLS, limits), and every connected client compiles its
//! permissions again and checks its principal against the revocation list and CRLs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tollgate_auth::audit::AuditEvent;
use tollgate_auth::authentication::{Authenticator, LoginThrottle};
use tollgate_auth::revocation::RevocationList;

use crate::authorization::Authorizers;
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::config_cause::ConfigCause;
use crate::device_grant::DeviceGrants;
use crate::listener::{authorization_for, Authenticators, Listener, ListenerPolicy};
use crate::revocation::RevocationFile;
use crate::token_issuer::TokenIssuers;
use crate::validate::{ConfigProblem, ConfigProblems, KeyPath};

/// How often the watcher looks at the files' reload intervals.
const WATCH_TICK: Duration = Duration::from_secs(1);

/// What a reconfiguration applied and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// The settings that changed but keep their running value until the broker restarts
    /// (key paths, as in configuration errors).
    pub needs_restart: Vec<String>,
}

/// The parts of the running broker a reload or reconfiguration replaces.
pub(crate) struct Live {
    broker: Arc<Broker>,
    listeners: Vec<Arc<Listener>>,
    /// Authenticators supplied in code, kept across reconfigurations.
    custom: Vec<Arc<dyn Authenticator>>,
    /// One reload or reconfiguration at a time.
    applied: Mutex<Applied>,
}

/// The configuration in force and what was built from it.
pub(crate) struct Applied {
    pub config: BrokerConfig,
    pub authenticators: Arc<Authenticators>,
    pub authorizers: Arc<Authorizers>,
    pub token_issuers: Arc<TokenIssuers>,
    pub throttle: Option<Arc<LoginThrottle>>,
    pub revocation: Option<Arc<RevocationFile>>,
}

/// When each watched kind of file was last looked at.
struct Watched {
    authorization: Instant,
    revocation: Instant,
    tls: Vec<Instant>,
}

impl Live {
    /// The running broker's replaceable parts, as [`crate::Server::prepare`] built them.
    pub(crate) fn new(
        broker: Arc<Broker>,
        listeners: Vec<Arc<Listener>>,
        custom: Vec<Arc<dyn Authenticator>>,
        applied: Applied,
    ) -> Live {
        Live {
            broker,
            listeners,
            custom,
            applied: Mutex::new(applied),
        }
    }

    /// Every listener.
    pub(crate) fn listeners(&self) -> &[Arc<Listener>] {
        &self.listeners
    }

    /// The listener named `name` (its name or bind address), or the first one.
    pub(crate) fn listener(&self, name: Option<&str>) -> Option<Arc<Listener>> {
        match name {
            None => self.listeners.first().cloned(),
            Some(name) => self
                .listeners
                .iter()
                .find(|l| *l.name == *name || l.socket.0.to_string() == name)
                .cloned(),
        }
    }

    /// The authenticators in force.
    pub(crate) fn authenticators(&self) -> Arc<Authenticators> {
        Arc::clone(&self.applied.lock().authenticators)
    }

    /// The token issuers in force.
    pub(crate) fn token_issuers(&self) -> Arc<TokenIssuers> {
        Arc::clone(&self.applied.lock().token_issuers)
    }

    /// Forgets cached authentications and introspection answers (the admin API's
    /// `DELETE /authentication/cache`, and after a revocation).
    pub(crate) fn forget_cached(&self) {
        self.applied.lock().authenticators.forget_cached();
    }

    /// Re-reads what can change in place (password files, policy and ACL files, the revocation
    /// list, TLS certificates, keys, CAs and CRLs) and forgets cached authentications.
    /// Connected clients stay connected; their permissions are compiled again.
    pub(crate) fn reload(&self) {
        tracing::info!("reloading files");
        let applied = self.applied.lock();
        applied.authenticators.reload();
        if let Some(file) = &applied.revocation {
            file.reload(false, &self.broker, &applied.authenticators);
        }
        if applied.authorizers.reload(false) {
            self.apply_authorization(&applied.authorizers);
        }
        let mut trust_reloaded = false;
        for listener in &self.listeners {
            if let Some(tls) = &listener.policy().tls {
                match tls.reload() {
                    Ok(reloaded) => trust_reloaded |= reloaded,
                    Err(e) => {
                        tracing::error!(listener = %listener.name, "TLS files not reloaded, previous ones kept: {e}")
                    }
                }
            }
        }
        if trust_reloaded {
            // Connected clients whose certificate a new CRL revokes are closed.
            self.broker.permissions_changed();
        }
    }

    /// Applies `config` to the running broker: everything is built first (a problem changes
    /// nothing and names its key), then authenticators, authorizers, the throttle, the
    /// revocation list and each listener's policy are replaced. Settings that need a restart
    /// are reported and keep their running value.
    pub(crate) fn reconfigure(&self, config: BrokerConfig) -> Result<Reconfigured, ConfigProblems> {
        let mut problems = match config.validate() {
            Ok(()) => Vec::new(),
            Err(found) => found.into_iter().collect(),
        };
        let mut applied = self.applied.lock();
        let needs_restart = self.needs_restart(&config);
        let throttle = match &applied.throttle {
            Some(running) if config.throttle.enabled && running.config() == &config.throttle => {
                Some(Arc::clone(running))
            }
            _ => config
                .throttle
                .enabled
                .then(|| Arc::new(LoginThrottle::new(config.throttle.clone()))),
        };
        let token_issuers = Arc::new(TokenIssuers::build(&config.token_issuers, &mut problems));
        let device_grants = DeviceGrants::build(&config.device_grants, &mut problems);
        let authenticators = Arc::new(Authenticators::build(
            &config,
            self.custom.clone(),
            &token_issuers,
            self.broker.hooks.feed(),
            &mut problems,
        ));
        let authorizers = Arc::new(Authorizers::build(&config.authorizers, &mut problems));
        let mut policies = Vec::new();
        for (index, (listener, settings)) in
            self.listeners.iter().zip(&config.listeners).enumerate()
        {
            authorization_for(index, &listener.name, settings, &authorizers, &mut problems);
            policies.extend(ListenerPolicy::build(
                index,
                settings,
                &authenticators,
                &token_issuers,
                &device_grants,
                throttle.clone(),
                &mut problems,
            ));
        }
        let revocation = match &config.revocation {
            None => None,
            Some(settings) => match &applied.revocation {
                Some(running) if running.path() == settings.path => Some(Arc::clone(running)),
                _ => match RevocationFile::open(&settings.path) {
                    Ok((file, _)) => Some(Arc::new(file)),
                    Err(m) => {
                        problems.push(ConfigProblem::at(
                            KeyPath::root().key("revocation").key("path"),
                            ConfigCause::Source(m),
                        ));
                        None
                    }
                },
            },
        };
        ConfigProblems::check(problems)?;
        // Everything is built: from here on nothing fails.
        for (listener, policy) in self.listeners.iter().zip(policies) {
            listener.set_policy(policy, &authorizers);
        }
        match &revocation {
            Some(file) => file.reload(false, &self.broker, &authenticators),
            None => self
                .broker
                .set_revocations(Arc::new(RevocationList::default())),
        }
        *applied = Applied {
            config,
            authenticators,
            authorizers,
            token_issuers,
            throttle,
            revocation,
        };
        // New authorizers, CRLs and revocations reach connected clients.
        self.broker.permissions_changed();
        self.broker.hooks.audit(AuditEvent::ConfigurationReloaded {
            needs_restart: &needs_restart,
        });
        for key in &needs_restart {
            tracing::warn!(key = %key, "changed in the configuration file; keeps its running value until the broker restarts");
        }
        Ok(Reconfigured { needs_restart })
    }

    /// The settings `config` changes that a running broker cannot take: the listeners' sockets
    /// and names, and what the broker-wide state and the runtime were built with.
    fn needs_restart(&self, config: &BrokerConfig) -> Vec<String> {
        let running = &self.broker.config;
        let mut keys = Vec::new();
        let mut differs = |key: &str, changed: bool| {
            if changed {
                keys.push(key.to_owned());
            }
        };
        differs("listener", config.listeners.len() != self.listeners.len());
        for (index, (listener, settings)) in
            self.listeners.iter().zip(&config.listeners).enumerate()
        {
            let at = |key: &str| format!("listener[{index}].{key}");
            differs(&at("bind"), listener.socket.0 != settings.bind);
            differs(
                &at("listen_backlog"),
                listener.socket.1 != settings.listen_backlog,
            );
            // (A listener without a name is called by its address: a new address is enough.)
            differs(
                &at("name"),
                listener.socket.0 == settings.bind && *listener.name != *settings.display_name(),
            );
        }
        differs("limits", running.limits != config.limits);
        differs("persistence", running.persistence != config.persistence);
        differs("admin", running.admin != config.admin);
        let (old, new) = (&running.authorization, &config.authorization);
        differs(
            "authorization",
            (
                old.denied_publish_v311,
                old.disconnect_on_denied_publish_v5,
                old.denied_subscribe_code_v5,
            ) != (
                new.denied_publish_v311,
                new.disconnect_on_denied_publish_v5,
                new.denied_subscribe_code_v5,
            ),
        );
        differs("auth_timeout", running.auth_timeout != config.auth_timeout);
        differs(
            "will_on_expiry",
            running.will_on_expiry != config.will_on_expiry,
        );
        differs("sys_interval", running.sys_interval != config.sys_interval);
        differs("log_level", running.log_level != config.log_level);
        differs(
            "worker_threads",
            running.worker_threads != config.worker_threads,
        );
        keys
    }

    /// Gives every listener its authorizers' current rules and makes connected clients use them.
    fn apply_authorization(&self, authorizers: &Authorizers) {
        for listener in &self.listeners {
            listener.refresh_authorization(authorizers);
        }
        self.broker.permissions_changed();
    }

    /// Polls the watched files (policy and ACL files, the revocation list, each TLS
    /// listener's files), each at the interval the configuration in force gives it, and
    /// applies what changed, until shutdown. (Password files watch themselves.)
    pub(crate) async fn watch_files(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let start = Instant::now();
        let mut watched = Watched {
            authorization: start,
            revocation: start,
            tls: vec![start; self.listeners.len()],
        };
        let mut ticker = tokio::time::interval(WATCH_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => self.poll(&mut watched, Instant::now()),
            }
        }
    }

    /// One look at the watched files whose interval has passed at `now`.
    fn poll(&self, watched: &mut Watched, now: Instant) {
        let due = |last: &mut Instant, interval: Duration| {
            let due = !interval.is_zero() && now.duration_since(*last) >= interval;
            if due {
                *last = now;
            }
            due
        };
        let applied = self.applied.lock();
        if due(
            &mut watched.authorization,
            applied.config.authorization.reload_interval,
        ) && applied.authorizers.reload(true)
        {
            self.apply_authorization(&applied.authorizers);
        }
        if let (Some(file), Some(settings)) = (&applied.revocation, &applied.config.revocation) {
            if due(&mut watched.revocation, settings.reload_interval) {
                file.reload(true, &self.broker, &applied.authenticators);
            }
        }
        for (listener, last) in self.listeners.iter().zip(&mut watched.tls) {
            let policy = listener.policy();
            let (Some(tls), Some(settings)) = (&policy.tls, &policy.config.tls) else {
                continue;
            };
            if due(last, settings.reload_interval) {
                match tls.reload_if_changed() {
                    Ok(true) => self.broker.permissions_changed(),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(listener = %listener.name, "TLS files not reloaded, previous ones kept: {e}")
                    }
                }
            }
        }
    }
}
