//! The audit trail: every decision about who a client is and what it may do, as a typed
//! [`AuditEvent`], written by [`AuditEvent::record`] and nowhere else.
//!
//! Audit lines go to the `tollgate::audit` tracing target at INFO. Every text a client chose
//! (client identifier, user name, topic, an authenticator's detail) is written through
//! [`Escaped`], so no event can start a line of the client's choosing; a user name that may be
//! a token is written as `<redacted>` by the one who builds the event. An event holds
//! references only: building one costs nothing beyond the line.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::authentication::DenyReason;
use crate::log::Escaped;

/// One audited decision or change.
#[derive(Debug, Clone, Copy)]
pub enum AuditEvent<'a> {
    /// The authentication of a CONNECT, a re-authentication or a re-check was decided.
    Authentication {
        /// The listener's name.
        listener: &'a str,
        /// The client's address.
        peer: SocketAddr,
        /// The client identifier.
        client_id: &'a str,
        /// The user name (the mapped one on an allow, when mapped; `<redacted>` when it may be
        /// a token).
        username: &'a str,
        /// The authenticator that decided (`-` when none did).
        authenticator: &'a str,
        /// With two identities on one CONNECT: the client's own identity and the client
        /// authenticator that vouched for it.
        client: Option<(&'a str, &'a str)>,
        /// Allowed, or refused and why.
        outcome: Outcome<'a>,
    },
    /// An authenticated CONNECT was refused all the same.
    ConnectionRefused {
        /// The client identifier.
        client_id: &'a str,
        /// The user name sent.
        username: &'a str,
        /// Why.
        cause: ConnectRefusal<'a>,
    },
    /// An action was denied by the principal's permissions (or by `$SYS` being read-only).
    Denied {
        /// The client identifier.
        client_id: &'a str,
        /// The principal's user name.
        username: &'a str,
        /// What was denied.
        action: Action,
        /// The topic or filter.
        topic: &'a str,
        /// The decision explained (the rule that decided, or why none did).
        decision: &'a str,
    },
    /// A connected client was disconnected by a decision about its identity.
    Disconnected {
        /// The client identifier.
        client_id: &'a str,
        /// Why.
        cause: DisconnectCause<'a>,
    },
    /// A re-authentication (MQTT 5 AUTH) succeeded.
    Reauthenticated {
        /// The client identifier.
        client_id: &'a str,
    },
    /// A client asked a token issuer for a token over MQTT (the token itself is never in
    /// the event).
    TokenRequest {
        /// The client identifier.
        client_id: &'a str,
        /// The principal's user name.
        username: &'a str,
        /// The issuer asked.
        issuer: &'a str,
        /// Issued or refused.
        outcome: TokenOutcome<'a>,
    },
    /// The revocation list was (re)loaded.
    RevocationListLoaded {
        /// Its file.
        file: &'a Path,
    },
    /// The configuration file was applied again (SIGHUP).
    ConfigurationReloaded {
        /// The keys that changed but keep their value until a restart.
        needs_restart: &'a [String],
    },
}

/// How an authentication ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The client is who it says.
    Allowed,
    /// Refused, with the reason and the authenticator's detail (never a secret).
    Refused {
        /// The reason.
        reason: &'a DenyReason,
        /// The detail.
        detail: &'a str,
    },
}

/// How a token request ended.
#[derive(Debug, Clone, Copy)]
pub enum TokenOutcome<'a> {
    /// A token was handed: its `jti` when the broker signed it, and the seconds it lives.
    Issued {
        /// The `jti` of a broker-signed token.
        jti: Option<&'a str>,
        /// Seconds it lives.
        expires_in: u64,
    },
    /// Refused.
    Refused {
        /// Why, as a label (`rate_limited`, `not_authorized`, `revoked`, …).
        reason: &'a str,
        /// What the client was told.
        detail: &'a str,
    },
}

/// Why an authenticated CONNECT was refused.
#[derive(Debug, Clone, Copy)]
pub enum ConnectRefusal<'a> {
    /// The principal, its token or its certificate is revoked.
    Revoked(&'a str),
    /// The client identifier does not match the listener's patterns.
    ClientIdentifier,
    /// An operator's ban names it (the ban's kind, `client`, `user` or `address`, and what
    /// it names).
    Banned {
        /// `client`, `user` or `address`.
        kind: &'a str,
        /// The client identifier, user name or network banned.
        target: &'a str,
    },
    /// The session of that client identifier belongs to another principal.
    SessionOwnedByAnother {
        /// The owner of the session, as it is written.
        owner: Option<&'a str>,
    },
}

/// Why a connected client was disconnected.
#[derive(Debug, Clone, Copy)]
pub enum DisconnectCause<'a> {
    /// Its credentials (a token's `exp`) ended.
    CredentialsExpired,
    /// It was revoked (the revocation list, a CRL).
    Revoked(&'a str),
    /// A periodic re-check refused it.
    RecheckRefused(&'a DenyReason),
    /// Its re-authentication was refused.
    ReauthenticationRefused(ReauthRefusal<'a>),
    /// An operator closed it (the admin API); the holder of the admin token that did.
    Kicked(&'a str),
}

/// Why a re-authentication was refused.
#[derive(Debug, Clone, Copy)]
pub enum ReauthRefusal<'a> {
    /// The chain refused the new credentials.
    Refused(&'a DenyReason),
    /// The new credentials name another principal.
    AnotherPrincipal,
    /// The new credentials are revoked.
    Revoked(&'a str),
}

/// An action the permissions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A PUBLISH.
    Publish,
    /// A subscription.
    Subscribe,
    /// The will of a CONNECT (checked as a publish), or of a connection that ended.
    Will,
    /// A subscription removed because the permissions changed under it.
    SubscriptionRemoved,
}

impl Action {
    /// The action as audit lines name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Will => "will",
            Action::SubscriptionRemoved => "subscription removed",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Code told of every audit event its owner records (besides the log line): the broker's
/// event stream and audit file observe the authentication chain's decisions this way.
pub trait AuditObserver: Send + Sync {
    /// Called with each event as it is recorded: quick, never blocking.
    fn observe(&self, event: &AuditEvent<'_>);
}

/// The tracing target of audit lines.
pub const TARGET: &str = "tollgate::audit";

impl AuditEvent<'_> {
    /// Writes the event's audit line.
    pub fn record(&self) {
        match *self {
            AuditEvent::Authentication {
                listener,
                peer,
                client_id,
                username,
                authenticator,
                client: Some((client_identity, client_authenticator)),
                outcome: Outcome::Allowed,
            } => tracing::info!(
                target: TARGET,
                listener = %Escaped(listener), peer = %peer, client_id = %Escaped(client_id),
                username = %Escaped(username), authenticator = %Escaped(authenticator),
                client_identity = %Escaped(client_identity),
                client_authenticator = %Escaped(client_authenticator),
                outcome = "allow", "authentication"
            ),
            AuditEvent::Authentication {
                listener,
                peer,
                client_id,
                username,
                authenticator,
                outcome,
                ..
            } => match outcome {
                Outcome::Allowed => tracing::info!(
                    target: TARGET,
                    listener = %Escaped(listener), peer = %peer, client_id = %Escaped(client_id),
                    username = %Escaped(username), authenticator = %Escaped(authenticator),
                    outcome = "allow", "authentication"
                ),
                Outcome::Refused { reason, detail } => tracing::info!(
                    target: TARGET,
                    listener = %Escaped(listener), peer = %peer, client_id = %Escaped(client_id),
                    username = %Escaped(username), authenticator = %Escaped(authenticator),
                    outcome = "deny", reason = %reason, detail = %Escaped(detail), "authentication"
                ),
            },
            AuditEvent::ConnectionRefused {
                client_id,
                username,
                cause,
            } => {
                let (client_id, username) = (Escaped(client_id), Escaped(username));
                match cause {
                    ConnectRefusal::Revoked(why) => tracing::info!(
                        target: TARGET, client_id = %client_id, username = %username,
                        outcome = "deny", "connection refused: {}", Escaped(why)
                    ),
                    ConnectRefusal::Banned { kind, target } => tracing::info!(
                        target: TARGET, client_id = %client_id, username = %username,
                        outcome = "deny", ban = %kind, banned = %Escaped(target),
                        "connection refused: banned"
                    ),
                    ConnectRefusal::ClientIdentifier => tracing::info!(
                        target: TARGET, client_id = %client_id, username = %username,
                        outcome = "deny", "client identifier does not match the listener's patterns"
                    ),
                    ConnectRefusal::SessionOwnedByAnother { owner } => tracing::info!(
                        target: TARGET, client_id = %client_id, username = %username,
                        owner = %Escaped(owner.unwrap_or("-")), outcome = "deny",
                        "session belongs to another principal: takeover refused"
                    ),
                }
            }
            AuditEvent::Denied {
                client_id,
                username,
                action,
                topic,
                decision,
            } => tracing::info!(
                target: TARGET,
                client_id = %Escaped(client_id), username = %Escaped(username),
                action = action.as_str(), topic = %Escaped(topic), outcome = "deny",
                decision = %Escaped(decision), "authorization"
            ),
            AuditEvent::Disconnected { client_id, cause } => {
                let client_id = Escaped(client_id);
                match cause {
                    DisconnectCause::CredentialsExpired => tracing::info!(
                        target: TARGET, client_id = %client_id, "credentials expired: disconnected"
                    ),
                    DisconnectCause::Revoked(why) => tracing::info!(
                        target: TARGET, client_id = %client_id, "disconnected: {}", Escaped(why)
                    ),
                    DisconnectCause::Kicked(by) => tracing::info!(
                        target: TARGET, client_id = %client_id, by = %Escaped(by),
                        "kicked by an operator: disconnected"
                    ),
                    DisconnectCause::RecheckRefused(reason) => tracing::info!(
                        target: TARGET, client_id = %client_id, reason = %reason,
                        "re-check refused: disconnected"
                    ),
                    DisconnectCause::ReauthenticationRefused(refusal) => match refusal {
                        ReauthRefusal::Refused(reason) => tracing::info!(
                            target: TARGET, client_id = %client_id, reason = %reason,
                            "re-authentication refused: disconnected"
                        ),
                        ReauthRefusal::AnotherPrincipal => tracing::info!(
                            target: TARGET, client_id = %client_id,
                            "re-authentication as another principal refused: disconnected"
                        ),
                        ReauthRefusal::Revoked(why) => tracing::info!(
                            target: TARGET, client_id = %client_id,
                            "re-authentication refused: {}: disconnected", Escaped(why)
                        ),
                    },
                }
            }
            AuditEvent::Reauthenticated { client_id } => {
                tracing::info!(target: TARGET, client_id = %Escaped(client_id), "re-authenticated")
            }
            AuditEvent::TokenRequest {
                client_id,
                username,
                issuer,
                outcome,
            } => match outcome {
                TokenOutcome::Issued { jti, expires_in } => tracing::info!(
                    target: TARGET,
                    client_id = %Escaped(client_id), username = %Escaped(username),
                    issuer = %Escaped(issuer), jti = jti.unwrap_or("-"), expires_in,
                    outcome = "issued", "token request"
                ),
                TokenOutcome::Refused { reason, detail } => tracing::info!(
                    target: TARGET,
                    client_id = %Escaped(client_id), username = %Escaped(username),
                    issuer = %Escaped(issuer), outcome = "refused", reason,
                    detail = %Escaped(detail), "token request"
                ),
            },
            AuditEvent::RevocationListLoaded { file } => tracing::info!(
                target: TARGET, file = %Escaped(&file.display().to_string()), "revocation list loaded"
            ),
            AuditEvent::ConfigurationReloaded { needs_restart } => tracing::info!(
                target: TARGET, needs_restart = ?needs_restart, "configuration reloaded"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(event: AuditEvent<'_>) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || event.record());
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn every_client_chosen_field_is_escaped() {
        let forged = "x\nFORGED tollgate::audit: outcome=\"allow\"";
        let events = [
            AuditEvent::Denied {
                client_id: forged,
                username: forged,
                action: Action::Publish,
                topic: forged,
                decision: forged,
            },
            AuditEvent::ConnectionRefused {
                client_id: forged,
                username: forged,
                cause: ConnectRefusal::SessionOwnedByAnother {
                    owner: Some(forged),
                },
            },
            AuditEvent::Disconnected {
                client_id: forged,
                cause: DisconnectCause::Revoked(forged),
            },
            AuditEvent::Reauthenticated { client_id: forged },
        ];
        for event in events {
            let text = lines_of(event);
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains(TARGET), "{text}");
            assert!(!text.contains("\nFORGED"), "{text}");
        }
    }

    #[test]
    fn a_denial_names_the_action_topic_and_decision() {
        let text = lines_of(AuditEvent::Denied {
            client_id: "dev-1",
            username: "alice",
            action: Action::Subscribe,
            topic: "a/b",
            decision: "rule 3",
        });
        for part in [
            "client_id=dev-1",
            "username=alice",
            "action=\"subscribe\"",
            "topic=a/b",
            "outcome=\"deny\"",
            "decision=rule 3",
        ] {
            assert!(text.contains(part), "{part} missing: {text}");
        }
    }
}
