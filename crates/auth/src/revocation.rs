//! Revoked credentials: a list the operator keeps, which takes effect at once on connected
//! clients (they are disconnected) and on new connections (they are refused, with no session
//! given back), whatever authenticated them and whatever a cache remembers.
//!
//! The file has one entry per line; `#` starts a comment:
//!
//! ```text
//! jti 6a2b9c1e-...        # one token, by its `jti` claim (or an introspection answer's)
//! user alice              # every connection of a user, however authenticated
//! client sensor-7         # every connection with this client identifier
//! ```
//!
//! A token's own end (`exp`) needs no entry: expiry is enforced without one. An entry is
//! needed for what the token cannot say itself: that it was revoked before its time (RFC
//! 7009 at the provider, a stolen device).

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use crate::policy::SourceError;
use crate::principal::Principal;

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RevocationKind {
    /// One token, by its `jti` claim.
    TokenId,
    /// Every connection of a user name.
    User,
    /// Every connection with a client identifier.
    Client,
}

impl RevocationKind {
    /// Every kind, in the order a principal is checked.
    pub const ALL: [RevocationKind; 3] = [
        RevocationKind::TokenId,
        RevocationKind::User,
        RevocationKind::Client,
    ];

    /// The word the file and the admin API use: `jti`, `user` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::TokenId => "jti",
            RevocationKind::User => "user",
            RevocationKind::Client => "client",
        }
    }

    /// The kind `word` names.
    pub fn parse(word: &str) -> Option<RevocationKind> {
        RevocationKind::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is revoked, each entry until its end (`None`: for good).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    /// By kind (in [`RevocationKind::ALL`]'s order), then value.
    entries: [HashMap<String, Option<SystemTime>>; 3],
}

impl RevocationList {
    /// Reads a revocation file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<RevocationList, SourceError> {
        let mut list = RevocationList::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let error = |key: &str, message: String| {
                SourceError::at(file, Some(i + 1), Some(key.to_owned()), message)
            };
            let (word, value) = line
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .ok_or_else(|| {
                    error(
                        line,
                        "an entry is `jti`, `user` or `client` and a value".into(),
                    )
                })?;
            let kind = RevocationKind::parse(word).ok_or_else(|| {
                error(
                    word,
                    format!("unknown entry `{word}` (use `jti`, `user` or `client`)"),
                )
            })?;
            list.insert(kind, value.to_owned(), None);
        }
        Ok(list)
    }

    /// Revokes `value` of `kind` until `until` (`None`: for good). An entry already there
    /// keeps the later end.
    pub fn insert(&mut self, kind: RevocationKind, value: String, until: Option<SystemTime>) {
        let end = self.entries[kind as usize].entry(value).or_insert(until);
        *end = match (*end, until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(HashMap::is_empty)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.iter().map(HashMap::len).sum()
    }

    /// Every entry: its kind, value and end.
    pub fn entries(&self) -> impl Iterator<Item = (RevocationKind, &str, Option<SystemTime>)> {
        RevocationKind::ALL.into_iter().flat_map(move |kind| {
            self.entries[kind as usize]
                .iter()
                .map(move |(value, end)| (kind, value.as_str(), *end))
        })
    }

    /// Why `principal` is revoked at `now`, if it is.
    pub fn revoked(&self, principal: &Principal, now: SystemTime) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let jti = principal.claim("jti").and_then(|v| v.as_str());
        for kind in RevocationKind::ALL {
            let value = match kind {
                RevocationKind::TokenId => jti,
                RevocationKind::User => principal.username.as_deref(),
                RevocationKind::Client => Some(principal.client_id.as_str()),
            };
            let Some(value) = value else { continue };
            if self.in_force(kind, value, now) {
                let what = match kind {
                    RevocationKind::TokenId => "token",
                    RevocationKind::User => "user",
                    RevocationKind::Client => "client",
                };
                return Some(format!("{what} {value} revoked"));
            }
        }
        None
    }

    fn in_force(&self, kind: RevocationKind, value: &str, now: SystemTime) -> bool {
        self.entries[kind as usize]
            .get(value)
            .is_some_and(|end| end.is_none_or(|end| now < end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn entries_revoke_by_token_user_and_client() {
        let list = RevocationList::parse(
            "revoked.txt",
            "# stolen\njti t-1\nuser  mallory \n\nclient  sensor-9 # lost\n",
        )
        .unwrap();
        let now = SystemTime::now();
        let token = |jti: &str| Principal {
            claims: Some(Arc::new(serde_json::json!({ "jti": jti }))),
            username: Some("alice".into()),
            ..Principal::anonymous("c")
        };
        assert!(list.revoked(&token("t-1"), now).unwrap().contains("t-1"));
        assert_eq!(list.revoked(&token("t-2"), now), None);
        let user = Principal {
            username: Some("mallory".into()),
            ..Principal::anonymous("c")
        };
        assert!(list.revoked(&user, now).is_some());
        assert!(list
            .revoked(&Principal::anonymous("sensor-9"), now)
            .is_some());
        assert_eq!(list.revoked(&Principal::anonymous("sensor-8"), now), None);
    }

    #[test]
    fn an_entry_with_an_end_revokes_until_it_and_the_later_end_wins() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let later = t0 + std::time::Duration::from_secs(60);
        let mut list = RevocationList::default();
        list.insert(RevocationKind::Client, "c".into(), Some(later));
        let c = Principal::anonymous("c");
        assert!(list.revoked(&c, t0).is_some());
        assert_eq!(list.revoked(&c, later), None);
        list.insert(RevocationKind::Client, "c".into(), Some(t0));
        assert!(list.revoked(&c, t0).is_some(), "the later end is kept");
        list.insert(RevocationKind::Client, "c".into(), None);
        assert!(list
            .revoked(&c, later + later.duration_since(t0).unwrap())
            .is_some());
    }

    #[test]
    fn a_bad_line_is_named_with_file_and_line() {
        let e = RevocationList::parse("revoked.txt", "jti a\nsubject bob\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().starts_with("revoked.txt:2"), "{e}");
        let e = RevocationList::parse("revoked.txt", "jti\n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
