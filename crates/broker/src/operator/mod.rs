//! What operators decide at run time through the admin API: bans (`bans.rs`) and
//! revocations (`revocations.rs`), each an [`OperatorEntry`] saying why, until when and by
//! whom, kept in the store when persistence is on (`records.rs`).
//!
//! Both are bounded in count (the `[admin]` settings `max_bans` and `max_revocations`) and
//! in bytes: a value (client identifier, user name, token id) of at most
//! [`MAX_VALUE_BYTES`], a reason of at most [`MAX_REASON_BYTES`].

use std::time::SystemTime;

pub mod bans;
pub mod records;
pub mod revocations;

/// The longest value a ban or revocation names, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// The longest reason an operator gives, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// Why, until when and by whom an operator decided something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEntry {
    /// The operator's reason (may be empty).
    pub reason: String,
    /// When it ends (`None`: never).
    pub until: Option<SystemTime>,
    /// When it was made.
    pub made_at: SystemTime,
    /// The admin token that made it.
    pub by: String,
}

impl OperatorEntry {
    /// Whether it is still in force at `now`.
    pub fn in_force(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}
