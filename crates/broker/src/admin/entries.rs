//! What the bans and revocations endpoints share: the JSON body that makes one, checked and
//! bounded, and the JSON of an operator's entry.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::views::{json_body, refuse, unix_seconds};
use crate::operator::{OperatorEntry, MAX_REASON_BYTES};

/// The longest a ban or revocation may last: ten years, seconds (longer is "for good": leave
/// `expires_in` out).
pub const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// The body of `POST /bans` and `POST /revocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewEntry {
    /// What kind of thing it names (`client`, `user`, `address`; `jti`, `user`, `client`).
    pub kind: String,
    /// The thing.
    pub value: String,
    /// Why (optional, at most 1024 bytes).
    #[serde(default)]
    pub reason: String,
    /// Seconds it lasts (left out: for good).
    pub expires_in: Option<u64>,
}

impl NewEntry {
    /// The body of a request, or the answer saying what is wrong with it (400; 413 when it
    /// is larger than `max_request_bytes`).
    pub fn read(body: Result<Json<NewEntry>, JsonRejection>) -> Result<NewEntry, Box<Response>> {
        let entry = json_body(body)?;
        let bad = |message: &str| Box::new(refuse(StatusCode::BAD_REQUEST, message));
        if entry.reason.len() > MAX_REASON_BYTES {
            return Err(bad("reason is longer than 1024 bytes"));
        }
        if entry
            .expires_in
            .is_some_and(|s| s == 0 || s > MAX_EXPIRES_IN)
        {
            return Err(bad(
                "expires_in is seconds, 1 to 315360000 (leave it out for good)",
            ));
        }
        Ok(entry)
    }

    /// The operator's entry it makes, at `now`, by the token `by`.
    pub fn entry(&self, now: SystemTime, by: &str) -> OperatorEntry {
        OperatorEntry {
            reason: self.reason.clone(),
            until: self.expires_in.map(|s| now + Duration::from_secs(s)),
            made_at: now,
            by: by.to_owned(),
        }
    }
}

/// An entry as the API shows it, with its kind and value.
pub(super) fn entry_json(kind: &str, value: &str, entry: &OperatorEntry) -> Value {
    json!({
        "kind": kind,
        "value": value,
        "reason": entry.reason,
        "expires_at": entry.until.map(unix_seconds),
        "made_at": unix_seconds(entry.made_at),
        "by": entry.by,
    })
}
