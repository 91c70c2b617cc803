//! Bans and revocations as the store keeps them (the `operator` keyspace): the key names the
//! entry (`ban`/`revocation`, its kind and value, NUL-separated), the value is a small JSON
//! object, readable with any fjall tool and easy to extend.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tollgate_auth::revocation::RevocationKind;

use super::bans::{Ban, BanTarget};
use super::revocations::OperatorRevocation;
use super::OperatorEntry;

/// A stored entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRecord {
    /// A ban.
    Ban(Ban),
    /// A revocation.
    Revocation(OperatorRevocation),
}

#[derive(Serialize, Deserialize)]
struct Stored {
    record: String,
    kind: String,
    value: String,
    reason: String,
    /// Milliseconds since the Unix epoch.
    until_ms: Option<u64>,
    made_at_ms: u64,
    by: String,
}

/// The key of the ban of `target`.
pub fn ban_key(target: &BanTarget) -> Vec<u8> {
    key("ban", target.kind(), &target.to_string())
}

/// The key of the revocation of `value` of `kind`.
pub fn revocation_key(kind: RevocationKind, value: &str) -> Vec<u8> {
    key("revocation", kind.as_str(), value)
}

fn key(record: &str, kind: &str, value: &str) -> Vec<u8> {
    [record.as_bytes(), kind.as_bytes(), value.as_bytes()].join(&0u8)
}

/// A ban's stored value.
pub fn encode_ban(ban: &Ban) -> Vec<u8> {
    encode("ban", ban.target.kind(), ban.target.to_string(), &ban.entry)
}

/// A revocation's stored value.
pub fn encode_revocation(revocation: &OperatorRevocation) -> Vec<u8> {
    encode(
        "revocation",
        revocation.kind.as_str(),
        revocation.value.clone(),
        &revocation.entry,
    )
}

fn encode(record: &str, kind: &str, value: String, entry: &OperatorEntry) -> Vec<u8> {
    let stored = Stored {
        record: record.to_owned(),
        kind: kind.to_owned(),
        value,
        reason: entry.reason.clone(),
        until_ms: entry.until.map(unix_ms),
        made_at_ms: unix_ms(entry.made_at),
        by: entry.by.clone(),
    };
    serde_json::to_vec(&stored).expect("a record of strings and numbers serializes")
}

/// A stored value read back; `None` for one that does not decode.
pub fn decode(value: &[u8]) -> Option<OperatorRecord> {
    let stored: Stored = serde_json::from_slice(value).ok()?;
    let entry = OperatorEntry {
        reason: stored.reason,
        until: stored.until_ms.map(from_unix_ms),
        made_at: from_unix_ms(stored.made_at_ms),
        by: stored.by,
    };
    match stored.record.as_str() {
        "ban" => Some(OperatorRecord::Ban(Ban {
            target: BanTarget::parse(&stored.kind, &stored.value).ok()?,
            entry,
        })),
        "revocation" => Some(OperatorRecord::Revocation(OperatorRevocation {
            kind: RevocationKind::parse(&stored.kind)?,
            value: stored.value,
            entry,
        })),
        _ => None,
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_and_revocations_read_back_as_written() {
        let entry = OperatorEntry {
            reason: "lost device".into(),
            until: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            made_at: UNIX_EPOCH + Duration::from_millis(1_600_000_000_000),
            by: "ops".into(),
        };
        let ban = Ban {
            target: BanTarget::parse("address", "10.0.0.0/8").unwrap(),
            entry: entry.clone(),
        };
        assert_eq!(decode(&encode_ban(&ban)), Some(OperatorRecord::Ban(ban)));
        let revocation = OperatorRevocation {
            kind: RevocationKind::TokenId,
            value: "t-1".into(),
            entry: OperatorEntry {
                until: None,
                ..entry
            },
        };
        assert_eq!(
            decode(&encode_revocation(&revocation)),
            Some(OperatorRecord::Revocation(revocation))
        );
        assert_eq!(decode(b"{not json"), None);
        assert_eq!(
            ban_key(&BanTarget::parse("user", "u").unwrap()),
            b"ban\0user\0u"
        );
    }
}
