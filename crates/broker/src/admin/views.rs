//! The JSON the admin API answers with (clients, sessions, retained messages, principals,
//! errors), and the paging of its listings.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tollgate_auth::{Attribute, NameOrigin, Principal, Source};
use tollgate_mqtt::ProtocolVersion;

use crate::admission::Permissions;
use crate::broker::{ConnectedClient, OfflineSession, Subscriptions};
use crate::message::Message;

/// A protocol version as the API writes it (and as `?protocol=` takes it).
pub fn version_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "3.1",
        ProtocolVersion::V3_1_1 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    }
}

/// A client in a listing.
pub fn client_summary(client: &ConnectedClient, now: Instant) -> Value {
    let c = &client.connection;
    let traffic = c.traffic.read();
    json!({
        "client_id": &*client.client_id,
        "username": client.principal.username,
        "listener": &*c.listener,
        "address": c.peer.to_string(),
        "protocol": version_name(c.version),
        "connected_at": unix_seconds_at(c.connected_at, now),
        "persistent": client.persistent,
        "queued": client.queued,
        "inflight": client.inflight,
        "bytes_in": traffic.bytes_received,
        "bytes_out": traffic.bytes_sent,
        "messages_in": traffic.messages_received,
        "messages_out": traffic.messages_sent,
    })
}

/// The largest payload shown in full (as text, when it is UTF-8).
const SHOWN_PAYLOAD_BYTES: usize = 1024;

/// A retained message: its topic, QoS, size and, when short UTF-8, its payload.
pub fn retained(message: &Message) -> Value {
    let p = &message.publish;
    let text = (p.payload.len() <= SHOWN_PAYLOAD_BYTES)
        .then(|| std::str::from_utf8(&p.payload).ok())
        .flatten();
    json!({
        "topic": p.topic,
        "qos": p.qos as u8,
        "payload_bytes": p.payload.len(),
        "payload": text,
        "content_type": p.properties.content_type,
        "message_expiry_interval": p.properties.message_expiry_interval,
    })
}

/// An offline session with its subscriptions.
pub fn offline_session(session: &OfflineSession, subs: &Subscriptions) -> Value {
    json!({
        "client_id": &*session.client_id,
        "owner": session.owner.as_ref().map(|o| json!({
            "name": o.name,
            "origin": origin(o.origin),
        })),
        "expiry_interval": (session.expiry_interval != u32::MAX).then_some(session.expiry_interval),
        "queued": session.queued,
        "inflight": session.inflight,
        "subscriptions": subscriptions(subs),
    })
}

/// A client with its principal and subscriptions.
pub fn client_detail(client: &ConnectedClient, subs: &Subscriptions, now: Instant) -> Value {
    let mut detail = client_summary(client, now);
    detail["principal"] = principal(&client.principal);
    detail["subscriptions"] = subscriptions(subs);
    detail
}

/// A principal's compiled permissions, in the order they are checked (first match wins),
/// each rule with where it came from, and the default.
pub fn permissions(permissions: &Permissions) -> Value {
    let compiled = match permissions {
        Permissions::Unrestricted => {
            return json!({
                "unrestricted": true,
                "rules": [],
                "default": { "allowed": true, "reason": "no authorizer is configured" },
            })
        }
        Permissions::Compiled(compiled) => compiled,
    };
    let rules: Vec<Value> = compiled
        .rules()
        .iter()
        .enumerate()
        .map(|(index, r)| {
            json!({
                "index": index,
                "effect": r.effect.to_string(),
                "activity": r.activity.to_string(),
                "filter": &*r.filter,
                "template": &*r.template,
                "qos": r.qos.to_string(),
                "retain": r.retain.to_string(),
                "shared_subscriptions": r.shared_subscriptions,
                "origin": r.origin.to_string(),
                "authorizer": compiled.authorizer_name(r.authorizer),
            })
        })
        .collect();
    let default = compiled.default_decision();
    json!({
        "unrestricted": false,
        "rules": rules,
        "default": {
            "allowed": default.allowed,
            "reason": default.reason.describe(),
            "authorizer": default.authorizer.and_then(|i| compiled.authorizer_name(i)),
        },
        "notes": compiled.notes().iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    })
}

fn subscriptions(subs: &Subscriptions) -> Value {
    subs.iter()
        .map(|(filter, s)| {
            json!({
                "filter": filter,
                "qos": s.options.qos as u8,
                "no_local": s.options.no_local,
                "retain_as_published": s.options.retain_as_published,
                "identifier": s.identifier,
            })
        })
        .collect()
}

/// Who a principal is and where each part of it came from. Its token is not kept, so it
/// cannot be shown; its claims are.
pub fn principal(p: &Principal) -> Value {
    json!({
        "client_id": p.client_id,
        "username": p.username,
        "username_origin": origin(p.username_origin),
        "client_identity": p.client_identity,
        "client_identity_origin": origin(p.client_identity_origin),
        "authenticated_by": p.authenticated_by.as_str(),
        "roles": attributes(&p.roles),
        "groups": attributes(&p.groups),
        "expires_at": p.expires_at.map(unix_seconds),
        "claims": p.claims.as_deref(),
        "certificate": p.certificate.as_ref().map(|c| json!({
            "common_name": c.common_name,
            "subject_alt_names": c.subject_alt_names,
            "fingerprint_sha256": c.fingerprint_sha256,
            "issuer": c.issuer,
            "serial": c.serial_hex,
        })),
    })
}

/// An answer with a JSON error body.
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(error(message))).into_response()
}

/// A request's JSON body, or the answer saying what is wrong with it: 413 when it is larger
/// than `max_request_bytes`, 400 otherwise (not JSON, a missing or unknown field, no
/// `Content-Type: application/json`).
pub fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Box<Response>> {
    body.map(|Json(value)| value).map_err(|e| {
        let status = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Box::new(refuse(status, &e.body_text()))
    })
}

/// The query of a listing: what page size it asks for.
pub trait Listing {
    /// The `limit` of the query, if it has one.
    fn limit(&self) -> Option<usize>;
}

/// A listing's query and its page size (100 unless `limit` is set, at most `most`), or the
/// 400 saying what is wrong with them.
pub fn listing<T: Listing>(
    query: Result<Query<T>, QueryRejection>,
    most: usize,
) -> Result<(T, usize), Box<Response>> {
    let bad = |message: &str| Box::new(refuse(StatusCode::BAD_REQUEST, message));
    let Query(query) = query.map_err(|e| bad(&e.body_text()))?;
    let limit = match query.limit() {
        Some(0) => return Err(bad("limit must be at least 1")),
        Some(limit) => limit.min(most),
        None => 100.min(most),
    };
    Ok((query, limit))
}

/// The page of `items` (sorted by `key`) that starts after `after`, at most `limit` long, and
/// the cursor of the next page (`None` on the last).
pub fn page<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
) -> (&'a [T], Option<String>) {
    let start = after.map_or(0, |after| items.partition_point(|item| key(item) <= after));
    let page = &items[start..(start + limit).min(items.len())];
    let next = (start + page.len() < items.len())
        .then(|| page.last().map(|item| key(item).to_owned()))
        .flatten();
    (page, next)
}

/// The answer of a listing: the page of `items` (sorted by `key`) after `after`, at most
/// `limit` long, each shown by `show`: `{"data": [...], "total": N, "next": key | null}`.
pub fn paged<T>(
    items: &[T],
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
    show: impl Fn(&T) -> Value,
) -> Response {
    let (page, next) = page(items, key, after, limit);
    Json(json!({
        "data": page.iter().map(show).collect::<Vec<_>>(),
        "total": items.len(),
        "next": next,
    }))
    .into_response()
}

/// An error answer's body.
pub fn error(message: &str) -> Value {
    json!({ "error": message })
}

fn origin(origin: NameOrigin) -> &'static str {
    match origin {
        NameOrigin::Authenticated => "authenticated",
        NameOrigin::Certificate => "certificate",
        NameOrigin::Unverified => "unverified",
    }
}

fn attributes(attributes: &[Attribute]) -> Value {
    attributes
        .iter()
        .map(|a| json!({ "value": a.value, "source": source(&a.source) }))
        .collect()
}

fn source(source: &Source) -> String {
    match source {
        Source::Connect => "connect".to_owned(),
        Source::Authenticator(name) => format!("authenticator:{name}"),
        Source::Certificate => "certificate".to_owned(),
        Source::Claim(path) => format!("claim:{path}"),
        Source::PolicyFile(path) => format!("policy_file:{path}"),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The wall-clock second of `at`, a time on the broker's clock, given that `now` is now.
fn unix_seconds_at(at: Instant, now: Instant) -> u64 {
    let age = now.saturating_duration_since(at);
    unix_seconds(SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH))
}
