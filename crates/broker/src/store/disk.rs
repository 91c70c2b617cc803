//! How much room the store's file system has left.

use std::path::Path;

/// Bytes an unprivileged process may still write on the file system holding `path`, if the
/// system says.
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes free on the file system holding `path`: not known on this platform.
#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}
