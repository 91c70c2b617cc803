//! What is wrong with a configuration, and where: every problem names the key it is about as
//! a path (`listener[1].tls.client_ca`), which the binary turns into the file's line.
//!
//! The checks serde cannot make (ranges, combinations) are here, in
//! [`BrokerConfig::validate`]; the rest (files read, names resolved, TLS material loaded)
//! happens as the server is prepared ([`crate::Server::prepare`]), which reports its problems
//! the same way. `tollgate check-config` runs both, so it refuses exactly what `serve` does.

use std::fmt;

use crate::config::BrokerConfig;

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
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn at(key: KeyPath, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.0.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "key `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigProblem {}

impl BrokerConfig {
    /// Checks the values serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        let limits = KeyPath::root().key("limits");
        let l = &self.limits;
        let at =
            |key: &str, message: String| Err(ConfigProblem::at(limits.clone().key(key), message));
        if l.max_qos > 2 {
            return at("max_qos", format!("must be 0, 1 or 2, not {}", l.max_qos));
        }
        if l.receive_maximum == 0 {
            return at("receive_maximum", "must be at least 1".into());
        }
        if l.max_inflight_messages == 0 {
            return at("max_inflight_messages", "must be at least 1".into());
        }
        if l.max_packet_size < 64 || l.max_packet_size > 268_435_460 {
            return at(
                "max_packet_size",
                format!(
                    "must be between 64 and 268435460 bytes, not {}",
                    l.max_packet_size
                ),
            );
        }
        if l.max_queued_messages == 0 {
            return at("max_queued_messages", "must be at least 1".into());
        }
        if l.max_filters_per_subscribe == 0 {
            return at("max_filters_per_subscribe", "must be at least 1".into());
        }
        if l.max_topic_levels == 0 {
            return at("max_topic_levels", "must be at least 1".into());
        }
        if l.max_connection_output_bytes < 1024 {
            return at(
                "max_connection_output_bytes",
                "must be at least 1024 bytes".into(),
            );
        }
        if l.max_memory != 0 && l.max_memory < 1024 * 1024 {
            return at(
                "max_memory",
                "must be 0 (no budget) or at least 1 MiB".into(),
            );
        }
        if self.listeners.is_empty() {
            return Err(ConfigProblem::at(
                KeyPath::root().key("listener"),
                "at least one [[listener]] is needed",
            ));
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            if listener.listen_backlog == 0 {
                return Err(ConfigProblem::at(
                    KeyPath::root()
                        .key("listener")
                        .index(i)
                        .key("listen_backlog"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
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
        assert_eq!(problem.key.to_string(), "limits.max_qos");
    }
}
