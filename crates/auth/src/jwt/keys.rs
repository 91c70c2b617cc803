//! The keys a JWT authenticator verifies signatures with: fixed ones (an HMAC secret, a PEM
//! public key) or a JWKS fetched from a URL or from an issuer's OpenID discovery document.
//!
//! A fetched key set is refreshed at an interval, fetched again when a token names a key id it
//! does not hold (at most one fetch at a time, and not more often than a minimum interval), and
//! kept when the provider cannot be reached: tokens signed with known keys keep working while a
//! provider is down, and unknown keys are refused. Redirects are not followed (a 3xx answer
//! is a failed fetch), and an answer is read up to `max_response_bytes`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};

use crate::oauth::{http_client, read_body};
use crate::SetupError;

/// Which algorithms a key serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// HMAC secrets: HS256/384/512.
    Hmac,
    /// RSA keys: RS* and PS*.
    Rsa,
    /// Elliptic-curve keys: ES256/384.
    Ec,
    /// Edwards-curve keys: EdDSA.
    Ed,
}

impl KeyFamily {
    /// The family an algorithm needs; `None` for one this broker does not accept.
    pub fn of(alg: Algorithm) -> Option<KeyFamily> {
        Some(match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 | Algorithm::ES384 => KeyFamily::Ec,
            Algorithm::EdDSA => KeyFamily::Ed,
            _ => return None,
        })
    }
}

/// One verification key.
#[derive(Clone)]
pub struct VerificationKey {
    /// Its key id, if it has one.
    pub kid: Option<String>,
    /// Which algorithms it serves.
    pub family: KeyFamily,
    /// The key.
    pub key: DecodingKey,
}

/// Why no key could be given for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No key matches the token's key id and algorithm (the token is refused).
    Unknown(String),
    /// The key set could never be fetched (a backend failure: fail closed, logged).
    Unavailable(String),
}

/// How often a fetched key set was fetched (the discovery document and the JWKS, as one
/// fetch) since the authenticator was built, and how many of those fetches failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyFetches {
    /// Fetches tried.
    pub fetched: u64,
    /// Of those, the ones that failed (the previous keys stayed in force).
    pub failed: u64,
}

/// Where fetched keys come from.
#[derive(Debug, Clone)]
pub enum RemoteSource {
    /// A JWKS URL.
    Jwks(String),
    /// An issuer whose discovery document names the JWKS URL.
    Issuer(String),
}

struct Remote {
    source: RemoteSource,
    client: reqwest::Client,
    keys: RwLock<Option<Arc<Vec<VerificationKey>>>>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    min_refetch: Duration,
    max_response_bytes: usize,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// The keys of one authenticator.
pub struct KeyStore {
    fixed: Vec<VerificationKey>,
    remote: Option<Remote>,
}

impl KeyStore {
    /// Fixed keys only.
    pub fn fixed(keys: Vec<VerificationKey>) -> KeyStore {
        KeyStore {
            fixed: keys,
            remote: None,
        }
    }

    /// Keys fetched from `source`, reading at most `max_response_bytes` of each answer (the
    /// discovery document, the JWKS); nothing is fetched until [`KeyStore::refresh`] or the
    /// first token.
    pub fn remote(
        source: RemoteSource,
        min_refetch: Duration,
        max_response_bytes: usize,
    ) -> Result<KeyStore, SetupError> {
        // No redirects, as for every provider the broker calls: a 3xx is a failed fetch.
        let client = http_client(Duration::from_secs(10)).map_err(SetupError::HttpClient)?;
        Ok(KeyStore {
            fixed: Vec::new(),
            remote: Some(Remote {
                source,
                client,
                keys: RwLock::new(None),
                last_fetch: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
                min_refetch,
                max_response_bytes,
                succeeded: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    /// How often the key set was fetched and failed to be; `None` for fixed keys.
    pub fn fetches(&self) -> Option<KeyFetches> {
        self.remote.as_ref().map(|remote| {
            // Each fetch adds to one of the two, so the failures never outnumber the fetches.
            let failed = remote.failed.load(Ordering::Relaxed);
            KeyFetches {
                fetched: failed + remote.succeeded.load(Ordering::Relaxed),
                failed,
            }
        })
    }

    /// The keys that may verify a token with this key id and algorithm.
    pub async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<VerificationKey>, KeyError> {
        let Some(family) = KeyFamily::of(alg) else {
            return Err(KeyError::Unknown(format!(
                "algorithm {alg:?} not supported"
            )));
        };
        let pick = |keys: &[VerificationKey]| -> Vec<VerificationKey> {
            keys.iter()
                .filter(|k| {
                    k.family == family
                        && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
                })
                .cloned()
                .collect()
        };
        let Some(remote) = &self.remote else {
            let keys = pick(&self.fixed);
            return if keys.is_empty() {
                Err(KeyError::Unknown(format!("no {family:?} key for {alg:?}")))
            } else {
                Ok(keys)
            };
        };
        let current = remote.keys.read().clone();
        if let Some(keys) = &current {
            let found = pick(keys);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        // Unknown key id (or nothing fetched yet): fetch again, at most so often.
        let refetch_allowed = remote
            .last_fetch
            .lock()
            .is_none_or(|t| t.elapsed() >= remote.min_refetch);
        if refetch_allowed || current.is_none() {
            if let Err(e) = self.refresh().await {
                if remote.keys.read().is_none() {
                    return Err(KeyError::Unavailable(e));
                }
            }
        }
        match remote.keys.read().clone() {
            Some(keys) => {
                let found = pick(&keys);
                if found.is_empty() {
                    Err(KeyError::Unknown(format!(
                        "no key with id {} for {alg:?}",
                        kid.unwrap_or("(none)")
                    )))
                } else {
                    Ok(found)
                }
            }
            None => Err(KeyError::Unavailable(
                "the key set has not been fetched".into(),
            )),
        }
    }

    /// Fetches the key set now (one fetch at a time; a caller arriving during a fetch waits for
    /// it instead of fetching again). On failure the previous set stays in force.
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let started = Instant::now();
        let _guard = remote.fetching.lock().await;
        if remote.last_fetch.lock().is_some_and(|t| t >= started) {
            return Ok(()); // someone fetched while we waited
        }
        *remote.last_fetch.lock() = Some(Instant::now());
        let result = fetch(&remote.client, &remote.source, remote.max_response_bytes).await;
        match &result {
            Ok(_) => &remote.succeeded,
            Err(_) => &remote.failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(keys) => {
                tracing::info!(source = ?remote.source, keys = keys.len(), "JWKS fetched");
                *remote.keys.write() = Some(Arc::new(keys));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(source = ?remote.source, error = %crate::log::Escaped(&e.to_string()), "JWKS fetch failed; the previous keys stay in force");
                Err(e)
            }
        }
    }

    /// Refreshes the key set every `interval` for as long as the store lives.
    pub fn refresh_every(self: &Arc<Self>, interval: Duration) {
        if self.remote.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                let Some(store) = weak.upgrade() else { return };
                let _ = store.refresh().await;
            }
        });
    }
}

async fn fetch(
    client: &reqwest::Client,
    source: &RemoteSource,
    limit: usize,
) -> Result<Vec<VerificationKey>, String> {
    let url = match source {
        RemoteSource::Jwks(url) => url.clone(),
        RemoteSource::Issuer(issuer) => {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let doc: serde_json::Value = get_json(client, &discovery, limit).await?;
            doc.get("jwks_uri")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("{discovery}: no jwks_uri"))?
                .to_owned()
        }
    };
    let set: JwkSet = serde_json::from_value(get_json(client, &url, limit).await?)
        .map_err(|e| format!("{url}: not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
            AlgorithmParameters::OctetKey(_) => KeyFamily::Hmac,
            _ => {
                tracing::warn!(kid = ?jwk.common.key_id, "key of an unsupported type in JWKS skipped");
                continue;
            }
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => keys.push(VerificationKey {
                kid: jwk.common.key_id.clone(),
                family,
                key,
            }),
            Err(e) => {
                tracing::warn!(kid = ?jwk.common.key_id, error = %e, "unusable key in JWKS skipped")
            }
        }
    }
    Ok(keys)
}

/// A JSON document from `url`, at most `limit` bytes of it.
async fn get_json(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
) -> Result<serde_json::Value, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        // 3xx included: redirects are not followed, and a redirect's body is not the document.
        return Err(format!("{url}: HTTP status {status}"));
    }
    let body = read_body(response, url, limit)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// Reads a PEM public key of any supported family.
pub fn pem_public_key(pem: &[u8]) -> Result<VerificationKey, String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(VerificationKey {
            kid: None,
            family: KeyFamily::Rsa,
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok(VerificationKey {
            kid: None,
            family: KeyFamily::Ec,
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(VerificationKey {
            kid: None,
            family: KeyFamily::Ed,
            key,
        });
    }
    Err("not an RSA, EC or Ed25519 public key in PEM".into())
}
