//! Topic filters with placeholders, and their substitution for one principal.
//!
//! A placeholder stands for a whole topic level: `%c` and `${client_id}` (the client
//! identifier), `%u` and `${username}` (the user name), `${claims.<path>}` (a claim of the
//! token, by whole key or dotted path, a string or a number), `${cert.cn}` (the client
//! certificate's common name) and `${roles}` (each of the principal's roles: the permission is
//! repeated once per role, in the principal's order; with no roles it yields nothing). A
//! placeholder that is only part of a level (`dev-%c`) is an error when the template is read.
//!
//! # The substitution rule (it never widens access)
//!
//! A value is *unusable* when it is missing, empty, contains `+`, `#`, `/` or NUL, or, in the
//! first level, starts with `$` (it would reach `$SYS`-like topics that wildcards never reach).
//! Then:
//! - an **allow** permission yields no rule at all: it never matches;
//! - a **deny** permission is kept, cut at the placeholder's level, which becomes `#`
//!   (`deny a/%u/secret` with no user name denies `a/#`): it denies at least everything it
//!   could have denied with any value, so a bad value can never lift a denial either.
//!
//! Both cases leave a note in the compiled permissions, for the broker to log.

use std::fmt;
use std::sync::Arc;

use crate::principal::Principal;

use super::permission::Effect;

/// Which placeholder spellings a template accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceholderSyntax {
    /// Mosquitto's `%c` and `%u`.
    pub percent: bool,
    /// `${client_id}`, `${username}`, `${claims.<path>}`, `${cert.cn}`, `${roles}`.
    pub dollar_braces: bool,
}

impl PlaceholderSyntax {
    /// Both spellings (policy files).
    pub const ALL: PlaceholderSyntax = PlaceholderSyntax {
        percent: true,
        dollar_braces: true,
    };
    /// `%c` and `%u` only (Mosquitto `pattern` lines).
    pub const PERCENT: PlaceholderSyntax = PlaceholderSyntax {
        percent: true,
        dollar_braces: false,
    };
    /// None: every level is literal text or a wildcard (Mosquitto `topic` lines, claims).
    pub const NONE: PlaceholderSyntax = PlaceholderSyntax {
        percent: false,
        dollar_braces: false,
    };
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// The client identifier (`%c`, `${client_id}`).
    ClientId,
    /// The user name (`%u`, `${username}`).
    Username,
    /// A claim by whole key or dotted path (`${claims.<path>}`).
    Claim(String),
    /// The client certificate's common name (`${cert.cn}`).
    CertCommonName,
    /// Each role of the principal (`${roles}`).
    Roles,
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::ClientId => f.write_str("${client_id}"),
            Placeholder::Username => f.write_str("${username}"),
            Placeholder::Claim(path) => write!(f, "${{claims.{path}}}"),
            Placeholder::CertCommonName => f.write_str("${cert.cn}"),
            Placeholder::Roles => f.write_str("${roles}"),
        }
    }
}

/// Why a topic filter template could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The filter is empty.
    Empty,
    /// The filter contains a NUL character.
    NulCharacter,
    /// `#` is not the last level.
    MultiLevelWildcardNotLast,
    /// `+` or `#` is part of a level (`a+`, `b#`).
    WildcardInsideLevel(String),
    /// A placeholder is part of a level (`dev-%c`).
    PlaceholderInsideLevel(String),
    /// `${...}` names no known placeholder.
    UnknownPlaceholder(String),
    /// `${roles}` appears more than once.
    RolesRepeated,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => f.write_str("the topic filter is empty"),
            TemplateError::NulCharacter => f.write_str("the topic filter contains a NUL character"),
            TemplateError::MultiLevelWildcardNotLast => {
                f.write_str("`#` must be the last level of a topic filter")
            }
            TemplateError::WildcardInsideLevel(level) => {
                write!(f, "`+` and `#` must be whole levels (found `{level}`)")
            }
            TemplateError::PlaceholderInsideLevel(level) => write!(
                f,
                "a placeholder must be a whole topic level (found `{level}`)"
            ),
            TemplateError::UnknownPlaceholder(name) => write!(
                f,
                "unknown placeholder `${{{name}}}` (known: client_id, username, claims.<path>, \
                 cert.cn, roles)"
            ),
            TemplateError::RolesRepeated => f.write_str("`${roles}` may appear only once"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplateLevel {
    Literal(Box<str>),
    SingleWildcard,
    MultiWildcard,
    Value(Placeholder),
}

/// A topic filter that may hold placeholders, as written in its source.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicTemplate {
    text: Arc<str>,
    /// The parsed levels when at least one is a placeholder; `None` for a plain filter.
    levels: Option<Arc<[TemplateLevel]>>,
}

impl TopicTemplate {
    /// Reads a template accepting both placeholder spellings.
    pub fn parse(text: &str) -> Result<TopicTemplate, TemplateError> {
        TopicTemplate::parse_with(text, PlaceholderSyntax::ALL)
    }

    /// Reads a plain topic filter: no placeholders.
    pub fn literal(text: &str) -> Result<TopicTemplate, TemplateError> {
        TopicTemplate::parse_with(text, PlaceholderSyntax::NONE)
    }

    /// Reads a template accepting the given placeholder spellings.
    pub fn parse_with(
        text: &str,
        syntax: PlaceholderSyntax,
    ) -> Result<TopicTemplate, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        if text.contains('\0') {
            return Err(TemplateError::NulCharacter);
        }
        let mut levels = Vec::new();
        let mut has_placeholder = false;
        let mut roles_seen = false;
        let mut split = text.split('/').peekable();
        while let Some(level) = split.next() {
            let parsed = match level {
                "#" if split.peek().is_some() => {
                    return Err(TemplateError::MultiLevelWildcardNotLast)
                }
                "#" => TemplateLevel::MultiWildcard,
                "+" => TemplateLevel::SingleWildcard,
                "%c" if syntax.percent => TemplateLevel::Value(Placeholder::ClientId),
                "%u" if syntax.percent => TemplateLevel::Value(Placeholder::Username),
                _ if syntax.dollar_braces && level.starts_with("${") && level.ends_with('}') => {
                    TemplateLevel::Value(parse_placeholder_name(&level[2..level.len() - 1])?)
                }
                _ => {
                    if level.contains(['+', '#']) {
                        return Err(TemplateError::WildcardInsideLevel(level.to_owned()));
                    }
                    let percent_inside =
                        syntax.percent && (level.contains("%c") || level.contains("%u"));
                    let braces_inside = syntax.dollar_braces && level.contains("${");
                    if percent_inside || braces_inside {
                        return Err(TemplateError::PlaceholderInsideLevel(level.to_owned()));
                    }
                    TemplateLevel::Literal(level.into())
                }
            };
            if let TemplateLevel::Value(placeholder) = &parsed {
                has_placeholder = true;
                if *placeholder == Placeholder::Roles {
                    if roles_seen {
                        return Err(TemplateError::RolesRepeated);
                    }
                    roles_seen = true;
                }
            }
            levels.push(parsed);
        }
        Ok(TopicTemplate {
            text: text.into(),
            levels: has_placeholder.then(|| levels.into()),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The template as written, shared.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// Whether the template holds at least one placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.levels.is_some()
    }

    /// The placeholders the template holds, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.levels.iter().flat_map(|levels| {
            levels.iter().filter_map(|level| match level {
                TemplateLevel::Value(p) => Some(p),
                _ => None,
            })
        })
    }

    /// Substitutes the placeholders for `principal` and hands each resulting concrete filter
    /// to `emit` (none, one, or one per role), following the rule in the module
    /// documentation; each unusable value is reported to `note`.
    pub(crate) fn expand(
        &self,
        principal: &Principal,
        effect: Effect,
        emit: &mut dyn FnMut(Arc<str>),
        note: &mut dyn FnMut(String),
    ) {
        let Some(levels) = &self.levels else {
            emit(self.text.clone());
            return;
        };
        let uses_roles = levels.contains(&TemplateLevel::Value(Placeholder::Roles));
        if !uses_roles {
            if let Some((filter, _)) = self.expand_once(levels, principal, None, effect, note) {
                emit(filter);
            }
            return;
        }
        // A deny cut down for one role is often the same for the next: emit each once.
        let mut cuts_emitted: Vec<Arc<str>> = Vec::new();
        for role in &principal.roles {
            match self.expand_once(levels, principal, Some(&role.value), effect, note) {
                Some((filter, true)) if !cuts_emitted.contains(&filter) => {
                    cuts_emitted.push(filter.clone());
                    emit(filter);
                }
                Some((_, true)) => {}
                Some((filter, false)) => emit(filter),
                None => {}
            }
        }
    }

    /// One substitution; `Some((filter, cut))` where `cut` says a deny was cut down at an
    /// unusable value, `None` when an allow yields nothing.
    fn expand_once(
        &self,
        levels: &[TemplateLevel],
        principal: &Principal,
        role: Option<&str>,
        effect: Effect,
        note: &mut dyn FnMut(String),
    ) -> Option<(Arc<str>, bool)> {
        let mut filter = String::with_capacity(self.text.len() + 16);
        for (i, level) in levels.iter().enumerate() {
            if i > 0 {
                filter.push('/');
            }
            match level {
                TemplateLevel::Literal(text) => filter.push_str(text),
                TemplateLevel::SingleWildcard => filter.push('+'),
                TemplateLevel::MultiWildcard => filter.push('#'),
                TemplateLevel::Value(placeholder) => {
                    let value = placeholder_value(placeholder, principal, role);
                    match check_value(value.as_deref(), i == 0) {
                        Ok(()) => filter.push_str(value.as_deref().unwrap_or_default()),
                        Err(problem) => {
                            let shown = value.as_deref().unwrap_or_default();
                            match effect {
                                Effect::Allow => {
                                    note(format!(
                                        "allow `{}` never matches: {placeholder} {problem}{}",
                                        self.text,
                                        shown_value(shown, problem)
                                    ));
                                    return None;
                                }
                                Effect::Deny => {
                                    filter.push('#');
                                    note(format!(
                                        "deny `{}` widened to `{filter}`: {placeholder} {problem}{}",
                                        self.text,
                                        shown_value(shown, problem)
                                    ));
                                    return Some((filter.into(), true));
                                }
                            }
                        }
                    }
                }
            }
        }
        Some((filter.into(), false))
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn shown_value(value: &str, problem: ValueProblem) -> String {
    match problem {
        ValueProblem::Missing | ValueProblem::Empty | ValueProblem::NotText => String::new(),
        _ => format!(" (`{}`)", value.escape_debug()),
    }
}

fn parse_placeholder_name(name: &str) -> Result<Placeholder, TemplateError> {
    match name {
        "client_id" => Ok(Placeholder::ClientId),
        "username" => Ok(Placeholder::Username),
        "cert.cn" => Ok(Placeholder::CertCommonName),
        "roles" => Ok(Placeholder::Roles),
        _ => match name.strip_prefix("claims.") {
            Some(path) if !path.is_empty() => Ok(Placeholder::Claim(path.to_owned())),
            _ => Err(TemplateError::UnknownPlaceholder(name.to_owned())),
        },
    }
}

/// Why a value cannot stand in a topic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueProblem {
    Missing,
    Empty,
    NotText,
    Wildcard,
    Separator,
    Nul,
    DollarFirstLevel,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueProblem::Missing => "has no value",
            ValueProblem::Empty => "is empty",
            ValueProblem::NotText => "is not a string or a number",
            ValueProblem::Wildcard => "contains a wildcard",
            ValueProblem::Separator => "contains `/`",
            ValueProblem::Nul => "contains NUL",
            ValueProblem::DollarFirstLevel => "starts with `$` in the first level",
        })
    }
}

/// The value of a placeholder for a principal; `Some("")`-like empties are kept so the problem
/// can be told apart from a missing value. A claim that is neither a string nor a number
/// yields `Err`-like `None` through [`check_value`] as [`ValueProblem::NotText`].
fn placeholder_value(
    placeholder: &Placeholder,
    principal: &Principal,
    role: Option<&str>,
) -> Option<std::borrow::Cow<'static, str>> {
    use std::borrow::Cow;
    match placeholder {
        Placeholder::ClientId => Some(Cow::Owned(principal.client_id.clone())),
        Placeholder::Username => principal
            .verified_username()
            .map(|u| Cow::Owned(u.to_owned())),
        Placeholder::CertCommonName => principal
            .certificate
            .as_ref()
            .and_then(|c| c.common_name.clone())
            .map(Cow::Owned),
        Placeholder::Roles => role.map(|r| Cow::Owned(r.to_owned())),
        Placeholder::Claim(path) => match principal.claim(path)? {
            serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
            serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => Some(Cow::Borrowed(NOT_TEXT)),
        },
    }
}

/// Marks a claim value that is neither a string nor a number (it contains NUL, so it could
/// never be a real value).
const NOT_TEXT: &str = "\0not text";

fn check_value(value: Option<&str>, first_level: bool) -> Result<(), ValueProblem> {
    let value = value.ok_or(ValueProblem::Missing)?;
    if value == NOT_TEXT {
        return Err(ValueProblem::NotText);
    }
    if value.is_empty() {
        return Err(ValueProblem::Empty);
    }
    if value.contains(['+', '#']) {
        return Err(ValueProblem::Wildcard);
    }
    if value.contains('/') {
        return Err(ValueProblem::Separator);
    }
    if value.contains('\0') {
        return Err(ValueProblem::Nul);
    }
    if first_level && value.starts_with('$') {
        return Err(ValueProblem::DollarFirstLevel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Attribute, CertificateInfo, Source};

    fn expand(template: &str, principal: &Principal, effect: Effect) -> (Vec<String>, usize) {
        let template = TopicTemplate::parse(template).unwrap();
        let mut filters = Vec::new();
        let mut notes = 0;
        template.expand(
            principal,
            effect,
            &mut |f| filters.push(f.to_string()),
            &mut |_| notes += 1,
        );
        (filters, notes)
    }

    fn device() -> Principal {
        Principal {
            username: Some("alice".into()),
            claims: Some(Arc::new(serde_json::json!({
                "tenant": "acme",
                "site": {"id": 42},
                "bad": "a/b",
                "list": ["x"],
            }))),
            certificate: Some(Box::new(CertificateInfo {
                common_name: Some("dev-cn".into()),
                ..CertificateInfo::default()
            })),
            roles: vec![
                Attribute::new("reader", Source::Connect),
                Attribute::new("writer", Source::Connect),
            ],
            ..Principal::anonymous("dev-1")
        }
    }

    #[test]
    fn reads_each_placeholder_as_a_whole_level() {
        let t =
            TopicTemplate::parse("a/%c/%u/${client_id}/${username}/${cert.cn}/${roles}/#").unwrap();
        let names: Vec<String> = t.placeholders().map(|p| p.to_string()).collect();
        assert_eq!(
            names,
            [
                "${client_id}",
                "${username}",
                "${client_id}",
                "${username}",
                "${cert.cn}",
                "${roles}"
            ]
        );
        assert!(!TopicTemplate::parse("a/b/#").unwrap().has_placeholders());
    }

    #[test]
    fn refuses_placeholders_inside_a_level_and_unknown_names() {
        assert_eq!(
            TopicTemplate::parse("dev-%c/x"),
            Err(TemplateError::PlaceholderInsideLevel("dev-%c".into()))
        );
        assert_eq!(
            TopicTemplate::parse("a/x${username}"),
            Err(TemplateError::PlaceholderInsideLevel("x${username}".into()))
        );
        assert_eq!(
            TopicTemplate::parse("a/${nope}"),
            Err(TemplateError::UnknownPlaceholder("nope".into()))
        );
        assert_eq!(
            TopicTemplate::parse("a/${claims.}"),
            Err(TemplateError::UnknownPlaceholder("claims.".into()))
        );
        assert_eq!(
            TopicTemplate::parse("${roles}/${roles}"),
            Err(TemplateError::RolesRepeated)
        );
        assert_eq!(
            TopicTemplate::parse("a/#/b"),
            Err(TemplateError::MultiLevelWildcardNotLast)
        );
        assert_eq!(
            TopicTemplate::parse("a/b+"),
            Err(TemplateError::WildcardInsideLevel("b+".into()))
        );
        assert_eq!(TopicTemplate::parse(""), Err(TemplateError::Empty));
        assert_eq!(
            TopicTemplate::parse("a\0"),
            Err(TemplateError::NulCharacter)
        );
    }

    #[test]
    fn literal_syntax_keeps_percent_and_braces_as_text() {
        let t = TopicTemplate::literal("a/%c/${username}").unwrap();
        assert!(!t.has_placeholders());
        let percent_only =
            TopicTemplate::parse_with("a/%c/${x}", PlaceholderSyntax::PERCENT).unwrap();
        assert_eq!(percent_only.placeholders().count(), 1);
    }

    #[test]
    fn substitutes_client_id_and_username_in_both_spellings() {
        let p = device();
        assert_eq!(expand("d/%c/%u", &p, Effect::Allow).0, ["d/dev-1/alice"]);
        assert_eq!(
            expand("d/${client_id}/${username}", &p, Effect::Allow).0,
            ["d/dev-1/alice"]
        );
    }

    #[test]
    fn substitutes_claims_by_key_and_path_strings_and_numbers() {
        let p = device();
        assert_eq!(
            expand("t/${claims.tenant}/${claims.site.id}", &p, Effect::Allow).0,
            ["t/acme/42"]
        );
    }

    #[test]
    fn substitutes_the_certificate_common_name() {
        assert_eq!(
            expand("c/${cert.cn}", &device(), Effect::Allow).0,
            ["c/dev-cn"]
        );
        let (filters, notes) = expand("c/${cert.cn}", &Principal::anonymous("x"), Effect::Allow);
        assert!(filters.is_empty());
        assert_eq!(notes, 1);
    }

    #[test]
    fn roles_expand_to_one_filter_per_role_and_none_without_roles() {
        assert_eq!(
            expand("r/${roles}/#", &device(), Effect::Allow).0,
            ["r/reader/#", "r/writer/#"]
        );
        assert!(
            expand("r/${roles}/#", &Principal::anonymous("x"), Effect::Allow)
                .0
                .is_empty()
        );
        assert!(
            expand("r/${roles}/#", &Principal::anonymous("x"), Effect::Deny)
                .0
                .is_empty()
        );
    }

    #[test]
    fn an_unusable_value_makes_an_allow_never_match() {
        let mut p = device();
        for bad in ["", "a+", "#", "a/b", "nul\0", "+"] {
            p.client_id = bad.into();
            let (filters, notes) = expand("d/%c/#", &p, Effect::Allow);
            assert!(filters.is_empty(), "client id {bad:?} gave {filters:?}");
            assert_eq!(notes, 1);
        }
        // Missing user name, claim that is a path, not text, or missing.
        let anonymous = Principal::anonymous("c");
        assert!(expand("u/%u", &anonymous, Effect::Allow).0.is_empty());
        assert!(expand("t/${claims.bad}", &device(), Effect::Allow)
            .0
            .is_empty());
        assert!(expand("t/${claims.list}", &device(), Effect::Allow)
            .0
            .is_empty());
        assert!(expand("t/${claims.none}", &device(), Effect::Allow)
            .0
            .is_empty());
    }

    #[test]
    fn a_dollar_value_in_the_first_level_never_matches() {
        let p = Principal::anonymous("$SYS");
        assert!(expand("%c/#", &p, Effect::Allow).0.is_empty());
        assert_eq!(expand("d/%c", &p, Effect::Allow).0, ["d/$SYS"]);
    }

    #[test]
    fn an_unusable_value_widens_a_deny_to_the_placeholder_level() {
        let anonymous = Principal::anonymous("c");
        let (filters, notes) = expand("a/%u/secret", &anonymous, Effect::Deny);
        assert_eq!(filters, ["a/#"]);
        assert_eq!(notes, 1);
        let mut p = device();
        p.roles.push(Attribute::new("bad/role", Source::Connect));
        p.roles.push(Attribute::new("worse+", Source::Connect));
        assert_eq!(
            expand("r/${roles}/x", &p, Effect::Deny).0,
            ["r/reader/x", "r/writer/x", "r/#"]
        );
    }
}
