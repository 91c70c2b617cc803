//! Opaque tokens checked at an RFC 7662 introspection endpoint served on loopback: client
//! authentication (Basic and form), active and inactive tokens, the mapping of the answer to
//! an identity, caching until `exp` or the TTL, and a failing endpoint (fail closed).

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::held::{a_dropped_call_frees_its_permit, at_most_at_once, Held};
use common::http_service::{padded, HttpService, Reply};
use serde_json::json;
use tollgate_auth::authentication::{AuthOutcome, Authenticator, ConnectRequest, DenyReason};
use tollgate_auth::jwt::unix_now;
use tollgate_auth::oauth::{IntrospectionAuthenticator, IntrospectionConfig};
use tollgate_auth::Secret;

const GOOD: &str = "2YotnFZFEjr1zCsicMWpAA";
const INACTIVE: &str = "revoked-or-made-up";

/// An introspection endpoint knowing one active token, for the client `tollgate`/`s3cret`.
async fn endpoint(exp: u64) -> HttpService {
    HttpService::start(move |r| {
        let form = r.form();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("tollgate:s3cret")
        );
        let authenticated = r.headers.get("authorization") == Some(&basic)
            || (form.get("client_id").map(String::as_str) == Some("tollgate")
                && form.get("client_secret").map(String::as_str) == Some("s3cret"));
        if r.method != "POST" || r.path != "/introspect" {
            return Reply::Json(404, json!({}));
        }
        if !authenticated {
            return Reply::Json(401, json!({"error": "invalid_client"}));
        }
        match form.get("token").map(String::as_str) {
            Some(GOOD) => Reply::Json(
                200,
                json!({"active": true, "sub": "dev-7", "client_id": "device-7",
                       "scope": "mqtt:pub:t/dev-7 operator", "exp": exp, "iat": unix_now()}),
            ),
            _ => Reply::Json(200, json!({"active": false})),
        }
    })
    .await
}

fn authenticator(service: &HttpService, extra: &str) -> IntrospectionAuthenticator {
    let config: IntrospectionConfig = toml::from_str(&format!(
        "endpoint = \"{}\"\nclient_id = \"tollgate\"\nclient_secret = \"s3cret\"\n{extra}",
        service.url("/introspect")
    ))
    .unwrap();
    IntrospectionAuthenticator::new("opaque", config).unwrap()
}

fn request(token: &str) -> ConnectRequest {
    let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "device-7");
    r.username = Some("token".into());
    r.password = Some(Secret::new(token));
    r
}

#[tokio::test]
async fn an_active_token_gives_its_identity_with_basic_client_authentication() {
    let exp = unix_now() + 600;
    let idp = endpoint(exp).await;
    let auth = authenticator(&idp, "roles_claims = [\"scope\"]");
    let AuthOutcome::Allow(id) = auth.authenticate(&request(GOOD)).await.unwrap() else {
        panic!("not allowed")
    };
    assert_eq!(id.username.as_deref(), Some("dev-7"));
    assert!(id.roles.iter().any(|r| r.value == "operator"));
    assert_eq!(
        id.expires_at,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(exp))
    );
    assert!(
        id.claims.as_ref().unwrap().get("active").is_none(),
        "`active` is not a claim"
    );
    let sent = idp.last();
    assert!(sent.headers["authorization"].starts_with("Basic "));
    assert_eq!(sent.form()["token"], GOOD);
    assert_eq!(sent.form()["token_type_hint"], "access_token");
    assert!(!sent.form().contains_key("client_secret"));
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let idp = endpoint(unix_now() + 600).await;
    let auth = authenticator(&idp, "client_auth = \"post\"");
    assert!(matches!(
        auth.authenticate(&request(GOOD)).await.unwrap(),
        AuthOutcome::Allow(_)
    ));
    let sent = idp.last();
    assert!(!sent.headers.contains_key("authorization"));
    assert_eq!(sent.form()["client_secret"], "s3cret");
}

#[tokio::test]
async fn inactive_expired_and_unbound_tokens_are_refused() {
    let idp = endpoint(unix_now() + 600).await;
    let auth = authenticator(&idp, "");
    let refused = |o: AuthOutcome, needle: &str| match o {
        AuthOutcome::Deny {
            reason: DenyReason::BadCredentials,
            detail,
        } => assert!(detail.contains(needle), "{detail}"),
        other => panic!("{other:?}"),
    };
    refused(
        auth.authenticate(&request(INACTIVE)).await.unwrap(),
        "not active",
    );
    // An endpoint that says active for a token past its exp is not believed.
    let stale = endpoint(unix_now() - 5).await;
    refused(
        authenticator(&stale, "")
            .authenticate(&request(GOOD))
            .await
            .unwrap(),
        "expired",
    );
    // The client identifier bound to a field of the answer.
    let bound = authenticator(&idp, "client_id_claim = \"client_id\"");
    let mut other = request(GOOD);
    other.client_id = "device-8".into();
    refused(
        bound.authenticate(&other).await.unwrap(),
        "client identifier",
    );
    assert!(matches!(
        bound.authenticate(&request(GOOD)).await.unwrap(),
        AuthOutcome::Allow(_)
    ));
}

#[tokio::test]
async fn active_answers_are_cached_and_refusals_are_not() {
    let idp = endpoint(unix_now() + 600).await;
    let auth = authenticator(&idp, "cache_ttl = 300");
    for _ in 0..3 {
        auth.authenticate(&request(GOOD)).await.unwrap();
    }
    assert_eq!(idp.count(), 1, "one introspection for three connects");
    for _ in 0..2 {
        auth.authenticate(&request(INACTIVE)).await.unwrap();
    }
    assert_eq!(idp.count(), 3, "a refusal is asked again each time");
    auth.flush();
    auth.authenticate(&request(GOOD)).await.unwrap();
    assert_eq!(idp.count(), 4, "a flush forgets");
    let uncached = authenticator(&idp, "cache_ttl = 0");
    uncached.authenticate(&request(GOOD)).await.unwrap();
    uncached.authenticate(&request(GOOD)).await.unwrap();
    assert_eq!(idp.count(), 6);
}

#[tokio::test]
async fn a_failing_endpoint_is_a_backend_error() {
    type MakeReply = fn() -> Reply;
    let cases: [(&str, MakeReply); 3] = [
        ("status", || Reply::Json(503, json!({}))),
        ("not JSON", || Reply::Raw(200, "<html>".into())),
        ("no active", || Reply::Json(200, json!({"sub": "x"}))),
    ];
    for (what, reply) in cases {
        let idp = HttpService::start(move |_| reply()).await;
        let result = authenticator(&idp, "").authenticate(&request(GOOD)).await;
        assert!(result.is_err(), "{what}: {result:?}");
    }
    // The broker's own credentials refused: an error, not the client's fault.
    let idp = endpoint(unix_now() + 600).await;
    let config: IntrospectionConfig = toml::from_str(&format!(
        "endpoint = \"{}\"\nclient_id = \"tollgate\"\nclient_secret = \"wrong\"",
        idp.url("/introspect")
    ))
    .unwrap();
    let wrong = IntrospectionAuthenticator::new("opaque", config).unwrap();
    assert!(wrong.authenticate(&request(GOOD)).await.is_err());
    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config: IntrospectionConfig = toml::from_str(&format!(
        "endpoint = \"http://127.0.0.1:{port}/introspect\"\nclient_id = \"tollgate\""
    ))
    .unwrap();
    let down = IntrospectionAuthenticator::new("opaque", config).unwrap();
    assert!(down.authenticate(&request(GOOD)).await.is_err());
    // An endpoint that never answers: the timeout ends the wait.
    let hanging = HttpService::start(|_| Reply::Hang).await;
    let slow = authenticator(&hanging, "timeout = 1");
    assert!(slow.authenticate(&request(GOOD)).await.is_err());
}

#[tokio::test]
async fn the_token_is_looked_for_where_configured() {
    let idp = endpoint(unix_now() + 600).await;
    let marked = authenticator(&idp, "username_marker = \"token\"");
    let mut unmarked = request(GOOD);
    unmarked.username = Some("alice".into());
    assert_eq!(
        marked.authenticate(&unmarked).await.unwrap(),
        AuthOutcome::Next
    );
    assert_eq!(idp.count(), 0, "not asked for a credential that is not its");
    let v5 = authenticator(
        &idp,
        "token_from = \"authentication_data\"\nauthentication_method = \"OAUTH2-OPAQUE\"",
    );
    let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "device-7");
    r.authentication_method = Some("OAUTH2-OPAQUE".into());
    r.authentication_data = Some(Secret::new(GOOD));
    assert!(matches!(
        v5.authenticate(&r).await.unwrap(),
        AuthOutcome::Allow(_)
    ));
}

#[test]
fn the_client_secret_is_not_in_debug_output() {
    let config: IntrospectionConfig = toml::from_str(
        "endpoint = \"https://idp.example/introspect\"\nclient_id = \"tollgate\"\nclient_secret = \"hunter2\"",
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn a_required_issuer_needs_a_required_audience() {
    let build = |extra: &str| {
        let config: IntrospectionConfig = toml::from_str(&format!(
            "endpoint = \"https://idp.example/introspect\"\nclient_id = \"tollgate\"\n{extra}"
        ))
        .unwrap();
        IntrospectionAuthenticator::new("opaque", config)
    };
    let Err(error) = build("required_claims = { iss = \"https://idp.example/\" }") else {
        panic!("a required issuer without an audience built")
    };
    assert_eq!(error.key_path(), ["required_claims", "aud"]);
    let message = error.to_string();
    assert!(
        message.contains("has an issuer") && message.contains("allow_any_audience = true"),
        "{message}"
    );
    assert!(build("required_claims = { iss = \"https://idp.example/\", aud = \"mqtt\" }").is_ok());
    assert!(build(
        "allow_any_audience = true\nrequired_claims = { iss = \"https://idp.example/\" }"
    )
    .is_ok());
    assert!(build(
        "allow_any_audience = true\nrequired_claims = { iss = \"https://idp.example/\", aud = \"mqtt\" }"
    )
    .is_err());
    // Without an issuer to check, nothing changes.
    assert!(build("required_claims = { scope = \"mqtt\" }").is_ok());
}

#[tokio::test]
async fn an_answer_larger_than_max_response_bytes_is_a_backend_error() {
    let active = json!({"active": true, "sub": "dev-7", "exp": unix_now() + 600});
    // Within the limit: allowed; one byte more: refused as a backend failure.
    for (size, allowed) in [(1024, true), (1025, false)] {
        let answer = padded(active.clone(), "padding", size);
        let idp = HttpService::start(move |_| Reply::Json(200, answer.clone())).await;
        let result = authenticator(&idp, "max_response_bytes = 1024")
            .authenticate(&request(GOOD))
            .await;
        match (allowed, result) {
            (true, Ok(AuthOutcome::Allow(_))) => {}
            (false, Err(e)) => assert!(e.to_string().contains("max_response_bytes"), "{e}"),
            (_, other) => panic!("{size} bytes: {other:?}"),
        }
    }
    // A 400 answer is read with the same limit: too large is the provider failing, not a
    // refusal of the client.
    let refusal = padded(json!({"error": "unsupported_token_type"}), "padding", 2048);
    let idp = HttpService::start(move |_| Reply::Json(400, refusal.clone())).await;
    let result = authenticator(&idp, "max_response_bytes = 1024")
        .authenticate(&request(GOOD))
        .await;
    assert!(result.is_err(), "{result:?}");
    // A Content-Length above the limit is refused before any of the body arrives (none ever
    // does here, so reading it would wait for the 30 s timeout).
    let idp = HttpService::start(|_| {
        Reply::Verbatim("HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n{".into())
    })
    .await;
    let e = authenticator(&idp, "timeout = 30\nmax_response_bytes = 1024")
        .authenticate(&request(GOOD))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max_response_bytes"), "{e}");
    // A body without a length that never ends is cut off once past the limit.
    let idp = HttpService::start(|_| Reply::Endless(200)).await;
    let e = authenticator(&idp, "timeout = 30")
        .authenticate(&request(GOOD))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("max_response_bytes (1048576 bytes)"),
        "{e}"
    );
}

#[test]
fn max_response_bytes_is_one_mebibyte_unless_set_and_never_zero() {
    let config: IntrospectionConfig =
        toml::from_str("endpoint = \"https://idp.example/i\"\nclient_id = \"t\"").unwrap();
    assert_eq!(config.max_response_bytes, 1_048_576);
    let zero: IntrospectionConfig = toml::from_str(
        "endpoint = \"https://idp.example/i\"\nclient_id = \"t\"\nmax_response_bytes = 0",
    )
    .unwrap();
    assert!(IntrospectionAuthenticator::new("opaque", zero).is_err());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_a_backend_error() {
    let service = HttpService::start(move |r| match r.path.as_str() {
        "/moved" => Reply::Json(200, json!({"active": true, "sub": "dev-7"})),
        _ => Reply::WithHeaders(
            302,
            vec![("Location".to_owned(), "/moved".to_owned())],
            String::new(),
        ),
    })
    .await;
    let e = authenticator(&service, "")
        .authenticate(&request(GOOD))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("302"), "{e}");
    assert!(service.requests.lock().iter().all(|r| r.path != "/moved"));
}

#[tokio::test]
async fn hostile_exp_and_nbf_in_an_answer_give_a_definite_outcome_never_a_panic() {
    #[derive(Debug, PartialEq)]
    enum Expect {
        Allow,
        Deny,
        BackendError,
    }
    use Expect::{Allow, BackendError, Deny};
    let now = unix_now();
    let cases = [
        ("exp", json!(u64::MAX), Allow),
        ("exp", json!(i64::MAX), Allow),
        ("exp", json!(1e19), Allow),
        ("exp", json!(now as f64 + 600.5), Allow),
        ("exp", json!(null), Allow),
        ("exp", json!(now as f64 - 5.5), Deny),
        ("exp", json!(0), Deny),
        ("exp", json!(-1), BackendError),
        ("exp", json!(i64::MIN), BackendError),
        ("exp", json!(1e300), BackendError),
        ("exp", json!("2000000000"), BackendError),
        ("exp", json!(true), BackendError),
        ("exp", json!([now + 600]), BackendError),
        ("exp", json!({"exp": now + 600}), BackendError),
        ("nbf", json!(u64::MAX), Deny),
        ("nbf", json!(i64::MAX), Deny),
        ("nbf", json!(0.5), Allow),
        ("nbf", json!(null), Allow),
        ("nbf", json!(-1), BackendError),
        ("nbf", json!(1e300), BackendError),
        ("nbf", json!("0"), BackendError),
        ("nbf", json!([0]), BackendError),
        ("nbf", json!({}), BackendError),
    ];
    let latest = std::time::SystemTime::now() + tollgate_auth::token::MAX_EXPIRY;
    for (field, value, expected) in cases {
        let mut answer = json!({"active": true, "sub": "dev-7", "exp": now + 600});
        answer[field] = value.clone();
        let idp = HttpService::start(move |_| Reply::Json(200, answer.clone())).await;
        // The longest cache_ttl the configuration allows: the cache's arithmetic must not
        // overflow either.
        let auth = Arc::new(authenticator(
            &idp,
            &format!("cache_ttl = {}", tollgate_auth::seconds::MAX_SECONDS),
        ));
        for round in 0..2 {
            let auth = Arc::clone(&auth);
            let result = tokio::spawn(async move { auth.authenticate(&request(GOOD)).await })
                .await
                .unwrap_or_else(|e| panic!("{field} = {value}: {e}"));
            let got = match &result {
                Ok(AuthOutcome::Allow(id)) => {
                    assert!(
                        id.expires_at
                            .is_none_or(|e| e <= latest + Duration::from_secs(60)),
                        "{field} = {value}: {:?}",
                        id.expires_at
                    );
                    Allow
                }
                Ok(AuthOutcome::Deny {
                    reason: DenyReason::BadCredentials,
                    ..
                }) => Deny,
                Err(_) => BackendError,
                Ok(other) => panic!("{field} = {value}: {other:?}"),
            };
            assert_eq!(
                got, expected,
                "{field} = {value} (round {round}): {result:?}"
            );
        }
        // A good answer is kept (the longest TTL, within its exp); a malformed or expired one
        // is asked again.
        let asked = match (field, &expected) {
            (_, BackendError) | ("exp", Deny) => 2,
            _ => 1,
        };
        assert_eq!(idp.count(), asked, "{field} = {value}");
    }
    // A float exp is the expiry, rounded down.
    let answer = json!({"active": true, "sub": "dev-7", "exp": now as f64 + 600.75});
    let idp = HttpService::start(move |_| Reply::Json(200, answer.clone())).await;
    let Ok(AuthOutcome::Allow(id)) = authenticator(&idp, "").authenticate(&request(GOOD)).await
    else {
        panic!("a float exp refused")
    };
    assert_eq!(
        id.expires_at,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(now + 600))
    );
}

#[tokio::test]
async fn at_most_max_concurrent_requests_introspections_run_at_once() {
    let mut held = Held::start(|_| Reply::Json(200, json!({"active": true, "sub": "dev-7"}))).await;
    // No cache: every authentication asks.
    let auth = Arc::new(authenticator(
        &held.service,
        "cache_ttl = 0\ntimeout = 30\nmax_concurrent_requests = 3",
    ));
    at_most_at_once(&mut held, 3, 8, || {
        let auth = Arc::clone(&auth);
        async move {
            matches!(
                auth.authenticate(&request(GOOD)).await,
                Ok(AuthOutcome::Allow(_))
            )
        }
    })
    .await;

    let mut held = Held::start(|_| Reply::Json(200, json!({"active": true, "sub": "dev-7"}))).await;
    let auth = Arc::new(authenticator(
        &held.service,
        "cache_ttl = 0\ntimeout = 30\nmax_concurrent_requests = 1",
    ));
    a_dropped_call_frees_its_permit(&mut held, || {
        let auth = Arc::clone(&auth);
        async move {
            matches!(
                auth.authenticate(&request(GOOD)).await,
                Ok(AuthOutcome::Allow(_))
            )
        }
    })
    .await;
}

#[test]
fn max_concurrent_requests_is_64_unless_set_and_never_zero() {
    let config: IntrospectionConfig =
        toml::from_str("endpoint = \"https://idp.example/i\"\nclient_id = \"t\"").unwrap();
    assert_eq!(config.max_concurrent_requests, 64);
    let zero: IntrospectionConfig = toml::from_str(
        "endpoint = \"https://idp.example/i\"\nclient_id = \"t\"\nmax_concurrent_requests = 0",
    )
    .unwrap();
    assert!(IntrospectionAuthenticator::new("opaque", zero).is_err());
}
