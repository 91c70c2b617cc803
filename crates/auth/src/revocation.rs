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

use std::collections::HashSet;

use crate::policy::SourceError;
use crate::principal::Principal;

/// What is revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    token_ids: HashSet<String>,
    users: HashSet<String>,
    clients: HashSet<String>,
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
            let (kind, value) = line
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .ok_or_else(|| {
                    error(
                        line,
                        "an entry is `jti`, `user` or `client` and a value".into(),
                    )
                })?;
            let set = match kind {
                "jti" => &mut list.token_ids,
                "user" => &mut list.users,
                "client" => &mut list.clients,
                other => {
                    return Err(error(
                        other,
                        format!("unknown entry `{other}` (use `jti`, `user` or `client`)"),
                    ))
                }
            };
            set.insert(value.to_owned());
        }
        Ok(list)
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.token_ids.is_empty() && self.users.is_empty() && self.clients.is_empty()
    }

    /// Why `principal` is revoked, if it is.
    pub fn revoked(&self, principal: &Principal) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        if let Some(jti) = principal.claim("jti").and_then(|v| v.as_str()) {
            if self.token_ids.contains(jti) {
                return Some(format!("token {jti} revoked"));
            }
        }
        if let Some(user) = &principal.username {
            if self.users.contains(user) {
                return Some(format!("user {user} revoked"));
            }
        }
        if self.clients.contains(&principal.client_id) {
            return Some(format!("client {} revoked", principal.client_id));
        }
        None
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
        let token = |jti: &str| Principal {
            claims: Some(Arc::new(serde_json::json!({ "jti": jti }))),
            username: Some("alice".into()),
            ..Principal::anonymous("c")
        };
        assert!(list.revoked(&token("t-1")).unwrap().contains("t-1"));
        assert_eq!(list.revoked(&token("t-2")), None);
        let user = Principal {
            username: Some("mallory".into()),
            ..Principal::anonymous("c")
        };
        assert!(list.revoked(&user).is_some());
        assert!(list.revoked(&Principal::anonymous("sensor-9")).is_some());
        assert_eq!(list.revoked(&Principal::anonymous("sensor-8")), None);
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
