//! `/api/v1/sessions`: the sessions no client is connected to (persistent sessions waiting
//! for their client), listed, shown and ended.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use tollgate_auth::log::Escaped;

use super::tokens::TokenHolder;
use super::views::{self, refuse, Listing};
use super::{durable, AdminState};
use crate::broker::EndSession;

/// The page of `GET /api/v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionQuery {
    /// Client identifiers containing this.
    client_id: Option<String>,
    /// Most sessions in the page (100 unless set; at most `max_page_size`).
    limit: Option<usize>,
    /// The page starts after this client identifier (the last page's `next`).
    after: Option<String>,
}

impl Listing for SessionQuery {
    fn limit(&self) -> Option<usize> {
        self.limit
    }
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Response {
    let (query, limit) = match views::listing(query, state.config.max_page_size) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let matching: Vec<_> = state
        .broker
        .offline_sessions()
        .into_iter()
        .filter(|(s, _)| {
            query
                .client_id
                .as_ref()
                .is_none_or(|part| s.client_id.contains(part.as_str()))
        })
        .collect();
    views::paged(
        &matching,
        |(s, _)| &*s.client_id,
        query.after.as_deref(),
        limit,
        |(s, subs)| views::offline_session(s, subs),
    )
}

pub(super) async fn show(
    State(state): State<Arc<AdminState>>,
    Path(client_id): Path<String>,
) -> Response {
    let found = state
        .broker
        .offline_sessions()
        .into_iter()
        .find(|(s, _)| *s.client_id == *client_id);
    match found {
        Some((session, subscriptions)) => {
            Json(views::offline_session(&session, &subscriptions)).into_response()
        }
        None => refuse(
            StatusCode::NOT_FOUND,
            "no offline session has this identifier",
        ),
    }
}

/// Ends an offline session; answered once the store (if any) has forgotten it.
pub(super) async fn end(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    Path(client_id): Path<String>,
) -> Response {
    let outcome = state.broker.end_offline_session(&client_id);
    durable(&state.broker).await;
    match outcome {
        EndSession::Ended => {
            tracing::info!(target: "tollgate::audit", client_id = %Escaped(&client_id), by = %Escaped(&holder.name), "admin: session ended");
            StatusCode::NO_CONTENT.into_response()
        }
        EndSession::Connected => refuse(
            StatusCode::CONFLICT,
            "a client is connected to this session: kick it (DELETE /api/v1/clients/{id}) first",
        ),
        EndSession::Missing => refuse(StatusCode::NOT_FOUND, "no session has this identifier"),
    }
}
