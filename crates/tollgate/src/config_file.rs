//! Reading the TOML configuration file, with errors that name the file, line and key.

use std::fmt;
use std::path::{Path, PathBuf};

use tollgate_broker::BrokerConfig;

/// A configuration file that could not be used.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// The key at fault, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        line: None,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses configuration text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<BrokerConfig, ConfigError> {
    let config: BrokerConfig = toml::from_str(text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (None, None),
        };
        let message = e.message().trim().to_owned();
        // serde names an unknown key in its message; prefer that name.
        let key = unknown_field(&message).or(key);
        ConfigError {
            path: path.to_owned(),
            line,
            key,
            message,
        }
    })?;
    validate(&config).map_err(|(key, message)| {
        let line = find_key_line(text, key);
        ConfigError {
            path: path.to_owned(),
            line,
            key: Some(key.to_owned()),
            message,
        }
    })?;
    Ok(config)
}

/// Checks the values serde cannot: ranges and combinations.
fn validate(config: &BrokerConfig) -> Result<(), (&'static str, String)> {
    let limits = &config.limits;
    if limits.max_qos > 2 {
        return Err((
            "max_qos",
            format!("must be 0, 1 or 2, not {}", limits.max_qos),
        ));
    }
    if limits.receive_maximum == 0 {
        return Err(("receive_maximum", "must be at least 1".into()));
    }
    if limits.max_inflight_messages == 0 {
        return Err(("max_inflight_messages", "must be at least 1".into()));
    }
    if limits.max_packet_size < 64 || limits.max_packet_size > 268_435_460 {
        return Err((
            "max_packet_size",
            format!(
                "must be between 64 and 268435460 bytes, not {}",
                limits.max_packet_size
            ),
        ));
    }
    if limits.max_queued_messages == 0 {
        return Err(("max_queued_messages", "must be at least 1".into()));
    }
    if config.listeners.is_empty() {
        return Err(("listener", "at least one [[listener]] is needed".into()));
    }
    for a in &config.authenticators {
        tollgate_broker::listener::kind_of(a).map_err(|m| ("name", m))?;
    }
    for listener in &config.listeners {
        for name in listener.authenticators.iter().flatten() {
            if !config.authenticators.iter().any(|a| &a.name == name) {
                return Err((
                    "authenticators",
                    format!(
                        "listener `{}` names authenticator `{name}`, which is not configured",
                        listener.display_name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The line of byte offset `offset`, and the key assigned on that line if there is one.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].bytes().filter(|&b| b == b'\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty());
    (Some(line_no), key)
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
                || l.starts_with(&format!("[[{key}]]"))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("tollgate.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_file_is_the_default_configuration() {
        let config = parse(Path::new("t.toml"), "").unwrap();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].bind.to_string(), "127.0.0.1:1883");
    }

    #[test]
    fn shipped_configuration_files_are_valid() {
        for (name, text) in [
            (
                "tollgate.example.toml",
                include_str!("../../../tollgate.example.toml"),
            ),
            (
                "tests/interop/paho.toml",
                include_str!("../../../tests/interop/paho.toml"),
            ),
        ] {
            if let Err(e) = parse(Path::new(name), text) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("sys_interval = 5\n\n[limits]\nmax_packet_sise = 10\n");
        assert!(
            e.starts_with("tollgate.toml:4: key `max_packet_sise`"),
            "{e}"
        );
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let e = err("[[listener]]\nbind = \"not an address\"\n");
        assert!(e.starts_with("tollgate.toml:2: key `bind`"), "{e}");
    }

    #[test]
    fn out_of_range_value_names_its_key() {
        let e = err("[limits]\nmax_qos = 3\n");
        assert!(e.starts_with("tollgate.toml:2: key `max_qos`"), "{e}");
    }
}
