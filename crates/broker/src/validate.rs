//! What is wrong with a configuration, and where: every problem names the key it is about as
//! a path (`listener[1].tls.client_ca`), which the binary turns into the file's line.
//!
//! The checks serde cannot make (ranges, combinations) are here, in
//! [`BrokerConfig::validate`]; the rest (files read, names resolved, TLS material loaded)
//! happens as the server is prepared ([`crate::Server::prepare`]), which reports its problems
//! the same way. `tollgate check-config` runs both, so it refuses exactly what `serve` does.

use std::fmt;

use crate::config::{
    BrokerConfig, FsyncMode, MAX_AUDIT_KEEP_FILES, MIN_ADMIN_REQUEST_BYTES, MIN_AUDIT_FILE_BYTES,
};
use crate::config_cause::ConfigCause;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// A key.
    Key(String),
    /// An index into an array (of tables).
    Index(usize),
}

/// Where in the configuration a problem is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<KeyPart>);

impl KeyPath {
    /// The root.
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path, then `key`.
    pub fn key(mut self, key: &str) -> KeyPath {
        self.0.push(KeyPart::Key(key.to_owned()));
        self
    }

    /// This path, then index `index`.
    pub fn index(mut self, index: usize) -> KeyPath {
        self.0.push(KeyPart::Index(index));
        self
    }

    /// The last key of the path, if any.
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|p| match p {
            KeyPart::Key(k) => Some(k.as_str()),
            KeyPart::Index(_) => None,
        })
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            match part {
                KeyPart::Key(k) if i == 0 => write!(f, "{k}")?,
                KeyPart::Key(k) => write!(f, ".{k}")?,
                KeyPart::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A configuration the broker refuses, with the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key.
    pub key: KeyPath,
    /// What is wrong.
    pub cause: ConfigCause,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn at(key: KeyPath, cause: ConfigCause) -> ConfigProblem {
        ConfigProblem { key, cause }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.0.is_empty() {
            write!(f, "{}", self.cause)
        } else {
            write!(f, "key `{}`: {}", self.key, self.cause)
        }
    }
}

impl std::error::Error for ConfigProblem {}

/// Every problem found in a configuration, in the order they were found (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblems(Vec<ConfigProblem>);

impl ConfigProblems {
    /// The problems, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigProblem> {
        self.0.iter()
    }

    /// The first problem found.
    pub fn first(&self) -> &ConfigProblem {
        &self.0[0]
    }

    /// `Ok` when `problems` is empty.
    pub(crate) fn check(problems: Vec<ConfigProblem>) -> Result<(), ConfigProblems> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigProblems(problems))
        }
    }
}

impl From<ConfigProblem> for ConfigProblems {
    fn from(problem: ConfigProblem) -> ConfigProblems {
        ConfigProblems(vec![problem])
    }
}

impl IntoIterator for ConfigProblems {
    type Item = ConfigProblem;
    type IntoIter = std::vec::IntoIter<ConfigProblem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ConfigProblems {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}

impl BrokerConfig {
    /// Checks the values serde cannot: ranges and combinations. Every problem is reported.
    pub fn validate(&self) -> Result<(), ConfigProblems> {
        let mut problems = Vec::new();
        self.check_limits(&mut problems);
        self.check_persistence(&mut problems);
        self.check_admin(&mut problems);
        self.check_audit(&mut problems);
        if self.listeners.is_empty() {
            problems.push(ConfigProblem::at(
                KeyPath::root().key("listener"),
                ConfigCause::NoListener,
            ));
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            if listener.listen_backlog == 0 {
                problems.push(ConfigProblem::at(
                    KeyPath::root()
                        .key("listener")
                        .index(i)
                        .key("listen_backlog"),
                    ConfigCause::AtLeast(1),
                ));
            }
        }
        ConfigProblems::check(problems)
    }

    fn check_persistence(&self, problems: &mut Vec<ConfigProblem>) {
        let p = &self.persistence;
        let at = |key: &str| KeyPath::root().key("persistence").key(key);
        if p.path
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            problems.push(ConfigProblem::at(at("path"), ConfigCause::Empty));
        }
        match (p.fsync, p.interval_ms) {
            (FsyncMode::Interval, Some(0)) => problems.push(ConfigProblem::at(
                at("interval_ms"),
                ConfigCause::AtLeast(1),
            )),
            (FsyncMode::Always | FsyncMode::Never, Some(_)) => problems.push(ConfigProblem::at(
                at("interval_ms"),
                ConfigCause::OnlyWith("fsync = \"interval\""),
            )),
            _ => {}
        }
        if !p.enabled() && (p.fsync != FsyncMode::default() || p.min_free_bytes.is_some()) {
            problems.push(ConfigProblem::at(
                at("path"),
                ConfigCause::PersistenceWithoutPath,
            ));
        }
    }

    fn check_admin(&self, problems: &mut Vec<ConfigProblem>) {
        let Some(admin) = &self.admin else {
            return;
        };
        let at = |key: &str| KeyPath::root().key("admin").key(key);
        match &admin.token_file {
            None => problems.push(ConfigProblem::at(at("token_file"), ConfigCause::Required)),
            Some(path) if path.as_os_str().is_empty() => {
                problems.push(ConfigProblem::at(at("token_file"), ConfigCause::Empty))
            }
            Some(_) => {}
        }
        if admin.max_request_bytes < MIN_ADMIN_REQUEST_BYTES {
            problems.push(ConfigProblem::at(
                at("max_request_bytes"),
                ConfigCause::AtLeastBytes(MIN_ADMIN_REQUEST_BYTES as u64),
            ));
        }
        for (key, value) in [
            ("max_connections", admin.max_connections as u64),
            ("max_failures", u64::from(admin.max_failures)),
            ("max_page_size", admin.max_page_size as u64),
            ("request_timeout", admin.request_timeout.as_secs()),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::at(at(key), ConfigCause::AtLeast(1)));
            }
        }
    }

    fn check_audit(&self, problems: &mut Vec<ConfigProblem>) {
        let audit = &self.audit;
        let at = |key: &str| KeyPath::root().key("audit").key(key);
        if audit
            .file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            problems.push(ConfigProblem::at(at("file"), ConfigCause::Empty));
        }
        if audit.max_file_bytes < MIN_AUDIT_FILE_BYTES {
            problems.push(ConfigProblem::at(
                at("max_file_bytes"),
                ConfigCause::AtLeastBytes(MIN_AUDIT_FILE_BYTES),
            ));
        }
        if !(1..=MAX_AUDIT_KEEP_FILES).contains(&audit.keep_files) {
            problems.push(ConfigProblem::at(
                at("keep_files"),
                ConfigCause::Between {
                    low: 1,
                    high: MAX_AUDIT_KEEP_FILES,
                    value: audit.keep_files,
                },
            ));
        }
    }

    fn check_limits(&self, problems: &mut Vec<ConfigProblem>) {
        let l = &self.limits;
        let mut wrong = |wrong: bool, key: &str, cause: ConfigCause| {
            if wrong {
                problems.push(ConfigProblem::at(
                    KeyPath::root().key("limits").key(key),
                    cause,
                ));
            }
        };
        let at_least_1 = || ConfigCause::AtLeast(1);
        wrong(
            l.max_qos > 2,
            "max_qos",
            ConfigCause::NotAQos(u64::from(l.max_qos)),
        );
        wrong(l.receive_maximum == 0, "receive_maximum", at_least_1());
        wrong(
            l.max_inflight_messages == 0,
            "max_inflight_messages",
            at_least_1(),
        );
        wrong(
            l.max_packet_size < 64 || l.max_packet_size > 268_435_460,
            "max_packet_size",
            ConfigCause::BytesBetween {
                low: 64,
                high: 268_435_460,
                value: u64::from(l.max_packet_size),
            },
        );
        wrong(
            l.max_queued_messages == 0,
            "max_queued_messages",
            at_least_1(),
        );
        wrong(
            l.max_filters_per_subscribe == 0,
            "max_filters_per_subscribe",
            at_least_1(),
        );
        wrong(l.max_topic_levels == 0, "max_topic_levels", at_least_1());
        wrong(
            l.max_connection_output_bytes < 1024,
            "max_connection_output_bytes",
            ConfigCause::AtLeastBytes(1024),
        );
        wrong(
            l.max_memory != 0 && l.max_memory < 1024 * 1024,
            "max_memory",
            ConfigCause::MemoryBudgetTooSmall,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_read_as_toml_keys() {
        let path = KeyPath::root()
            .key("listener")
            .index(1)
            .key("tls")
            .key("client_ca");
        assert_eq!(path.to_string(), "listener[1].tls.client_ca");
        assert_eq!(path.last_key(), Some("client_ca"));
    }

    #[test]
    fn out_of_range_limits_name_their_key() {
        let mut config = BrokerConfig::default();
        config.limits.max_qos = 3;
        let problem = config.validate().unwrap_err();
        assert_eq!(problem.first().key.to_string(), "limits.max_qos");
        assert_eq!(problem.first().cause, ConfigCause::NotAQos(3));
        assert_eq!(
            problem.first().to_string(),
            "key `limits.max_qos`: must be 0, 1 or 2, not 3"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut config = BrokerConfig::default();
        config.limits.max_qos = 3;
        config.limits.max_topic_levels = 0;
        config.listeners[0].listen_backlog = 0;
        let found: Vec<(String, ConfigCause)> = config
            .validate()
            .unwrap_err()
            .iter()
            .map(|p| (p.key.to_string(), p.cause.clone()))
            .collect();
        assert_eq!(
            found,
            [
                ("limits.max_qos".into(), ConfigCause::NotAQos(3)),
                ("limits.max_topic_levels".into(), ConfigCause::AtLeast(1)),
                ("listener[0].listen_backlog".into(), ConfigCause::AtLeast(1)),
            ]
        );
    }
}
