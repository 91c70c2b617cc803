//! One permission: a topic filter (possibly with placeholders), allow or deny, the activity,
//! QoS levels, retain flags and shared subscriptions it covers, and where it came from.
//!
//! This is HiveMQ's topic permission model. How a permission takes part in a decision (first
//! match wins, what its qualifiers do) is described in [`crate::permissions`].

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::template::{TemplateError, TopicTemplate};

/// Whether a permission allows or denies what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The permission allows (within its QoS, retain and shared-subscription qualifiers).
    Allow,
    /// The permission denies.
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        })
    }
}

/// What a client does that a permission governs.
///
/// `Subscribe` also governs receiving: a client may be sent a message on a topic only if it
/// may subscribe to that topic (Mosquitto's `read`), which the broker asks with
/// `check_receive` when a retained or queued message is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// Publishing (Mosquitto's `write`).
    Publish,
    /// Subscribing and receiving (Mosquitto's `read`).
    Subscribe,
    /// Both.
    All,
}

impl Activity {
    /// Whether the activity includes publishing.
    pub fn includes_publish(self) -> bool {
        matches!(self, Activity::Publish | Activity::All)
    }

    /// Whether the activity includes subscribing and receiving.
    pub fn includes_subscribe(self) -> bool {
        matches!(self, Activity::Subscribe | Activity::All)
    }
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activity::Publish => "publish",
            Activity::Subscribe => "subscribe",
            Activity::All => "all",
        })
    }
}

/// A set of QoS levels (a subset of {0, 1, 2}).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QosSet(u8);

impl QosSet {
    /// QoS 0, 1 and 2.
    pub const ALL: QosSet = QosSet(0b111);

    /// The set holding only `qos`, or `None` when `qos` is not 0, 1 or 2.
    pub fn only(qos: u8) -> Option<QosSet> {
        (qos <= 2).then(|| QosSet(1 << qos))
    }

    /// The set of the given levels; `Err(level)` names the first level that is not 0, 1 or 2.
    pub fn from_levels(levels: impl IntoIterator<Item = u8>) -> Result<QosSet, u8> {
        let mut bits = 0;
        for qos in levels {
            if qos > 2 {
                return Err(qos);
            }
            bits |= 1 << qos;
        }
        Ok(QosSet(bits))
    }

    /// Whether `qos` is in the set (always false for a value above 2).
    pub fn contains(self, qos: u8) -> bool {
        qos <= 2 && self.0 & (1 << qos) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The levels in the set, ascending.
    pub fn levels(self) -> impl Iterator<Item = u8> {
        (0..=2).filter(move |q| self.contains(*q))
    }
}

impl fmt::Display for QosSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == QosSet::ALL {
            return f.write_str("any QoS");
        }
        f.write_str("QoS ")?;
        for (i, q) in self.levels().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{q}")?;
        }
        Ok(())
    }
}

/// Which publishes a permission covers by their retain flag (HiveMQ's `publishRetain`).
///
/// It qualifies publishing only: subscribing and receiving ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetainCoverage {
    /// Retained and not retained publishes.
    All,
    /// Retained publishes only.
    RetainedOnly,
    /// Publishes that are not retained only.
    NotRetained,
}

impl RetainCoverage {
    /// Whether a publish with this retain flag is covered.
    pub fn covers(self, retain: bool) -> bool {
        match self {
            RetainCoverage::All => true,
            RetainCoverage::RetainedOnly => retain,
            RetainCoverage::NotRetained => !retain,
        }
    }
}

impl fmt::Display for RetainCoverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetainCoverage::All => "retained or not",
            RetainCoverage::RetainedOnly => "retained only",
            RetainCoverage::NotRetained => "not retained only",
        })
    }
}

/// The part of a policy file a rule belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleOwner {
    /// `[[guards]]`: everyone, before all other rules.
    Guards,
    /// `[anonymous]`: clients without a user name.
    Anonymous,
    /// `[users.<name>]`.
    User(String),
    /// `[groups.<name>]`.
    Group(String),
    /// `[roles.<name>]`.
    Role(String),
    /// `[[patterns]]`: everyone, after all other rules.
    Patterns,
}

impl fmt::Display for RuleOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOwner::Guards => f.write_str("guards"),
            RuleOwner::Anonymous => f.write_str("anonymous"),
            RuleOwner::User(name) => write!(f, "user `{name}`"),
            RuleOwner::Group(name) => write!(f, "group `{name}`"),
            RuleOwner::Role(name) => write!(f, "role `{name}`"),
            RuleOwner::Patterns => f.write_str("patterns"),
        }
    }
}

/// Where a permission came from, for `tollgate check`, explanations and audit lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleOrigin {
    /// A Tollgate policy file (TOML).
    PolicyFile {
        /// The file's path.
        path: Arc<str>,
        /// The 1-based line where the permission starts.
        line: usize,
        /// The part of the file it belongs to.
        owner: RuleOwner,
    },
    /// A Mosquitto `acl_file`.
    AclFile {
        /// The file's path.
        path: Arc<str>,
        /// The 1-based line of the `topic` or `pattern` line.
        line: usize,
    },
    /// A claim of the principal's token.
    Claim {
        /// The claim's name or path (`topics`, `acl`, `scope`).
        claim: String,
        /// The 0-based position of the entry inside the claim.
        entry: usize,
    },
    /// Permissions an HTTP webhook returned at CONNECT.
    Webhook {
        /// The webhook's configured name.
        name: String,
        /// The 0-based position of the permission in the response.
        entry: usize,
    },
    /// Built in code (the broker's own rules, tests).
    Code {
        /// What made it.
        name: String,
    },
}

impl RuleOrigin {
    /// An origin for a rule made in code.
    pub fn code(name: impl Into<String>) -> RuleOrigin {
        RuleOrigin::Code { name: name.into() }
    }
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOrigin::PolicyFile { path, line, owner } => write!(f, "{path}:{line} ({owner})"),
            RuleOrigin::AclFile { path, line } => write!(f, "{path}:{line}"),
            RuleOrigin::Claim { claim, entry } => write!(f, "claim `{claim}` entry {entry}"),
            RuleOrigin::Webhook { name, entry } => write!(f, "webhook `{name}` entry {entry}"),
            RuleOrigin::Code { name } => write!(f, "built in ({name})"),
        }
    }
}

/// A topic permission, before placeholders are substituted for one principal.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    /// The topic filter, possibly with placeholders.
    pub filter: TopicTemplate,
    /// Allow or deny.
    pub effect: Effect,
    /// Publish, subscribe (and receive), or both.
    pub activity: Activity,
    /// The QoS levels covered.
    pub qos: QosSet,
    /// The publishes covered by their retain flag.
    pub retain: RetainCoverage,
    /// Whether the permission also covers shared subscriptions (`$share/<group>/<filter>`).
    pub shared_subscriptions: bool,
    /// Where it came from.
    pub origin: Arc<RuleOrigin>,
}

impl Permission {
    /// A permission covering every activity, QoS, retain flag and shared subscriptions.
    pub fn new(effect: Effect, filter: TopicTemplate, origin: RuleOrigin) -> Permission {
        Permission {
            filter,
            effect,
            activity: Activity::All,
            qos: QosSet::ALL,
            retain: RetainCoverage::All,
            shared_subscriptions: true,
            origin: Arc::new(origin),
        }
    }

    /// An allow permission for `filter` (placeholders allowed), made in code.
    pub fn allow(filter: &str) -> Result<Permission, TemplateError> {
        Ok(Permission::new(
            Effect::Allow,
            TopicTemplate::parse(filter)?,
            RuleOrigin::code("inline"),
        ))
    }

    /// A deny permission for `filter` (placeholders allowed), made in code.
    pub fn deny(filter: &str) -> Result<Permission, TemplateError> {
        Ok(Permission::new(
            Effect::Deny,
            TopicTemplate::parse(filter)?,
            RuleOrigin::code("inline"),
        ))
    }

    /// The same permission for `activity` only.
    pub fn for_activity(mut self, activity: Activity) -> Permission {
        self.activity = activity;
        self
    }

    /// The same permission for these QoS levels only.
    pub fn with_qos(mut self, qos: QosSet) -> Permission {
        self.qos = qos;
        self
    }

    /// The same permission for these publishes only.
    pub fn with_retain(mut self, retain: RetainCoverage) -> Permission {
        self.retain = retain;
        self
    }

    /// The same permission, covering shared subscriptions or not.
    pub fn with_shared_subscriptions(mut self, covered: bool) -> Permission {
        self.shared_subscriptions = covered;
        self
    }

    /// The same permission with another origin.
    pub fn with_origin(mut self, origin: RuleOrigin) -> Permission {
        self.origin = Arc::new(origin);
        self
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} `{}` ({}, {}",
            self.effect,
            self.activity,
            self.filter.as_str(),
            self.qos,
            self.retain
        )?;
        if !self.shared_subscriptions {
            f.write_str(", not shared subscriptions")?;
        }
        f.write_str(")")
    }
}
