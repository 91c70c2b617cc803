//! Authentication by a password file: Mosquitto's `password_file`, read as it is, plus
//! argon2id lines.
//!
//! Each line is `user:hash` (see [`PasswordHash`] for the formats); blank lines and lines
//! starting with `#` are skipped. A user the file does not know is not this authenticator's
//! business (next); a known user with a wrong password is refused, and so is an empty password
//! (without hashing: no line can make an empty password valid). Hashes are checked on a fixed
//! set of hashing threads (`hashing.rs`), so a burst of logins never stalls the I/O threads,
//! never runs more checks at once than configured, and leaves no hashing memory behind. The file is read again when it changes (polled) or on [`PasswordFile::reload`]
//! (SIGHUP); a file that fails to parse leaves the previous users in force.
//!
//! A request with the MQTT 5 method `SCRAM-SHA-256` or `SCRAM-SHA-512` is a SCRAM exchange
//! instead (`scram_exchange.rs`): the password never crosses the wire.

mod editor;
mod hash;
mod hashing;
mod scram_exchange;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

pub use editor::PasswordFileEditor;
pub use hash::{PasswordHash, MAX_ARGON2_MEMORY_KIB};
pub use hashing::HashingPool;

use crate::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, DenyReason, Identity,
};
use crate::scram::Mechanism;

/// A password file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when the problem is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PasswordFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for PasswordFileError {}

/// Parses password file text into users and hashes.
pub fn parse_password_file(
    path: &Path,
    text: &str,
) -> Result<HashMap<String, Arc<PasswordHash>>, PasswordFileError> {
    let mut users = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let error = |message: String| PasswordFileError {
            path: path.to_owned(),
            line: Some(index + 1),
            message,
        };
        let Some((user, hash)) = line.split_once(':') else {
            return Err(error("expected `user:hash`".into()));
        };
        if user.is_empty() {
            return Err(error("empty user name".into()));
        }
        let hash = PasswordHash::parse(hash).map_err(|m| error(format!("user `{user}`: {m}")))?;
        if users.insert(user.to_owned(), Arc::new(hash)).is_some() {
            return Err(error(format!("user `{user}` appears more than once")));
        }
    }
    Ok(users)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// The password file authenticator.
pub struct PasswordFile {
    name: String,
    path: PathBuf,
    users: RwLock<Arc<HashMap<String, Arc<PasswordHash>>>>,
    revision: AtomicU64,
    stamp: Mutex<Option<FileStamp>>,
    hashing: HashingPool,
    /// Whether entries are client identifiers with their client secrets (the password), not
    /// user names.
    by_client_id: bool,
    /// What simulated SCRAM exchanges for unknown users are derived from: random, so no
    /// one can compute them, and the same for the file's life, so a name probed twice gets
    /// the same answer.
    simulation_secret: [u8; 32],
}

impl PasswordFile {
    /// The file's entries are client identifiers with their client secrets: the CONNECT's
    /// client identifier is looked up, its password checked, and the identity allowed is
    /// named after the client (a device's own secret, beside a user's credentials when the
    /// listener lists this authenticator in `client_authenticators`).
    pub fn keyed_by_client_id(mut self) -> PasswordFile {
        self.by_client_id = true;
        self
    }

    /// Reads the file at `path`. `max_parallel_hashes` is how many hashing threads check
    /// passwords (the rest wait their turn).
    pub fn open(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        max_parallel_hashes: usize,
    ) -> Result<PasswordFile, PasswordFileError> {
        let path = path.into();
        let name = name.into();
        let hashing =
            HashingPool::new(&name, max_parallel_hashes).map_err(|e| PasswordFileError {
                path: path.clone(),
                line: None,
                message: format!("cannot start hashing threads: {e}"),
            })?;
        let file = PasswordFile {
            name,
            users: RwLock::new(Arc::new(HashMap::new())),
            revision: AtomicU64::new(0),
            stamp: Mutex::new(None),
            hashing,
            by_client_id: false,
            simulation_secret: crate::random_bytes(),
            path,
        };
        file.reload()?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The threads that check this file's passwords.
    pub fn hashing(&self) -> &HashingPool {
        &self.hashing
    }

    /// How many users the file holds now.
    pub fn user_count(&self) -> usize {
        self.users.read().len()
    }

    /// Reads the file again. On error the previous users stay in force.
    pub fn reload(&self) -> Result<(), PasswordFileError> {
        let before = stamp(&self.path);
        let text = std::fs::read_to_string(&self.path).map_err(|e| PasswordFileError {
            path: self.path.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        let users = parse_password_file(&self.path, &text)?;
        let count = users.len();
        *self.users.write() = Arc::new(users);
        *self.stamp.lock() = before;
        self.revision.fetch_add(1, Ordering::Relaxed);
        tracing::info!(authenticator = %self.name, path = %self.path.display(), users = count, "password file loaded");
        Ok(())
    }

    /// Reads the file again if its modification time or size changed since the last read.
    /// Returns whether it was read.
    pub fn reload_if_changed(&self) -> Result<bool, PasswordFileError> {
        let now = stamp(&self.path);
        if now.is_none() || now == *self.stamp.lock() {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Polls the file every `interval` and reloads it when it changes, for as long as the
    /// authenticator lives. Errors are logged and the previous users kept.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(file) = weak.upgrade() else { return };
                if let Err(e) = file.reload_if_changed() {
                    tracing::error!(authenticator = %file.name, "password file not reloaded, previous users kept: {e}");
                }
            }
        });
    }
}

impl Authenticator for PasswordFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }

    fn depends_on_client_id(&self) -> bool {
        self.by_client_id
    }

    fn username_names_user(&self, _request: &ConnectRequest) -> bool {
        // Keyed by client identifier, the user name names nobody this file checks.
        !self.by_client_id
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            let scram = request
                .authentication_method
                .as_deref()
                .and_then(Mechanism::from_name);
            // Client secrets are checked from the password, whatever the method: the user's
            // SCRAM exchange is for the user's authenticators.
            if let (Some(mechanism), false) = (scram, self.by_client_id) {
                return Ok(self.scram_step(mechanism, request));
            }
            let key = if self.by_client_id {
                Some(request.client_id.as_str()).filter(|id| !id.is_empty())
            } else {
                request.username.as_deref()
            };
            let Some(username) = key else {
                return Ok(AuthOutcome::Next);
            };
            let Some(hash) = self.users.read().get(username).cloned() else {
                return Ok(AuthOutcome::Next);
            };
            let Some(password) = request.password.clone() else {
                return Ok(AuthOutcome::deny(
                    DenyReason::BadCredentials,
                    "no password given",
                ));
            };
            if password.expose().is_empty() {
                return Ok(AuthOutcome::deny(
                    DenyReason::BadCredentials,
                    "empty password",
                ));
            }
            let matches = self
                .hashing
                .verify(hash, password, request.peer.ip())
                .await
                .ok_or_else(|| AuthError::new("hashing threads stopped"))?;
            Ok(if matches {
                AuthOutcome::Allow(Identity {
                    username: self.by_client_id.then(|| username.to_owned()),
                    ..Identity::default()
                })
            } else {
                AuthOutcome::deny(DenyReason::BadCredentials, "wrong password")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_line() {
        let path = Path::new("passwd");
        let err = parse_password_file(path, "# comment\n\nalice:$7$101$eA==$eA==\nnocolon\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "passwd:4: expected `user:hash`");
        let err = parse_password_file(path, "bob:plain\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("passwd:1: user `bob`: unknown hash format"),
            "{err}"
        );
        let err =
            parse_password_file(path, "a:$7$101$eA==$eA==\na:$7$101$eA==$eA==\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn mosquitto_file_parses_whole() {
        let users = parse_password_file(
            Path::new("f"),
            include_str!("../../tests/fixtures/mosquitto_passwd.txt"),
        )
        .unwrap();
        let mut names: Vec<_> = users.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alice", "bob", "carol"]);
    }
}
