//! Tollgate's policy file (TOML): users, groups, roles and their permissions, rules for
//! everyone, the default, and test cases. The format is described in `docs/policy.md`.
//!
//! For a principal, the rules come in this order (first match wins):
//! 1. `[[guards]]`, for everyone;
//! 2. the principal's own entry: `[users.<user name>]`, or `[anonymous]` without a user name;
//! 3. each of its groups (`groups` of its entry, then the principal's own groups, e.g. from a
//!    token), in that order;
//! 4. each of its roles (`roles` of its entry, then of its groups, then the principal's own
//!    roles), in that order, each once;
//! 5. `[[patterns]]`, for everyone;
//!
//! and then `default`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::permissions::{
    Activity, Authorizer, AuthorizerChain, AuthorizerError, DefaultBehaviour, Effect, Permission,
    QosSet, RetainCoverage, RuleOrigin, RuleOwner, RuleSet, TopicTemplate,
};
use crate::principal::Principal;

use super::policy_tests::{read_test, run_policy_tests, PolicyTest, RawTest, TestReport};
use super::source_error::{LineIndex, SourceError};

/// A permission as written in a policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPermission {
    filter: Spanned<String>,
    effect: Option<Spanned<String>>,
    activity: Option<Spanned<String>>,
    qos: Option<Spanned<toml::Value>>,
    retain: Option<Spanned<String>>,
    shared: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    #[serde(default)]
    permissions: Vec<Spanned<RawPermission>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    permissions: Vec<Spanned<RawPermission>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    permissions: Vec<Spanned<RawPermission>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Option<Spanned<String>>,
    #[serde(default)]
    guards: Vec<Spanned<RawPermission>>,
    anonymous: Option<RawMember>,
    #[serde(default)]
    users: BTreeMap<String, RawMember>,
    #[serde(default)]
    groups: BTreeMap<String, RawGroup>,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    patterns: Vec<Spanned<RawPermission>>,
    #[serde(default, rename = "test")]
    tests: Vec<Spanned<RawTest>>,
}

/// A user's (or the anonymous clients') entry.
#[derive(Debug, Clone, Default, PartialEq)]
struct MemberEntry {
    roles: Vec<String>,
    groups: Vec<String>,
    permissions: Vec<Permission>,
}

/// A group's entry.
#[derive(Debug, Clone, Default, PartialEq)]
struct GroupEntry {
    roles: Vec<String>,
    permissions: Vec<Permission>,
}

/// A policy file, read and checked. It is an [`Authorizer`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    path: Arc<str>,
    default: DefaultBehaviour,
    guards: Vec<Permission>,
    anonymous: Option<MemberEntry>,
    users: HashMap<String, MemberEntry>,
    groups: HashMap<String, GroupEntry>,
    roles: HashMap<String, Vec<Permission>>,
    patterns: Vec<Permission>,
    tests: Vec<PolicyTest>,
}

impl PolicyFile {
    /// Reads the policy file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<PolicyFile, SourceError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceError::at(&shown, None, None, format!("cannot read: {e}")))?;
        PolicyFile::parse(&text, &shown)
    }

    /// Reads a policy from `text`; `path` names it in origins and errors.
    pub fn parse(text: &str, path: &str) -> Result<PolicyFile, SourceError> {
        let lines = LineIndex::new(text);
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            SourceError::at(
                path,
                e.span().map(|s| lines.line_of(s.start)),
                None,
                e.message().to_owned(),
            )
        })?;
        let reader = Reader {
            path: path.into(),
            lines: &lines,
        };

        let default = match &raw.default {
            None => DefaultBehaviour::Deny,
            Some(value) => match value.get_ref().as_str() {
                "accept" => DefaultBehaviour::Accept,
                "deny" => DefaultBehaviour::Deny,
                "next" => DefaultBehaviour::Next,
                other => {
                    return Err(reader.error(
                        value.span().start,
                        "default",
                        format!("`{other}` is not `accept`, `deny` or `next`"),
                    ))
                }
            },
        };

        let roles = raw
            .roles
            .iter()
            .map(|(name, role)| {
                let permissions = reader.permissions(
                    &role.permissions,
                    &format!("roles.{name}.permissions"),
                    &RuleOwner::Role(name.clone()),
                )?;
                Ok((name.clone(), permissions))
            })
            .collect::<Result<HashMap<_, _>, SourceError>>()?;

        let groups = raw
            .groups
            .iter()
            .map(|(name, group)| {
                let key = format!("groups.{name}");
                Ok((
                    name.clone(),
                    GroupEntry {
                        roles: reader.known_names(&group.roles, &roles, &key, "roles", "role")?,
                        permissions: reader.permissions(
                            &group.permissions,
                            &format!("{key}.permissions"),
                            &RuleOwner::Group(name.clone()),
                        )?,
                    },
                ))
            })
            .collect::<Result<HashMap<_, _>, SourceError>>()?;

        let member = |entry: &RawMember, key: &str, owner: RuleOwner| {
            Ok::<_, SourceError>(MemberEntry {
                roles: reader.known_names(&entry.roles, &roles, key, "roles", "role")?,
                groups: reader.known_names(&entry.groups, &groups, key, "groups", "group")?,
                permissions: reader.permissions(
                    &entry.permissions,
                    &format!("{key}.permissions"),
                    &owner,
                )?,
            })
        };
        let users = raw
            .users
            .iter()
            .map(|(name, entry)| {
                let entry = member(
                    entry,
                    &format!("users.{name}"),
                    RuleOwner::User(name.clone()),
                )?;
                Ok((name.clone(), entry))
            })
            .collect::<Result<HashMap<_, _>, SourceError>>()?;
        let anonymous = raw
            .anonymous
            .as_ref()
            .map(|entry| member(entry, "anonymous", RuleOwner::Anonymous))
            .transpose()?;

        let guards = reader.permissions(&raw.guards, "guards", &RuleOwner::Guards)?;
        let patterns = reader.permissions(&raw.patterns, "patterns", &RuleOwner::Patterns)?;
        let tests = raw
            .tests
            .iter()
            .enumerate()
            .map(|(i, test)| read_test(test, i, &reader.path, &lines))
            .collect::<Result<Vec<_>, SourceError>>()?;

        Ok(PolicyFile {
            path: reader.path.clone(),
            default,
            guards,
            anonymous,
            users,
            groups,
            roles,
            patterns,
            tests,
        })
    }

    /// The file's path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The default behaviour (`default`, `deny` when absent).
    pub fn default_behaviour(&self) -> DefaultBehaviour {
        self.default
    }

    /// The file's `[[test]]` cases.
    pub fn tests(&self) -> &[PolicyTest] {
        &self.tests
    }

    /// Runs the file's test cases against this policy alone. To run them against the whole
    /// chain the broker uses, call [`run_policy_tests`] with it.
    pub fn run_tests(&self) -> TestReport {
        let chain = AuthorizerChain::new().with(self.clone());
        run_policy_tests(&self.tests, &chain)
    }
}

/// Adds `value` unless present.
fn push_unique<'a>(list: &mut Vec<&'a str>, value: &'a str) {
    if !list.contains(&value) {
        list.push(value);
    }
}

impl Authorizer for PolicyFile {
    fn name(&self) -> &str {
        "policy"
    }

    fn rules_for<'a>(&'a self, principal: &Principal) -> Result<RuleSet<'a>, AuthorizerError> {
        let mut permissions: Vec<Cow<'a, Permission>> =
            self.guards.iter().map(Cow::Borrowed).collect();
        let entry = match principal.verified_username() {
            Some(name) => self.users.get(name),
            None => self.anonymous.as_ref(),
        };

        let mut groups: Vec<&str> = Vec::new();
        let mut roles: Vec<&str> = Vec::new();
        if let Some(entry) = entry {
            permissions.extend(entry.permissions.iter().map(Cow::Borrowed));
            for group in &entry.groups {
                push_unique(&mut groups, group);
            }
            for role in &entry.roles {
                push_unique(&mut roles, role);
            }
        }
        for group in &principal.groups {
            push_unique(&mut groups, &group.value);
        }
        for group in groups.iter().filter_map(|g| self.groups.get(*g)) {
            permissions.extend(group.permissions.iter().map(Cow::Borrowed));
            for role in &group.roles {
                push_unique(&mut roles, role);
            }
        }
        for role in &principal.roles {
            push_unique(&mut roles, &role.value);
        }
        for role in roles.iter().filter_map(|r| self.roles.get(*r)) {
            permissions.extend(role.iter().map(Cow::Borrowed));
        }
        permissions.extend(self.patterns.iter().map(Cow::Borrowed));
        Ok(RuleSet {
            permissions,
            default: self.default,
        })
    }
}

/// Reads permissions and names, locating errors.
struct Reader<'a> {
    path: Arc<str>,
    lines: &'a LineIndex,
}

impl Reader<'_> {
    fn error(&self, offset: usize, key: &str, message: impl Into<String>) -> SourceError {
        SourceError::at(
            &self.path,
            Some(self.lines.line_of(offset)),
            Some(key.to_owned()),
            message,
        )
    }

    /// Checks that each name is defined in `defined`.
    fn known_names<T>(
        &self,
        names: &[Spanned<String>],
        defined: &HashMap<String, T>,
        key: &str,
        field: &str,
        what: &str,
    ) -> Result<Vec<String>, SourceError> {
        names
            .iter()
            .map(|name| {
                if defined.contains_key(name.get_ref()) {
                    Ok(name.get_ref().clone())
                } else {
                    Err(self.error(
                        name.span().start,
                        &format!("{key}.{field}"),
                        format!("unknown {what} `{}`", name.get_ref()),
                    ))
                }
            })
            .collect()
    }

    fn permissions(
        &self,
        raw: &[Spanned<RawPermission>],
        key: &str,
        owner: &RuleOwner,
    ) -> Result<Vec<Permission>, SourceError> {
        raw.iter()
            .enumerate()
            .map(|(i, p)| self.permission(p, &format!("{key}[{i}]"), owner))
            .collect()
    }

    fn permission(
        &self,
        raw: &Spanned<RawPermission>,
        key: &str,
        owner: &RuleOwner,
    ) -> Result<Permission, SourceError> {
        let p = raw.get_ref();
        let filter = TopicTemplate::parse(p.filter.get_ref()).map_err(|e| {
            self.error(
                p.filter.span().start,
                &format!("{key}.filter"),
                e.to_string(),
            )
        })?;
        let effect = match &p.effect {
            None => Effect::Allow,
            Some(v) => match v.get_ref().as_str() {
                "allow" => Effect::Allow,
                "deny" => Effect::Deny,
                other => {
                    return Err(self.error(
                        v.span().start,
                        &format!("{key}.effect"),
                        format!("`{other}` is not `allow` or `deny`"),
                    ))
                }
            },
        };
        let activity = match &p.activity {
            None => Activity::All,
            Some(v) => match v.get_ref().as_str() {
                "publish" => Activity::Publish,
                "subscribe" => Activity::Subscribe,
                "all" => Activity::All,
                other => {
                    return Err(self.error(
                        v.span().start,
                        &format!("{key}.activity"),
                        format!("`{other}` is not `publish`, `subscribe` or `all`"),
                    ))
                }
            },
        };
        let qos = match &p.qos {
            None => QosSet::ALL,
            Some(v) => read_qos(v.get_ref())
                .map_err(|m| self.error(v.span().start, &format!("{key}.qos"), m))?,
        };
        let retain = match &p.retain {
            None => RetainCoverage::All,
            Some(v) => match v.get_ref().as_str() {
                "all" => RetainCoverage::All,
                "retained" => RetainCoverage::RetainedOnly,
                "not_retained" => RetainCoverage::NotRetained,
                other => {
                    return Err(self.error(
                        v.span().start,
                        &format!("{key}.retain"),
                        format!("`{other}` is not `all`, `retained` or `not_retained`"),
                    ))
                }
            },
        };
        let origin = RuleOrigin::PolicyFile {
            path: self.path.clone(),
            line: self.lines.line_of(raw.span().start),
            owner: owner.clone(),
        };
        Ok(Permission::new(effect, filter, origin)
            .for_activity(activity)
            .with_qos(qos)
            .with_retain(retain)
            .with_shared_subscriptions(p.shared.unwrap_or(true)))
    }
}

/// `qos = 1` or `qos = [0, 1]`.
fn read_qos(value: &toml::Value) -> Result<QosSet, String> {
    let levels: Vec<i64> = match value {
        toml::Value::Integer(q) => vec![*q],
        toml::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_integer()
                    .ok_or_else(|| format!("`{item}` is not a QoS level"))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("`{other}` is not a QoS level or a list of them")),
    };
    if levels.is_empty() {
        return Err("the list of QoS levels is empty".into());
    }
    QosSet::from_levels(levels.iter().map(|q| u8::try_from(*q).unwrap_or(u8::MAX))).map_err(|_| {
        let bad = levels
            .iter()
            .find(|q| !(0..=2).contains(*q))
            .copied()
            .unwrap_or(-1);
        format!("QoS {bad} is not 0, 1 or 2")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Request;
    use crate::principal::{Attribute, Source};
    use tollgate_mqtt::QoS;

    const POLICY: &str = r##"
default = "deny"

[[guards]]
filter = "$SYS/#"
activity = "publish"
effect = "deny"

[anonymous]
permissions = [{ filter = "public/#", activity = "subscribe" }]

[users.alice]
roles = ["operator"]
groups = ["plant-a"]
permissions = [{ filter = "users/alice/#" }]

[groups.plant-a]
roles = ["viewer"]
permissions = [{ filter = "plants/a/#", activity = "subscribe", qos = [0, 1] }]

[roles.viewer]
permissions = [{ filter = "dashboards/#", activity = "subscribe" }]

[roles.operator]
permissions = [
  { filter = "plants/+/commands", activity = "publish", retain = "not_retained" },
]

[roles.device]
permissions = [
  { filter = "devices/%c/state/#", activity = "publish", qos = [0, 1] },
]

[[patterns]]
filter = "#"
effect = "deny"
"##;

    fn alice() -> Principal {
        Principal {
            username: Some("alice".into()),
            ..Principal::anonymous("alice-laptop")
        }
    }

    #[test]
    fn orders_guards_user_groups_roles_patterns() {
        let policy = PolicyFile::parse(POLICY, "policy.toml").unwrap();
        let set = policy.rules_for(&alice()).unwrap();
        let filters: Vec<&str> = set.permissions.iter().map(|p| p.filter.as_str()).collect();
        assert_eq!(
            filters,
            [
                "$SYS/#",
                "users/alice/#",
                "plants/a/#",
                "plants/+/commands",
                "dashboards/#",
                "#"
            ]
        );
        assert_eq!(set.default, DefaultBehaviour::Deny);
    }

    #[test]
    fn principal_roles_and_groups_come_after_the_entry_s_own() {
        let policy = PolicyFile::parse(POLICY, "policy.toml").unwrap();
        let mut p = Principal::anonymous("dev-1");
        p.username = Some("unknown-user".into());
        p.roles.push(Attribute::new("device", Source::Connect));
        p.groups.push(Attribute::new("plant-a", Source::Connect));
        let set = policy.rules_for(&p).unwrap();
        let filters: Vec<&str> = set.permissions.iter().map(|p| p.filter.as_str()).collect();
        assert_eq!(
            filters,
            [
                "$SYS/#",
                "plants/a/#",
                "dashboards/#",
                "devices/%c/state/#",
                "#"
            ]
        );
    }

    #[test]
    fn anonymous_clients_get_the_anonymous_entry() {
        let policy = PolicyFile::parse(POLICY, "policy.toml").unwrap();
        let compiled = AuthorizerChain::new()
            .with(policy)
            .compile(&Principal::anonymous("c"));
        assert!(
            compiled
                .check_subscribe("public/news", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            !compiled
                .check_publish("public/news", QoS::AtMostOnce, false)
                .allowed
        );
    }

    #[test]
    fn keeps_lines_and_owners_in_origins() {
        let policy = PolicyFile::parse(POLICY, "policy.toml").unwrap();
        let compiled = AuthorizerChain::new().with(policy).compile(&alice());
        let decision = compiled.check(&Request::Publish {
            topic: "plants/b/commands",
            qos: QoS::AtMostOnce,
            retain: false,
        });
        assert!(decision.allowed);
        let rule = compiled.rule(decision.rule_index().unwrap()).unwrap();
        assert_eq!(rule.origin.to_string(), "policy.toml:26 (role `operator`)");
    }

    fn error_of(text: &str) -> String {
        PolicyFile::parse(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn reports_bad_values_with_line_and_key() {
        assert_eq!(
            error_of("[roles.r]\npermissions = [{ filter = \"a\", qos = 3 }]\n"),
            "p.toml:2: `roles.r.permissions[0].qos`: QoS 3 is not 0, 1 or 2"
        );
        assert_eq!(
            error_of("[roles.r]\npermissions = [{ filter = \"a\", qos = [] }]\n"),
            "p.toml:2: `roles.r.permissions[0].qos`: the list of QoS levels is empty"
        );
        assert_eq!(
            error_of("[[patterns]]\nfilter = \"a/#/b\"\n"),
            "p.toml:2: `patterns[0].filter`: `#` must be the last level of a topic filter"
        );
        assert_eq!(
            error_of("[[guards]]\nfilter = \"a\"\neffect = \"maybe\"\n"),
            "p.toml:3: `guards[0].effect`: `maybe` is not `allow` or `deny`"
        );
        assert_eq!(
            error_of("[[guards]]\nfilter = \"a\"\nactivity = \"read\"\n"),
            "p.toml:3: `guards[0].activity`: `read` is not `publish`, `subscribe` or `all`"
        );
        assert_eq!(
            error_of("[[guards]]\nfilter = \"a\"\nretain = \"yes\"\n"),
            "p.toml:3: `guards[0].retain`: `yes` is not `all`, `retained` or `not_retained`"
        );
        assert_eq!(
            error_of("default = \"maybe\"\n"),
            "p.toml:1: `default`: `maybe` is not `accept`, `deny` or `next`"
        );
        assert_eq!(
            error_of("[[patterns]]\nfilter = \"d/dev-%c\"\n"),
            "p.toml:2: `patterns[0].filter`: a placeholder must be a whole topic level (found `dev-%c`)"
        );
    }

    #[test]
    fn reports_unknown_roles_groups_and_keys() {
        assert_eq!(
            error_of("[users.bob]\nroles = [\"nope\"]\n"),
            "p.toml:2: `users.bob.roles`: unknown role `nope`"
        );
        assert_eq!(
            error_of("[users.bob]\ngroups = [\"nope\"]\n"),
            "p.toml:2: `users.bob.groups`: unknown group `nope`"
        );
        assert_eq!(
            error_of("[groups.g]\nroles = [\"nope\"]\n"),
            "p.toml:2: `groups.g.roles`: unknown role `nope`"
        );
        let unknown = error_of("[[patterns]]\nfilter = \"a\"\nqos2 = 1\n");
        assert!(
            unknown.starts_with("p.toml:3: unknown field `qos2`"),
            "{unknown}"
        );
        let syntax = error_of("[[patterns]\n");
        assert!(syntax.starts_with("p.toml:1: "), "{syntax}");
        let missing = error_of("[[patterns]]\nactivity = \"publish\"\n");
        assert!(missing.contains("missing field `filter`"), "{missing}");
    }

    #[test]
    fn an_empty_file_denies_everything() {
        let policy = PolicyFile::parse("", "p.toml").unwrap();
        let compiled = AuthorizerChain::new()
            .with(policy)
            .compile(&Principal::anonymous("c"));
        assert!(!compiled.check_publish("a", QoS::AtMostOnce, false).allowed);
    }

    #[test]
    fn cannot_read_a_missing_file() {
        let e = PolicyFile::load("/nonexistent/policy.toml").unwrap_err();
        assert_eq!(e.file, "/nonexistent/policy.toml");
        assert!(e.message.starts_with("cannot read"));
    }
}
