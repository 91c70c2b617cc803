//! The admin API's routes, and the authentication every request passes first (all but the
//! console's page, script and style sheet, which hold no data).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use tollgate_auth::log::Escaped;

use super::jwt::JwtVerdict;
use super::tokens::{Role, TokenHolder};
use super::views::refuse;
use super::{
    authorize, bans, clients, console, events, metrics, retained, revocations, sessions,
    AdminState, Peer,
};

/// Every route, behind the authentication.
pub(super) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/clients", get(clients::list))
        .route(
            "/api/v1/clients/{client_id}",
            get(clients::show).delete(clients::kick),
        )
        .route("/api/v1/sessions", get(sessions::list))
        .route(
            "/api/v1/sessions/{client_id}",
            get(sessions::show).delete(sessions::end),
        )
        .route("/api/v1/retained", get(retained::list))
        .route("/api/v1/retained/{*topic}", delete(retained::clear))
        .route("/api/v1/bans", get(bans::list).post(bans::create))
        .route("/api/v1/bans/{kind}/{*value}", delete(bans::remove))
        .route(
            "/api/v1/revocations",
            get(revocations::list).post(revocations::create),
        )
        .route(
            "/api/v1/revocations/{kind}/{*value}",
            delete(revocations::remove),
        )
        .route("/api/v1/authentication/cache", delete(forget_cache))
        .route("/api/v1/authorize", post(authorize::authorize))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_request_bytes))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ))
        .merge(console::routes())
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// The public keys of the broker's own token issuers (`[[token_issuer]]` with
/// `source = "broker"`), as a JWKS: what another broker or a service verifies their tokens
/// with. Public keys, so no token is asked.
async fn jwks(State(state): State<Arc<AdminState>>) -> Response {
    let issuers = state.live.token_issuers();
    let mut keys: Vec<_> = issuers.iter().filter_map(|issuer| issuer.jwk()).collect();
    keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        Json(json!({ "keys": keys })),
    )
        .into_response()
}

/// Lets a request through only with a valid bearer token, and a write only with an `admin`
/// one. A wrong token counts against the client's address; a missing one does not (a probe
/// without credentials must not lock operators out of their own machine).
async fn authenticate(
    State(state): State<Arc<AdminState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = request.extensions().get::<Peer>().map(|p| p.0.ip());
    let now = crate::clock::now();
    if let Some(wait) = address.and_then(|a| state.throttle.refused_for(a, now)) {
        return too_many_failures(wait);
    }
    let Some(token) = bearer(request.headers()) else {
        return unauthorized("a bearer token is needed (Authorization: Bearer <token>)");
    };
    let holder = state.tokens.read().holder_of(token).cloned();
    let holder = match (holder, &state.jwt, request.extensions().get::<Peer>()) {
        (Some(holder), _, _) => Some(holder),
        // Not in the file: a JWT from the configured issuer, perhaps.
        (None, Some(jwt), Some(peer)) if token.matches('.').count() == 2 => {
            match jwt.verify(token, peer.0).await {
                JwtVerdict::Holder(holder) => Some(holder),
                JwtVerdict::Refused(why) => {
                    tracing::warn!(peer = %peer.0, why = %Escaped(&why), "admin request refused: JWT not accepted");
                    None
                }
                JwtVerdict::NoRole { name } => {
                    if let Some(address) = address {
                        state.throttle.succeeded(address);
                    }
                    tracing::warn!(token = %Escaped(&name), "admin request refused: the JWT has no admin API role");
                    return refuse(StatusCode::FORBIDDEN, "the token has no admin API role");
                }
                JwtVerdict::Unavailable(why) => {
                    tracing::error!(why = %Escaped(&why), "admin request refused: the JWT issuer's keys cannot be had");
                    return refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the token issuer cannot be reached: try again later",
                    );
                }
            }
        }
        (None, _, _) => None,
    };
    let Some(holder) = holder else {
        if let Some(address) = address {
            state.throttle.failed(address, now);
        }
        tracing::warn!(peer = ?address.map(|a| a.to_string()), path = %Escaped(request.uri().path()), "admin request refused: unknown token");
        return unauthorized("the token is not valid");
    };
    if let Some(address) = address {
        state.throttle.succeeded(address);
    }
    // Asking for an explanation changes nothing, whatever its method.
    let reads = matches!(*request.method(), Method::GET | Method::HEAD)
        || request.uri().path() == "/api/v1/authorize";
    if !reads && holder.role < Role::Admin {
        tracing::warn!(token = %Escaped(&holder.name), method = %request.method(), path = %Escaped(request.uri().path()), "admin request refused: read-only token");
        return refuse(StatusCode::FORBIDDEN, "this token is read-only");
    }
    request.extensions_mut().insert(holder);
    next.run(request).await
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized(message: &str) -> Response {
    let mut response = refuse(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tollgate\""),
    );
    response
}

fn too_many_failures(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed authentications from this address: try again later",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The OpenAPI 3.1 document of every route here (`openapi.json`, kept beside this file; a
/// test checks that each path it names is routed).
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Ready while the broker serves (every listener bound); 503 once it is stopping.
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    if state.broker.stop_signal().is_stopped() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the broker is stopping");
    }
    Json(json!({ "ready": true })).into_response()
}

/// Re-reads what can change in place (password, policy, ACL, revocation and TLS files, the
/// admin tokens) and forgets cached authentications, as SIGHUP's reload of files does.
async fn reload(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
) -> Response {
    tracing::info!(target: "tollgate::audit", by = %Escaped(&holder.name), "admin: reload");
    state.live.reload();
    state.reload_tokens();
    Json(json!({ "reloaded": true })).into_response()
}

/// Forgets every cached authentication and introspection answer: the next CONNECT of each
/// client asks its authenticator again.
async fn forget_cache(
    State(state): State<Arc<AdminState>>,
    Extension(holder): Extension<TokenHolder>,
) -> Response {
    state.live.forget_cached();
    tracing::info!(target: "tollgate::audit", by = %Escaped(&holder.name), "admin: authentication cache forgotten");
    StatusCode::NO_CONTENT.into_response()
}

async fn metrics_text(State(state): State<Arc<AdminState>>) -> Response {
    let text = metrics::encode(&state.broker, &state.live);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_gives_a_token() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  t0k "),
        );
        assert_eq!(bearer(&headers), Some("t0k"));
    }
}
