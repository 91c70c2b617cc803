//! The JWT authenticator with keys generated at test time and a JWKS served from a local HTTP
//! server: every algorithm, each refused-token case, key rotation, a provider that goes down,
//! OpenID discovery, and the mapping of claims to an identity.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::http_service::{padded, HttpService, Reply};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_auth::authentication::{AuthOutcome, Authenticator, ConnectRequest, DenyReason};
use tollgate_auth::jwt::{unix_now, JwtAuthenticator, JwtConfig, TokenClaimsConfig, TokenLocation};
use tollgate_auth::{Secret, SetupError};

/// A signing key and what verifies it.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    public_pem: Option<String>,
    kid: String,
}

fn signer(alg: Algorithm, kid: &str) -> Signer {
    use rcgen::{KeyPair, RsaKeySize};
    let rsa = |sig| KeyPair::generate_rsa_for(sig, RsaKeySize::_2048).unwrap();
    let (key, public_pem) = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => (
            EncodingKey::from_secret(b"shared-secret-of-32-bytes-length"),
            None,
        ),
        Algorithm::RS256 | Algorithm::PS256 => {
            let k = rsa(&rcgen::PKCS_RSA_SHA256);
            (
                EncodingKey::from_rsa_pem(k.serialize_pem().as_bytes()).unwrap(),
                Some(k.public_key_pem()),
            )
        }
        Algorithm::RS384 | Algorithm::PS384 => {
            let k = rsa(&rcgen::PKCS_RSA_SHA384);
            (
                EncodingKey::from_rsa_pem(k.serialize_pem().as_bytes()).unwrap(),
                Some(k.public_key_pem()),
            )
        }
        Algorithm::RS512 | Algorithm::PS512 => {
            let k = rsa(&rcgen::PKCS_RSA_SHA512);
            (
                EncodingKey::from_rsa_pem(k.serialize_pem().as_bytes()).unwrap(),
                Some(k.public_key_pem()),
            )
        }
        Algorithm::ES256 => {
            let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            (
                EncodingKey::from_ec_pem(k.serialize_pem().as_bytes()).unwrap(),
                Some(k.public_key_pem()),
            )
        }
        Algorithm::ES384 => {
            let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
            (
                EncodingKey::from_ec_pem(k.serialize_pem().as_bytes()).unwrap(),
                Some(k.public_key_pem()),
            )
        }
        Algorithm::EdDSA => {
            let k = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            (
                EncodingKey::from_ed_pem(k.serialize_pem().as_bytes()).unwrap(),
                Some(k.public_key_pem()),
            )
        }
        other => panic!("no test key for {other:?}"),
    };
    Signer {
        alg,
        key,
        public_pem,
        kid: kid.into(),
    }
}

impl Signer {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.key).unwrap()
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": unix_now() + 600, "iat": unix_now() })
}

fn request_with_password(token: &str) -> ConnectRequest {
    let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "device-1");
    r.username = Some("JWT".into());
    r.password = Some(Secret::new(token));
    r
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn config(alg: &str) -> JwtConfig {
    JwtConfig {
        algorithms: vec![alg.into()],
        ..JwtConfig::default()
    }
}

async fn outcome(auth: &JwtAuthenticator, request: &ConnectRequest) -> AuthOutcome {
    auth.authenticate(request).await.expect("no backend error")
}

fn assert_denied(outcome: AuthOutcome, needle: &str) {
    match outcome {
        AuthOutcome::Deny {
            reason: DenyReason::BadCredentials,
            detail,
        } => assert!(
            detail.contains(needle),
            "detail `{detail}` lacks `{needle}`"
        ),
        other => panic!("expected a denial mentioning `{needle}`, got {other:?}"),
    }
}

#[tokio::test]
async fn every_algorithm_verifies_with_its_key() {
    for (alg, name) in [
        (Algorithm::HS256, "HS256"),
        (Algorithm::HS384, "HS384"),
        (Algorithm::HS512, "HS512"),
        (Algorithm::RS256, "RS256"),
        (Algorithm::RS384, "RS384"),
        (Algorithm::RS512, "RS512"),
        (Algorithm::PS256, "PS256"),
        (Algorithm::PS384, "PS384"),
        (Algorithm::PS512, "PS512"),
        (Algorithm::ES256, "ES256"),
        (Algorithm::ES384, "ES384"),
        (Algorithm::EdDSA, "EdDSA"),
    ] {
        let s = signer(alg, "k1");
        let mut c = config(name);
        match &s.public_pem {
            None => c.secret = Some("shared-secret-of-32-bytes-length".into()),
            Some(pem) => c.public_key = Some(temp_file(&format!("{name}.pem"), pem)),
        }
        let auth = JwtAuthenticator::new("jwt", c).unwrap();
        match outcome(&auth, &request_with_password(&s.sign(&claims("dev-1")))).await {
            AuthOutcome::Allow(identity) => {
                assert_eq!(identity.username.as_deref(), Some("dev-1"), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn auth0_style_base64_secret_with_jwt_user_name_marker() {
    let s = signer(Algorithm::HS256, "k");
    use base64::Engine;
    let c = JwtConfig {
        algorithms: vec!["HS256".into()],
        secret_base64: Some(
            base64::engine::general_purpose::STANDARD.encode("shared-secret-of-32-bytes-length"),
        ),
        claims: TokenClaimsConfig {
            username_marker: Some("JWT".into()),
            ..TokenClaimsConfig::default()
        },
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("auth0", c).unwrap();
    let token = s.sign(&claims("auth0|123"));
    assert!(matches!(
        outcome(&auth, &request_with_password(&token)).await,
        AuthOutcome::Allow(_)
    ));
    let mut other_user = request_with_password(&token);
    other_user.username = Some("alice".into());
    assert_eq!(
        outcome(&auth, &other_user).await,
        AuthOutcome::Next,
        "without the marker the token is not this authenticator's"
    );
    assert_eq!(
        outcome(&auth, &request_with_password("not-a-jwt-password")).await,
        AuthOutcome::Next
    );
}

#[tokio::test]
async fn refused_tokens() {
    let rs = signer(Algorithm::RS256, "k1");
    let pem = temp_file("refused.pem", rs.public_pem.as_ref().unwrap());
    let c = JwtConfig {
        algorithms: vec!["RS256".into()],
        public_key: Some(pem.clone()),
        issuer: Some("https://idp.example".into()),
        audience: vec!["mqtt".into()],
        leeway: Duration::from_secs(5),
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("jwt", c).unwrap();
    let good =
        json!({ "sub": "d", "exp": unix_now() + 600, "iss": "https://idp.example", "aud": "mqtt" });
    assert!(matches!(
        outcome(&auth, &request_with_password(&rs.sign(&good))).await,
        AuthOutcome::Allow(_)
    ));

    let mut expired = good.clone();
    expired["exp"] = json!(unix_now() - 60);
    assert_denied(
        outcome(&auth, &request_with_password(&rs.sign(&expired))).await,
        "expired",
    );
    let mut early = good.clone();
    early["nbf"] = json!(unix_now() + 600);
    assert_denied(
        outcome(&auth, &request_with_password(&rs.sign(&early))).await,
        "not yet valid",
    );
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    assert_denied(
        outcome(&auth, &request_with_password(&rs.sign(&wrong_iss))).await,
        "issuer",
    );
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_denied(
        outcome(&auth, &request_with_password(&rs.sign(&no_iss))).await,
        "iss",
    );
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("other");
    assert_denied(
        outcome(&auth, &request_with_password(&rs.sign(&wrong_aud))).await,
        "audience",
    );

    // Signed by another key.
    let stranger = signer(Algorithm::RS256, "k1");
    assert_denied(
        outcome(&auth, &request_with_password(&stranger.sign(&good))).await,
        "signature",
    );
    // alg: none, unsigned.
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    assert!(
        matches!(
            outcome(&auth, &request_with_password(&none)).await,
            AuthOutcome::Deny { .. }
        ),
        "alg none is refused"
    );
    // Algorithm confusion: HS256 signed with the public key's PEM as the HMAC secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let confused = encode(
        &header,
        &good,
        &EncodingKey::from_secret(rs.public_pem.as_ref().unwrap().as_bytes()),
    )
    .unwrap();
    assert_denied(
        outcome(&auth, &request_with_password(&confused)).await,
        "not accepted",
    );
    // A key of the wrong type for the algorithm: an ES256 token against an RSA key.
    let c = JwtConfig {
        algorithms: vec!["ES256".into()],
        public_key: Some(pem),
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("jwt", c).unwrap();
    let es = signer(Algorithm::ES256, "k1");
    assert!(matches!(
        outcome(&auth, &request_with_password(&es.sign(&claims("d")))).await,
        AuthOutcome::Deny { .. }
    ));
    // HMAC next to public keys is refused at configuration time.
    let c = JwtConfig {
        algorithms: vec!["RS256".into(), "HS256".into()],
        public_key: Some(temp_file("mixed.pem", rs.public_pem.as_ref().unwrap())),
        ..JwtConfig::default()
    };
    assert!(JwtAuthenticator::new("jwt", c).is_err());
}

/// A JWKS and OpenID discovery server on loopback whose keys can change and which can go down.
struct Provider {
    addr: SocketAddr,
    jwks: Arc<Mutex<JwkSet>>,
    down: Arc<AtomicBool>,
    jwks_requests: Arc<AtomicUsize>,
}

async fn provider(keys: Vec<Jwk>) -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jwks = Arc::new(Mutex::new(JwkSet { keys }));
    let down = Arc::new(AtomicBool::new(false));
    let jwks_requests = Arc::new(AtomicUsize::new(0));
    let (j, d, n) = (jwks.clone(), down.clone(), jwks_requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (j, d, n) = (j.clone(), d.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let len = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..len]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = if d.load(Ordering::SeqCst) {
                    ("503 Service Unavailable", String::new())
                } else if path == "/jwks" {
                    n.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", serde_json::to_string(&*j.lock()).unwrap())
                } else if path == "/.well-known/openid-configuration" {
                    ("200 OK", json!({ "issuer": format!("http://{addr}"), "jwks_uri": format!("http://{addr}/jwks") }).to_string())
                } else {
                    ("404 Not Found", String::new())
                };
                let response = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Provider {
        addr,
        jwks,
        down,
        jwks_requests,
    }
}

#[tokio::test]
async fn jwks_rotation_is_picked_up_and_cached_keys_survive_a_provider_outage() {
    let first = signer(Algorithm::RS256, "2026-a");
    let idp = provider(vec![first.jwk()]).await;
    let c = JwtConfig {
        algorithms: vec!["RS256".into(), "ES256".into()],
        jwks_url: Some(format!("http://{}/jwks", idp.addr)),
        jwks_min_refetch: Duration::from_secs(0),
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("jwks", c).unwrap();
    assert!(matches!(
        outcome(&auth, &request_with_password(&first.sign(&claims("a")))).await,
        AuthOutcome::Allow(_)
    ));

    // Rotation: a new key id appears in the JWKS; a token signed with it triggers a fetch.
    let second = signer(Algorithm::ES256, "2026-b");
    idp.jwks.lock().keys.push(second.jwk());
    assert!(
        matches!(
            outcome(&auth, &request_with_password(&second.sign(&claims("b")))).await,
            AuthOutcome::Allow(_)
        ),
        "new kid picked up without restart"
    );

    // The provider goes down: known keys keep working, unknown ones are refused.
    idp.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        outcome(&auth, &request_with_password(&first.sign(&claims("a")))).await,
        AuthOutcome::Allow(_)
    ));
    let third = signer(Algorithm::RS256, "2026-c");
    assert_denied(
        outcome(&auth, &request_with_password(&third.sign(&claims("c")))).await,
        "no key with id 2026-c",
    );
}

#[tokio::test]
async fn unknown_key_ids_do_not_make_a_fetch_each() {
    let known = signer(Algorithm::RS256, "known");
    let idp = provider(vec![known.jwk()]).await;
    let c = JwtConfig {
        jwks_url: Some(format!("http://{}/jwks", idp.addr)),
        jwks_min_refetch: Duration::from_secs(3600),
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("jwks", c).unwrap();
    assert!(matches!(
        outcome(&auth, &request_with_password(&known.sign(&claims("a")))).await,
        AuthOutcome::Allow(_)
    ));
    let fetches = idp.jwks_requests.load(Ordering::SeqCst);
    let stranger = signer(Algorithm::RS256, "made-up");
    for _ in 0..20 {
        assert_denied(
            outcome(&auth, &request_with_password(&stranger.sign(&claims("x")))).await,
            "made-up",
        );
    }
    assert_eq!(
        idp.jwks_requests.load(Ordering::SeqCst),
        fetches,
        "no refetch within the minimum interval"
    );
}

#[tokio::test]
async fn provider_unreachable_from_the_start_is_a_backend_failure() {
    let idp = provider(vec![]).await;
    idp.down.store(true, Ordering::SeqCst);
    let c = JwtConfig {
        jwks_url: Some(format!("http://{}/jwks", idp.addr)),
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("jwks", c).unwrap();
    let s = signer(Algorithm::RS256, "k");
    assert!(
        auth.authenticate(&request_with_password(&s.sign(&claims("a"))))
            .await
            .is_err(),
        "fail closed through the chain's on_error"
    );
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks() {
    let s = signer(Algorithm::ES256, "k");
    let idp = provider(vec![s.jwk()]).await;
    let issuer = format!("http://{}", idp.addr);
    let c = JwtConfig {
        algorithms: vec!["ES256".into()],
        issuer: Some(issuer.clone()),
        audience: vec!["mqtt".into()],
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("oidc", c).unwrap();
    let mut cl = claims("svc");
    cl["iss"] = json!(issuer);
    cl["aud"] = json!("mqtt");
    assert!(matches!(
        outcome(&auth, &request_with_password(&s.sign(&cl))).await,
        AuthOutcome::Allow(_)
    ));
}

#[tokio::test]
async fn claims_map_to_the_identity_and_constrain_the_client() {
    let s = signer(Algorithm::HS256, "k");
    let c = JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some("shared-secret-of-32-bytes-length".into()),
        claims: TokenClaimsConfig {
            username_claim: "preferred_username".into(),
            client_id_claim: Some("azp".into()),
            roles_claims: vec![
                "realm_access.roles".into(),
                "https://example.com/roles".into(),
            ],
            groups_claims: vec!["groups".into()],
            required_claims: [("scope".to_owned(), json!("mqtt"))].into_iter().collect(),
            ..TokenClaimsConfig::default()
        },
        ..JwtConfig::default()
    };
    let auth = JwtAuthenticator::new("keycloak", c).unwrap();
    let full = json!({
        "sub": "f1d2", "preferred_username": "alice", "azp": "device-1", "exp": unix_now() + 60,
        "scope": "openid mqtt", "realm_access": { "roles": ["device", "reader"] },
        "https://example.com/roles": ["admin"], "groups": ["/plant-7"]
    });
    match outcome(&auth, &request_with_password(&s.sign(&full))).await {
        AuthOutcome::Allow(identity) => {
            assert_eq!(identity.username.as_deref(), Some("alice"));
            let roles: Vec<_> = identity.roles.iter().map(|r| r.value.as_str()).collect();
            assert_eq!(roles, ["device", "reader", "admin"]);
            assert_eq!(identity.groups[0].value, "/plant-7");
            assert!(identity.expires_at.is_some());
            assert_eq!(identity.claims.as_ref().unwrap()["sub"], "f1d2");
        }
        other => panic!("{other:?}"),
    }
    let mut wrong_client = full.clone();
    wrong_client["azp"] = json!("device-2");
    assert_denied(
        outcome(&auth, &request_with_password(&s.sign(&wrong_client))).await,
        "client identifier",
    );
    let mut no_scope = full.clone();
    no_scope["scope"] = json!("openid");
    assert_denied(
        outcome(&auth, &request_with_password(&s.sign(&no_scope))).await,
        "scope",
    );
}

#[tokio::test]
async fn token_in_the_user_name_or_in_mqtt5_authentication_data() {
    let s = signer(Algorithm::HS256, "k");
    let base = JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some("shared-secret-of-32-bytes-length".into()),
        ..JwtConfig::default()
    };
    let token = s.sign(&claims("u"));
    let auth = JwtAuthenticator::new(
        "u",
        JwtConfig {
            claims: TokenClaimsConfig {
                token_from: TokenLocation::Username,
                ..base.clone().claims.clone()
            },
            ..base.clone()
        },
    )
    .unwrap();
    let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "c");
    r.username = Some(token.clone());
    assert!(matches!(outcome(&auth, &r).await, AuthOutcome::Allow(_)));
    let auth = JwtAuthenticator::new(
        "a",
        JwtConfig {
            claims: TokenClaimsConfig {
                token_from: TokenLocation::AuthenticationData,
                authentication_method: Some("jwt".into()),
                ..base.clone().claims.clone()
            },
            ..base.clone()
        },
    )
    .unwrap();
    let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "c");
    r.authentication_method = Some("jwt".into());
    r.authentication_data = Some(Secret::new(token.clone()));
    assert!(matches!(outcome(&auth, &r).await, AuthOutcome::Allow(_)));
    r.authentication_method = Some("SCRAM-SHA-256".into());
    assert_eq!(outcome(&auth, &r).await, AuthOutcome::Next);
    // matchUsernameToSubject: the user name must be the token's subject.
    let auth = JwtAuthenticator::new(
        "m",
        JwtConfig {
            claims: TokenClaimsConfig {
                username_must_match_claim: true,
                ..base.clone().claims.clone()
            },
            ..base.clone()
        },
    )
    .unwrap();
    let mut r = request_with_password(&token);
    r.username = Some("u".into());
    assert!(matches!(outcome(&auth, &r).await, AuthOutcome::Allow(_)));
    r.username = Some("someone-else".into());
    assert_denied(outcome(&auth, &r).await, "user name");
    // RFC 9068: typ at+jwt required.
    let auth = JwtAuthenticator::new(
        "t",
        JwtConfig {
            required_typ: Some("at+jwt".into()),
            ..base
        },
    )
    .unwrap();
    assert_denied(outcome(&auth, &request_with_password(&token)).await, "typ");
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let at = encode(
        &header,
        &claims("u"),
        &EncodingKey::from_secret(b"shared-secret-of-32-bytes-length"),
    )
    .unwrap();
    assert!(matches!(
        outcome(&auth, &request_with_password(&at)).await,
        AuthOutcome::Allow(_)
    ));
}

#[test]
fn an_issuer_without_an_audience_does_not_build_unless_any_audience_is_allowed() {
    let with_issuer = JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some("shared-secret-of-32-bytes-length".into()),
        issuer: Some("https://idp.example/".into()),
        ..JwtConfig::default()
    };
    let Err(error) = JwtAuthenticator::new("jwt", with_issuer.clone()) else {
        panic!("an issuer without an audience built")
    };
    assert!(
        matches!(error, SetupError::IssuerWithoutAudience { .. }),
        "{error:?}"
    );
    assert_eq!(error.key_path(), ["audience"]);
    let message = error.to_string();
    assert!(
        message.contains("has an issuer but no audience")
            && message.contains("ID tokens included")
            && message.contains("allow_any_audience = true"),
        "{message}"
    );
    // An audience, or no issuer at all, builds as before.
    assert!(JwtAuthenticator::new(
        "jwt",
        JwtConfig {
            audience: vec!["mqtt".into()],
            ..with_issuer.clone()
        }
    )
    .is_ok());
    assert!(JwtAuthenticator::new(
        "jwt",
        JwtConfig {
            issuer: None,
            ..with_issuer.clone()
        }
    )
    .is_ok());
    // Both the audience and the opt-out: a contradiction.
    assert!(JwtAuthenticator::new(
        "jwt",
        JwtConfig {
            audience: vec!["mqtt".into()],
            allow_any_audience: true,
            ..with_issuer.clone()
        }
    )
    .is_err());
}

#[tokio::test]
async fn allow_any_audience_accepts_every_audience_of_the_issuer_and_says_so() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    let auth = tracing::subscriber::with_default(subscriber, || {
        JwtAuthenticator::new(
            "any-aud",
            JwtConfig {
                algorithms: vec!["HS256".into()],
                secret: Some("shared-secret-of-32-bytes-length".into()),
                issuer: Some("https://idp.example/".into()),
                allow_any_audience: true,
                ..JwtConfig::default()
            },
        )
        .unwrap()
    });
    let logged = String::from_utf8(captured.0.lock().clone()).unwrap();
    assert!(
        logged.contains("WARN")
            && logged.contains("allow_any_audience")
            && logged.contains("any-aud"),
        "{logged}"
    );
    let s = signer(Algorithm::HS256, "k");
    for aud in [json!("some-other-client"), json!(["a", "b"])] {
        let mut cl = claims("svc");
        cl["iss"] = json!("https://idp.example/");
        cl["aud"] = aud;
        assert!(matches!(
            outcome(&auth, &request_with_password(&s.sign(&cl))).await,
            AuthOutcome::Allow(_)
        ));
    }
    // The issuer is still checked.
    let mut cl = claims("svc");
    cl["iss"] = json!("https://evil.example/");
    assert_denied(
        outcome(&auth, &request_with_password(&s.sign(&cl))).await,
        "issuer",
    );
}

/// A tracing writer keeping what is written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_jwks_or_discovery_document_larger_than_max_response_bytes_is_not_used() {
    let s = signer(Algorithm::RS256, "k");
    let jwks = serde_json::to_value(JwkSet {
        keys: vec![s.jwk()],
    })
    .unwrap();
    let size = jwks.to_string().len() + 100;
    let jwks = padded(jwks, "padding", size);
    let service = HttpService::start(move |r| match r.path.as_str() {
        "/jwks" => Reply::Json(200, jwks.clone()),
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let with_limit = |limit: usize| JwtConfig {
        jwks_url: Some(service.url("/jwks")),
        max_response_bytes: limit,
        ..JwtConfig::default()
    };
    let token = s.sign(&claims("a"));
    let fits = JwtAuthenticator::new("jwks", with_limit(size)).unwrap();
    assert!(matches!(
        outcome(&fits, &request_with_password(&token)).await,
        AuthOutcome::Allow(_)
    ));
    let too_small = JwtAuthenticator::new("jwks", with_limit(size - 1)).unwrap();
    let e = too_small
        .authenticate(&request_with_password(&token))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max_response_bytes"), "{e}");

    // The discovery document is read with the same limit, and so never leads to the JWKS.
    let discovery = HttpService::start(|r| match r.path.as_str() {
        "/.well-known/openid-configuration" => Reply::Endless(200),
        _ => Reply::Json(404, json!({})),
    })
    .await;
    let issuer = format!("http://{}", discovery.addr);
    let auth = JwtAuthenticator::new(
        "oidc",
        JwtConfig {
            issuer: Some(issuer.clone()),
            audience: vec!["mqtt".into()],
            ..JwtConfig::default()
        },
    )
    .unwrap();
    let mut cl = claims("a");
    cl["iss"] = json!(issuer);
    cl["aud"] = json!("mqtt");
    let e = auth
        .authenticate(&request_with_password(&s.sign(&cl)))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("max_response_bytes (1048576 bytes)"),
        "{e}"
    );
    assert!(discovery.requests.lock().iter().all(|r| r.path != "/jwks"));
    assert_eq!(JwtConfig::default().max_response_bytes, 1_048_576);
}

#[tokio::test]
async fn redirects_are_not_followed_for_the_jwks_or_the_discovery_document() {
    let s = signer(Algorithm::RS256, "k");
    let jwks = serde_json::to_value(JwkSet {
        keys: vec![s.jwk()],
    })
    .unwrap();
    let service = HttpService::start(move |r| {
        let to = |path: &str| vec![("Location".to_owned(), path.to_owned())];
        match r.path.as_str() {
            // A redirect carrying a good JWKS as its body is still a redirect.
            "/jwks" => Reply::WithHeaders(302, to("/moved/jwks"), jwks.to_string()),
            "/.well-known/openid-configuration" => {
                Reply::WithHeaders(301, to("/moved/discovery"), String::new())
            }
            "/moved/jwks" => Reply::Json(200, jwks.clone()),
            _ => Reply::Json(404, json!({})),
        }
    })
    .await;
    let redirected = JwtAuthenticator::new(
        "jwks",
        JwtConfig {
            jwks_url: Some(service.url("/jwks")),
            ..JwtConfig::default()
        },
    )
    .unwrap();
    let e = redirected
        .authenticate(&request_with_password(&s.sign(&claims("a"))))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("302"), "{e}");
    let issuer = format!("http://{}", service.addr);
    let discovered = JwtAuthenticator::new(
        "oidc",
        JwtConfig {
            issuer: Some(issuer.clone()),
            audience: vec!["mqtt".into()],
            ..JwtConfig::default()
        },
    )
    .unwrap();
    let mut cl = claims("a");
    cl["iss"] = json!(issuer);
    cl["aud"] = json!("mqtt");
    let e = discovered
        .authenticate(&request_with_password(&s.sign(&cl)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("301"), "{e}");
    let paths: Vec<String> = service
        .requests
        .lock()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(paths.iter().all(|p| !p.starts_with("/moved")), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/jwks"), "{paths:?}");
}

/// What a token with one hostile claim must come to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Allow,
    Deny,
}

#[tokio::test]
async fn hostile_claim_values_in_a_signed_token_give_a_definite_outcome_never_a_panic() {
    use Expect::{Allow, Deny};
    let hs = signer(Algorithm::HS256, "k");
    let auth = Arc::new(
        JwtAuthenticator::new(
            "hostile",
            JwtConfig {
                algorithms: vec!["HS256".into()],
                secret: Some("shared-secret-of-32-bytes-length".into()),
                issuer: Some("https://idp.example/".into()),
                audience: vec!["mqtt".into()],
                claims: TokenClaimsConfig {
                    client_id_claim: Some("azp".into()),
                    roles_claims: vec!["realm_access.roles".into(), "roles".into()],
                    groups_claims: vec!["groups".into()],
                    ..TokenClaimsConfig::default()
                },
                ..JwtConfig::default()
            },
        )
        .unwrap(),
    );
    let now = unix_now();
    let good = json!({"sub": "dev", "azp": "device-1", "iss": "https://idp.example/",
                      "aud": "mqtt", "exp": now + 600, "iat": now,
                      "realm_access": {"roles": ["r"]}, "roles": ["r2"], "groups": ["g"]});
    // Values none of the claims should hold, each with what it means per claim.
    let hostile = [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(0.5),
        json!(1e19),
        json!(1e300),
        json!(-1e300),
        json!("2000000000"),
        json!(null),
        json!(true),
        json!([]),
        json!([now + 600]),
        json!({"exp": now + 600}),
        json!({"a": {"b": {"c": [[["deep"]]]}}}),
    ];
    let expect = |claim: &str, value: &Value| -> Expect {
        // A NumericDate as jsonwebtoken reads it: a non-negative integer or float below 2^64.
        let date = value
            .as_u64()
            .map(|n| n as f64)
            .or_else(|| value.as_f64().filter(|f| *f >= 0.0 && *f < u64::MAX as f64));
        match claim {
            // Past the clock: expired; far ahead: allowed (and capped, checked below);
            // anything but a date: malformed. `null` is a missing (required) exp.
            "exp" if date.is_some_and(|d| d > now as f64) => Allow,
            "exp" => Deny,
            // In the past: fine; ahead: not yet valid; anything else (`null` too, for
            // jsonwebtoken): malformed.
            "nbf" if date.is_some_and(|d| d < now as f64) => Allow,
            "nbf" => Deny,
            "iat" => Allow, // not checked
            "sub" if value.is_string() => Allow,
            "sub" => Deny,
            "azp" | "iss" | "aud" => Deny,
            // Roles and groups keep their strings and ignore the rest.
            _ => Allow,
        }
    };
    let claims_under_test = [
        "exp",
        "nbf",
        "iat",
        "sub",
        "azp",
        "iss",
        "aud",
        "realm_access",
        "roles",
        "groups",
    ];
    let mut cases = 0;
    for claim in claims_under_test {
        for value in &hostile {
            let mut claims = good.clone();
            claims[claim] = value.clone();
            let token = hs.sign(&claims);
            let auth = Arc::clone(&auth);
            // A task of its own: a panic would come back as a JoinError naming the case.
            let result =
                tokio::spawn(
                    async move { auth.authenticate(&request_with_password(&token)).await },
                )
                .await
                .unwrap_or_else(|e| panic!("{claim} = {value}: {e}"));
            let outcome = result.unwrap_or_else(|e| panic!("{claim} = {value}: backend error {e}"));
            let got = match &outcome {
                AuthOutcome::Allow(identity) => {
                    let expires = identity.expires_at.expect("an exp gives an expiry");
                    let latest = std::time::SystemTime::now() + tollgate_auth::token::MAX_EXPIRY;
                    assert!(expires <= latest, "{claim} = {value}: {expires:?}");
                    Allow
                }
                AuthOutcome::Deny {
                    reason: DenyReason::BadCredentials,
                    ..
                } => Deny,
                other => panic!("{claim} = {value}: {other:?}"),
            };
            assert_eq!(got, expect(claim, value), "{claim} = {value}: {outcome:?}");
            cases += 1;
        }
    }
    assert_eq!(cases, claims_under_test.len() * hostile.len());
    // The good token itself is allowed, and a huge exp is capped at 100 years from now.
    let mut far = good.clone();
    far["exp"] = json!(u64::MAX);
    let AuthOutcome::Allow(identity) = outcome(&auth, &request_with_password(&hs.sign(&far))).await
    else {
        panic!("a far exp refused")
    };
    let capped = identity.expires_at.unwrap();
    let century = std::time::SystemTime::now() + tollgate_auth::token::MAX_EXPIRY;
    assert!(capped > century - std::time::Duration::from_secs(3600) && capped <= century);
}

#[test]
fn a_leeway_beyond_a_day_does_not_build() {
    let config = |secs| JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some("shared-secret-of-32-bytes-length".into()),
        leeway: Duration::from_secs(secs),
        ..JwtConfig::default()
    };
    assert!(JwtAuthenticator::new("jwt", config(86_400)).is_ok());
    assert!(JwtAuthenticator::new("jwt", config(86_401)).is_err());
    assert!(JwtAuthenticator::new("jwt", config(u64::MAX)).is_err());
}
