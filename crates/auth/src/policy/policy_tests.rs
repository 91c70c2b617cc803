//! Test cases carried by a policy file (`[[test]]`): an identity, an action, and the expected
//! decision; run against an authorizer chain so that operators can keep policies under CI
//! (`tollgate check --tests`).

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use tollgate_mqtt::QoS;
use toml::Spanned;

use crate::permissions::topic_match::{is_valid_topic_filter, is_valid_topic_name};
use crate::permissions::{AuthorizerChain, Explanation, Request};
use crate::principal::{Attribute, CertificateInfo, Principal, Source};

use super::source_error::{LineIndex, SourceError};

/// A test case as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTest {
    name: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    claims: Option<Spanned<toml::Value>>,
    cert_cn: Option<String>,
    action: Spanned<String>,
    topic: Spanned<String>,
    qos: Option<Spanned<i64>>,
    retain: Option<bool>,
    shared: Option<bool>,
    expect: Spanned<String>,
}

/// Who a test case connects as.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestIdentity {
    /// The client identifier (`test-client` when not given).
    pub client_id: String,
    /// The user name.
    pub username: Option<String>,
    /// Roles, as an authenticator would give them.
    pub roles: Vec<String>,
    /// Groups, as an authenticator would give them.
    pub groups: Vec<String>,
    /// Token claims.
    pub claims: Option<serde_json::Value>,
    /// The client certificate's common name.
    pub cert_cn: Option<String>,
}

impl TestIdentity {
    /// The principal this identity stands for; `source` names where its roles and groups come
    /// from (the policy file).
    pub fn principal(&self, source: &str) -> Principal {
        let attribute =
            |value: &String| Attribute::new(value.clone(), Source::PolicyFile(source.to_owned()));
        Principal {
            client_id: self.client_id.clone(),
            username: self.username.clone(),
            roles: self.roles.iter().map(attribute).collect(),
            groups: self.groups.iter().map(attribute).collect(),
            claims: self.claims.clone().map(Arc::new),
            certificate: self.cert_cn.as_ref().map(|cn| {
                Box::new(CertificateInfo {
                    common_name: Some(cn.clone()),
                    ..CertificateInfo::default()
                })
            }),
            authenticated_by: crate::authentication::AuthenticatedBy::authenticator("policy test"),
            ..Principal::default()
        }
    }
}

/// What a test case does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestAction {
    /// Publish.
    Publish {
        /// Topic name.
        topic: String,
        /// QoS.
        qos: QoS,
        /// Retain flag.
        retain: bool,
    },
    /// Subscribe.
    Subscribe {
        /// Topic filter.
        filter: String,
        /// QoS.
        qos: QoS,
        /// Shared subscription.
        shared: bool,
    },
    /// Receive a message.
    Receive {
        /// Topic name.
        topic: String,
        /// The subscription's QoS.
        qos: QoS,
        /// Through a shared subscription.
        shared: bool,
    },
}

impl TestAction {
    /// The request to put to the permissions.
    pub fn request(&self) -> Request<'_> {
        match self {
            TestAction::Publish { topic, qos, retain } => Request::Publish {
                topic,
                qos: *qos,
                retain: *retain,
            },
            TestAction::Subscribe {
                filter,
                qos,
                shared,
            } => Request::Subscribe {
                filter,
                qos: *qos,
                shared: *shared,
            },
            TestAction::Receive { topic, qos, shared } => Request::Receive {
                topic,
                qos: *qos,
                shared: *shared,
            },
        }
    }
}

/// One `[[test]]` case.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTest {
    /// Its name (`test N` when not given).
    pub name: String,
    /// The file it is in.
    pub file: Arc<str>,
    /// The line where it starts.
    pub line: usize,
    /// Who.
    pub identity: TestIdentity,
    /// Does what.
    pub action: TestAction,
    /// Whether it should be allowed.
    pub expect_allowed: bool,
}

pub(crate) fn read_test(
    raw: &Spanned<RawTest>,
    position: usize,
    file: &Arc<str>,
    lines: &LineIndex,
) -> Result<PolicyTest, SourceError> {
    let t = raw.get_ref();
    let key = |field: &str| Some(format!("test[{position}].{field}"));
    let error = |offset: usize, field: &str, message: String| {
        SourceError::at(file, Some(lines.line_of(offset)), key(field), message)
    };
    let qos = match &t.qos {
        None => QoS::AtMostOnce,
        Some(q) => u8::try_from(*q.get_ref())
            .ok()
            .and_then(QoS::from_u8)
            .ok_or_else(|| {
                error(
                    q.span().start,
                    "qos",
                    format!("QoS {} is not 0, 1 or 2", q.get_ref()),
                )
            })?,
    };
    let topic = t.topic.get_ref().clone();
    let topic_error = |what: &str| {
        error(
            t.topic.span().start,
            "topic",
            format!("`{topic}` is not a valid {what}"),
        )
    };
    let action = match t.action.get_ref().as_str() {
        "publish" | "receive" if !is_valid_topic_name(&topic) => {
            return Err(topic_error("topic name"))
        }
        "subscribe" if !is_valid_topic_filter(&topic) => return Err(topic_error("topic filter")),
        "publish" => TestAction::Publish {
            topic,
            qos,
            retain: t.retain.unwrap_or(false),
        },
        "subscribe" => TestAction::Subscribe {
            filter: topic,
            qos,
            shared: t.shared.unwrap_or(false),
        },
        "receive" => TestAction::Receive {
            topic,
            qos,
            shared: t.shared.unwrap_or(false),
        },
        other => {
            return Err(error(
                t.action.span().start,
                "action",
                format!("`{other}` is not `publish`, `subscribe` or `receive`"),
            ))
        }
    };
    let expect_allowed = match t.expect.get_ref().as_str() {
        "allow" => true,
        "deny" => false,
        other => {
            return Err(error(
                t.expect.span().start,
                "expect",
                format!("`{other}` is not `allow` or `deny`"),
            ))
        }
    };
    let claims = match &t.claims {
        None => None,
        Some(value) => Some(match value.get_ref() {
            toml::Value::String(json) => serde_json::from_str(json)
                .map_err(|e| error(value.span().start, "claims", format!("not valid JSON: {e}")))?,
            other => serde_json::to_value(other)
                .map_err(|e| error(value.span().start, "claims", format!("cannot convert: {e}")))?,
        }),
    };
    Ok(PolicyTest {
        name: t.name.clone().unwrap_or_else(|| format!("test {position}")),
        file: file.clone(),
        line: lines.line_of(raw.span().start),
        identity: TestIdentity {
            client_id: t.client_id.clone().unwrap_or_else(|| "test-client".into()),
            username: t.username.clone(),
            roles: t.roles.clone(),
            groups: t.groups.clone(),
            claims,
            cert_cn: t.cert_cn.clone(),
        },
        action,
        expect_allowed,
    })
}

/// A test case whose decision was not the expected one.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFailure {
    /// The test's name.
    pub name: String,
    /// Its file.
    pub file: Arc<str>,
    /// Its line.
    pub line: usize,
    /// What was expected.
    pub expect_allowed: bool,
    /// What happened, and why.
    pub explanation: Explanation,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}: test `{}` expected {}, got:",
            self.file,
            self.line,
            self.name,
            if self.expect_allowed { "allow" } else { "deny" }
        )?;
        write!(f, "{}", self.explanation)
    }
}

/// The outcome of running test cases.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestReport {
    /// How many ran.
    pub total: usize,
    /// Those that failed.
    pub failures: Vec<TestFailure>,
}

impl TestReport {
    /// Whether every test passed.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    /// How many passed.
    pub fn passed(&self) -> usize {
        self.total - self.failures.len()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for failure in &self.failures {
            writeln!(f, "{failure}")?;
        }
        writeln!(
            f,
            "{} passed, {} failed",
            self.passed(),
            self.failures.len()
        )
    }
}

/// Runs `tests` against `chain`: each identity is compiled and its action checked.
pub fn run_policy_tests(tests: &[PolicyTest], chain: &AuthorizerChain) -> TestReport {
    let mut report = TestReport {
        total: tests.len(),
        failures: Vec::new(),
    };
    for test in tests {
        let principal = test.identity.principal(&test.file);
        let permissions = chain.compile(&principal);
        let request = test.action.request();
        let decision = permissions.check(&request);
        if decision.allowed != test.expect_allowed {
            report.failures.push(TestFailure {
                name: test.name.clone(),
                file: test.file.clone(),
                line: test.line,
                expect_allowed: test.expect_allowed,
                explanation: permissions.explain(&request),
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use crate::policy::PolicyFile;

    const POLICY: &str = r#"
[roles.device]
permissions = [
  { filter = "devices/%c/state/#", activity = "publish", qos = [0, 1] },
  { filter = "tenants/${claims.tenant}/#", activity = "subscribe" },
]

[[test]]
name = "a device publishes its own state"
client_id = "dev-1"
roles = ["device"]
action = "publish"
topic = "devices/dev-1/state/temp"
qos = 1
expect = "allow"

[[test]]
name = "not at QoS 2"
client_id = "dev-1"
roles = ["device"]
action = "publish"
topic = "devices/dev-1/state/temp"
qos = 2
expect = "deny"

[[test]]
name = "its tenant, from a claim given as a table"
roles = ["device"]
claims = { tenant = "acme" }
action = "subscribe"
topic = "tenants/acme/+/alerts"
expect = "allow"

[[test]]
name = "claims given as JSON"
roles = ["device"]
claims = '{"tenant": "acme"}'
action = "receive"
topic = "tenants/acme/x"
expect = "allow"

[[test]]
name = "wrong on purpose"
client_id = "dev-1"
roles = ["device"]
action = "publish"
topic = "devices/dev-2/state/temp"
expect = "allow"
"#;

    #[test]
    fn runs_the_cases_and_reports_failures_with_their_line() {
        let policy = PolicyFile::parse(POLICY, "p.toml").unwrap();
        assert_eq!(policy.tests().len(), 5);
        let report = policy.run_tests();
        assert_eq!(report.total, 5);
        assert_eq!(report.passed(), 4);
        assert!(!report.is_success());
        let failure = &report.failures[0];
        assert_eq!(failure.name, "wrong on purpose");
        assert_eq!(failure.line, 42);
        let text = report.to_string();
        assert!(
            text.contains("p.toml:42: test `wrong on purpose` expected allow"),
            "{text}"
        );
        assert!(text.contains("denied by default"), "{text}");
        assert!(text.ends_with("4 passed, 1 failed\n"), "{text}");
    }

    fn error_of(test: &str) -> String {
        PolicyFile::parse(test, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn reports_bad_test_cases_with_line_and_key() {
        assert_eq!(
            error_of("[[test]]\naction = \"publish\"\ntopic = \"a\"\nexpect = \"maybe\"\n"),
            "p.toml:4: `test[0].expect`: `maybe` is not `allow` or `deny`"
        );
        assert_eq!(
            error_of("[[test]]\naction = \"read\"\ntopic = \"a\"\nexpect = \"deny\"\n"),
            "p.toml:2: `test[0].action`: `read` is not `publish`, `subscribe` or `receive`"
        );
        assert_eq!(
            error_of("[[test]]\naction = \"publish\"\ntopic = \"a/+\"\nexpect = \"deny\"\n"),
            "p.toml:3: `test[0].topic`: `a/+` is not a valid topic name"
        );
        assert_eq!(
            error_of("[[test]]\naction = \"publish\"\ntopic = \"a\"\nqos = 5\nexpect = \"deny\"\n"),
            "p.toml:4: `test[0].qos`: QoS 5 is not 0, 1 or 2"
        );
        let json = error_of(
            "[[test]]\naction = \"publish\"\ntopic = \"a\"\nclaims = '{'\nexpect = \"deny\"\n",
        );
        assert!(
            json.starts_with("p.toml:4: `test[0].claims`: not valid JSON"),
            "{json}"
        );
    }
}
