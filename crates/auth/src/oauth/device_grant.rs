//! The OAuth 2.0 device authorization grant (RFC 8628), with the broker as the provider's
//! confidential client on behalf of a device that speaks only MQTT (seed 004): the device
//! authorization request, the token endpoint polled with the device code, the access token
//! verified as a JWT, and the refresh token grant (RFC 6749 §6) to renew it.
//!
//! This module makes the calls and says what each answer means; when to call is the
//! broker's (the connection's timers), so the waits between polls are never a sleeping task.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::client::{ClientAuthMethod, ClientCredentials, HttpCaller};
use crate::authentication::{AuthOutcome, ConnectRequest, Identity};
use crate::jwt::{JwtAuthenticator, JwtConfig};
use crate::secret::Secret;
use crate::SetupError;

/// The grant type of the device code at the token endpoint (RFC 8628 §3.4).
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The longest a field of the provider's answer that goes to the device may be (a user code,
/// a verification URI): larger, the answer is the provider failing.
const MAX_FIELD_BYTES: usize = 2048;

/// Settings of the provider side of a device grant.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGrantConfig {
    /// The provider's issuer: its discovery document names the device authorization and
    /// token endpoints (unless they are given).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The device authorization endpoint (RFC 8628 §3.1), when not discovered.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// The token endpoint, when not discovered.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The broker's client id at the provider.
    pub client_id: String,
    /// Its secret (none for a public client).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// How the broker authenticates (`basic`, the default, or `post`).
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// The scope asked for (`openid offline_access` for a refresh token, typically).
    #[serde(default)]
    pub scope: Option<String>,
    /// More form parameters of the device authorization request (`audience`, `resource`).
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    /// Seconds a call to the provider may take (5).
    #[serde(default = "default_timeout")]
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub timeout: Duration,
    /// The most bytes read from an answer (64 KiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Calls to the provider at once, for every device (16); more wait.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// How the access token is verified: a complete `jwt` table.
    pub verify: JwtConfig,
}

impl fmt::Debug for DeviceGrantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceGrantConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_response_bytes() -> usize {
    64 * 1024
}

fn default_max_concurrent_requests() -> usize {
    16
}

/// What the device authorization endpoint gave (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    /// The device code the broker polls with (never sent to the device, never logged).
    pub device_code: Secret,
    /// The code the user types.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the code in it (for a QR code), if the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes are good for.
    pub expires_in: u64,
    /// Least seconds between polls (5 when the provider says none).
    pub interval: u64,
}

/// Tokens granted, their access token verified.
#[derive(Debug, Clone)]
pub struct GrantedTokens {
    /// Who the access token says the user is.
    pub identity: Identity,
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, if the provider gave one.
    pub refresh_token: Option<Secret>,
    /// Seconds the access token lives, if the answer says.
    pub expires_in: Option<u64>,
}

/// What one poll of the token endpoint (or a refresh) answered.
#[derive(Debug, Clone)]
pub enum TokenAnswer {
    /// `authorization_pending`: the user has not approved yet.
    Pending,
    /// `slow_down`: poll 5 seconds less often.
    SlowDown,
    /// `access_denied`: the user said no.
    Denied,
    /// `expired_token`: the device code ran out.
    Expired,
    /// Another refusal (`invalid_grant`, a token that does not verify), with its detail.
    Refused(String),
    /// Granted.
    Granted(Box<GrantedTokens>),
}

/// The endpoints, discovered once.
#[derive(Debug, Clone)]
struct Endpoints {
    device_authorization: String,
    token: String,
}

/// The broker as the provider's client for the device grant.
pub struct DeviceGrantClient {
    configured: Option<Endpoints>,
    issuer: Option<String>,
    discovered: tokio::sync::OnceCell<Endpoints>,
    credentials: ClientCredentials,
    params: Vec<(String, String)>,
    http: HttpCaller,
    verifier: JwtAuthenticator,
}

impl DeviceGrantClient {
    /// The client `config` describes (`name` names its verifier in audit lines). Must run
    /// inside a tokio runtime when the verifier fetches keys.
    pub fn new(name: &str, config: DeviceGrantConfig) -> Result<DeviceGrantClient, SetupError> {
        let url = |key: &'static str, value: &Option<String>| -> Result<(), SetupError> {
            match value {
                Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                    Err(SetupError::NotHttpUrl {
                        key,
                        url: url.clone(),
                    })
                }
                _ => Ok(()),
            }
        };
        url("issuer", &config.issuer)?;
        url(
            "device_authorization_endpoint",
            &config.device_authorization_endpoint,
        )?;
        url("token_endpoint", &config.token_endpoint)?;
        let configured = match (
            &config.device_authorization_endpoint,
            &config.token_endpoint,
        ) {
            (Some(device), Some(token)) => Some(Endpoints {
                device_authorization: device.clone(),
                token: token.clone(),
            }),
            _ if config.issuer.is_none() => return Err(SetupError::NoEndpoint),
            _ => None,
        };
        let mut params = Vec::new();
        if let Some(scope) = &config.scope {
            params.push(("scope".to_owned(), scope.clone()));
        }
        params.extend(config.extra_params.clone());
        let verifier = JwtAuthenticator::new(name, config.verify)
            .map_err(|e| SetupError::Verify(Box::new(e)))?;
        Ok(DeviceGrantClient {
            configured,
            issuer: config.issuer,
            discovered: tokio::sync::OnceCell::new(),
            credentials: ClientCredentials {
                client_id: config.client_id,
                client_secret: config.client_secret,
                method: config.client_auth,
            },
            params,
            http: HttpCaller::new(
                config.timeout.max(Duration::from_secs(1)),
                config.max_concurrent_requests,
                config.max_response_bytes,
            )?,
            verifier,
        })
    }

    /// The endpoints: configured, or from the issuer's discovery document (fetched once; a
    /// failed fetch is tried again at the next call).
    async fn endpoints(&self) -> Result<Endpoints, String> {
        if let Some(endpoints) = &self.configured {
            return Ok(endpoints.clone());
        }
        let issuer = self.issuer.as_deref().unwrap_or_default();
        self.discovered
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let request = self
                    .http
                    .client()
                    .get(&url)
                    .header("Accept", "application/json");
                let (status, body) = self
                    .http
                    .call(request, &url)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                if !status.is_success() {
                    return Err(format!("{url}: HTTP status {status}"));
                }
                let doc: Value =
                    serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
                let field = |name: &str| {
                    doc.get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{url}: no {name}"))
                };
                Ok(Endpoints {
                    device_authorization: field("device_authorization_endpoint")?,
                    token: field("token_endpoint")?,
                })
            })
            .await
            .cloned()
    }

    /// Posts `form` to `url` as the broker's client: the status and the JSON answer (`Err`:
    /// unreachable, too large, not JSON).
    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Value), String> {
        let request = self.credentials.post_form(self.http.client(), url, form);
        let (status, body) = self
            .http
            .call(request, url)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let json = serde_json::from_slice(&body)
            .map_err(|_| format!("{url}: HTTP status {status}, not JSON"))?;
        Ok((status.as_u16(), json))
    }

    /// Asks the device authorization endpoint for a device code and a user code.
    pub async fn authorize(&self) -> Result<DeviceAuthorization, String> {
        let endpoints = self.endpoints().await?;
        let url = &endpoints.device_authorization;
        let form: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, answer) = self.post(url, &form).await?;
        if !(200..300).contains(&status) {
            let code = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            return Err(format!("{url}: HTTP status {status} ({code})"));
        }
        let text = |name: &str| -> Result<Option<String>, String> {
            match answer.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= MAX_FIELD_BYTES => Ok(Some(s.clone())),
                Some(_) => Err(format!(
                    "{url}: {name} is not a string of at most {MAX_FIELD_BYTES} bytes"
                )),
            }
        };
        let required = |name: &str| text(name)?.ok_or_else(|| format!("{url}: no {name}"));
        let seconds = |name: &str| answer.get(name).and_then(Value::as_u64);
        Ok(DeviceAuthorization {
            device_code: Secret::new(required("device_code")?),
            user_code: required("user_code")?,
            verification_uri: required("verification_uri")?,
            verification_uri_complete: text("verification_uri_complete")?,
            expires_in: seconds("expires_in").ok_or_else(|| format!("{url}: no expires_in"))?,
            interval: seconds("interval").unwrap_or(5),
        })
    }

    /// Polls the token endpoint with `device_code`, for the device whose connection is
    /// `request` (its client identifier, for a token bound to it).
    pub async fn poll(
        &self,
        device_code: &Secret,
        request: &ConnectRequest,
    ) -> Result<TokenAnswer, String> {
        let code = String::from_utf8_lossy(device_code.expose()).into_owned();
        self.token_request(
            &[("grant_type", DEVICE_CODE_GRANT), ("device_code", &code)],
            request,
        )
        .await
    }

    /// Renews the tokens with `refresh_token` (RFC 6749 §6).
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        request: &ConnectRequest,
    ) -> Result<TokenAnswer, String> {
        let token = String::from_utf8_lossy(refresh_token.expose()).into_owned();
        self.token_request(
            &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            request,
        )
        .await
    }

    async fn token_request(
        &self,
        form: &[(&str, &str)],
        request: &ConnectRequest,
    ) -> Result<TokenAnswer, String> {
        let endpoints = self.endpoints().await?;
        let url = &endpoints.token;
        let (status, answer) = self.post(url, form).await?;
        let field = |name: &str| answer.get(name).and_then(Value::as_str);
        if status == 400 || status == 401 || status == 403 {
            return Ok(match field("error") {
                Some("authorization_pending") => TokenAnswer::Pending,
                Some("slow_down") => TokenAnswer::SlowDown,
                Some("access_denied") => TokenAnswer::Denied,
                Some("expired_token") => TokenAnswer::Expired,
                Some(
                    code @ ("invalid_client" | "unauthorized_client" | "unsupported_grant_type"),
                ) => return Err(format!("{url}: the provider refused the broker: {code}")),
                Some(code) => TokenAnswer::Refused(code.to_owned()),
                None => return Err(format!("{url}: HTTP status {status} without an error code")),
            });
        }
        if !(200..300).contains(&status) {
            return Err(format!("{url}: HTTP status {status}"));
        }
        let Some(access_token) = field("access_token") else {
            return Err(format!("{url}: answer has no access_token"));
        };
        match self.verifier.verify(request, access_token).await {
            Ok(AuthOutcome::Allow(identity)) => Ok(TokenAnswer::Granted(Box::new(GrantedTokens {
                identity,
                access_token: Secret::new(access_token),
                refresh_token: field("refresh_token").map(Secret::new),
                expires_in: answer.get("expires_in").and_then(Value::as_u64),
            }))),
            Ok(AuthOutcome::Deny { detail, .. }) => Ok(TokenAnswer::Refused(format!(
                "the provider's token: {detail}"
            ))),
            Ok(AuthOutcome::Next | AuthOutcome::Continue(_)) => Ok(TokenAnswer::Refused(
                "the provider's token: not a JWT".into(),
            )),
            Err(e) => Err(e.message),
        }
    }
}
