//! Audit events and connection events as the feed's JSON objects: a `type`, the time (`at`,
//! Unix milliseconds) and the event's fields, named as in the audit lines.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tollgate_auth::audit::{
    AuditEvent, ConnectRefusal, DisconnectCause, Outcome, ReauthRefusal, TokenOutcome,
};

use super::FeedEvent;
use crate::events::Event;

/// The feed event of an audited decision.
pub fn audit_event(event: &AuditEvent<'_>) -> FeedEvent {
    let (kind, client_id, mut body) = match *event {
        AuditEvent::Authentication {
            listener,
            peer,
            client_id,
            username,
            authenticator,
            client,
            outcome,
        } => {
            let mut body = json!({
                "listener": listener,
                "peer": peer.to_string(),
                "username": username,
                "authenticator": authenticator,
            });
            if let Some((identity, by)) = client {
                body["client_identity"] = json!(identity);
                body["client_authenticator"] = json!(by);
            }
            match outcome {
                Outcome::Allowed => body["outcome"] = json!("allow"),
                Outcome::Refused { reason, detail } => {
                    body["outcome"] = json!("deny");
                    body["reason"] = json!(reason.to_string());
                    body["detail"] = json!(detail);
                }
            }
            ("authentication", Some(client_id), body)
        }
        AuditEvent::ConnectionRefused {
            client_id,
            username,
            cause,
        } => {
            let mut body = json!({ "username": username });
            match cause {
                ConnectRefusal::Revoked(why) => {
                    body["cause"] = json!("revoked");
                    body["detail"] = json!(why);
                }
                ConnectRefusal::ClientIdentifier => body["cause"] = json!("client_identifier"),
                ConnectRefusal::Banned { kind, target } => {
                    body["cause"] = json!("banned");
                    body["ban"] = json!({ "kind": kind, "value": target });
                }
                ConnectRefusal::SessionOwnedByAnother { owner } => {
                    body["cause"] = json!("session_owned_by_another");
                    body["owner"] = json!(owner);
                }
            }
            ("connection_refused", Some(client_id), body)
        }
        AuditEvent::Denied {
            client_id,
            username,
            action,
            topic,
            decision,
        } => (
            "denied",
            Some(client_id),
            json!({
                "username": username,
                "action": action.as_str(),
                "topic": topic,
                "decision": decision,
            }),
        ),
        AuditEvent::Disconnected { client_id, cause } => {
            let (cause, detail) = match cause {
                DisconnectCause::CredentialsExpired => ("credentials_expired", None),
                DisconnectCause::Revoked(why) => ("revoked", Some(why.to_owned())),
                DisconnectCause::RecheckRefused(reason) => {
                    ("recheck_refused", Some(reason.to_string()))
                }
                DisconnectCause::ReauthenticationRefused(refusal) => (
                    "reauthentication_refused",
                    Some(match refusal {
                        ReauthRefusal::Refused(reason) => reason.to_string(),
                        ReauthRefusal::AnotherPrincipal => "another principal".to_owned(),
                        ReauthRefusal::Revoked(why) => why.to_owned(),
                    }),
                ),
                DisconnectCause::Kicked(by) => ("kicked", Some(format!("by {by}"))),
            };
            let kind = if cause == "kicked" {
                "kicked"
            } else {
                "identity_disconnect"
            };
            (
                kind,
                Some(client_id),
                json!({ "cause": cause, "detail": detail }),
            )
        }
        AuditEvent::Reauthenticated { client_id } => {
            ("reauthenticated", Some(client_id), json!({}))
        }
        AuditEvent::TokenRequest {
            client_id,
            username,
            issuer,
            outcome,
        } => {
            let mut body = json!({ "username": username, "issuer": issuer });
            match outcome {
                TokenOutcome::Issued { jti, expires_in } => {
                    body["outcome"] = json!("issued");
                    body["jti"] = json!(jti);
                    body["expires_in"] = json!(expires_in);
                }
                TokenOutcome::Refused { reason, detail } => {
                    body["outcome"] = json!("refused");
                    body["reason"] = json!(reason);
                    body["detail"] = json!(detail);
                }
            }
            ("token_request", Some(client_id), body)
        }
        AuditEvent::RevocationListLoaded { file } => (
            "revocation_list_loaded",
            None,
            json!({ "file": file.display().to_string() }),
        ),
        AuditEvent::ConfigurationReloaded { needs_restart } => (
            "configuration_reloaded",
            None,
            json!({ "needs_restart": needs_restart }),
        ),
    };
    finish(kind, client_id, &mut body)
}

/// The feed event of a connect or disconnect (`None` for the other events).
pub fn connection_event(event: &Event<'_>) -> Option<FeedEvent> {
    let (kind, client_id, mut body) = match *event {
        Event::Connected {
            listener,
            peer,
            client_id,
            username,
            version,
            session_present,
        } => (
            "connected",
            client_id,
            json!({
                "listener": listener,
                "peer": peer.to_string(),
                "username": username,
                "protocol": version.level(),
                "session_present": session_present,
            }),
        ),
        Event::Disconnected {
            client_id,
            reason,
            by_client,
        } => (
            "disconnected",
            client_id,
            json!({ "reason_code": reason.0, "by_client": by_client }),
        ),
        _ => return None,
    };
    Some(finish(kind, Some(client_id), &mut body))
}

/// The feed event an operator's action makes (`ban`, `ban_lifted`, `revocation`, ...).
pub fn operator_event(kind: &'static str, mut body: Value) -> FeedEvent {
    finish(kind, None, &mut body)
}

fn finish(kind: &'static str, client_id: Option<&str>, body: &mut Value) -> FeedEvent {
    body["type"] = json!(kind);
    body["at"] = json!(unix_ms());
    if let Some(client_id) = client_id {
        body["client_id"] = json!(client_id);
    }
    FeedEvent {
        kind,
        client_id: client_id.map(str::to_owned),
        json: body.to_string(),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_auth::audit::Action;

    #[test]
    fn a_denial_is_one_line_of_json_with_the_clients_texts_as_data() {
        let event = audit_event(&AuditEvent::Denied {
            client_id: "c\n1",
            username: "alice",
            action: Action::Publish,
            topic: "a/\"b\"",
            decision: "denied by default",
        });
        assert_eq!(event.kind, "denied");
        assert_eq!(event.client_id.as_deref(), Some("c\n1"));
        assert!(!event.json.contains('\n'), "{}", event.json);
        let value: Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(value["type"], "denied");
        assert_eq!(value["topic"], "a/\"b\"");
        assert_eq!(value["client_id"], "c\n1");
        assert!(value["at"].as_u64().unwrap() > 0);
    }
}
