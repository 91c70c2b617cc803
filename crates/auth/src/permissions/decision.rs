//! What is asked of compiled permissions ([`Request`]) and what they answer ([`Decision`]).

use std::fmt;

use tollgate_mqtt::QoS;

/// One question put to a principal's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// May the client publish to `topic` with this QoS and retain flag?
    Publish {
        /// The topic name.
        topic: &'a str,
        /// The QoS of the PUBLISH.
        qos: QoS,
        /// The RETAIN flag.
        retain: bool,
    },
    /// May the client subscribe to `filter` (without any `$share/<group>/` prefix)?
    Subscribe {
        /// The topic filter.
        filter: &'a str,
        /// The requested maximum QoS.
        qos: QoS,
        /// Whether the subscription is shared (`$share/<group>/<filter>`).
        shared: bool,
    },
    /// May the client be sent a message on `topic` through a subscription of this QoS?
    Receive {
        /// The message's topic name.
        topic: &'a str,
        /// The QoS the subscription was granted.
        qos: QoS,
        /// Whether the subscription is shared.
        shared: bool,
    },
}

impl Request<'_> {
    /// The topic or filter asked about.
    pub fn topic(&self) -> &str {
        match self {
            Request::Publish { topic, .. } | Request::Receive { topic, .. } => topic,
            Request::Subscribe { filter, .. } => filter,
        }
    }
}

impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Publish { topic, qos, retain } => write!(
                f,
                "publish `{topic}` QoS {}{}",
                *qos as u8,
                if *retain { " retained" } else { "" }
            ),
            Request::Subscribe {
                filter,
                qos,
                shared,
            } => write!(
                f,
                "subscribe `{filter}` QoS {}{}",
                *qos as u8,
                if *shared { " shared" } else { "" }
            ),
            Request::Receive { topic, qos, shared } => write!(
                f,
                "receive `{topic}` (subscription QoS {}{})",
                *qos as u8,
                if *shared { ", shared" } else { "" }
            ),
        }
    }
}

/// What decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// The rule at this index of the compiled permissions
    /// ([`CompiledPermissions::rule`](super::CompiledPermissions::rule)).
    Rule(usize),
    /// No rule decided: the default of the chain did (or the request was invalid).
    Default,
}

/// Why the decision is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An allow rule matched and covers the request.
    RuleAllows,
    /// A deny rule matched (for a subscription: its filter overlaps the requested one).
    RuleDenies,
    /// The first matching allow rule does not cover the request's QoS.
    QosNotPermitted,
    /// The first matching allow rule does not cover the publish's retain flag.
    RetainNotPermitted,
    /// The first matching allow rule does not cover shared subscriptions.
    SharedSubscriptionNotPermitted,
    /// No rule decided; the default of an authorizer is `accept`.
    DefaultAccept,
    /// No rule decided; the default of an authorizer is `deny`.
    DefaultDeny,
    /// No rule decided and every authorizer said `next`.
    EndOfChain,
    /// No rule decided and an authorizer failed (fail closed).
    AuthorizerFailed,
    /// The topic, filter or QoS of the request is not valid.
    InvalidRequest,
}

impl Reason {
    /// A short phrase for audit lines.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::RuleAllows => "allowed by rule",
            Reason::RuleDenies => "denied by rule",
            Reason::QosNotPermitted => "QoS not permitted by rule",
            Reason::RetainNotPermitted => "retain flag not permitted by rule",
            Reason::SharedSubscriptionNotPermitted => "shared subscription not permitted by rule",
            Reason::DefaultAccept => "allowed by default",
            Reason::DefaultDeny => "denied by default",
            Reason::EndOfChain => "denied: no authorizer decided",
            Reason::AuthorizerFailed => "denied: an authorizer failed",
            Reason::InvalidRequest => "denied: invalid topic, filter or QoS",
        }
    }
}

/// The answer to a [`Request`]. Small and `Copy`: the hot path returns it without allocating;
/// [`CompiledPermissions::describe`](super::CompiledPermissions::describe) turns it into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The rule or the default that decided.
    pub decided_by: DecidedBy,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The deciding rule's index, if a rule decided.
    pub fn rule_index(&self) -> Option<usize> {
        match self.decided_by {
            DecidedBy::Rule(i) => Some(i),
            DecidedBy::Default => None,
        }
    }

    pub(crate) fn invalid_request() -> Decision {
        Decision {
            allowed: false,
            decided_by: DecidedBy::Default,
            reason: Reason::InvalidRequest,
        }
    }
}
