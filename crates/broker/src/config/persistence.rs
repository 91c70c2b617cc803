//! Where and how the broker keeps what it must not forget (the `[persistence]` table).

use std::path::PathBuf;

use serde::Deserialize;

/// When the store's writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// Every acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK) waits until the commit
    /// holding its records is synced to disk. One sync covers every record written meanwhile
    /// by every connection (group commit). Nothing acknowledged is lost, even on power loss.
    #[default]
    Always,
    /// Acknowledgements wait until the commit is written to the operating system, and the
    /// store is synced every `interval_ms`: a crash of the broker loses nothing, a power loss
    /// or kernel crash at most that window.
    Interval,
    /// Acknowledgements wait until the commit is written to the operating system, which syncs
    /// when it chooses: a crash of the broker loses nothing; a power loss can lose anything
    /// not yet synced.
    Never,
}

/// The `[persistence]` table: persistence is on when `path` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConfig {
    /// The directory the store lives in (created if missing). Not set: everything is kept in
    /// memory only and a restart forgets it.
    pub path: Option<PathBuf>,
    /// When writes reach the disk (`always`, the default; `interval`; `never`).
    pub fsync: FsyncMode,
    /// With `fsync = "interval"`: milliseconds between syncs (1000 by default).
    pub interval_ms: Option<u64>,
    /// Least free bytes the store's file system must keep (64 MiB by default): below it,
    /// publishes that need storage are refused (5.0: 0x97, 3.x: the connection is closed)
    /// and the broker keeps serving the rest. 0 turns the check off.
    pub min_free_bytes: Option<u64>,
}

/// Milliseconds between syncs with `fsync = "interval"` when `interval_ms` is not set.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;

/// Free bytes kept on the store's file system when `min_free_bytes` is not set.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

impl PersistenceConfig {
    /// Whether persistence is on.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }
}
