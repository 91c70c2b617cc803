//! `/api/v1/bans`: clients refused by client identifier, user name or address, listed, made
//! (the clients they name are disconnected at once) and lifted.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tollgate_auth::log::Escaped;

use super::entries::{entry_json, NewEntry};
use super::tokens::TokenHolder;
use super::views::{self, refuse, Listing};
use super::{announce, durable, AdminState};
use crate::operator::bans::{Ban, BanTarget};

/// The filter and page of `GET /api/v1/bans`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BanQuery {
    /// Only bans of this kind (`client`, `user`, `address`).
    kind: Option<String>,
    /// Most bans in the page.
    limit: Option<usize>,
    /// The page starts after this key (`kind:value`, the last page's `next`).
    after: Option<String>,
}

impl Listing for BanQuery {
    fn limit(&self) -> Option<usize> {
        self.limit
    }
}

fn ban_json(ban: &Ban) -> serde_json::Value {
    entry_json(ban.target.kind(), &ban.target.to_string(), &ban.entry)
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<BanQuery>, QueryRejection>,
) -> Response {
    let (query, limit) = match views::listing(query, state.config.max_page_size) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let mut bans: Vec<(String, Ban)> = state
        .broker
        .bans()
        .into_iter()
        .filter(|b| query.kind.as_ref().is_none_or(|k| b.target.kind() == k))
        .map(|b| (format!("{}:{}", b.target.kind(), b.target), b))
        .collect();
    bans.sort_by(|a, b| a.0.cmp(&b.0));
    views::paged(
        &bans,
        |(key, _)| key,
        query.after.as_deref(),
        limit,
        |(_, b)| ban_json(b),
    )
}

/// Makes a ban (answered once it is in the store, if there is one).
pub(super) async fn create(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    body: Result<Json<NewEntry>, JsonRejection>,
) -> Response {
    let new = match NewEntry::read(body) {
        Ok(new) => new,
        Err(refused) => return *refused,
    };
    let target = match BanTarget::parse(&new.kind, &new.value) {
        Ok(target) => target,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let ban = Ban {
        target,
        entry: new.entry(SystemTime::now(), &holder.name),
    };
    let made = state
        .broker
        .ban(ban.clone(), state.config.max_bans, &holder.name);
    durable(&state.broker).await;
    let banned = match made {
        Ok(banned) => banned,
        Err(full) => {
            return refuse(
                StatusCode::CONFLICT,
                &format!("there are {} bans already (max_bans)", full.most),
            )
        }
    };
    tracing::info!(target: "tollgate::audit", kind = ban.target.kind(), banned = %Escaped(&ban.target.to_string()), reason = %Escaped(&ban.entry.reason), expires_in = ?new.expires_in, disconnected = banned.disconnected, by = %Escaped(&holder.name), "admin: ban");
    announce(&state.broker, "ban", &holder.name, || {
        let mut shown = ban_json(&ban);
        shown["disconnected"] = json!(banned.disconnected);
        shown
    });
    let mut answer = ban_json(&ban);
    answer["replaced"] = json!(banned.replaced);
    answer["disconnected"] = json!(banned.disconnected);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Lifts a ban.
pub(super) async fn remove(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    Path((kind, value)): Path<(String, String)>,
) -> Response {
    let target = match BanTarget::parse(&kind, &value) {
        Ok(target) => target,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let removed = state.broker.unban(&target);
    durable(&state.broker).await;
    if !removed {
        return refuse(StatusCode::NOT_FOUND, "no such ban");
    }
    tracing::info!(target: "tollgate::audit", kind = target.kind(), banned = %Escaped(&target.to_string()), by = %Escaped(&holder.name), "admin: ban lifted");
    announce(
        &state.broker,
        "ban_lifted",
        &holder.name,
        || json!({ "kind": target.kind(), "value": target.to_string() }),
    );
    StatusCode::NO_CONTENT.into_response()
}
