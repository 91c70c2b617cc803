//! `/api/v1/revocations`: tokens (by `jti`), users and client identifiers revoked at once,
//! as an entry of the revocation file would (connected clients named are disconnected,
//! cached authentications forgotten), kept in the store when persistence is on. The
//! listing shows the file's entries too.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_auth::log::Escaped;
use tollgate_auth::revocation::RevocationKind;

use super::entries::{entry_json, NewEntry};
use super::tokens::TokenHolder;
use super::views::{self, refuse, unix_seconds, Listing};
use super::{announce, durable, AdminState};
use crate::operator::revocations::OperatorRevocation;
use crate::operator::MAX_VALUE_BYTES;

/// The filter and page of `GET /api/v1/revocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevocationQuery {
    /// Only entries of this kind (`jti`, `user`, `client`).
    kind: Option<String>,
    /// Most entries in the page.
    limit: Option<usize>,
    /// The page starts after this key (`source:kind:value`, the last page's `next`).
    after: Option<String>,
}

impl Listing for RevocationQuery {
    fn limit(&self) -> Option<usize> {
        self.limit
    }
}

fn kind_of(word: &str) -> Result<RevocationKind, Box<Response>> {
    RevocationKind::parse(word).ok_or_else(|| {
        Box::new(refuse(
            StatusCode::BAD_REQUEST,
            "kind must be jti, user or client",
        ))
    })
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<RevocationQuery>, QueryRejection>,
) -> Response {
    let (query, limit) = match views::listing(query, state.config.max_page_size) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let wanted = |kind: RevocationKind| query.kind.as_ref().is_none_or(|k| kind.as_str() == k);
    let mut entries: Vec<(String, Value)> = state
        .broker
        .operator_revocations()
        .iter()
        .filter(|r| wanted(r.kind))
        .map(|r| {
            let mut shown = entry_json(r.kind.as_str(), &r.value, &r.entry);
            shown["source"] = json!("api");
            (format!("api:{}:{}", r.kind, r.value), shown)
        })
        .collect();
    let file = state.broker.file_revocations();
    entries.extend(file.entries().filter(|(kind, _, _)| wanted(*kind)).map(
        |(kind, value, until)| {
            let shown = json!({
                "kind": kind.as_str(),
                "value": value,
                "expires_at": until.map(unix_seconds),
                "source": "file",
            });
            (format!("file:{kind}:{value}"), shown)
        },
    ));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    views::paged(
        &entries,
        |(key, _)| key,
        query.after.as_deref(),
        limit,
        |(_, shown)| shown.clone(),
    )
}

/// Revokes at once (answered once it is in the store, if there is one).
pub(super) async fn create(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    body: Result<Json<NewEntry>, JsonRejection>,
) -> Response {
    let new = match NewEntry::read(body) {
        Ok(new) => new,
        Err(refused) => return *refused,
    };
    let kind = match kind_of(&new.kind) {
        Ok(kind) => kind,
        Err(refused) => return *refused,
    };
    if new.value.is_empty() || new.value.len() > MAX_VALUE_BYTES {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a value of 1 to 1024 bytes is needed",
        );
    }
    let revocation = OperatorRevocation {
        kind,
        value: new.value.clone(),
        entry: new.entry(SystemTime::now(), &holder.name),
    };
    let made = state
        .broker
        .revoke(revocation.clone(), state.config.max_revocations);
    durable(&state.broker).await;
    let replaced = match made {
        Ok(replaced) => replaced,
        Err(full) => {
            return refuse(
                StatusCode::CONFLICT,
                &format!(
                    "there are {} revocations already (max_revocations)",
                    full.most
                ),
            )
        }
    };
    state.live.forget_cached();
    tracing::info!(target: "tollgate::audit", kind = kind.as_str(), revoked = %Escaped(&new.value), reason = %Escaped(&new.reason), expires_in = ?new.expires_in, by = %Escaped(&holder.name), "admin: revocation");
    announce(&state.broker, "revocation", &holder.name, || {
        entry_json(kind.as_str(), &revocation.value, &revocation.entry)
    });
    let mut answer = entry_json(kind.as_str(), &revocation.value, &revocation.entry);
    answer["source"] = json!("api");
    answer["replaced"] = json!(replaced);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Withdraws a revocation made through the API (one in the file stays: edit the file).
pub(super) async fn remove(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    Path((kind, value)): Path<(String, String)>,
) -> Response {
    let kind = match kind_of(&kind) {
        Ok(kind) => kind,
        Err(refused) => return *refused,
    };
    let removed = state.broker.unrevoke(kind, &value);
    durable(&state.broker).await;
    if !removed {
        let in_file = state
            .broker
            .file_revocations()
            .entries()
            .any(|(k, v, _)| k == kind && v == value);
        return if in_file {
            refuse(
                StatusCode::CONFLICT,
                "this revocation is in the revocation file: remove it there",
            )
        } else {
            refuse(StatusCode::NOT_FOUND, "no such revocation")
        };
    }
    tracing::info!(target: "tollgate::audit", kind = kind.as_str(), revoked = %Escaped(&value), by = %Escaped(&holder.name), "admin: revocation withdrawn");
    announce(
        &state.broker,
        "revocation_withdrawn",
        &holder.name,
        || json!({ "kind": kind.as_str(), "value": value }),
    );
    StatusCode::NO_CONTENT.into_response()
}
