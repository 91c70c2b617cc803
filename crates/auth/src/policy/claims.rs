//! Permissions carried by the token itself, read from the principal's claims.
//!
//! Four shapes are understood, each in its own claim (names configurable, see
//! [`ClaimsSettings`]):
//! - **`topics`** (the Auth0 article's device profile): a list of topic filters, each
//!   allowing publish and subscribe: `"topics": ["temperature", "config/#"]`;
//! - **`acl`**: a list of objects, each a full permission:
//!   `{"filter": "devices/d1/#", "action": "pub", "qos": [0, 1], "retain": "not_retained",
//!   "access": "allow", "shared": false}` (`action`: `pub`, `sub` or `all`, the default;
//!   `access`: `allow`, the default, or `deny`; `topic` is accepted for `filter`);
//! - **`scope`**, OAuth scopes mapped by templates such as `mqtt:pub:<filter>` and
//!   `mqtt:sub:<filter>` (a space-separated string or a list; scopes that fit no template are
//!   ignored);
//! - **`scope`** in the AIF-MQTT form of RFC 9431 (RFC 9237's generic form with topic filters
//!   and `pub`/`sub`): `[["sensors/+/temp", ["sub"]], ["actuators/a1", ["pub", "sub"]]]`,
//!   as JSON or as a string holding that JSON.
//!
//! The rules come in that order: `acl` entries (they may deny), then `topics`, then scopes.
//! Filters in claims are literal (no placeholders) unless [`ClaimsSettings::placeholders`]
//! is set. A malformed claim is an error, and the chain fails closed.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::permissions::{
    Activity, Authorizer, AuthorizerError, DefaultBehaviour, Effect, Permission, PlaceholderSyntax,
    QosSet, RetainCoverage, RuleOrigin, RuleSet, TopicTemplate,
};
use crate::principal::Principal;

use super::source_error::SourceError;

/// Where a scope template puts the filter.
const FILTER_MARK: &str = "<filter>";

/// One scope template: `mqtt:pub:<filter>` allows publishing to `<filter>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeTemplate {
    /// The scope with `<filter>` where the topic filter stands.
    pub pattern: String,
    /// What the scope allows.
    pub activity: Activity,
}

/// Settings of the claims authorizer (a `[authorization.claims]`-like table of the config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsSettings {
    /// The claim listing topics (`topics`); empty to ignore.
    pub topics_claim: String,
    /// The claim listing permission objects (`acl`); empty to ignore.
    pub acl_claim: String,
    /// The claim holding scopes (`scope`); empty to ignore.
    pub scope_claim: String,
    /// How scopes map to permissions (`mqtt:pub:<filter>`, `mqtt:sub:<filter>`).
    pub scope_templates: Vec<ScopeTemplate>,
    /// Whether the scope claim may hold AIF-MQTT (RFC 9431).
    pub aif_scope: bool,
    /// Whether filters in claims may hold placeholders (`%c`, `${username}`…).
    pub placeholders: bool,
    /// What to answer when no claim rule decides (`next`).
    pub default: DefaultBehaviour,
}

impl Default for ClaimsSettings {
    fn default() -> ClaimsSettings {
        ClaimsSettings {
            topics_claim: "topics".into(),
            acl_claim: "acl".into(),
            scope_claim: "scope".into(),
            scope_templates: vec![
                ScopeTemplate {
                    pattern: "mqtt:pub:<filter>".into(),
                    activity: Activity::Publish,
                },
                ScopeTemplate {
                    pattern: "mqtt:sub:<filter>".into(),
                    activity: Activity::Subscribe,
                },
            ],
            aif_scope: true,
            placeholders: false,
            default: DefaultBehaviour::Next,
        }
    }
}

/// Reads permissions from the principal's token claims. It is an [`Authorizer`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimsAuthorizer {
    settings: ClaimsSettings,
    /// Each template as (prefix, suffix, activity).
    templates: Vec<(String, String, Activity)>,
}

impl ClaimsAuthorizer {
    /// An authorizer with these settings; every template must hold `<filter>` once.
    pub fn new(settings: ClaimsSettings) -> Result<ClaimsAuthorizer, SourceError> {
        let templates = settings
            .scope_templates
            .iter()
            .enumerate()
            .map(|(i, t)| match t.pattern.split_once(FILTER_MARK) {
                Some((prefix, suffix)) if !suffix.contains(FILTER_MARK) => {
                    Ok((prefix.to_owned(), suffix.to_owned(), t.activity))
                }
                _ => Err(SourceError::at(
                    "claims settings",
                    None,
                    Some(format!("scope_templates[{i}].pattern")),
                    format!("`{}` must contain `{FILTER_MARK}` exactly once", t.pattern),
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(ClaimsAuthorizer {
            settings,
            templates,
        })
    }

    /// Permissions from a list of objects in the `acl` claim's shape (what an HTTP webhook
    /// answers with too); `label` names the list in error messages.
    pub fn acl_permissions(
        &self,
        label: &str,
        value: &Value,
    ) -> Result<Vec<Permission>, AuthorizerError> {
        let mut out = Vec::new();
        self.acl(label, value, &mut out)?;
        Ok(out)
    }

    fn syntax(&self) -> PlaceholderSyntax {
        if self.settings.placeholders {
            PlaceholderSyntax::ALL
        } else {
            PlaceholderSyntax::NONE
        }
    }

    fn filter(
        &self,
        claim: &str,
        entry: usize,
        text: &str,
    ) -> Result<TopicTemplate, AuthorizerError> {
        TopicTemplate::parse_with(text, self.syntax())
            .map_err(|e| claim_error(claim, entry, format!("invalid filter `{text}`: {e}")))
    }

    fn acl(
        &self,
        claim: &str,
        value: &Value,
        out: &mut Vec<Permission>,
    ) -> Result<(), AuthorizerError> {
        let entries = value
            .as_array()
            .ok_or_else(|| AuthorizerError::new(format!("claim `{claim}` is not a list")))?;
        for (i, entry) in entries.iter().enumerate() {
            let object = entry
                .as_object()
                .ok_or_else(|| claim_error(claim, i, "is not an object".into()))?;
            let mut filter = None;
            let mut effect = Effect::Allow;
            let mut activity = Activity::All;
            let mut qos = QosSet::ALL;
            let mut retain = RetainCoverage::All;
            let mut shared = true;
            for (key, v) in object {
                let bad = |what: &str| claim_error(claim, i, format!("`{key}`: {v} is not {what}"));
                match key.as_str() {
                    "filter" | "topic" => {
                        let text = v.as_str().ok_or_else(|| bad("a string"))?;
                        filter = Some(self.filter(claim, i, text)?);
                    }
                    "action" | "activity" => {
                        activity = match v.as_str() {
                            Some("pub" | "publish") => Activity::Publish,
                            Some("sub" | "subscribe") => Activity::Subscribe,
                            Some("all" | "pubsub") => Activity::All,
                            _ => return Err(bad("`pub`, `sub` or `all`")),
                        }
                    }
                    "access" | "effect" | "permission" => {
                        effect = match v.as_str() {
                            Some("allow") => Effect::Allow,
                            Some("deny") => Effect::Deny,
                            _ => return Err(bad("`allow` or `deny`")),
                        }
                    }
                    "qos" => {
                        let levels: Option<Vec<u64>> = match v {
                            Value::Number(n) => n.as_u64().map(|q| vec![q]),
                            Value::Array(items) => items.iter().map(Value::as_u64).collect(),
                            _ => None,
                        };
                        qos = levels
                            .filter(|l| !l.is_empty())
                            .and_then(|l| {
                                QosSet::from_levels(
                                    l.iter().map(|q| u8::try_from(*q).unwrap_or(u8::MAX)),
                                )
                                .ok()
                            })
                            .ok_or_else(|| bad("a QoS level or a non-empty list of them"))?;
                    }
                    "retain" => {
                        retain = match v {
                            Value::String(s) if s == "all" => RetainCoverage::All,
                            Value::String(s) if s == "retained" => RetainCoverage::RetainedOnly,
                            Value::String(s) if s == "not_retained" => RetainCoverage::NotRetained,
                            _ => return Err(bad("`all`, `retained` or `not_retained`")),
                        }
                    }
                    "shared" => shared = v.as_bool().ok_or_else(|| bad("true or false"))?,
                    _ => return Err(claim_error(claim, i, format!("unknown key `{key}`"))),
                }
            }
            let filter = filter.ok_or_else(|| claim_error(claim, i, "has no `filter`".into()))?;
            out.push(
                Permission::new(effect, filter, origin(claim, i))
                    .for_activity(activity)
                    .with_qos(qos)
                    .with_retain(retain)
                    .with_shared_subscriptions(shared),
            );
        }
        Ok(())
    }

    fn topics(
        &self,
        claim: &str,
        value: &Value,
        out: &mut Vec<Permission>,
    ) -> Result<(), AuthorizerError> {
        let single = [value.clone()];
        let entries: &[Value] = match value {
            Value::Array(items) => items,
            Value::String(_) => &single,
            _ => {
                return Err(AuthorizerError::new(format!(
                    "claim `{claim}` is not a list of topics"
                )))
            }
        };
        for (i, entry) in entries.iter().enumerate() {
            let text = entry
                .as_str()
                .ok_or_else(|| claim_error(claim, i, format!("{entry} is not a string")))?;
            out.push(Permission::new(
                Effect::Allow,
                self.filter(claim, i, text)?,
                origin(claim, i),
            ));
        }
        Ok(())
    }

    fn scope(
        &self,
        claim: &str,
        value: &Value,
        out: &mut Vec<Permission>,
    ) -> Result<(), AuthorizerError> {
        match value {
            Value::String(text)
                if self.settings.aif_scope && text.trim_start().starts_with('[') =>
            {
                let parsed: Value = serde_json::from_str(text).map_err(|e| {
                    AuthorizerError::new(format!("claim `{claim}` is not valid AIF-MQTT JSON: {e}"))
                })?;
                self.aif(claim, &parsed, out)
            }
            Value::String(text) => {
                for (i, scope) in text.split_whitespace().enumerate() {
                    self.one_scope(claim, i, scope, out)?;
                }
                Ok(())
            }
            Value::Array(items) if self.settings.aif_scope && items.iter().any(Value::is_array) => {
                self.aif(claim, value, out)
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let scope = item
                        .as_str()
                        .ok_or_else(|| claim_error(claim, i, format!("{item} is not a string")))?;
                    self.one_scope(claim, i, scope, out)?;
                }
                Ok(())
            }
            _ => Err(AuthorizerError::new(format!(
                "claim `{claim}` is neither a string nor a list"
            ))),
        }
    }

    fn one_scope(
        &self,
        claim: &str,
        i: usize,
        scope: &str,
        out: &mut Vec<Permission>,
    ) -> Result<(), AuthorizerError> {
        for (prefix, suffix, activity) in &self.templates {
            let filter = scope
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()));
            if let Some(filter) = filter {
                out.push(
                    Permission::new(
                        Effect::Allow,
                        self.filter(claim, i, filter)?,
                        origin(claim, i),
                    )
                    .for_activity(*activity),
                );
            }
        }
        Ok(())
    }

    /// AIF-MQTT: `[[filter, ["pub", "sub"]], …]`.
    fn aif(
        &self,
        claim: &str,
        value: &Value,
        out: &mut Vec<Permission>,
    ) -> Result<(), AuthorizerError> {
        let entries = value.as_array().ok_or_else(|| {
            AuthorizerError::new(format!("claim `{claim}` is not an AIF-MQTT list"))
        })?;
        for (i, entry) in entries.iter().enumerate() {
            let pair = entry.as_array().filter(|p| p.len() == 2);
            let (Some(filter), Some(actions)) = (
                pair.and_then(|p| p[0].as_str()),
                pair.and_then(|p| p[1].as_array()),
            ) else {
                return Err(claim_error(
                    claim,
                    i,
                    format!("{entry} is not [filter, [\"pub\"|\"sub\", …]]"),
                ));
            };
            let (mut publish, mut subscribe) = (false, false);
            for action in actions {
                match action.as_str() {
                    Some("pub") => publish = true,
                    Some("sub") => subscribe = true,
                    _ => {
                        return Err(claim_error(
                            claim,
                            i,
                            format!("{action} is not \"pub\" or \"sub\""),
                        ))
                    }
                }
            }
            let activity = match (publish, subscribe) {
                (true, true) => Activity::All,
                (true, false) => Activity::Publish,
                (false, true) => Activity::Subscribe,
                (false, false) => continue,
            };
            out.push(
                Permission::new(
                    Effect::Allow,
                    self.filter(claim, i, filter)?,
                    origin(claim, i),
                )
                .for_activity(activity),
            );
        }
        Ok(())
    }
}

fn origin(claim: &str, entry: usize) -> RuleOrigin {
    RuleOrigin::Claim {
        claim: claim.to_owned(),
        entry,
    }
}

fn claim_error(claim: &str, entry: usize, message: String) -> AuthorizerError {
    AuthorizerError::new(format!("claim `{claim}` entry {entry}: {message}"))
}

impl Authorizer for ClaimsAuthorizer {
    fn name(&self) -> &str {
        "claims"
    }

    fn rules_for<'a>(&'a self, principal: &Principal) -> Result<RuleSet<'a>, AuthorizerError> {
        let mut permissions = Vec::new();
        let s = &self.settings;
        let sources: [(&str, SourceKind); 3] = [
            (&s.acl_claim, SourceKind::Acl),
            (&s.topics_claim, SourceKind::Topics),
            (&s.scope_claim, SourceKind::Scope),
        ];
        for (claim, kind) in sources {
            if claim.is_empty() {
                continue;
            }
            let Some(value) = principal.claim(claim) else {
                continue;
            };
            match kind {
                SourceKind::Acl => self.acl(claim, value, &mut permissions)?,
                SourceKind::Topics => self.topics(claim, value, &mut permissions)?,
                SourceKind::Scope => self.scope(claim, value, &mut permissions)?,
            }
        }
        Ok(RuleSet {
            permissions: permissions.into_iter().map(Cow::Owned).collect(),
            default: s.default,
        })
    }
}

#[derive(Clone, Copy)]
enum SourceKind {
    Acl,
    Topics,
    Scope,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tollgate_mqtt::QoS;

    use super::*;
    use crate::permissions::{AuthorizerChain, CompiledPermissions, Reason};

    fn with_claims(claims: Value) -> Principal {
        Principal {
            claims: Some(Arc::new(claims)),
            ..Principal::anonymous("dev-1")
        }
    }

    fn compiled(claims: Value) -> CompiledPermissions {
        AuthorizerChain::new()
            .with(ClaimsAuthorizer::new(ClaimsSettings::default()).unwrap())
            .compile(&with_claims(claims))
    }

    #[test]
    fn topics_allow_publish_and_subscribe_on_exactly_those_topics() {
        let p = compiled(serde_json::json!({"topics": ["temperature", "config"]}));
        assert!(
            p.check_publish("temperature", QoS::AtLeastOnce, false)
                .allowed
        );
        assert!(p.check_subscribe("config", QoS::ExactlyOnce, false).allowed);
        assert!(
            !p.check_publish("temperature/x", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(!p.check_subscribe("+", QoS::AtMostOnce, false).allowed);
        assert_eq!(
            p.rule(0).unwrap().origin.to_string(),
            "claim `topics` entry 0"
        );
    }

    #[test]
    fn acl_entries_carry_every_qualifier() {
        let p = compiled(serde_json::json!({"acl": [
            {"filter": "devices/dev-1/secret", "access": "deny"},
            {"filter": "devices/dev-1/#", "action": "pub", "qos": [0, 1], "retain": "not_retained"},
            {"topic": "jobs/#", "action": "sub", "qos": 1, "shared": false},
        ]}));
        assert!(
            !p.check_publish("devices/dev-1/secret", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            p.check_publish("devices/dev-1/state", QoS::AtLeastOnce, false)
                .allowed
        );
        assert_eq!(
            p.check_publish("devices/dev-1/state", QoS::ExactlyOnce, false)
                .reason,
            Reason::QosNotPermitted
        );
        assert_eq!(
            p.check_publish("devices/dev-1/state", QoS::AtMostOnce, true)
                .reason,
            Reason::RetainNotPermitted
        );
        assert!(p.check_subscribe("jobs/+", QoS::AtLeastOnce, false).allowed);
        assert_eq!(
            p.check_subscribe("jobs/+", QoS::AtLeastOnce, true).reason,
            Reason::SharedSubscriptionNotPermitted
        );
    }

    #[test]
    fn scopes_map_through_templates_as_string_or_list() {
        let p = compiled(serde_json::json!({"scope": "openid mqtt:pub:a/# mqtt:sub:b/+"}));
        assert!(p.check_publish("a/x", QoS::AtMostOnce, false).allowed);
        assert!(!p.check_subscribe("a/x", QoS::AtMostOnce, false).allowed);
        assert!(p.check_subscribe("b/x", QoS::AtMostOnce, false).allowed);
        let p = compiled(serde_json::json!({"scope": ["mqtt:sub:c"]}));
        assert!(p.check_subscribe("c", QoS::AtMostOnce, false).allowed);
    }

    #[test]
    fn custom_templates_with_a_suffix() {
        let settings = ClaimsSettings {
            scope_templates: vec![ScopeTemplate {
                pattern: "topic:<filter>:write".into(),
                activity: Activity::Publish,
            }],
            ..ClaimsSettings::default()
        };
        let p = AuthorizerChain::new()
            .with(ClaimsAuthorizer::new(settings).unwrap())
            .compile(&with_claims(
                serde_json::json!({"scope": "topic:x/y:write"}),
            ));
        assert!(p.check_publish("x/y", QoS::AtMostOnce, false).allowed);
        let bad = ClaimsSettings {
            scope_templates: vec![ScopeTemplate {
                pattern: "mqtt:pub".into(),
                activity: Activity::Publish,
            }],
            ..ClaimsSettings::default()
        };
        let e = ClaimsAuthorizer::new(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "claims settings: `scope_templates[0].pattern`: `mqtt:pub` must contain `<filter>` exactly once"
        );
    }

    #[test]
    fn aif_mqtt_scopes_as_json_or_as_a_string() {
        for scope in [
            serde_json::json!([
                ["sensors/+/temp", ["sub"]],
                ["actuators/a1", ["pub", "sub"]]
            ]),
            serde_json::json!(r#"[["sensors/+/temp", ["sub"]], ["actuators/a1", ["pub", "sub"]]]"#),
        ] {
            let p = compiled(serde_json::json!({ "scope": scope }));
            assert!(
                p.check_subscribe("sensors/+/temp", QoS::AtMostOnce, false)
                    .allowed
            );
            assert!(
                !p.check_publish("sensors/s1/temp", QoS::AtMostOnce, false)
                    .allowed
            );
            assert!(
                p.check_publish("actuators/a1", QoS::AtMostOnce, false)
                    .allowed
            );
            assert!(
                p.check_subscribe("actuators/a1", QoS::AtMostOnce, false)
                    .allowed
            );
        }
    }

    #[test]
    fn no_claims_leave_it_to_the_next_authorizer() {
        let authorizer = ClaimsAuthorizer::new(ClaimsSettings::default()).unwrap();
        let set = authorizer.rules_for(&Principal::anonymous("c")).unwrap();
        assert!(set.permissions.is_empty());
        assert_eq!(set.default, DefaultBehaviour::Next);
    }

    #[test]
    fn filters_are_literal_unless_placeholders_are_enabled() {
        let claims = serde_json::json!({"topics": ["devices/%c/#"]});
        let p = compiled(claims.clone());
        assert!(
            p.check_publish("devices/%c/x", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            !p.check_publish("devices/dev-1/x", QoS::AtMostOnce, false)
                .allowed
        );
        let settings = ClaimsSettings {
            placeholders: true,
            ..ClaimsSettings::default()
        };
        let p = AuthorizerChain::new()
            .with(ClaimsAuthorizer::new(settings).unwrap())
            .compile(&with_claims(claims));
        assert!(
            p.check_publish("devices/dev-1/x", QoS::AtMostOnce, false)
                .allowed
        );
    }

    fn error_of(claims: Value) -> String {
        ClaimsAuthorizer::new(ClaimsSettings::default())
            .unwrap()
            .rules_for(&with_claims(claims))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_claims_are_errors_naming_claim_and_entry() {
        assert_eq!(
            error_of(serde_json::json!({"topics": 5})),
            "claim `topics` is not a list of topics"
        );
        assert_eq!(
            error_of(serde_json::json!({"topics": ["a", 5]})),
            "claim `topics` entry 1: 5 is not a string"
        );
        assert_eq!(
            error_of(serde_json::json!({"topics": ["a/#/b"]})),
            "claim `topics` entry 0: invalid filter `a/#/b`: `#` must be the last level of a topic filter"
        );
        assert_eq!(
            error_of(serde_json::json!({"acl": [{"filter": "a", "action": "read"}]})),
            "claim `acl` entry 0: `action`: \"read\" is not `pub`, `sub` or `all`"
        );
        assert_eq!(
            error_of(serde_json::json!({"acl": [{"filter": "a", "qos": [3]}]})),
            "claim `acl` entry 0: `qos`: [3] is not a QoS level or a non-empty list of them"
        );
        assert_eq!(
            error_of(serde_json::json!({"acl": [{"action": "pub"}]})),
            "claim `acl` entry 0: has no `filter`"
        );
        assert_eq!(
            error_of(serde_json::json!({"acl": [{"filter": "a", "colour": "red"}]})),
            "claim `acl` entry 0: unknown key `colour`"
        );
        assert_eq!(
            error_of(serde_json::json!({"scope": [["a", ["read"]]]})),
            "claim `scope` entry 0: \"read\" is not \"pub\" or \"sub\""
        );
        assert!(error_of(serde_json::json!({"scope": "[oops"}))
            .starts_with("claim `scope` is not valid AIF-MQTT JSON"));
    }

    #[test]
    fn a_malformed_claim_fails_closed() {
        let p = AuthorizerChain::new()
            .with(ClaimsAuthorizer::new(ClaimsSettings::default()).unwrap())
            .compile(&with_claims(serde_json::json!({"topics": 5})));
        let d = p.check_publish("a", QoS::AtMostOnce, false);
        assert!(!d.allowed);
        assert_eq!(d.reason, Reason::AuthorizerFailed);
        assert_eq!(p.notes().len(), 1);
    }
}
