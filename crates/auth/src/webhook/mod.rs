//! Authentication by an HTTP webhook: the broker POSTs what the client presented as JSON and
//! the service answers allow / deny / next, optionally with attributes, permissions and an
//! expiry (see [`WebhookAnswer`] for the answer's shape).
//!
//! The request:
//!
//! ```json
//! { "client_id": "sensor-7", "username": "alice", "password": "…",
//!   "protocol_version": "5.0", "peer_address": "192.0.2.10", "peer_port": 53122,
//!   "listener": "tls", "authentication_method": null,
//!   "certificate": { "common_name": "sensor-7", "subject_alt_names": [],
//!                    "fingerprint_sha256": "…" } }
//! ```
//!
//! (`password` is left out with `send_password = false`; a password that is not UTF-8 is sent
//! as `password_base64`.) A timeout, a connection failure, a status other than 2xx or an
//! answer that does not parse is a backend failure: the chain fails closed unless the
//! authenticator's `on_error = "next"`.

mod answer;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

pub use answer::WebhookAnswer;

use crate::authentication::{AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest};
use crate::oauth::HttpCaller;
use crate::policy::{ClaimsAuthorizer, ClaimsSettings};
use crate::secret::Secret;
use crate::SetupError;

/// Settings of a webhook authenticator (the `webhook` table of an `[[authenticator]]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL posted to.
    pub url: String,
    /// Seconds the service has to answer.
    #[serde(default = "default_timeout")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub timeout: Duration,
    /// Headers sent with every request (e.g. `Authorization = "Bearer …"`); their values are
    /// never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Whether the password is sent (`true`); off for a service that decides on the
    /// certificate or client identifier alone.
    #[serde(default = "default_true")]
    pub send_password: bool,
    /// Seconds between calls for a connected client (0, the default: only at CONNECT and
    /// re-authentication); an answer other than allow disconnects it (5.0: 0x87).
    #[serde(default)]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub recheck_interval: Duration,
    /// The most bytes read from the service's answer (1 MiB by default); a larger answer is a
    /// backend failure.
    #[serde(default = "crate::oauth::default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// The most calls to the service at once (64 by default); a further authentication waits
    /// for one to end, within the broker's `auth_timeout`.
    #[serde(default = "crate::oauth::default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("send_password", &self.send_password)
            .field("recheck_interval", &self.recheck_interval)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish()
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_true() -> bool {
    true
}

/// The webhook authenticator.
pub struct WebhookAuthenticator {
    name: String,
    url: String,
    headers: reqwest::header::HeaderMap,
    send_password: bool,
    recheck: Option<Duration>,
    http: HttpCaller,
    /// Reads the permissions of an answer (the `acl` claim's shape).
    permissions_parser: ClaimsAuthorizer,
}

impl WebhookAuthenticator {
    /// Builds the authenticator.
    pub fn new(
        name: impl Into<String>,
        config: WebhookConfig,
    ) -> Result<WebhookAuthenticator, SetupError> {
        if !(config.url.starts_with("https://") || config.url.starts_with("http://")) {
            return Err(SetupError::NotHttpUrl {
                key: "url",
                url: config.url.clone(),
            });
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SetupError::HeaderName(name.clone()))?;
            let mut value = reqwest::header::HeaderValue::from_bytes(value.expose())
                .map_err(|_| SetupError::HeaderValue(name.clone()))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        Ok(WebhookAuthenticator {
            name: name.into(),
            url: config.url,
            headers,
            send_password: config.send_password,
            recheck: (!config.recheck_interval.is_zero()).then_some(config.recheck_interval),
            http: HttpCaller::new(
                config.timeout.max(Duration::from_secs(1)),
                config.max_concurrent_requests,
                config.max_response_bytes,
            )?,
            // The default settings have no scope templates, the one thing `new` can refuse.
            permissions_parser: ClaimsAuthorizer::new(ClaimsSettings::default())
                .expect("the default claims settings are valid"),
        })
    }

    /// The JSON body for `request`.
    fn body(&self, request: &ConnectRequest) -> Value {
        let mut body = json!({
            "client_id": request.client_id,
            "username": request.username,
            "protocol_version": match request.protocol_level {
                3 => "3.1",
                4 => "3.1.1",
                _ => "5.0",
            },
            "peer_address": request.peer.ip().to_string(),
            "peer_port": request.peer.port(),
            "listener": &*request.listener,
            "authentication_method": request.authentication_method,
            "certificate": request.certificate.as_ref().map(|c| json!({
                "common_name": c.common_name,
                "subject_alt_names": c.subject_alt_names,
                "fingerprint_sha256": c.fingerprint_sha256,
            })),
        });
        if let (true, Some(password)) = (self.send_password, &request.password) {
            body["password"] = match std::str::from_utf8(password.expose()) {
                Ok(text) => Value::String(text.to_owned()),
                Err(_) => {
                    body["password_base64"] = Value::String(
                        base64::engine::general_purpose::STANDARD.encode(password.expose()),
                    );
                    Value::Null
                }
            };
        }
        body
    }

    async fn call(&self, request: &ConnectRequest) -> Result<AuthOutcome, AuthError> {
        let fail = |e: String| AuthError::new(format!("webhook {}: {e}", self.url));
        let post = self
            .http
            .client()
            .post(&self.url)
            .headers(self.headers.clone())
            .json(&self.body(request));
        let (status, body) = self.http.call(post, &self.url).await.map_err(fail)?;
        if !status.is_success() {
            return Err(fail(format!("HTTP status {status}")));
        }
        let answer: WebhookAnswer =
            serde_json::from_slice(&body).map_err(|e| fail(format!("malformed answer: {e}")))?;
        answer
            .into_outcome(&self.name, &self.permissions_parser, SystemTime::now())
            .map_err(|e| fail(format!("malformed answer: {e}")))
    }
}

impl Authenticator for WebhookAuthenticator {
    fn name(&self) -> &str {
        &self.name
    }

    fn depends_on_peer(&self) -> bool {
        // The webhook is told the client's address and may decide by it.
        true
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(self.call(request))
    }

    fn recheck_interval(&self) -> Option<Duration> {
        self.recheck
    }
}
