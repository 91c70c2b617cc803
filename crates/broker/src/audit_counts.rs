//! Counts of the audited decisions, by listener, authenticator, outcome, action and cause,
//! for `/metrics`. Counted where the broker's audit lines are written
//! ([`crate::events::Hooks::audit`]) and where a connection is handed its chain's decision
//! (the chain writes that audit line itself), so nothing on a message's path is counted that
//! is not already audited (denials are; the decisions that allow are not). Every label takes its values from a fixed set or from the
//! configuration (listener and authenticator names), never from a client.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tollgate_auth::audit::{AuditEvent, ConnectRefusal, DisconnectCause, Outcome, TokenOutcome};
use tollgate_auth::authentication::{ChainDecision, DenyReason};

/// The labels of one count.
pub type Labels = Vec<(&'static str, String)>;

/// A histogram of authentication times.
fn latency_histogram() -> Histogram {
    Histogram::new(crate::store::LATENCY_BUCKETS)
}

/// The counts, shared by every connection.
#[derive(Debug)]
pub struct AuditCounts {
    /// Authentications decided (CONNECT, re-authentication, re-check) by listener,
    /// authenticator and outcome.
    pub authentications: Family<Labels, Counter>,
    /// Authenticated CONNECTs refused all the same, by reason.
    pub connections_refused: Family<Labels, Counter>,
    /// Actions the permissions denied, by action.
    pub denials: Family<Labels, Counter>,
    /// Connections closed by a decision about their identity (or an operator), by cause.
    pub disconnects: Family<Labels, Counter>,
    /// Re-authentications that succeeded.
    pub reauthentications: Counter,
    /// Token requests over MQTT, by issuer and outcome (`issued` or the refusal's reason).
    pub token_requests: Family<Labels, Counter>,
    /// How long the chain took to decide, by listener and deciding authenticator.
    pub authentication_seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for AuditCounts {
    fn default() -> Self {
        AuditCounts {
            authentications: Family::default(),
            connections_refused: Family::default(),
            denials: Family::default(),
            disconnects: Family::default(),
            reauthentications: Counter::default(),
            token_requests: Family::default(),
            authentication_seconds: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl AuditCounts {
    /// Counts `event`.
    pub fn count(&self, event: &AuditEvent<'_>) {
        match event {
            AuditEvent::Authentication {
                listener,
                authenticator,
                outcome,
                ..
            } => {
                let outcome = match outcome {
                    Outcome::Allowed => "allow",
                    Outcome::Refused { reason, .. } => deny_reason(reason),
                };
                self.count_authentication(listener, authenticator, outcome);
            }
            AuditEvent::ConnectionRefused { cause, .. } => {
                let reason = match cause {
                    ConnectRefusal::Revoked(_) => "revoked",
                    ConnectRefusal::ClientIdentifier => "client_identifier",
                    ConnectRefusal::Banned { .. } => "banned",
                    ConnectRefusal::SessionOwnedByAnother { .. } => "session_owned_by_another",
                };
                self.connections_refused
                    .get_or_create(&vec![("reason", reason.to_owned())])
                    .inc();
            }
            AuditEvent::Denied { action, .. } => {
                self.denials
                    .get_or_create(&vec![("action", action.as_str().replace(' ', "_"))])
                    .inc();
            }
            AuditEvent::Disconnected { cause, .. } => {
                let cause = match cause {
                    DisconnectCause::CredentialsExpired => "credentials_expired",
                    DisconnectCause::Revoked(_) => "revoked",
                    DisconnectCause::RecheckRefused(_) => "recheck_refused",
                    DisconnectCause::ReauthenticationRefused(_) => "reauthentication_refused",
                    DisconnectCause::Kicked(_) => "kicked",
                };
                self.disconnects
                    .get_or_create(&vec![("cause", cause.to_owned())])
                    .inc();
            }
            AuditEvent::Reauthenticated { .. } => {
                self.reauthentications.inc();
            }
            AuditEvent::TokenRequest {
                issuer, outcome, ..
            } => {
                let outcome = match outcome {
                    TokenOutcome::Issued { .. } => "issued",
                    TokenOutcome::Refused { reason, .. } => reason,
                };
                self.token_requests
                    .get_or_create(&vec![
                        ("issuer", (*issuer).to_owned()),
                        ("outcome", outcome.to_owned()),
                    ])
                    .inc();
            }
            AuditEvent::RevocationListLoaded { .. } | AuditEvent::ConfigurationReloaded { .. } => {}
        }
    }
}

impl AuditCounts {
    /// Counts the decision of a listener's authentication chain (the chain writes its own
    /// audit line, in the `auth` crate; the connection counts the decision it is handed).
    pub fn chain_decision(&self, listener: &str, decision: &ChainDecision) {
        let (authenticator, outcome) = match decision {
            ChainDecision::Allowed { by, .. } => (by.as_str(), "allow"),
            ChainDecision::Refused { reason, by, .. } => {
                (by.as_deref().unwrap_or("-"), deny_reason(reason))
            }
            ChainDecision::Continue { by, .. } => (by.as_str(), "challenge"),
        };
        self.count_authentication(listener, authenticator, outcome);
    }

    /// Records how long the chain of `listener` took to reach `decision`.
    pub fn chain_latency(&self, listener: &str, decision: &ChainDecision, seconds: f64) {
        let authenticator = match decision {
            ChainDecision::Allowed { by, .. } => by.as_str(),
            ChainDecision::Refused { by, .. } => by.as_deref().unwrap_or("-"),
            ChainDecision::Continue { by, .. } => by.as_str(),
        };
        self.authentication_seconds
            .get_or_create(&vec![
                ("listener", listener.to_owned()),
                ("authenticator", authenticator.to_owned()),
            ])
            .observe(seconds);
    }

    fn count_authentication(&self, listener: &str, authenticator: &str, outcome: &str) {
        self.authentications
            .get_or_create(&vec![
                ("listener", listener.to_owned()),
                ("authenticator", authenticator.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }
}

fn deny_reason(reason: &DenyReason) -> &'static str {
    match reason {
        DenyReason::BadCredentials => "bad_credentials",
        DenyReason::NotAuthorized => "not_authorized",
        DenyReason::Banned => "banned",
        DenyReason::RateLimited => "rate_limited",
        DenyReason::BadAuthenticationMethod => "bad_authentication_method",
        DenyReason::BackendUnavailable => "backend_unavailable",
        DenyReason::Busy => "busy",
    }
}
