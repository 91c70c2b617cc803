//! Explanations for `tollgate check` and for people reading audit lines: the decision, the
//! rule or default that made it, the rules before it that matched but passed over, and the
//! rules after it that also matched (which first-match-wins ignored).

use std::fmt;
use std::sync::Arc;

use super::compiled::{CompiledPermissions, CompiledRule, SubscriptionJudgement};
use super::decision::{Decision, Reason, Request};
use super::permission::{Activity, Effect, RuleOrigin};
use super::topic_match::{filter_covers, filter_matches_topic, filters_overlap};

/// How a rule's filter relates to the request's topic or filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRelation {
    /// The rule's filter matches the topic (publish, receive).
    Matches,
    /// The rule's filter covers the whole requested filter (subscribe).
    Covers,
    /// The rule's filter overlaps the requested filter without covering it (subscribe).
    Overlaps,
}

/// What a rule would do with the request on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleVerdict {
    /// Allow.
    Allows,
    /// Deny, for this reason.
    Denies(Reason),
    /// Leave it to later rules.
    PassesOver,
    /// Leave the subscription to later rules, but withhold the messages under this rule's
    /// filter at delivery (a refusing rule overlapping a subscription it does not cover).
    WithholdsPart(Reason),
}

/// A rule that matched the request, as an explanation shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedRule {
    /// Its index in the compiled permissions.
    pub index: usize,
    /// Allow or deny.
    pub effect: Effect,
    /// Its activity.
    pub activity: Activity,
    /// The concrete filter.
    pub filter: Arc<str>,
    /// The filter as written.
    pub template: Arc<str>,
    /// Where it came from.
    pub origin: Arc<RuleOrigin>,
    /// The authorizer's name.
    pub authorizer: String,
    /// How its filter relates to the request.
    pub relation: RuleRelation,
    /// What it would do on its own.
    pub verdict: RuleVerdict,
}

/// The full account of one request (see [`CompiledPermissions::explain`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The request, as text.
    pub request: String,
    /// The decision (the same as the hot path's).
    pub decision: Decision,
    /// One line saying what decided.
    pub summary: String,
    /// The deciding rule, if a rule decided.
    pub deciding_rule: Option<ExplainedRule>,
    /// Rules before the deciding one that matched but passed over.
    pub passed_over: Vec<ExplainedRule>,
    /// Rules after the deciding one that also matched.
    pub later_matches: Vec<ExplainedRule>,
}

impl CompiledPermissions {
    /// Explains a request: the decision, the deciding rule or default, and every other rule
    /// that matched it. Linear in the number of rules; not for the hot path.
    pub fn explain(&self, request: &Request<'_>) -> Explanation {
        let decision = self.check(request);
        let deciding = decision.rule_index();
        let mut explanation = Explanation {
            request: request.to_string(),
            decision,
            summary: self.describe(&decision).to_string(),
            deciding_rule: None,
            passed_over: Vec::new(),
            later_matches: Vec::new(),
        };
        if decision.reason == Reason::InvalidRequest {
            return explanation;
        }
        for (index, rule) in self.rules().iter().enumerate() {
            let Some((relation, verdict)) = relate(rule, request) else {
                continue;
            };
            let explained = ExplainedRule {
                index,
                effect: rule.effect,
                activity: rule.activity,
                filter: rule.filter.clone(),
                template: rule.template.clone(),
                origin: rule.origin.clone(),
                authorizer: self
                    .authorizer_name(rule.authorizer)
                    .unwrap_or("?")
                    .to_owned(),
                relation,
                verdict,
            };
            match deciding {
                Some(d) if index == d => explanation.deciding_rule = Some(explained),
                Some(d) if index > d => explanation.later_matches.push(explained),
                _ => explanation.passed_over.push(explained),
            }
        }
        explanation
    }
}

/// How `rule` relates to `request`, if it matches it at all.
fn relate(rule: &CompiledRule, request: &Request<'_>) -> Option<(RuleRelation, RuleVerdict)> {
    match *request {
        Request::Publish { topic, qos, retain } => {
            if !rule.activity.includes_publish() || !filter_matches_topic(&rule.filter, topic) {
                return None;
            }
            let verdict = match rule.judge_publish(qos as u8, retain) {
                Some(Reason::RuleAllows) => RuleVerdict::Allows,
                Some(reason) => RuleVerdict::Denies(reason),
                None => RuleVerdict::PassesOver,
            };
            Some((RuleRelation::Matches, verdict))
        }
        Request::Subscribe {
            filter,
            qos,
            shared,
        } => {
            if !rule.activity.includes_subscribe() || !filters_overlap(&rule.filter, filter) {
                return None;
            }
            let covers = filter_covers(&rule.filter, filter);
            let relation = if covers {
                RuleRelation::Covers
            } else {
                RuleRelation::Overlaps
            };
            Some((
                relation,
                subscription_verdict(rule, qos as u8, shared, covers),
            ))
        }
        Request::Receive { topic, qos, shared } => {
            if !rule.activity.includes_subscribe() || !filter_matches_topic(&rule.filter, topic) {
                return None;
            }
            Some((
                RuleRelation::Matches,
                subscription_verdict(rule, qos as u8, shared, true),
            ))
        }
    }
}

fn subscription_verdict(rule: &CompiledRule, qos: u8, shared: bool, covers: bool) -> RuleVerdict {
    match rule.judge_subscription(qos, shared) {
        SubscriptionJudgement::Refuses(reason) if covers => RuleVerdict::Denies(reason),
        SubscriptionJudgement::Refuses(reason) => RuleVerdict::WithholdsPart(reason),
        SubscriptionJudgement::AllowsIfCovering if covers => RuleVerdict::Allows,
        SubscriptionJudgement::AllowsIfCovering | SubscriptionJudgement::PassesOver => {
            RuleVerdict::PassesOver
        }
    }
}

impl fmt::Display for ExplainedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule {}: {} {} `{}`",
            self.index, self.effect, self.activity, self.template
        )?;
        if self.filter != self.template {
            write!(f, " (`{}`)", self.filter)?;
        }
        write!(f, " from {} via `{}`", self.origin, self.authorizer)?;
        let relation = match self.relation {
            RuleRelation::Matches => "matches",
            RuleRelation::Covers => "covers",
            RuleRelation::Overlaps => "overlaps without covering",
        };
        match self.verdict {
            RuleVerdict::Allows => write!(f, " — {relation}, would allow"),
            RuleVerdict::Denies(reason) => {
                write!(f, " — {relation}, would deny ({})", reason.describe())
            }
            RuleVerdict::PassesOver => write!(f, " — {relation}, passes over"),
            RuleVerdict::WithholdsPart(reason) => write!(
                f,
                " — {relation}: its messages are withheld at delivery ({})",
                reason.describe()
            ),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {}",
            self.request,
            if self.decision.allowed {
                "ALLOWED"
            } else {
                "DENIED"
            }
        )?;
        writeln!(f, "  {}", self.summary)?;
        if !self.passed_over.is_empty() {
            writeln!(f, "  matched before it, without deciding:")?;
            for rule in &self.passed_over {
                writeln!(f, "    {rule}")?;
            }
        }
        if !self.later_matches.is_empty() {
            writeln!(f, "  also matched after it (ignored: first match wins):")?;
            for rule in &self.later_matches {
                writeln!(f, "    {rule}")?;
            }
        }
        Ok(())
    }
}
