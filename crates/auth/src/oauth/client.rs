//! How the broker calls an OAuth 2.0 endpoint (introspection, token) as a confidential
//! client: its credentials, and the HTTP client with a timeout. Every HTTP call of the crate
//! (JWKS, discovery, introspection, token endpoint, webhook) uses [`http_client`] and reads its
//! answer with [`read_body`], so a provider's answer is size-limited everywhere.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::SetupError;

/// How the broker authenticates to the provider's endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret (`client_secret_basic`, the default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
}

/// The broker's client credentials at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret (none for a public client).
    pub client_secret: Option<Secret>,
    /// How they are sent.
    pub method: ClientAuthMethod,
}

impl ClientCredentials {
    /// A form POST to `url` with `params`, authenticated as this client.
    pub fn post_form(
        &self,
        client: &reqwest::Client,
        url: &str,
        params: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let secret = self
            .client_secret
            .as_ref()
            .map(|s| String::from_utf8_lossy(s.expose()).into_owned());
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let request = client.post(url).header("Accept", "application/json");
        match self.method {
            ClientAuthMethod::Basic => {
                // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
                let id = form_encode(&self.client_id);
                let secret = secret.as_deref().map(form_encode);
                request.basic_auth(id, secret).form(&form)
            }
            ClientAuthMethod::Post => {
                form.push(("client_id", &self.client_id));
                if let Some(secret) = &secret {
                    form.push(("client_secret", secret));
                }
                request.form(&form)
            }
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An HTTP client for calls that must answer within `timeout` (a connection attempt waits
/// for the answer, so a slow provider must not hold it for long).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// The default of `max_response_bytes`: the most bytes read from one answer of an identity
/// provider or webhook (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1_048_576;

/// `max_response_bytes` as serde's default.
pub(crate) fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// Checks a `max_response_bytes` setting (at least one byte).
pub(crate) fn check_max_response_bytes(limit: usize) -> Result<(), SetupError> {
    if limit == 0 {
        return Err(SetupError::NoResponseBytes);
    }
    Ok(())
}

/// The default of `max_concurrent_requests`: the most calls one authenticator makes to its
/// service at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;

/// `max_concurrent_requests` as serde's default.
pub(crate) fn default_max_concurrent_requests() -> usize {
    DEFAULT_MAX_CONCURRENT_REQUESTS
}

/// How an authenticator calls its HTTP service (introspection endpoint, token endpoint,
/// webhook): with [`http_client`], at most `max_concurrent_requests` calls at once, and reading
/// at most `max_response_bytes` of each answer.
pub(crate) struct HttpCaller {
    client: reqwest::Client,
    permits: tokio::sync::Semaphore,
    max_response_bytes: usize,
}

impl HttpCaller {
    /// Checks the settings and builds the client.
    pub(crate) fn new(
        timeout: Duration,
        max_concurrent_requests: usize,
        max_response_bytes: usize,
    ) -> Result<HttpCaller, SetupError> {
        check_max_response_bytes(max_response_bytes)?;
        let most = tokio::sync::Semaphore::MAX_PERMITS;
        if !(1..=most).contains(&max_concurrent_requests) {
            return Err(SetupError::ConcurrentRequestsOutOfRange {
                given: max_concurrent_requests,
                most,
            });
        }
        Ok(HttpCaller {
            client: http_client(timeout).map_err(SetupError::HttpClient)?,
            permits: tokio::sync::Semaphore::new(max_concurrent_requests),
            max_response_bytes,
        })
    }

    /// The client, to build a request with.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` (to `url`) and reads the whole answer: its status and body. The call
    /// first waits for one of the `max_concurrent_requests` permits (the broker's
    /// authentication timeout bounds that wait) and holds it until the body is read; the permit
    /// lives in this future, so a caller that gives up (dropping it) frees it. `Err` when the
    /// service cannot be reached or the answer is too large, with no URL (the caller adds it).
    pub(crate) async fn call(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "no more calls are made".to_owned())?;
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body = read_body(response, url, self.max_response_bytes)
            .await
            .map_err(|e| format!("HTTP status {status}: {e}"))?;
        Ok((status, body))
    }
}

/// Reads the body of `response` (an answer from `url`), at most `limit` bytes of it: refused
/// at once when its `Content-Length` is larger, and as soon as more arrives otherwise (the body
/// is read a chunk at a time, never whole). A refusal is logged with the URL and the limit,
/// never the body, and is an `Err` the caller turns into a backend failure.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    url: &str,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let too_large = || {
        tracing::warn!(
            url,
            max_response_bytes = limit,
            "answer larger than max_response_bytes refused"
        );
        format!("answer larger than max_response_bytes ({limit} bytes)")
    };
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    // The announced length is within the limit: a fair first allocation.
    let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", e.without_url()))?
    {
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_everything_but_unreserved() {
        assert_eq!(form_encode("a b:c/d%e~"), "a+b%3Ac%2Fd%25e%7E");
        assert_eq!(form_encode("tollgate-1.x_*"), "tollgate-1.x_*");
    }
}
