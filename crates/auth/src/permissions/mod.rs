//! The permission engine: what a principal may publish, subscribe to and receive.
//!
//! # The model
//!
//! A [`Permission`] is a topic filter (possibly with placeholders, see [`TopicTemplate`]),
//! allow or deny ([`Effect`]), the [`Activity`] it governs (publish, subscribe, or both;
//! subscribing also governs receiving), the QoS levels it covers ([`QosSet`]), the publishes
//! it covers by their retain flag ([`RetainCoverage`]), whether it covers shared
//! subscriptions, and its [`RuleOrigin`].
//!
//! An [`Authorizer`] gives a principal's permissions in order, and a [`DefaultBehaviour`]
//! (accept, deny, next). An [`AuthorizerChain`] is compiled per principal into
//! [`CompiledPermissions`], whose checks answer on the hot path.
//!
//! # How a decision is made: first match wins
//!
//! Rules are tried in order; the first one that *decides* gives the answer; if none does, the
//! default does.
//!
//! **Publish** (`topic`, QoS, retain). A rule matches when its activity includes publishing
//! and its filter matches the topic. The first matching rule decides, with one exception:
//! - an **allow** rule always decides: it allows if its QoS set holds the publish's QoS and
//!   its retain coverage holds the retain flag, and denies otherwise. This is HiveMQ's order
//!   (a rule for `client/+/status` at QoS 1 makes a later rule for the same topic at every QoS
//!   unreachable);
//! - a **deny** rule decides (denies) only when its QoS set and retain coverage hold the
//!   publish; otherwise it *passes over*, and later rules are tried. A deny rule's qualifiers
//!   narrow what it denies; they never turn it into an allow.
//!
//! **Subscribe** (`filter`, QoS, shared). A rule takes part when its activity includes
//! subscribing; the first rule whose filter *covers* the requested one (every topic the
//! requested filter matches, it matches: `a/#` covers `a/+/b`, `a/+` does not cover `a/#`) and
//! that speaks about this QoS and sharing decides:
//! - it **refuses** when it is a deny rule whose QoS set holds the QoS and that covers shared
//!   subscriptions if the request is shared, or an allow rule whose QoS set does not hold the
//!   QoS, or that does not cover shared subscriptions while the request is shared;
//! - it **allows** when it is any other allow rule;
//! - a deny rule whose qualifiers do not hold the request passes over.
//!
//! A rule whose filter only *overlaps* the requested one does not decide the subscription.
//! What a refusing rule refuses inside a granted subscription is withheld message by message:
//! the broker asks **receive** for every message it delivers. So `#` can be granted with a deny
//! on `secret/#` before it; the subscriber never gets a message under `secret/`. (Mosquitto
//! works the same way: read access is checked per message.) An allow that covers only part of
//! the requested filter passes over: `a/b` allowed alone does not grant `a/+`.
//!
//! **Receive** (`topic`, the subscription's QoS, shared): whether a message on `topic` may be
//! sent to the client, asked when a retained or queued message is delivered, and again when
//! permissions change. It is a subscription to exactly that topic.
//!
//! Retain coverage qualifies publishing only; subscribing and receiving ignore it.
//!
//! Topics whose first level starts with `$` are matched only by filters that start with the
//! same literal level, never by a leading `+` or `#`.

mod authorizer;
mod compile;
mod compiled;
mod decision;
mod explain;
mod granted;
mod level_hasher;
mod permission;
mod rule_index;
mod scan;
mod template;
pub mod topic_match;

pub use authorizer::{
    Authorizer, AuthorizerChain, AuthorizerError, AuthorizerOutcome, DefaultBehaviour, RuleSet,
    StaticRules,
};
pub use compile::{compile, compile_outcomes};
pub use compiled::{
    CompileNote, CompiledPermissions, CompiledRule, DecisionSummary, DefaultDecision,
};
pub use decision::{DecidedBy, Decision, Reason, Request};
pub use explain::{ExplainedRule, Explanation, RuleRelation, RuleVerdict};
pub use granted::{compile_granted_only, GrantedRules};
pub use permission::{Activity, Effect, Permission, QosSet, RetainCoverage, RuleOrigin, RuleOwner};
pub use template::{Placeholder, PlaceholderSyntax, TemplateError, TopicTemplate};
