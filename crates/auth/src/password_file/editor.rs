//! Changing a password file, for `tollgate passwd`: add or update a user (argon2id, or SCRAM
//! keys), delete a
//! user, keeping every other line (comments, Mosquitto hashes) as it was. Writes go to a
//! temporary file that replaces the original, readable by its owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::hash::PasswordHash;
use super::PasswordFileError;
use crate::scram::{Mechanism, ScramKeys, MAX_ITERATIONS, MIN_ITERATIONS};

/// A password file being edited.
#[derive(Debug, Clone)]
pub struct PasswordFileEditor {
    path: PathBuf,
    lines: Vec<String>,
}

impl PasswordFileEditor {
    /// Opens `path` for editing; `create` starts an empty file instead (overwriting any).
    pub fn open(path: &Path, create: bool) -> Result<Self, PasswordFileError> {
        let lines = if create {
            Vec::new()
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| PasswordFileError {
                path: path.to_owned(),
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            // Refuse to edit a file the broker could not read.
            super::parse_password_file(path, &text)?;
            text.lines().map(str::to_owned).collect()
        };
        Ok(PasswordFileEditor {
            path: path.to_owned(),
            lines,
        })
    }

    fn position(&self, user: &str) -> Option<usize> {
        let prefix = format!("{user}:");
        self.lines.iter().position(|l| l.starts_with(&prefix))
    }

    /// Sets `user`'s password (argon2id), adding the user if new. Returns true if the user was
    /// new.
    pub fn set(&mut self, user: &str, password: &[u8]) -> Result<bool, String> {
        Self::check_user(user)?;
        let hash = PasswordHash::create_argon2id(password)?;
        Ok(self.put(user, &hash))
    }

    /// Sets `user`'s SCRAM keys for `mechanism` from `password` (SASLprep-normalised first)
    /// with a random salt and `iterations`, adding the user if new. The line checks plain
    /// passwords too. Returns true if the user was new.
    pub fn set_scram(
        &mut self,
        user: &str,
        password: &str,
        mechanism: Mechanism,
        iterations: u32,
    ) -> Result<bool, String> {
        Self::check_user(user)?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "the iteration count must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
            ));
        }
        let password = crate::scram::normalize_password(password)?;
        let salt = crate::random_bytes::<16>();
        let keys = ScramKeys::derive(mechanism, password.as_bytes(), &salt, iterations);
        Ok(self.put(user, &keys.to_string()))
    }

    fn check_user(user: &str) -> Result<(), String> {
        if user.is_empty() || user.contains(':') || user.contains('\n') {
            return Err("a user name must be non-empty and contain no `:` or newline".into());
        }
        Ok(())
    }

    /// Puts the line `user:hash` in place of the user's, or at the end. Returns true if the
    /// user was new.
    fn put(&mut self, user: &str, hash: &str) -> bool {
        let line = format!("{user}:{hash}");
        match self.position(user) {
            Some(i) => {
                self.lines[i] = line;
                false
            }
            None => {
                self.lines.push(line);
                true
            }
        }
    }

    /// Deletes `user`. Returns whether it was there.
    pub fn delete(&mut self, user: &str) -> bool {
        match self.position(user) {
            Some(i) => {
                self.lines.remove(i);
                true
            }
            None => false,
        }
    }

    /// Writes the file back (atomically, mode 0600 on Unix).
    pub fn save(&self) -> Result<(), PasswordFileError> {
        let err = |message: String| PasswordFileError {
            path: self.path.clone(),
            line: None,
            message,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .ok_or_else(|| err("not a file path".into()))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
        let mut text = self.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| err(format!("cannot replace the file: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_update_delete_keep_other_lines() {
        let dir = std::env::temp_dir().join(format!("tollgate-editor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(
            &path,
            format!(
                "# fleet\n{}",
                include_str!("../../tests/fixtures/mosquitto_passwd.txt")
            ),
        )
        .unwrap();
        let mut editor = PasswordFileEditor::open(&path, false).unwrap();
        assert!(editor.set("dave", b"new").unwrap());
        assert!(!editor.set("alice", b"changed").unwrap());
        assert!(editor.delete("bob"));
        assert!(!editor.delete("nobody"));
        editor.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let users = super::super::parse_password_file(&path, &text).unwrap();
        assert!(users["dave"].verify(b"new"));
        assert!(users["alice"].verify(b"changed"));
        assert!(
            users["carol"].verify(b"legacy"),
            "untouched Mosquitto line kept"
        );
        assert!(!users.contains_key("bob"));
        assert!(text.starts_with("# fleet\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
