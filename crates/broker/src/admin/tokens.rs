//! The admin token file: who may use the admin API, and with which role.
//!
//! One token per line, `name:role:hex`, where `hex` is the SHA-256 of the token (64 hex
//! digits) and `role` is `read` (every `GET`) or `admin` (everything). `#` starts a comment;
//! blank lines are skipped. The file holds hashes only: a token is a random secret of 32
//! bytes (`tollgate admin-token` makes one), so a fast hash is enough, and a stolen file
//! gives no way in. A presented token is hashed and compared with every entry in constant
//! time.

use std::path::Path;

use sha2::{Digest, Sha256};
use tollgate_auth::constant_time_eq;
use tollgate_auth::policy::SourceError;

/// The largest token file read, bytes.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;

/// The most tokens one file may list.
pub const MAX_TOKENS: usize = 10_000;

/// The longest token compared (a bearer credential longer than this is refused unread).
pub const MAX_TOKEN_BYTES: usize = 512;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read-only: every `GET`.
    Read,
    /// Everything: kicks, bans, revocations, reloads as well.
    Admin,
}

impl Role {
    /// The role's name in the token file and in answers.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    /// The token's name in the file (logged; never the token).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

#[derive(Debug, Clone)]
struct Entry {
    holder: TokenHolder,
    digest: [u8; 32],
}

/// The tokens of a token file.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens {
    entries: Vec<Entry>,
}

impl AdminTokens {
    /// Reads the token file at `path` (at most [`MAX_TOKEN_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<AdminTokens, SourceError> {
        let file = path.display().to_string();
        let refuse =
            |line: Option<usize>, message: String| SourceError::at(&file, line, None, message);
        let size = std::fs::metadata(path)
            .map_err(|e| refuse(None, format!("cannot read the admin token file: {e}")))?
            .len();
        if size > MAX_TOKEN_FILE_BYTES {
            return Err(refuse(
                None,
                format!("the admin token file is larger than {MAX_TOKEN_FILE_BYTES} bytes"),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| refuse(None, format!("cannot read the admin token file: {e}")))?;
        AdminTokens::parse(&text).map_err(|(line, message)| refuse(Some(line), message))
    }

    /// Parses a token file's text; an error gives the 1-based line and what is wrong there.
    pub fn parse(text: &str) -> Result<AdminTokens, (usize, String)> {
        let mut entries: Vec<Entry> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut fields = content.split(':');
            let (Some(name), Some(role), Some(hex), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err((line, "expected name:role:sha256-hex".to_owned()));
            };
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            {
                return Err((
                    line,
                    "a token's name is 1 to 64 letters, digits or - _ . @".to_owned(),
                ));
            }
            let Some(role) = Role::parse(role) else {
                return Err((
                    line,
                    format!("role must be `read` or `admin`, not `{role}`"),
                ));
            };
            let Some(digest) = parse_digest(hex) else {
                return Err((line, "the hash must be 64 hexadecimal digits".to_owned()));
            };
            if entries.iter().any(|e| e.holder.name == name) {
                return Err((line, format!("a second token is named `{name}`")));
            }
            if entries.len() == MAX_TOKENS {
                return Err((line, format!("more than {MAX_TOKENS} tokens")));
            }
            entries.push(Entry {
                holder: TokenHolder {
                    name: name.to_owned(),
                    role,
                },
                digest,
            });
        }
        Ok(AdminTokens { entries })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (then nobody gets in).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Who `token` is, if it is one of these. Every entry is compared, in constant time,
    /// whether or not an earlier one matched.
    pub fn holder_of(&self, token: &str) -> Option<&TokenHolder> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let digest = digest_of(token);
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(&entry.digest, &digest) && found.is_none() {
                found = Some(&entry.holder);
            }
        }
        found
    }
}

/// The SHA-256 of a token, as the file keeps it.
pub fn digest_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The line of a token file for a token named `name` with `role`.
pub fn file_line(name: &str, role: Role, token: &str) -> String {
    let hex: String = digest_of(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{name}:{}:{hex}", role.name())
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_token_is_found_with_its_role_and_others_are_not() {
        let text = format!(
            "# operators\n{}\n\n{}  # dashboards\n",
            file_line("ops", Role::Admin, "secret-one"),
            file_line("grafana", Role::Read, "secret-two"),
        );
        let tokens = AdminTokens::parse(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        let ops = tokens.holder_of("secret-one").unwrap();
        assert_eq!((ops.name.as_str(), ops.role), ("ops", Role::Admin));
        assert_eq!(tokens.holder_of("secret-two").unwrap().role, Role::Read);
        assert!(tokens.holder_of("secret-three").is_none());
        assert!(tokens.holder_of("").is_none());
        assert!(tokens.holder_of(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_none());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let good = file_line("a", Role::Read, "t");
        for (text, line, says) in [
            (format!("{good}\nb:read\n"), 2, "name:role"),
            ("a:owner:00\n".to_owned(), 1, "role must be"),
            (format!("a:read:{}\n", "zz".repeat(32)), 1, "64 hexadecimal"),
            (format!("{good}\n{good}\n"), 2, "second token"),
            (format!("bad name:read:{}\n", "00".repeat(32)), 1, "name is"),
        ] {
            let (at, message) = AdminTokens::parse(&text).unwrap_err();
            assert_eq!(at, line, "{text}");
            assert!(message.contains(says), "{message}");
        }
    }
}
