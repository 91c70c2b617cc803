//! Mosquitto's `acl_file`, read as Mosquitto reads it.
//!
//! ```text
//! # comment
//! topic read $SYS/#            # before any `user` line: clients without a user name
//! user alice
//! topic readwrite alice/#      # access: read, write, readwrite (the default) or deny
//! topic deny alice/secret
//! pattern write devices/%c/state/#   # everyone; %c and %u are whole levels
//! ```
//!
//! `read` is subscribing and receiving (Mosquitto checks it again when a message is
//! delivered: the broker asks `check_receive`), `write` is publishing, `readwrite` both,
//! `deny` denies both. Every QoS and retain flag, and shared subscriptions, are covered.
//!
//! Mosquitto tries the user's `deny` lines, then the user's other lines, then the `deny`
//! patterns, then the other patterns, and denies when none matches; the rules are put in that
//! order here (keeping the file's order within each group), so first match wins gives
//! Mosquitto's answers. The default is deny; [`AclFile::with_default`] changes it (`next`, to
//! fall through to another authorizer).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::permissions::{
    Activity, Authorizer, AuthorizerError, DefaultBehaviour, Effect, Permission, PlaceholderSyntax,
    RuleOrigin, RuleSet, TopicTemplate,
};
use crate::principal::Principal;

use super::source_error::SourceError;

/// A Mosquitto ACL file, read and checked. It is an [`Authorizer`].
#[derive(Debug, Clone, PartialEq)]
pub struct AclFile {
    path: Arc<str>,
    anonymous: Vec<Permission>,
    users: HashMap<String, Vec<Permission>>,
    patterns: Vec<Permission>,
    default: DefaultBehaviour,
}

impl AclFile {
    /// Reads the ACL file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<AclFile, SourceError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceError::at(&shown, None, None, format!("cannot read: {e}")))?;
        AclFile::parse(&text, &shown)
    }

    /// Reads ACL lines from `text`; `path` names it in origins and errors.
    pub fn parse(text: &str, path: &str) -> Result<AclFile, SourceError> {
        let path: Arc<str> = path.into();
        let mut anonymous = Vec::new();
        let mut users: HashMap<String, Vec<Permission>> = HashMap::new();
        let mut patterns = Vec::new();
        let mut current_user: Option<String> = None;
        for (i, raw_line) in text.lines().enumerate() {
            let line = i + 1;
            let error = |message: String| SourceError::at(&path, Some(line), None, message);
            let content = raw_line.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(content);
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(error("`user` needs a user name".into()));
                    }
                    current_user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let (access, topic) = match split_word(rest) {
                        ("", _) => return Err(error(format!("`{keyword}` needs a topic"))),
                        (word @ ("read" | "write" | "readwrite" | "deny"), "") => {
                            return Err(error(format!(
                                "`{keyword} {word}` needs a topic after the access"
                            )))
                        }
                        (word @ ("read" | "write" | "readwrite" | "deny"), topic) => (word, topic),
                        _ => ("readwrite", rest),
                    };
                    let syntax = if keyword == "pattern" {
                        PlaceholderSyntax::PERCENT
                    } else {
                        PlaceholderSyntax::NONE
                    };
                    let filter = TopicTemplate::parse_with(topic, syntax)
                        .map_err(|e| error(format!("invalid topic `{topic}`: {e}")))?;
                    let (effect, activity) = match access {
                        "read" => (Effect::Allow, Activity::Subscribe),
                        "write" => (Effect::Allow, Activity::Publish),
                        "deny" => (Effect::Deny, Activity::All),
                        _ => (Effect::Allow, Activity::All),
                    };
                    let permission = Permission::new(
                        effect,
                        filter,
                        RuleOrigin::AclFile {
                            path: path.clone(),
                            line,
                        },
                    )
                    .for_activity(activity);
                    match (keyword, &current_user) {
                        ("pattern", _) => patterns.push(permission),
                        (_, None) => anonymous.push(permission),
                        (_, Some(user)) => users.entry(user.clone()).or_default().push(permission),
                    }
                }
                other => {
                    return Err(error(format!(
                        "unknown keyword `{other}` (expected `user`, `topic` or `pattern`)"
                    )))
                }
            }
        }
        deny_first(&mut anonymous);
        deny_first(&mut patterns);
        for list in users.values_mut() {
            deny_first(list);
        }
        Ok(AclFile {
            path,
            anonymous,
            users,
            patterns,
            default: DefaultBehaviour::Deny,
        })
    }

    /// The same ACL with another default behaviour.
    pub fn with_default(mut self, default: DefaultBehaviour) -> AclFile {
        self.default = default;
        self
    }

    /// The file's path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Splits off the first whitespace-separated word; the rest is trimmed.
fn split_word(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    }
}

/// Puts deny rules first, keeping the order within denies and within the others.
fn deny_first(list: &mut [Permission]) {
    list.sort_by_key(|p| p.effect != Effect::Deny);
}

impl Authorizer for AclFile {
    fn name(&self) -> &str {
        "acl_file"
    }

    fn rules_for<'a>(&'a self, principal: &Principal) -> Result<RuleSet<'a>, AuthorizerError> {
        let own: &[Permission] = match principal.verified_username() {
            Some(name) => self.users.get(name).map_or(&[], Vec::as_slice),
            None => &self.anonymous,
        };
        Ok(RuleSet {
            permissions: own
                .iter()
                .chain(&self.patterns)
                .map(Cow::Borrowed)
                .collect(),
            default: self.default,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::AuthorizerChain;
    use tollgate_mqtt::QoS;

    const ACL: &str = "\
# anonymous clients
topic read $SYS/broker/#
topic public/#

user alice
topic readwrite alice/#
topic deny alice/secret
  topic write   logs/with space  

user bob
topic read alice/#

pattern write devices/%c/state/#
pattern read devices/%u/commands/+
pattern deny devices/+/state/admin
";

    fn compiled(principal: &Principal) -> crate::permissions::CompiledPermissions {
        AuthorizerChain::new()
            .with(AclFile::parse(ACL, "acl").unwrap())
            .compile(principal)
    }

    fn user(name: &str, client_id: &str) -> Principal {
        Principal {
            username: Some(name.into()),
            ..Principal::anonymous(client_id)
        }
    }

    #[test]
    fn topic_lines_before_any_user_are_for_anonymous_clients() {
        let p = compiled(&Principal::anonymous("c"));
        assert!(
            p.check_subscribe("$SYS/broker/load", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            !p.check_publish("$SYS/broker/load", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(p.check_publish("public/x", QoS::ExactlyOnce, true).allowed);
        assert!(!p.check_publish("alice/x", QoS::AtMostOnce, false).allowed);
        let alice = compiled(&user("alice", "c"));
        assert!(
            !alice
                .check_publish("public/x", QoS::AtMostOnce, false)
                .allowed
        );
    }

    #[test]
    fn read_is_subscribe_and_receive_write_is_publish() {
        let bob = compiled(&user("bob", "c"));
        assert!(
            bob.check_subscribe("alice/+", QoS::AtLeastOnce, false)
                .allowed
        );
        assert!(
            bob.check_receive("alice/x", QoS::AtLeastOnce, false)
                .allowed
        );
        assert!(!bob.check_publish("alice/x", QoS::AtMostOnce, false).allowed);
        let alice = compiled(&user("alice", "c"));
        assert!(
            alice
                .check_publish("logs/with space", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            !alice
                .check_subscribe("logs/with space", QoS::AtMostOnce, false)
                .allowed
        );
    }

    #[test]
    fn deny_lines_come_first_as_in_mosquitto() {
        let alice = compiled(&user("alice", "c"));
        assert!(
            alice
                .check_publish("alice/x", QoS::AtMostOnce, false)
                .allowed
        );
        let d = alice.check_publish("alice/secret", QoS::AtMostOnce, false);
        assert!(!d.allowed);
        assert_eq!(
            alice
                .rule(d.rule_index().unwrap())
                .unwrap()
                .origin
                .to_string(),
            "acl:7"
        );
        // The deny pattern comes before the allow patterns.
        let dev = compiled(&user("x", "dev-1"));
        assert!(
            !dev.check_publish("devices/dev-1/state/admin", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            dev.check_publish("devices/dev-1/state/t", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            !dev.check_publish("devices/dev-2/state/t", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            dev.check_subscribe("devices/x/commands/+", QoS::AtMostOnce, false)
                .allowed
        );
    }

    #[test]
    fn topic_lines_keep_percent_signs_literally() {
        let acl = AclFile::parse("user u\ntopic a/%c\n", "acl").unwrap();
        let p = AuthorizerChain::new().with(acl).compile(&user("u", "c1"));
        assert!(p.check_publish("a/%c", QoS::AtMostOnce, false).allowed);
        assert!(!p.check_publish("a/c1", QoS::AtMostOnce, false).allowed);
    }

    #[test]
    fn the_default_can_be_next() {
        let acl = AclFile::parse("", "acl")
            .unwrap()
            .with_default(DefaultBehaviour::Next);
        let set = acl.rules_for(&Principal::anonymous("c")).unwrap();
        assert_eq!(set.default, DefaultBehaviour::Next);
    }

    fn error_of(text: &str) -> String {
        AclFile::parse(text, "acl").unwrap_err().to_string()
    }

    #[test]
    fn reports_errors_with_line() {
        assert_eq!(
            error_of("# c\n\ntopik read a\n"),
            "acl:3: unknown keyword `topik` (expected `user`, `topic` or `pattern`)"
        );
        assert_eq!(error_of("user\n"), "acl:1: `user` needs a user name");
        assert_eq!(error_of("topic\n"), "acl:1: `topic` needs a topic");
        assert_eq!(
            error_of("pattern read\n"),
            "acl:1: `pattern read` needs a topic after the access"
        );
        assert_eq!(
            error_of("topic read a/#/b\n"),
            "acl:1: invalid topic `a/#/b`: `#` must be the last level of a topic filter"
        );
        assert_eq!(
            error_of("pattern read a/x%c\n"),
            "acl:1: invalid topic `a/x%c`: a placeholder must be a whole topic level (found `x%c`)"
        );
    }
}
