//! Reading the TOML configuration file, with errors that name the file, line and key.

use std::fmt;
use std::path::{Path, PathBuf};

use tollgate_broker::{
    BrokerConfig, ConfigProblem, ConfigProblems, Extensions, KeyPart, KeyPath, Prepared, Server,
};

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

/// Every problem of a configuration file, by line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and parses the configuration file at `path` (the broker's own checks come after:
/// [`check`]).
pub fn load(path: &Path) -> Result<(BrokerConfig, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        line: None,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    let config = parse(path, &text)?;
    Ok((config, text))
}

/// Parses configuration text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<BrokerConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_owned();
        // serde names an unknown key in its message, and the keys token authenticators share
        // name theirs; prefer that name. Those errors come with the span of the whole table,
        // so the line is the one in it where the key is written.
        let named = key_in_message(&message);
        let (line, key) = match (e.span(), &named) {
            (Some(span), Some(name)) => match line_assigning(text, span.clone(), name) {
                Some(line) => (Some(line), None),
                None => locate(text, span.start),
            },
            (Some(span), None) => locate(text, span.start),
            (None, _) => (None, None),
        };
        let key = named.or(key);
        ConfigError {
            path: path.to_owned(),
            line,
            key,
            message,
        }
    })
}

/// Everything `serve` does with a configuration short of binding sockets (validated, every
/// file read, every name resolved, TLS material loaded), so that what passes here starts;
/// every problem is reported. Must run inside a tokio runtime.
pub fn check(
    path: &Path,
    text: &str,
    config: BrokerConfig,
    extensions: Extensions,
) -> Result<Prepared, ConfigErrors> {
    Server::prepare(config, extensions).map_err(|problems| in_file(path, text, problems))
}

/// A broker's configuration problems, placed in the file and sorted by line.
pub fn in_file(path: &Path, text: &str, problems: ConfigProblems) -> ConfigErrors {
    let mut errors: Vec<ConfigError> = problems
        .into_iter()
        .map(|problem| problem_in_file(path, text, problem))
        .collect();
    errors.sort_by_key(|e| e.line);
    ConfigErrors(errors)
}

/// One problem, placed in the file: the line of the key at fault (or of the nearest table
/// around it that the file has).
fn problem_in_file(path: &Path, text: &str, problem: ConfigProblem) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        line: line_of(text, &problem.key),
        key: (!problem.key.0.is_empty()).then(|| problem.key.to_string()),
        message: problem.cause.to_string(),
    }
}

/// The line where `key` is written in `text`, or where the deepest table on its path is.
fn line_of(text: &str, key: &KeyPath) -> Option<usize> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut span = None;
    let mut at = Node::Table(document.as_table());
    for part in &key.0 {
        let next = match (&at, part) {
            (Node::Table(t), KeyPart::Key(k)) => {
                if let Some(key_span) = t.key(k).and_then(|k| k.span()) {
                    span = Some(key_span);
                }
                t.get(k).map(Node::Item)
            }
            (Node::Item(item), part) => descend_item(item, part, &mut span),
            (Node::Value(value), part) => descend_value(value, part, &mut span),
            _ => None,
        };
        match next {
            Some(node) => at = node,
            None => break,
        }
    }
    let offset = span?.start;
    Some(
        text[..offset.min(text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1,
    )
}

/// A step of the walk through the document.
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
}

fn descend_item<'a>(
    item: &'a toml_edit::Item,
    part: &KeyPart,
    span: &mut Option<std::ops::Range<usize>>,
) -> Option<Node<'a>> {
    match (item, part) {
        (toml_edit::Item::Table(t), KeyPart::Key(k)) => {
            if let Some(s) = t.key(k).and_then(|k| k.span()) {
                *span = Some(s);
            }
            t.get(k).map(Node::Item)
        }
        (toml_edit::Item::ArrayOfTables(tables), KeyPart::Index(i)) => {
            let table = tables.get(*i)?;
            if let Some(s) = table.span() {
                *span = Some(s);
            }
            Some(Node::Table(table))
        }
        (toml_edit::Item::Value(v), part) => descend_value(v, part, span),
        _ => None,
    }
}

fn descend_value<'a>(
    value: &'a toml_edit::Value,
    part: &KeyPart,
    span: &mut Option<std::ops::Range<usize>>,
) -> Option<Node<'a>> {
    match (value, part) {
        (toml_edit::Value::InlineTable(t), KeyPart::Key(k)) => {
            if let Some(s) = t.key(k).and_then(|k| k.span()) {
                *span = Some(s);
            }
            t.get(k).map(Node::Value)
        }
        (toml_edit::Value::Array(a), KeyPart::Index(i)) => {
            let v = a.get(*i)?;
            if let Some(s) = v.span() {
                *span = Some(s);
            }
            Some(Node::Value(v))
        }
        _ => None,
    }
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

/// The key a serde message names: "unknown field `name`, …" or "key `name`: …" (the form
/// the keys token authenticators share use).
fn key_in_message(message: &str) -> Option<String> {
    let rest = ["unknown field `", "key `"]
        .into_iter()
        .find_map(|prefix| message.strip_prefix(prefix))?;
    Some(rest.split('`').next()?.to_owned())
}

/// The 1-based line, within `span` of `text`, where `key` is assigned (`key = …`, bare or
/// quoted, at the start of a line or inside an inline table).
fn line_assigning(text: &str, span: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let first_line = text[..start].bytes().filter(|&b| b == b'\n').count() + 1;
    text.get(start..end)?
        .lines()
        .position(|line| {
            line.split(['{', ',']).any(|part| {
                part.split_once('=')
                    .is_some_and(|(k, _)| k.trim().trim_matches('"').trim_matches('\'') == key)
            })
        })
        .map(|i| first_line + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let path = Path::new("tollgate.toml");
        let config = match parse(path, text) {
            Ok(config) => config,
            Err(e) => return e.to_string(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        match check(path, text, config, Extensions::default()) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
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
    fn a_token_key_of_the_wrong_type_names_file_line_and_key() {
        let e = err("[[authenticator]]\nname = \"idp\"\n\n[authenticator.jwt]\nissuer = \"https://idp.example\"\nusername_must_match_claim = \"yes\"\n");
        assert!(
            e.starts_with("tollgate.toml:6: key `username_must_match_claim`"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_token_authenticator_names_file_line_and_key() {
        for (table, own_key) in [
            (
                "jwt",
                "issuer = \"https://idp.example\"\naudience = [\"mqtt\"]",
            ),
            (
                "introspection",
                "endpoint = \"https://idp.example/introspect\"\nclient_id = \"broker\"",
            ),
        ] {
            let e = err(&format!("[[authenticator]]\nname = \"idp\"\n\n[authenticator.{table}]\n{own_key}\nroles_claim = \"roles\"\n"));
            assert!(
                e.starts_with("tollgate.toml:7: key `roles_claim`"),
                "{table}: {e}"
            );
        }
    }

    #[test]
    fn an_authenticator_refused_at_build_names_the_key_at_fault() {
        let e = err("[[authenticator]]\nname = \"idp\"\n\n[authenticator.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"shared-secret-of-32-bytes-length\"\nleeway = 100000\n");
        assert!(
            e.starts_with("tollgate.toml:7: key `authenticator[0].jwt.leeway`"),
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
        let e = err("sys_interval = 5\n[limits]\nmax_qos = 3\n");
        assert!(
            e.starts_with("tollgate.toml:3: key `limits.max_qos`"),
            "{e}"
        );
    }

    #[test]
    fn a_listener_naming_an_unknown_authorizer_is_refused_with_its_line() {
        let e = err("[[listener]]\nbind = \"127.0.0.1:1883\"\n\n[[listener]]\nbind = \"127.0.0.1:1884\"\nauthorizers = [\"nobody\"]\n");
        assert!(
            e.starts_with("tollgate.toml:6: key `listener[1].authorizers`"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_by_line() {
        let text = "[limits]\nmax_qos = 3\n\n[[authenticator]]\nname = \"users\"\npassword_file = { path = \"/nonexistent/passwd\" }\n\n[[listener]]\nbind = \"127.0.0.1:1883\"\nauthenticators = [\"users\"]\nauthorizers = [\"nobody\"]\nlisten_backlog = 0\n";
        let e = err(text);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(
            lines[0].starts_with("tollgate.toml:2: key `limits.max_qos`"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("tollgate.toml:6: key `authenticator[0].password_file.path`"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("tollgate.toml:11: key `listener[0].authorizers`"),
            "{e}"
        );
        assert!(
            lines[3].starts_with("tollgate.toml:12: key `listener[0].listen_backlog`"),
            "{e}"
        );
    }

    #[test]
    fn required_client_certificates_without_a_ca_are_refused_with_the_line() {
        let dir = std::env::temp_dir().join(format!("tollgate-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("c.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("k.pem"), cert.signing_key.serialize_pem()).unwrap();
        let text = format!(
            "[[listener]]\nbind = \"127.0.0.1:8883\"\n\n[listener.tls]\ncert = {:?}\nkey = {:?}\nclient_certs = \"required\"\n",
            dir.join("c.pem"),
            dir.join("k.pem")
        );
        let e = err(&text);
        assert!(
            e.starts_with("tollgate.toml:7: key `listener[0].tls.client_certs`"),
            "{e}"
        );
        let missing = text
            .replace("c.pem", "missing.pem")
            .replace("client_certs = \"required\"\n", "");
        let e = err(&missing);
        assert!(
            e.starts_with("tollgate.toml:5: key `listener[0].tls.cert`"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
