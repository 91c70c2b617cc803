//! The `[audit]` table: audit events as JSON lines in a file, besides the log.

use std::path::PathBuf;

use serde::Deserialize;

/// The least `max_file_bytes` may be.
pub const MIN_AUDIT_FILE_BYTES: u64 = 4096;

/// The most rotated files `keep_files` may ask for.
pub const MAX_AUDIT_KEEP_FILES: u64 = 100;

/// The `[audit]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The JSON-lines file audit events are appended to (none unless set).
    pub file: Option<PathBuf>,
    /// The size a file may reach before it is rotated (`file` becomes `file.1`, `file.1`
    /// becomes `file.2`, ...): 64 MiB by default, at least 4096.
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one (5 by default, 1 to 100); the oldest goes.
    pub keep_files: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: None,
            max_file_bytes: 64 * 1024 * 1024,
            keep_files: 5,
        }
    }
}
