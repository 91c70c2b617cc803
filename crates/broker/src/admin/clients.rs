//! `/api/v1/clients`: the connected clients, listed, shown and kicked.

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
use super::AdminState;
use crate::broker::ConnectedClient;
use crate::network::Network;

/// The filters and page of `GET /api/v1/clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientQuery {
    /// Client identifiers containing this.
    client_id: Option<String>,
    /// This user name exactly.
    user: Option<String>,
    /// This listener.
    listener: Option<String>,
    /// This address (`192.0.2.7`) or network (`192.0.2.0/24`).
    address: Option<String>,
    /// `3.1`, `3.1.1` or `5.0`.
    protocol: Option<String>,
    /// Most clients in the page (100 unless set; at most `max_page_size`).
    limit: Option<usize>,
    /// The page starts after this client identifier (the last page's `next`).
    after: Option<String>,
}

impl Listing for ClientQuery {
    fn limit(&self) -> Option<usize> {
        self.limit
    }
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<ClientQuery>, QueryRejection>,
) -> Response {
    let (query, limit) = match views::listing(query, state.config.max_page_size) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let network = match query.address.as_deref().map(Network::parse) {
        Some(Ok(network)) => Some(network),
        Some(Err(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "address must be an IP address or a network (a.b.c.d/n)",
            )
        }
        None => None,
    };
    if let Some(protocol) = &query.protocol {
        if !["3.1", "3.1.1", "5.0", "5"].contains(&protocol.as_str()) {
            return refuse(
                StatusCode::BAD_REQUEST,
                "protocol must be 3.1, 3.1.1 or 5.0",
            );
        }
    }
    let now = crate::clock::now();
    let wanted = |c: &ConnectedClient| {
        query
            .client_id
            .as_ref()
            .is_none_or(|part| c.client_id.contains(part.as_str()))
            && query
                .user
                .as_ref()
                .is_none_or(|user| c.principal.username.as_deref() == Some(user.as_str()))
            && query
                .listener
                .as_ref()
                .is_none_or(|l| *c.connection.listener == **l)
            && network
                .as_ref()
                .is_none_or(|n| n.contains(c.connection.peer.ip()))
            && query.protocol.as_ref().is_none_or(|p| {
                let name = views::version_name(c.connection.version);
                name == p || (p == "5" && name == "5.0")
            })
    };
    let matching: Vec<_> = state
        .broker
        .connected_clients()
        .into_iter()
        .filter(|c| wanted(c))
        .collect();
    views::paged(
        &matching,
        |c| &*c.client_id,
        query.after.as_deref(),
        limit,
        |c| views::client_summary(c, now),
    )
}

pub(super) async fn show(
    State(state): State<Arc<AdminState>>,
    Path(client_id): Path<String>,
) -> Response {
    match state.broker.connected_client(&client_id) {
        Some((client, subscriptions)) => {
            let mut detail = views::client_detail(&client, &subscriptions, crate::clock::now());
            // Compiled as the connection compiles them when the policy changes.
            if let Some(listener) = state.live.listener(Some(&client.connection.listener)) {
                let permissions = crate::admission::permissions_for(&listener, &client.principal);
                detail["permissions"] = views::permissions(&permissions);
            }
            Json(detail).into_response()
        }
        None => refuse(
            StatusCode::NOT_FOUND,
            "no client is connected with this identifier",
        ),
    }
}

pub(super) async fn kick(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
    Path(client_id): Path<String>,
) -> Response {
    if !state.broker.kick(&client_id, &holder.name) {
        return refuse(
            StatusCode::NOT_FOUND,
            "no client is connected with this identifier",
        );
    }
    tracing::info!(target: "tollgate::audit", client_id = %Escaped(&client_id), by = %Escaped(&holder.name), "admin: kick");
    StatusCode::NO_CONTENT.into_response()
}
