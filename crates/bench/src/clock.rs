//! A process-wide monotonic clock in nanoseconds, shared by publishers (who stamp payloads)
//! and subscribers (who subtract): both run in this process, so one epoch serves both.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_nanos() as u64
}
