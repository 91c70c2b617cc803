//! `POST /api/v1/authorize`: explains a decision exactly as the broker makes it, for a
//! connected client (its principal, its listener's authorizers as they are now) or for a
//! principal described in the request (through the same admission path a CONNECT and
//! `tollgate check` take: bans, the revocation list, client identifier patterns, expiry, then
//! the authorizers). Nothing is changed: a read token may ask.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_auth::permissions::{ExplainedRule, Request};
use tollgate_auth::policy::TestIdentity;
use tollgate_auth::{CertificateInfo, Principal};
use tollgate_mqtt::QoS;

use super::views::{self, refuse};
use super::AdminState;
use crate::admission::{self, Admitted, Permissions};
use crate::verdict::{self, Query};

/// What is asked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthorizeRequest {
    /// The client: a connected one, unless `principal` describes it.
    client_id: String,
    /// Who the client is, when it is not (or not taken as) the connected one.
    principal: Option<StatedPrincipal>,
    /// The listener whose authorizers decide (its name or bind address; the connected
    /// client's, else the first).
    listener: Option<String>,
    /// `publish`, `subscribe` or `receive`.
    action: String,
    /// The topic (a filter, to subscribe).
    topic: String,
    /// 0, 1 or 2 (0 unless set).
    #[serde(default)]
    qos: u8,
    /// The publish's retain flag.
    #[serde(default)]
    retain: bool,
    /// A shared subscription (`$share/...`).
    #[serde(default)]
    shared: bool,
}

/// A principal as the request states it (as `tollgate check` takes it on its command line).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatedPrincipal {
    username: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    claims: Option<Value>,
    /// The client certificate's common name.
    certificate_cn: Option<String>,
    /// The address it would connect from (bans by address are checked only with one).
    address: Option<IpAddr>,
}

pub(super) async fn authorize(
    State(state): State<Arc<AdminState>>,
    body: Result<Json<AuthorizeRequest>, JsonRejection>,
) -> Response {
    let asked = match views::json_body(body) {
        Ok(asked) => asked,
        Err(refused) => return *refused,
    };
    let Some(qos) = QoS::from_u8(asked.qos) else {
        return refuse(StatusCode::BAD_REQUEST, "qos must be 0, 1 or 2");
    };
    let request = match asked.action.as_str() {
        "publish" => Request::Publish {
            topic: &asked.topic,
            qos,
            retain: asked.retain,
        },
        "subscribe" => Request::Subscribe {
            filter: &asked.topic,
            qos,
            shared: asked.shared,
        },
        "receive" => Request::Receive {
            topic: &asked.topic,
            qos,
            shared: asked.shared,
        },
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "action must be publish, subscribe or receive",
            )
        }
    };
    let connected = match &asked.principal {
        Some(_) => None,
        None => match state.broker.connected_client(&asked.client_id) {
            Some((client, _)) => Some(client),
            None => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "no client is connected with this identifier (describe it in `principal`)",
                )
            }
        },
    };
    let listener_name = asked
        .listener
        .as_deref()
        .or(connected.as_ref().map(|c| &*c.connection.listener));
    let Some(listener) = state.live.listener(listener_name) else {
        return refuse(StatusCode::BAD_REQUEST, "no listener has this name");
    };

    let (principal, permissions, source) = match asked.principal {
        None => {
            let Some(client) = connected else {
                return refuse(StatusCode::NOT_FOUND, "the client has gone");
            };
            let permissions = admission::permissions_for(&listener, &client.principal);
            (client.principal, permissions, "connected")
        }
        Some(stated) => {
            let identity = TestIdentity {
                client_id: asked.client_id.clone(),
                username: stated.username.clone(),
                roles: stated.roles,
                groups: stated.groups,
                claims: stated.claims,
                cert_cn: stated.certificate_cn.clone(),
            };
            if let Some(ban) = state.broker.ban_of(
                &asked.client_id,
                [stated.username.as_deref(), None],
                stated.address,
            ) {
                return Json(refused(
                    &listener.name,
                    "stated",
                    0x8A,
                    &format!("banned ({} {})", ban.target.kind(), ban.target),
                ))
                .into_response();
            }
            let query = Query {
                client_id: asked.client_id.clone(),
                username: stated.username,
                certificate: stated.certificate_cn.map(|cn| CertificateInfo {
                    common_name: Some(cn),
                    ..CertificateInfo::default()
                }),
                credentials: None,
                stated: identity.principal("the admin API"),
            };
            let verdict = verdict::decide(&listener, &state.broker.revocation_list(), query).await;
            match verdict.outcome {
                Ok(Admitted {
                    principal,
                    permissions,
                }) => (Arc::new(principal), permissions, "stated"),
                Err(refusal) => {
                    return Json(refused(
                        &listener.name,
                        "stated",
                        refusal.reason_code().0,
                        &refusal.to_string(),
                    ))
                    .into_response()
                }
            }
        }
    };
    Json(explained(
        &listener.name,
        source,
        &principal,
        &permissions,
        &request,
    ))
    .into_response()
}

/// The answer for a client the broker would not admit.
fn refused(listener: &str, source: &str, reason_code: u8, why: &str) -> Value {
    json!({
        "listener": listener,
        "source": source,
        "admitted": false,
        "refusal": { "reason_code": reason_code, "why": why },
        "allowed": false,
    })
}

/// The answer for an admitted client: the decision and every rule that had a say.
fn explained(
    listener: &str,
    source: &str,
    principal: &Principal,
    permissions: &Permissions,
    request: &Request<'_>,
) -> Value {
    let mut answer = json!({
        "listener": listener,
        "source": source,
        "admitted": true,
        "principal": views::principal(principal),
        "request": request.to_string(),
    });
    match permissions {
        Permissions::Unrestricted => {
            let sys_write = matches!(request, Request::Publish { topic, .. } if tollgate_mqtt::topic::is_sys(topic));
            answer["allowed"] = json!(!sys_write);
            answer["summary"] = json!(if sys_write {
                "denied: no client writes under $SYS"
            } else {
                "allowed: no authorizer is configured on this listener"
            });
        }
        Permissions::Compiled(compiled) => {
            let explanation = compiled.explain(request);
            let rules = |rules: &[ExplainedRule]| rules.iter().map(rule).collect::<Vec<_>>();
            answer["allowed"] = json!(explanation.decision.allowed);
            answer["summary"] = json!(explanation.summary);
            answer["reason"] = json!(explanation.decision.reason.describe());
            answer["deciding_rule"] = explanation.deciding_rule.as_ref().map_or(Value::Null, rule);
            answer["passed_over"] = json!(rules(&explanation.passed_over));
            answer["later_matches"] = json!(rules(&explanation.later_matches));
            answer["notes"] = compiled
                .notes()
                .iter()
                .map(|n| json!(n.to_string()))
                .collect();
            answer["explanation"] = json!(explanation.to_string());
        }
    }
    answer
}

fn rule(rule: &ExplainedRule) -> Value {
    json!({
        "index": rule.index,
        "effect": rule.effect.to_string(),
        "activity": rule.activity.to_string(),
        "filter": &*rule.filter,
        "template": &*rule.template,
        "origin": rule.origin.to_string(),
        "authorizer": rule.authorizer,
        "text": rule.to_string(),
    })
}
