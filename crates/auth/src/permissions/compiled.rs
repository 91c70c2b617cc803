//! A principal's permissions, compiled: the concrete rules in order, the default that decides
//! when none of them does, and the index for the hot path.

use std::fmt;
use std::sync::Arc;

use tollgate_mqtt::QoS;

use super::decision::{DecidedBy, Decision, Reason, Request};
use super::permission::{Activity, Effect, QosSet, RetainCoverage, RuleOrigin};
use super::rule_index::{
    publish_class, publish_class_parts, subscription_class, subscription_class_parts, IndexEntry,
    RuleTrie, CLASSES,
};
use super::scan;
use super::topic_match::{is_valid_topic_filter, is_valid_topic_name};

/// One concrete rule: a permission with its placeholders substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRule {
    /// The concrete topic filter.
    pub filter: Arc<str>,
    /// The filter as written in the source, placeholders and all.
    pub template: Arc<str>,
    /// Allow or deny.
    pub effect: Effect,
    /// The activity covered.
    pub activity: Activity,
    /// The QoS levels covered.
    pub qos: QosSet,
    /// The publishes covered by their retain flag.
    pub retain: RetainCoverage,
    /// Whether shared subscriptions are covered.
    pub shared_subscriptions: bool,
    /// Where the permission came from.
    pub origin: Arc<RuleOrigin>,
    /// The index of the authorizer it came from
    /// ([`CompiledPermissions::authorizer_name`]).
    pub authorizer: usize,
}

/// How a rule whose filter overlaps a requested subscription takes part in the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriptionJudgement {
    /// It denies, with this reason, as soon as it overlaps.
    Refuses(Reason),
    /// It allows if its filter covers the requested one; otherwise the search goes on.
    AllowsIfCovering,
    /// Its qualifiers leave the request alone (a deny rule for other QoS levels).
    PassesOver,
}

impl CompiledRule {
    /// For a publish whose topic this rule's filter matches: `Some(reason)` if the rule
    /// decides, `None` if it passes over. An allow rule always decides (allowing only within
    /// its QoS and retain qualifiers: HiveMQ's first-match semantics); a deny rule decides
    /// only when its qualifiers cover the publish.
    pub(crate) fn judge_publish(&self, qos: u8, retain: bool) -> Option<Reason> {
        let covered = self.qos.contains(qos) && self.retain.covers(retain);
        match self.effect {
            Effect::Allow if covered => Some(Reason::RuleAllows),
            Effect::Allow if !self.qos.contains(qos) => Some(Reason::QosNotPermitted),
            Effect::Allow => Some(Reason::RetainNotPermitted),
            Effect::Deny => covered.then_some(Reason::RuleDenies),
        }
    }

    /// For a subscription (or a receive) whose filter this rule's filter overlaps.
    pub(crate) fn judge_subscription(&self, qos: u8, shared: bool) -> SubscriptionJudgement {
        let shared_covered = !shared || self.shared_subscriptions;
        match self.effect {
            Effect::Allow if !self.qos.contains(qos) => {
                SubscriptionJudgement::Refuses(Reason::QosNotPermitted)
            }
            Effect::Allow if !shared_covered => {
                SubscriptionJudgement::Refuses(Reason::SharedSubscriptionNotPermitted)
            }
            Effect::Allow => SubscriptionJudgement::AllowsIfCovering,
            Effect::Deny if self.qos.contains(qos) && shared_covered => {
                SubscriptionJudgement::Refuses(Reason::RuleDenies)
            }
            Effect::Deny => SubscriptionJudgement::PassesOver,
        }
    }

    /// The reason a subscription decided by this rule gets (the rule decided, so it either
    /// refuses or covers).
    pub(crate) fn subscription_reason(&self, qos: u8, shared: bool) -> Reason {
        match self.judge_subscription(qos, shared) {
            SubscriptionJudgement::Refuses(reason) => reason,
            SubscriptionJudgement::AllowsIfCovering => Reason::RuleAllows,
            // Cannot decide; fail closed should it ever be asked.
            SubscriptionJudgement::PassesOver => Reason::RuleDenies,
        }
    }
}

/// What answers when no rule decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDecision {
    /// Whether the default allows.
    pub allowed: bool,
    /// [`Reason::DefaultAccept`], [`Reason::DefaultDeny`], [`Reason::EndOfChain`] or
    /// [`Reason::AuthorizerFailed`].
    pub reason: Reason,
    /// The authorizer whose default or failure it is (none at the end of the chain).
    pub authorizer: Option<usize>,
}

/// Something compiling noticed, for the broker's log: a placeholder whose value could not be
/// used, an authorizer that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileNote {
    /// The authorizer concerned.
    pub authorizer: String,
    /// The permission concerned, if one.
    pub origin: Option<Arc<RuleOrigin>>,
    /// What happened.
    pub message: String,
}

impl fmt::Display for CompileNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authorizer `{}`", self.authorizer)?;
        if let Some(origin) = &self.origin {
            write!(f, ", {origin}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A principal's compiled permissions. Checks are synchronous, allocate nothing and do not
/// look at rules that cannot match (see the rule index). Share it behind an `Arc`; replace it
/// whole when the principal or the policy changes.
#[derive(Debug)]
pub struct CompiledPermissions {
    rules: Vec<CompiledRule>,
    authorizers: Vec<String>,
    default: DefaultDecision,
    notes: Vec<CompileNote>,
    index: RuleTrie,
}

impl CompiledPermissions {
    /// Builds the index over `rules`.
    pub(crate) fn new(
        rules: Vec<CompiledRule>,
        authorizers: Vec<String>,
        default: DefaultDecision,
        notes: Vec<CompileNote>,
    ) -> CompiledPermissions {
        let index = RuleTrie::build(rules.iter().enumerate().map(|(index, rule)| IndexEntry {
            index,
            filter: &rule.filter,
            decisive: decisive_classes(rule),
        }));
        CompiledPermissions {
            rules,
            authorizers,
            default,
            notes,
            index,
        }
    }

    /// Permissions that allow everything (an open listener with no authorization).
    pub fn allow_all() -> CompiledPermissions {
        CompiledPermissions::new(
            Vec::new(),
            vec!["allow_all".into()],
            DefaultDecision {
                allowed: true,
                reason: Reason::DefaultAccept,
                authorizer: Some(0),
            },
            Vec::new(),
        )
    }

    /// Permissions that deny everything (before compiling, or when compiling is impossible).
    pub fn deny_all() -> CompiledPermissions {
        CompiledPermissions::new(
            Vec::new(),
            Vec::new(),
            DefaultDecision {
                allowed: false,
                reason: Reason::EndOfChain,
                authorizer: None,
            },
            Vec::new(),
        )
    }

    /// Answers any request.
    pub fn check(&self, request: &Request<'_>) -> Decision {
        match *request {
            Request::Publish { topic, qos, retain } => self.check_publish(topic, qos, retain),
            Request::Subscribe {
                filter,
                qos,
                shared,
            } => self.check_subscribe(filter, qos, shared),
            Request::Receive { topic, qos, shared } => self.check_receive(topic, qos, shared),
        }
    }

    /// May the client publish to `topic` with this QoS and retain flag?
    pub fn check_publish(&self, topic: &str, qos: QoS, retain: bool) -> Decision {
        let qos = qos as u8;
        if !is_valid_topic_name(topic) {
            return Decision::invalid_request();
        }
        let winner = self
            .index
            .first_publish_decider(topic, publish_class(qos, retain));
        self.publish_decision(winner, qos, retain)
    }

    /// May the client subscribe to `filter` with this maximum QoS? `filter` is without its
    /// `$share/<group>/` prefix; `shared` says whether it had one.
    ///
    /// Allowed only when the first rule that decides is an allow rule whose filter covers the
    /// whole requested filter. A rule whose filter only overlaps the requested one decides
    /// (denies) if it is a deny rule, or an allow rule whose QoS or shared-subscription
    /// qualifiers exclude the request; an allow rule that overlaps without covering is passed
    /// over.
    pub fn check_subscribe(&self, filter: &str, qos: QoS, shared: bool) -> Decision {
        let qos = qos as u8;
        if !is_valid_topic_filter(filter) {
            return Decision::invalid_request();
        }
        let winner = self
            .index
            .first_subscription_decider(filter, subscription_class(qos, shared));
        self.subscription_decision(winner, qos, shared)
    }

    /// May the client be sent a message on `topic` through a subscription granted at `qos`
    /// (`shared`: a shared subscription)? Decided by the subscribe rules, as if the client
    /// subscribed to exactly `topic`; the message's retain flag plays no part.
    pub fn check_receive(&self, topic: &str, qos: QoS, shared: bool) -> Decision {
        let qos = qos as u8;
        if !is_valid_topic_name(topic) {
            return Decision::invalid_request();
        }
        let winner = self
            .index
            .first_subscription_decider(topic, subscription_class(qos, shared));
        self.subscription_decision(winner, qos, shared)
    }

    /// The same answer as [`check`](Self::check), found by the plain ordered scan of every
    /// rule: the reference the index is tested against. Linear in the number of rules.
    pub fn check_by_scan(&self, request: &Request<'_>) -> Decision {
        match *request {
            Request::Publish { topic, qos, retain } => {
                let qos = qos as u8;
                if !is_valid_topic_name(topic) {
                    return Decision::invalid_request();
                }
                self.publish_decision(
                    scan::first_publish_decider(&self.rules, topic, qos, retain),
                    qos,
                    retain,
                )
            }
            Request::Subscribe {
                filter,
                qos,
                shared,
            } => {
                let qos = qos as u8;
                if !is_valid_topic_filter(filter) {
                    return Decision::invalid_request();
                }
                let winner = scan::first_subscription_decider(&self.rules, filter, qos, shared);
                self.subscription_decision(winner, qos, shared)
            }
            Request::Receive { topic, qos, shared } => {
                let qos = qos as u8;
                if !is_valid_topic_name(topic) {
                    return Decision::invalid_request();
                }
                let winner = scan::first_subscription_decider(&self.rules, topic, qos, shared);
                self.subscription_decision(winner, qos, shared)
            }
        }
    }

    fn publish_decision(&self, winner: Option<usize>, qos: u8, retain: bool) -> Decision {
        match winner {
            Some(index) => {
                let reason = self.rules[index]
                    .judge_publish(qos, retain)
                    .unwrap_or(Reason::RuleDenies);
                Decision {
                    allowed: reason == Reason::RuleAllows,
                    decided_by: DecidedBy::Rule(index),
                    reason,
                }
            }
            None => self.default_as_decision(),
        }
    }

    fn subscription_decision(&self, winner: Option<usize>, qos: u8, shared: bool) -> Decision {
        match winner {
            Some(index) => {
                let reason = self.rules[index].subscription_reason(qos, shared);
                Decision {
                    allowed: reason == Reason::RuleAllows,
                    decided_by: DecidedBy::Rule(index),
                    reason,
                }
            }
            None => self.default_as_decision(),
        }
    }

    fn default_as_decision(&self) -> Decision {
        Decision {
            allowed: self.default.allowed,
            decided_by: DecidedBy::Default,
            reason: self.default.reason,
        }
    }

    /// The rules, in order (first match wins).
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The rule at `index`.
    pub fn rule(&self, index: usize) -> Option<&CompiledRule> {
        self.rules.get(index)
    }

    /// What answers when no rule decides.
    pub fn default_decision(&self) -> &DefaultDecision {
        &self.default
    }

    /// The name of the authorizer at `index` (as in [`CompiledRule::authorizer`]).
    pub fn authorizer_name(&self, index: usize) -> Option<&str> {
        self.authorizers.get(index).map(String::as_str)
    }

    /// How many authorizers the permissions were compiled from (the indexes
    /// [`authorizer_name`](Self::authorizer_name) takes).
    pub fn authorizer_count(&self) -> usize {
        self.authorizers.len()
    }

    /// The index of the authorizer whose rule or default made `decision`; `None` when nothing
    /// did (the end of the chain, or an invalid request).
    pub fn deciding_authorizer(&self, decision: &Decision) -> Option<usize> {
        match decision.decided_by {
            DecidedBy::Rule(index) => self.rules.get(index).map(|rule| rule.authorizer),
            DecidedBy::Default if decision.reason == Reason::InvalidRequest => None,
            DecidedBy::Default => self.default.authorizer,
        }
    }

    /// What compiling noticed, for the log.
    pub fn notes(&self) -> &[CompileNote] {
        &self.notes
    }

    /// A displayable account of a decision, for audit lines: the rule (template, concrete
    /// filter, origin, authorizer) or the default that decided, and why.
    pub fn describe(&self, decision: &Decision) -> DecisionSummary<'_> {
        DecisionSummary {
            permissions: self,
            decision: *decision,
        }
    }
}

/// The request classes for which a rule decides when its filter matches a publish or covers a
/// subscription.
fn decisive_classes(rule: &CompiledRule) -> u16 {
    let mut decisive = 0;
    for class in 0..CLASSES {
        let bit = 1 << class;
        if let Some((qos, retain)) = publish_class_parts(class) {
            if rule.activity.includes_publish() && rule.judge_publish(qos, retain).is_some() {
                decisive |= bit;
            }
        } else if let Some((qos, shared)) = subscription_class_parts(class) {
            if !rule.activity.includes_subscribe() {
                continue;
            }
            match rule.judge_subscription(qos, shared) {
                // A refusing rule decides a subscription only where it covers the requested
                // filter; where it merely overlaps, its part is withheld message by message
                // (check_receive at delivery).
                SubscriptionJudgement::Refuses(_) => decisive |= bit,
                SubscriptionJudgement::AllowsIfCovering => decisive |= bit,
                SubscriptionJudgement::PassesOver => {}
            }
        }
    }
    decisive
}

/// A decision with the rule or default behind it, displayable (see
/// [`CompiledPermissions::describe`]).
#[derive(Debug, Clone, Copy)]
pub struct DecisionSummary<'a> {
    permissions: &'a CompiledPermissions,
    decision: Decision,
}

impl fmt::Display for DecisionSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.permissions;
        let verdict = if self.decision.allowed {
            "allowed"
        } else {
            "denied"
        };
        match self.decision.decided_by {
            DecidedBy::Rule(index) => {
                let Some(rule) = p.rule(index) else {
                    return write!(f, "{verdict} by rule {index}");
                };
                write!(
                    f,
                    "{verdict} by rule {index}: {} {} `{}`",
                    rule.effect, rule.activity, rule.template
                )?;
                if rule.filter != rule.template {
                    write!(f, " (`{}`)", rule.filter)?;
                }
                write!(
                    f,
                    " from {} via `{}`",
                    rule.origin,
                    p.authorizer_name(rule.authorizer).unwrap_or("?")
                )?;
                if !matches!(
                    self.decision.reason,
                    Reason::RuleAllows | Reason::RuleDenies
                ) {
                    write!(f, " ({})", self.decision.reason.describe())?;
                }
                Ok(())
            }
            DecidedBy::Default => {
                f.write_str(self.decision.reason.describe())?;
                if self.decision.reason != Reason::InvalidRequest {
                    if let Some(name) = p.default.authorizer.and_then(|i| p.authorizer_name(i)) {
                        write!(f, " (authorizer `{name}`)")?;
                    }
                }
                Ok(())
            }
        }
    }
}
