//! `/api/v1/retained`: the retained messages, listed by filter and deleted by topic.

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use tollgate_auth::log::Escaped;

use super::tokens::TokenHolder;
use super::views::{self, refuse, Listing};
use super::{durable, AdminState};

/// The filter and page of `GET /api/v1/retained`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetainedQuery {
    /// A topic filter (`#` unless set).
    filter: Option<String>,
    /// Most messages in the page (100 unless set; at most `max_page_size`).
    limit: Option<usize>,
    /// The page starts after this topic (the last page's `next`).
    after: Option<String>,
}

impl Listing for RetainedQuery {
    fn limit(&self) -> Option<usize> {
        self.limit
    }
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<RetainedQuery>, QueryRejection>,
) -> Response {
    let (query, limit) = match views::listing(query, state.config.max_page_size) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let filter = query.filter.as_deref().unwrap_or("#");
    if !tollgate_mqtt::topic::is_valid_plain_filter(filter) {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("`{}` is not a topic filter", Escaped(filter)),
        );
    }
    let mut matching = Vec::new();
    let _ = state.broker.for_each_retained(filter, |message| {
        matching.push(Arc::clone(message));
        ControlFlow::Continue(())
    });
    matching.sort_by(|a, b| a.publish.topic.cmp(&b.publish.topic));
    views::paged(
        &matching,
        |m| m.publish.topic.as_str(),
        query.after.as_deref(),
        limit,
        |m| views::retained(m),
    )
}

/// Deletes the retained message of a topic; answered once the store (if any) has forgotten
/// it.
pub(super) async fn clear(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    Path(topic): Path<String>,
) -> Response {
    let cleared = state.broker.clear_retained(&topic);
    durable(&state.broker).await;
    if !cleared {
        return refuse(StatusCode::NOT_FOUND, "no retained message has this topic");
    }
    tracing::info!(target: "tollgate::audit", topic = %Escaped(&topic), by = %Escaped(&holder.name), "admin: retained message deleted");
    StatusCode::NO_CONTENT.into_response()
}
