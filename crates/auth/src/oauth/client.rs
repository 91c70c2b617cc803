//! How the broker calls an OAuth 2.0 endpoint (introspection, token) as a confidential
//! client: its credentials, and the HTTP client with a timeout.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

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
        .map_err(|e| format!("HTTP client: {e}"))
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
