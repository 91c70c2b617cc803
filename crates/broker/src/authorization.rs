//! The authorizers of the running broker: built from the configuration, assembled into each
//! listener's chain, and reloaded (policy and ACL files) on SIGHUP or when a file changes.
//! A reload bumps the broker's policy generation; every connection then compiles its
//! principal's permissions again and drops subscriptions no longer allowed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tollgate_auth::permissions::{Authorizer, AuthorizerChain, AuthorizerError, RuleSet};
use tollgate_auth::policy::{AclFile, ClaimsAuthorizer, PolicyFile};
use tollgate_auth::Principal;

use crate::config::{AuthorizerConfig, AuthorizerKind};
use crate::config_cause::{ConfigCause, NamedTable};
use crate::validate::{ConfigProblem, KeyPath};

/// A named authorizer and, for file-based ones, the file it came from.
struct Loaded {
    name: String,
    authorizer: Arc<dyn Authorizer>,
    file: Option<(PathBuf, Option<SystemTime>)>,
}

/// Every configured authorizer, by name.
pub struct Authorizers {
    /// The configurations of the loaded authorizers, in the order of `loaded`.
    configs: Vec<AuthorizerConfig>,
    /// The names of configured authorizers that could not be built (the configuration is
    /// refused; they are only remembered so listeners naming them are not reported again).
    broken: Vec<String>,
    loaded: Mutex<Vec<Loaded>>,
}

/// An authorizer under the name the configuration gives it (audit lines show that name).
struct Named<A> {
    name: String,
    inner: A,
}

impl<A: Authorizer> Authorizer for Named<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn rules_for<'a>(&'a self, principal: &Principal) -> Result<RuleSet<'a>, AuthorizerError> {
        self.inner.rules_for(principal)
    }
}

fn named<A: Authorizer + 'static>(name: &str, inner: A) -> Arc<dyn Authorizer> {
    Arc::new(Named {
        name: name.to_owned(),
        inner,
    })
}

/// A file's modification time, if it can be read (files are reloaded when it changes).
pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(config: &AuthorizerConfig) -> Result<Loaded, ConfigCause> {
    let (authorizer, file): (Arc<dyn Authorizer>, _) = match config.kind()? {
        AuthorizerKind::PolicyFile(p) => (
            named(
                &config.name,
                PolicyFile::load(&p.path).map_err(ConfigCause::Source)?,
            ),
            Some(p.path.clone()),
        ),
        AuthorizerKind::AclFile(a) => (
            named(
                &config.name,
                AclFile::load(&a.path)
                    .map_err(ConfigCause::Source)?
                    .with_default(a.default),
            ),
            Some(a.path.clone()),
        ),
        AuthorizerKind::Claims(settings) => (
            named(
                &config.name,
                ClaimsAuthorizer::new(settings.clone()).map_err(ConfigCause::Source)?,
            ),
            None,
        ),
    };
    Ok(Loaded {
        name: config.name.clone(),
        authorizer,
        file: file.map(|p| {
            let m = modified(&p);
            (p, m)
        }),
    })
}

impl Authorizers {
    /// Loads every configured authorizer; each one that cannot be loaded adds its problem
    /// (named with its file and line) to `problems` and is left out, remembered by name so
    /// that the listeners naming it are not reported again.
    pub fn build(configs: &[AuthorizerConfig], problems: &mut Vec<ConfigProblem>) -> Authorizers {
        let mut loaded: Vec<Loaded> = Vec::new();
        let mut kept = Vec::new();
        let mut broken = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let at = KeyPath::root().key("authorizer").index(index);
            if loaded.iter().any(|l| l.name == config.name) || broken.contains(&config.name) {
                problems.push(ConfigProblem::at(
                    at.key("name"),
                    ConfigCause::DuplicateName {
                        table: NamedTable::Authorizer,
                        name: config.name.clone(),
                    },
                ));
                continue;
            }
            let table = if config.policy_file.is_some() {
                at.key("policy_file").key("path")
            } else if config.acl_file.is_some() {
                at.key("acl_file").key("path")
            } else if config.claims.is_some() {
                at.key("claims")
            } else {
                at.key("name")
            };
            match load(config) {
                Ok(authorizer) => {
                    loaded.push(authorizer);
                    kept.push(config.clone());
                }
                Err(m) => {
                    problems.push(ConfigProblem::at(table, m));
                    broken.push(config.name.clone());
                }
            }
        }
        Authorizers {
            configs: kept,
            broken,
            loaded: Mutex::new(loaded),
        }
    }

    /// Whether any authorizer is configured (otherwise clients are unrestricted).
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// The chain for a listener naming `names` (all, in order, when `None`); `None` when no
    /// authorizer is configured at all.
    pub fn chain_for(
        &self,
        listener: &str,
        names: Option<&[String]>,
    ) -> Result<Option<Arc<AuthorizerChain>>, ConfigCause> {
        if self.configs.is_empty() && self.broken.is_empty() && names.is_none_or(|n| n.is_empty()) {
            return Ok(None);
        }
        let loaded = self.loaded.lock();
        let mut chain = AuthorizerChain::new();
        match names {
            None => {
                for l in loaded.iter() {
                    chain.push(Arc::clone(&l.authorizer));
                }
            }
            Some(names) => {
                for name in names.iter().filter(|n| !self.broken.contains(n)) {
                    let l = loaded.iter().find(|l| &l.name == name).ok_or_else(|| {
                        ConfigCause::NotConfigured {
                            listener: listener.to_owned(),
                            table: NamedTable::Authorizer,
                            name: name.clone(),
                        }
                    })?;
                    chain.push(Arc::clone(&l.authorizer));
                }
            }
        }
        Ok(Some(Arc::new(chain)))
    }

    /// Re-reads every policy and ACL file. A file with an error is logged and its previous
    /// rules kept. Returns whether anything was reloaded.
    pub fn reload(&self, only_changed: bool) -> bool {
        let mut loaded = self.loaded.lock();
        let mut reloaded = false;
        for (slot, config) in loaded.iter_mut().zip(&self.configs) {
            let Some((path, stamp)) = slot.file.clone() else {
                continue;
            };
            if only_changed && modified(&path) == stamp {
                continue;
            }
            match load(config) {
                Ok(fresh) => {
                    tracing::info!(authorizer = %config.name, path = %path.display(), "authorization rules reloaded");
                    *slot = fresh;
                    reloaded = true;
                }
                Err(e) => {
                    tracing::error!(authorizer = %config.name, "authorization rules not reloaded, previous rules kept: {e}");
                    // Do not retry the same broken file on every poll.
                    slot.file = Some((path.clone(), modified(&path)));
                }
            }
        }
        reloaded
    }
}
