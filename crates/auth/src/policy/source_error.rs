//! Errors in permission sources (policy files, ACL files, authorizer settings), with the file,
//! the line and the key they are about, and the line lookup that finds them.

use std::fmt;

/// Something wrong in a permission source, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The file's path, or what the source is when it is not a file.
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The key concerned (`roles.device.permissions[1].qos`), when there is one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl SourceError {
    /// An error at a line of a file, about a key.
    pub fn at(
        file: &str,
        line: Option<usize>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> SourceError {
        SourceError {
            file: file.to_owned(),
            line,
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SourceError {}

/// Finds the line of a byte offset in a text.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_offsets() {
        let index = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(index.line_of(0), 1);
        assert_eq!(index.line_of(2), 1);
        assert_eq!(index.line_of(3), 2);
        assert_eq!(index.line_of(6), 3);
        assert_eq!(index.line_of(7), 4);
    }

    #[test]
    fn displays_file_line_key_and_message() {
        let e = SourceError::at("p.toml", Some(3), Some("roles.x.qos".into()), "bad");
        assert_eq!(e.to_string(), "p.toml:3: `roles.x.qos`: bad");
        let e = SourceError::at("acl", None, None, "unreadable");
        assert_eq!(e.to_string(), "acl: unreadable");
    }
}
