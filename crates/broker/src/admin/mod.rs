//! The admin HTTP listener: a JSON API under `/api/v1/`, Prometheus metrics at `/metrics`,
//! and `/healthz` and `/readyz`, for operators (docs/operations.md).
//!
//! Every request is authenticated with a bearer token from the `[admin] token_file`
//! (`tokens.rs`); failures are counted per address and an address that fails too often is
//! refused for a while (`throttle.rs`). `read` tokens may `GET`; `admin` tokens may do
//! everything. The listener serves at most `max_connections` connections at once, one
//! request per connection, each within `request_timeout`, its head and its body (only bans
//! and revocations take one) each within `max_request_bytes`.
//!
//! This file accepts connections; `routes.rs` holds the routes and the authentication in
//! front of them, `clients.rs`, `sessions.rs`, `retained.rs`, `bans.rs` and
//! `revocations.rs` the endpoints of each collection (`entries.rs` what the last two share),
//! `views.rs` the JSON and paging, `metrics.rs` the OpenMetrics text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::broker::Broker;
use crate::config::AdminConfig;
use crate::live::Live;
use crate::tls::TlsAcceptor;

mod authorize;
mod bans;
mod clients;
mod console;
mod entries;
mod events;
pub mod jwt;
mod metrics;
mod retained;
mod revocations;
mod routes;
mod sessions;
pub mod throttle;
pub mod tokens;
mod views;

use jwt::AdminJwt;
use throttle::AdminThrottle;
use tokens::AdminTokens;

/// What the admin routes share.
pub struct AdminState {
    broker: Arc<Broker>,
    live: Arc<Live>,
    config: AdminConfig,
    tokens: RwLock<Arc<AdminTokens>>,
    throttle: AdminThrottle,
    /// Event streams open (at most `max_event_streams`).
    event_streams: Arc<Semaphore>,
    /// TLS, when `[admin] tls` is set.
    tls: Option<Arc<TlsAcceptor>>,
    /// JWT admin tokens, when `[admin] jwt` is set.
    jwt: Option<Arc<AdminJwt>>,
}

impl AdminState {
    /// The admin API of `broker` (and what changes while it runs, `live`), letting in the
    /// holders of `tokens`.
    pub fn new(
        broker: Arc<Broker>,
        live: Arc<Live>,
        config: AdminConfig,
        tokens: AdminTokens,
        tls: Option<Arc<TlsAcceptor>>,
        jwt: Option<Arc<AdminJwt>>,
    ) -> AdminState {
        AdminState {
            throttle: AdminThrottle::new(config.max_failures, config.ban),
            event_streams: Arc::new(Semaphore::new(config.max_event_streams)),
            tls,
            jwt,
            broker,
            live,
            config,
            tokens: RwLock::new(Arc::new(tokens)),
        }
    }

    /// Reads the token file again (and the TLS certificate, key, CA bundle and CRLs, when
    /// TLS is on); a file with an error changes nothing and is logged with its line.
    pub fn reload_tokens(&self) {
        if let Some(tls) = &self.tls {
            if let Err(e) = tls.reload() {
                tracing::error!("admin TLS files kept as they were: {e}");
            }
        }
        let Some(path) = &self.config.token_file else {
            return;
        };
        match AdminTokens::load(path) {
            Ok(tokens) => {
                tracing::info!(file = %path.display(), tokens = tokens.len(), "admin tokens loaded");
                *self.tokens.write() = Arc::new(tokens);
            }
            Err(e) => tracing::error!("admin tokens kept as they were: {e}"),
        }
    }
}

/// Waits until what this thread just wrote to the store is durable, so that an operator's
/// change is answered once it is kept. Called right after the change, before any other
/// await: the store's tickets are per thread.
async fn durable(broker: &Broker) {
    let Some(ticket) = crate::store::take_ticket() else {
        return;
    };
    let Some(store) = broker.store() else {
        return;
    };
    let mut watch = store.watch_durable();
    let _ = watch.wait_for(|durable| *durable >= ticket).await;
}

/// Tells the audit feed (event streams, the audit file) of an operator's action, `by` the
/// named admin token.
fn announce(
    broker: &Broker,
    kind: &'static str,
    by: &str,
    body: impl FnOnce() -> serde_json::Value,
) {
    let feed = broker.hooks.feed();
    if feed.wanted() {
        let mut body = body();
        body["by"] = serde_json::json!(by);
        feed.publish(crate::audit_feed::json::operator_event(kind, body));
    }
}

/// The client's address, as a request extension.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// Set by a handler whose answer streams (the event stream): its connection may last
/// `max_event_stream` instead of `request_timeout`. A request extension.
#[derive(Debug, Clone, Default)]
struct LongLived(Arc<AtomicBool>);

/// Serves the admin API on `listener` until `shutdown` says stop.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = routes::router(Arc::clone(&state));
    let permits = Arc::new(Semaphore::new(state.config.max_connections));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let timeout = state.config.request_timeout;
        let stream_timeout = state.config.max_event_stream;
        let buffer = state.config.max_request_bytes;
        let long_lived = LongLived::default();
        let flag = Arc::clone(&long_lived.0);
        let tls = state.tls.as_ref().map(|tls| tls.server_config());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    request.extensions_mut().insert(long_lived.clone());
                    router.clone().oneshot(request)
                });
            let limits = ConnectionLimits {
                timeout,
                stream_timeout,
                buffer,
                flag,
            };
            match tls {
                None => serve_one(TokioIo::new(stream), service, &limits, peer).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_one(TokioIo::new(tls_stream), service, &limits, peer).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "admin TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "admin TLS handshake took too long")
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

/// How long one admin connection may take, and its buffer.
struct ConnectionLimits {
    timeout: std::time::Duration,
    stream_timeout: std::time::Duration,
    buffer: usize,
    /// Set once the request turns out to be an event stream.
    flag: Arc<AtomicBool>,
}

/// Serves the one request of a connection (plain or TLS) within its limits.
async fn serve_one<I, S>(io: I, service: S, limits: &ConnectionLimits, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.timeout)
        .max_buf_size(limits.buffer)
        .keep_alive(false)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut ended = tokio::time::timeout(limits.timeout, &mut connection).await;
    if ended.is_err() && limits.flag.load(Ordering::Relaxed) {
        let rest = limits.stream_timeout.saturating_sub(limits.timeout);
        ended = tokio::time::timeout(rest, &mut connection).await;
    }
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "admin connection failed"),
        Err(_) => tracing::debug!(peer = %peer, "admin request took too long: closed"),
    }
}
