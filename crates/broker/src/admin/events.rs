//! `GET /api/v1/events`: the audit feed as server-sent events (`text/event-stream`), one
//! event per decision, connect, disconnect, kick, ban or revocation, each `event: <type>` with
//! its JSON as `data`. Filters: `type` (a comma-separated list) and `client_id`. A stream
//! that falls behind gets `event: lost` with how many it lost; a comment every 15 s keeps
//! proxies and dead peers honest. At most `max_event_streams` streams at once (503 beyond),
//! each for at most `max_event_stream` (then the client reconnects, as `EventSource` does).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::views::refuse;
use super::{AdminState, LongLived};
use crate::audit_feed::{FeedListener, Received};

/// Every event type the feed sends.
pub const EVENT_TYPES: [&str; 15] = [
    "authentication",
    "connection_refused",
    "connected",
    "disconnected",
    "denied",
    "kicked",
    "identity_disconnect",
    "reauthenticated",
    "token_request",
    "revocation_list_loaded",
    "configuration_reloaded",
    "ban",
    "ban_lifted",
    "revocation",
    "revocation_withdrawn",
];

/// How often an idle stream gets a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The filters of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    /// Only these types (comma-separated).
    #[serde(rename = "type")]
    types: Option<String>,
    /// Only events of this client.
    client_id: Option<String>,
}

/// What one stream lets through.
struct Filter {
    types: Option<Vec<&'static str>>,
    client_id: Option<String>,
}

impl Filter {
    fn passes(&self, kind: &str, client_id: Option<&str>) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(&kind))
            && self
                .client_id
                .as_deref()
                .is_none_or(|wanted| client_id == Some(wanted))
    }
}

pub(super) async fn stream(
    State(state): State<Arc<AdminState>>,
    Extension(long_lived): Extension<LongLived>,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let types = match &query.types {
        None => None,
        Some(list) => {
            let mut types = Vec::new();
            for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                match EVENT_TYPES.iter().find(|t| **t == word) {
                    Some(t) => types.push(*t),
                    None => {
                        return refuse(
                            StatusCode::BAD_REQUEST,
                            &format!(
                                "unknown event type; the types are {}",
                                EVENT_TYPES.join(", ")
                            ),
                        )
                    }
                }
            }
            Some(types)
        }
    };
    let Ok(permit) = Arc::clone(&state.event_streams).try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams are open (max_event_streams)",
        );
    };
    let filter = Filter {
        types,
        client_id: query.client_id,
    };
    let listener = state.broker.hooks.feed().listen();
    let events = stream::unfold(
        (listener, filter, permit),
        |(mut listener, filter, permit): (FeedListener, Filter, OwnedSemaphorePermit)| async move {
            loop {
                let received = tokio::select! {
                    received = listener.next() => received,
                    _ = tokio::time::sleep(KEEP_ALIVE) => {
                        let comment = Event::default().comment("keep-alive");
                        return Some((Ok::<_, Infallible>(comment), (listener, filter, permit)));
                    }
                };
                let event = match received {
                    Received::Event(event) => {
                        if !filter.passes(event.kind, event.client_id.as_deref()) {
                            continue;
                        }
                        Event::default().event(event.kind).data(&event.json)
                    }
                    Received::Lagged(lost) => Event::default()
                        .event("lost")
                        .data(format!("{{\"type\":\"lost\",\"count\":{lost}}}")),
                    Received::Closed => return None,
                };
                return Some((Ok(event), (listener, filter, permit)));
            }
        },
    );
    // This connection may now outlive request_timeout, up to max_event_stream.
    long_lived.0.store(true, Ordering::Relaxed);
    Sse::new(events).into_response()
}
