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

use crate::config::AuthorizerConfig;
use crate::validate::{ConfigProblem, KeyPath};

/// A named authorizer and, for file-based ones, the file it came from.
struct Loaded {
    name: String,
    authorizer: Arc<dyn Authorizer>,
    file: Option<(PathBuf, Option<SystemTime>)>,
}

/// Every configured authorizer, by name.
pub struct Authorizers {
    configs: Vec<AuthorizerConfig>,
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

fn load(config: &AuthorizerConfig) -> Result<Loaded, String> {
    let kinds = [
        config.policy_file.is_some(),
        config.acl_file.is_some(),
        config.claims.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(format!(
            "authorizer `{}` needs exactly one kind table: policy_file, acl_file or claims",
            config.name
        ));
    }
    let (authorizer, file): (Arc<dyn Authorizer>, _) = if let Some(p) = &config.policy_file {
        (
            named(
                &config.name,
                PolicyFile::load(&p.path).map_err(|e| e.to_string())?,
            ),
            Some(p.path.clone()),
        )
    } else if let Some(a) = &config.acl_file {
        (
            named(
                &config.name,
                AclFile::load(&a.path)
                    .map_err(|e| e.to_string())?
                    .with_default(a.default),
            ),
            Some(a.path.clone()),
        )
    } else {
        let settings = config.claims.clone().expect("one kind");
        (
            named(
                &config.name,
                ClaimsAuthorizer::new(settings).map_err(|e| e.to_string())?,
            ),
            None,
        )
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
    /// Loads every configured authorizer. Fails on the first file with an error (named with
    /// its file and line).
    pub fn build(configs: &[AuthorizerConfig]) -> Result<Authorizers, ConfigProblem> {
        let mut loaded = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let at = KeyPath::root().key("authorizer").index(index);
            if loaded.iter().any(|l: &Loaded| l.name == config.name) {
                return Err(ConfigProblem::at(
                    at.key("name"),
                    format!("two authorizers are named `{}`", config.name),
                ));
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
            loaded.push(load(config).map_err(|m| ConfigProblem::at(table, m))?);
        }
        Ok(Authorizers {
            configs: configs.to_vec(),
            loaded: Mutex::new(loaded),
        })
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
    ) -> Result<Option<Arc<AuthorizerChain>>, String> {
        if self.configs.is_empty() && names.is_none_or(|n| n.is_empty()) {
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
                for name in names {
                    let l = loaded.iter().find(|l| &l.name == name).ok_or_else(|| format!("listener `{listener}` names authorizer `{name}`, which is not configured"))?;
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
