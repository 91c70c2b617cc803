//! The revocation file: read at start, watched while running (`live.rs`) and re-read on
//! SIGHUP. A change forgets cached authentications and makes every connected client check
//! its principal against the new list (a revoked one is disconnected at once).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tollgate_auth::audit::AuditEvent;
use tollgate_auth::policy::SourceError;
use tollgate_auth::revocation::RevocationList;

use crate::authorization::modified;
use crate::broker::Broker;
use crate::listener::Authenticators;

/// The revocation file and the modification time it was last read at.
pub struct RevocationFile {
    path: PathBuf,
    stamp: Mutex<Option<SystemTime>>,
}

impl RevocationFile {
    /// Reads the file for the first time.
    pub fn open(path: &Path) -> Result<(RevocationFile, RevocationList), SourceError> {
        let file = RevocationFile {
            path: path.to_owned(),
            stamp: Mutex::new(modified(path)),
        };
        let list = file.read()?;
        Ok((file, list))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<RevocationList, SourceError> {
        let label = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| SourceError::at(&label, None, None, e.to_string()))?;
        RevocationList::parse(&label, &text)
    }

    /// Reads the file again (only if it changed, with `only_changed`) and applies it: the new
    /// list to the broker, caches forgotten, connections told. A file with an error keeps the
    /// previous list, with a log line.
    pub fn reload(&self, only_changed: bool, broker: &Broker, authenticators: &Authenticators) {
        let stamp = modified(&self.path);
        {
            let mut last = self.stamp.lock();
            if only_changed && *last == stamp {
                return;
            }
            *last = stamp;
        }
        match self.read() {
            Ok(list) => {
                broker
                    .hooks
                    .audit(AuditEvent::RevocationListLoaded { file: &self.path });
                broker.set_revocations(Arc::new(list));
                authenticators.forget_cached();
                broker.permissions_changed();
            }
            Err(e) => tracing::error!("revocation list not reloaded, previous one kept: {e}"),
        }
    }
}
