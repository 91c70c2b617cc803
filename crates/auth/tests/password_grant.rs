//! The password grant forwarded to a token endpoint served on loopback: the user's name and
//! password exchanged for a JWT that is then verified, the provider's refusals, a token the
//! broker cannot verify, and a failing endpoint (fail closed).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::held::{a_dropped_call_frees_its_permit, at_most_at_once, Held};
use common::http_service::{padded, HttpService, Reply};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate_auth::authentication::{AuthOutcome, Authenticator, ConnectRequest, DenyReason};
use tollgate_auth::jwt::unix_now;
use tollgate_auth::oauth::{PasswordGrantAuthenticator, PasswordGrantConfig};
use tollgate_auth::Secret;

const SIGNING: &str = "the-provider-signing-secret";

fn jwt(sub: &str, secret: &str) -> String {
    let claims = json!({"sub": sub, "exp": unix_now() + 600, "iss": "https://idp.test/",
                        "aud": "https://mqtt.example/", "roles": ["reader"]});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token endpoint knowing alice/secret1; `forge` makes it sign with another key.
async fn token_endpoint(forge: Arc<AtomicBool>) -> HttpService {
    HttpService::start(move |r| {
        let form = r.form();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("tollgate:s3cret")
        );
        if r.headers.get("authorization") != Some(&basic) {
            return Reply::Json(401, json!({"error": "invalid_client"}));
        }
        if form.get("grant_type").map(String::as_str) != Some("password") {
            return Reply::Json(400, json!({"error": "unsupported_grant_type"}));
        }
        let user = form.get("username").map(String::as_str);
        let password = form.get("password").map(String::as_str);
        match (user, password) {
            (Some("alice"), Some("secret 1&")) => {
                let key = if forge.load(Ordering::SeqCst) {
                    "forged"
                } else {
                    SIGNING
                };
                Reply::Json(
                    200,
                    json!({"access_token": jwt("auth0|alice", key), "token_type": "Bearer",
                           "expires_in": 600}),
                )
            }
            // Auth0's answer to a wrong password.
            (Some("mallory"), _) => Reply::Json(
                403,
                json!({"error": "invalid_grant", "error_description": "Wrong email or password."}),
            ),
            _ => Reply::Json(
                400,
                json!({"error": "invalid_grant", "error_description": "Wrong email or password."}),
            ),
        }
    })
    .await
}

fn authenticator(service: &HttpService, secret: &str) -> PasswordGrantAuthenticator {
    let config: PasswordGrantConfig = toml::from_str(&format!(
        r#"
token_endpoint = "{}"
client_id = "tollgate"
client_secret = "{secret}"
scope = "openid mqtt"
audience = "https://mqtt.example/"
[verify]
algorithms = ["HS256"]
secret = "{SIGNING}"
issuer = "https://idp.test/"
audience = ["https://mqtt.example/"]
roles_claims = ["roles"]
"#,
        service.url("/oauth/token")
    ))
    .unwrap();
    PasswordGrantAuthenticator::new("auth0", config).unwrap()
}

fn request(user: &str, password: &str) -> ConnectRequest {
    let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "c1");
    r.username = Some(user.into());
    r.password = Some(Secret::new(password));
    r
}

#[tokio::test]
async fn the_password_is_exchanged_and_the_identity_comes_from_the_token() {
    let idp = token_endpoint(Arc::default()).await;
    let auth = authenticator(&idp, "s3cret");
    let AuthOutcome::Allow(id) = auth
        .authenticate(&request("alice", "secret 1&"))
        .await
        .unwrap()
    else {
        panic!("not allowed")
    };
    assert_eq!(id.username.as_deref(), Some("auth0|alice"));
    assert_eq!(id.roles[0].value, "reader");
    assert!(id.expires_at.is_some());
    let form = idp.last().form();
    assert_eq!(form["grant_type"], "password");
    assert_eq!(form["scope"], "openid mqtt");
    assert_eq!(form["audience"], "https://mqtt.example/");
    assert_eq!(form["password"], "secret 1&");
}

#[tokio::test]
async fn a_refused_grant_refuses_the_client() {
    let idp = token_endpoint(Arc::default()).await;
    let auth = authenticator(&idp, "s3cret");
    match auth.authenticate(&request("alice", "wrong")).await.unwrap() {
        AuthOutcome::Deny {
            reason: DenyReason::BadCredentials,
            detail,
        } => assert!(detail.contains("invalid_grant"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        auth.authenticate(&request("mallory", "guess"))
            .await
            .unwrap(),
        AuthOutcome::Deny {
            reason: DenyReason::BadCredentials,
            ..
        }
    ));
    let mut anonymous = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "c1");
    assert_eq!(
        auth.authenticate(&anonymous).await.unwrap(),
        AuthOutcome::Next
    );
    anonymous.username = Some("alice".into());
    assert_eq!(
        auth.authenticate(&anonymous).await.unwrap(),
        AuthOutcome::Next,
        "a user name without a password is not a grant"
    );
}

#[tokio::test]
async fn a_token_the_broker_cannot_verify_is_refused() {
    let forge = Arc::new(AtomicBool::new(true));
    let idp = token_endpoint(forge).await;
    match authenticator(&idp, "s3cret")
        .authenticate(&request("alice", "secret 1&"))
        .await
        .unwrap()
    {
        AuthOutcome::Deny { detail, .. } => assert!(detail.contains("signature"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_broker_refused_or_the_provider_down_is_a_backend_error() {
    let idp = token_endpoint(Arc::default()).await;
    assert!(authenticator(&idp, "wrong")
        .authenticate(&request("alice", "secret 1&"))
        .await
        .is_err());
    let down = HttpService::start(|_| Reply::Json(503, json!({}))).await;
    assert!(authenticator(&down, "s3cret")
        .authenticate(&request("alice", "secret 1&"))
        .await
        .is_err());
    let firewall = HttpService::start(|_| Reply::Raw(403, "<html>denied</html>".into())).await;
    assert!(authenticator(&firewall, "s3cret")
        .authenticate(&request("alice", "secret 1&"))
        .await
        .is_err());
    let no_token = HttpService::start(|_| Reply::Json(200, json!({"token_type": "Bearer"}))).await;
    assert!(authenticator(&no_token, "s3cret")
        .authenticate(&request("alice", "secret 1&"))
        .await
        .is_err());
}

#[test]
fn verify_with_an_issuer_needs_an_audience() {
    let config = |verify_extra: &str| -> PasswordGrantConfig {
        toml::from_str(&format!(
            "token_endpoint = \"https://idp.test/oauth/token\"\nclient_id = \"tollgate\"\n\
             audience = \"https://mqtt.example/\"\n[verify]\nalgorithms = [\"HS256\"]\n\
             secret = \"{SIGNING}\"\nissuer = \"https://idp.test/\"\n{verify_extra}"
        ))
        .unwrap()
    };
    let Err(error) = PasswordGrantAuthenticator::new("pg", config("")) else {
        panic!("verify with an issuer and no audience built")
    };
    assert_eq!(error.key_path(), ["verify", "audience"]);
    let message = error.to_string();
    assert!(
        message.contains("has an issuer but no audience")
            && message.contains("audience = [\"https://mqtt.example/\"]"),
        "{message}"
    );
    // Without a requested audience the `jwt` table's own rule says the same.
    let mut no_request = config("");
    no_request.audience = None;
    let Err(error) = PasswordGrantAuthenticator::new("pg", no_request) else {
        panic!("verify with an issuer and no audience built")
    };
    assert_eq!(error.key_path(), ["verify", "audience"]);
    let message = error.to_string();
    assert!(
        message.starts_with("verify: ") && message.contains("has an issuer but no audience"),
        "{message}"
    );
    assert!(PasswordGrantAuthenticator::new("pg", config("allow_any_audience = true")).is_ok());
    assert!(PasswordGrantAuthenticator::new(
        "pg",
        config("audience = [\"https://mqtt.example/\"]")
    )
    .is_ok());
}

#[tokio::test]
async fn an_answer_larger_than_max_response_bytes_is_a_backend_error() {
    let with_limit = |service: &HttpService| {
        let mut config: PasswordGrantConfig = toml::from_str(&format!(
            "token_endpoint = \"{}\"\nclient_id = \"tollgate\"\nmax_response_bytes = 4096\n\
             [verify]\nalgorithms = [\"HS256\"]\nsecret = \"{SIGNING}\"",
            service.url("/oauth/token")
        ))
        .unwrap();
        config.timeout = Duration::from_secs(30);
        PasswordGrantAuthenticator::new("pg", config).unwrap()
    };
    let granted = json!({"access_token": jwt("auth0|alice", SIGNING), "token_type": "Bearer"});
    let (fits, too_large) = (
        padded(granted.clone(), "padding", 4096),
        padded(granted, "padding", 4097),
    );
    let idp = HttpService::start(move |_| Reply::Json(200, fits.clone())).await;
    assert!(matches!(
        with_limit(&idp)
            .authenticate(&request("alice", "pw"))
            .await
            .unwrap(),
        AuthOutcome::Allow(_)
    ));
    let idp = HttpService::start(move |_| Reply::Json(200, too_large.clone())).await;
    let e = with_limit(&idp)
        .authenticate(&request("alice", "pw"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("max_response_bytes (4096 bytes)"),
        "{e}"
    );
    // A refusal too large to read is the provider failing, not the user's wrong password.
    let refusal = padded(json!({"error": "invalid_grant"}), "padding", 8192);
    let idp = HttpService::start(move |_| Reply::Json(400, refusal.clone())).await;
    assert!(with_limit(&idp)
        .authenticate(&request("alice", "pw"))
        .await
        .is_err());
    let idp = HttpService::start(|_| Reply::Endless(200)).await;
    assert!(with_limit(&idp)
        .authenticate(&request("alice", "pw"))
        .await
        .is_err());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_a_backend_error() {
    let granted = json!({"access_token": jwt("auth0|alice", SIGNING), "token_type": "Bearer"});
    let service = HttpService::start(move |r| match r.path.as_str() {
        "/moved" => Reply::Json(200, granted.clone()),
        _ => Reply::WithHeaders(
            307,
            vec![("Location".to_owned(), "/moved".to_owned())],
            String::new(),
        ),
    })
    .await;
    let e = authenticator(&service, "s3cret")
        .authenticate(&request("alice", "secret 1&"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("307"), "{e}");
    assert!(service.requests.lock().iter().all(|r| r.path != "/moved"));
}

#[tokio::test]
async fn a_hostile_expires_in_from_the_token_endpoint_is_ignored_the_token_exp_decides() {
    for expires_in in [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(-1),
        json!(1e300),
        json!("600"),
        json!(null),
        json!([600]),
        json!({"s": 600}),
    ] {
        let answer = json!({"access_token": jwt("auth0|alice", SIGNING), "token_type": "Bearer",
                            "expires_in": expires_in.clone()});
        let idp = HttpService::start(move |_| Reply::Json(200, answer.clone())).await;
        let auth = Arc::new(authenticator(&idp, "s3cret"));
        let result =
            tokio::spawn(async move { auth.authenticate(&request("alice", "secret 1&")).await })
                .await
                .unwrap_or_else(|e| panic!("expires_in = {expires_in}: {e}"));
        let Ok(AuthOutcome::Allow(id)) = result else {
            panic!("expires_in = {expires_in}: {result:?}")
        };
        let exp = id.expires_at.unwrap();
        let in_ten_minutes = std::time::SystemTime::now() + std::time::Duration::from_secs(600);
        assert!(exp <= in_ten_minutes, "expires_in = {expires_in}: {exp:?}");
    }
}

#[tokio::test]
async fn at_most_max_concurrent_requests_grants_run_at_once() {
    let grant = || json!({"access_token": jwt("auth0|alice", SIGNING), "token_type": "Bearer"});
    let with = |service: &HttpService, limit: usize| {
        let mut config: PasswordGrantConfig = toml::from_str(&format!(
            "token_endpoint = \"{}\"\nclient_id = \"tollgate\"\ntimeout = 30\n\
             max_concurrent_requests = {limit}\n[verify]\nalgorithms = [\"HS256\"]\n\
             secret = \"{SIGNING}\"",
            service.url("/oauth/token")
        ))
        .unwrap();
        config.max_concurrent_requests = limit;
        Arc::new(PasswordGrantAuthenticator::new("pg", config).unwrap())
    };
    let allowed = |auth: &Arc<PasswordGrantAuthenticator>| {
        let auth = Arc::clone(auth);
        async move {
            matches!(
                auth.authenticate(&request("alice", "pw")).await,
                Ok(AuthOutcome::Allow(_))
            )
        }
    };
    let mut held = Held::start(move |_| Reply::Json(200, grant())).await;
    let auth = with(&held.service, 4);
    at_most_at_once(&mut held, 4, 9, || allowed(&auth)).await;
    let mut held = Held::start(move |_| Reply::Json(200, grant())).await;
    let auth = with(&held.service, 1);
    a_dropped_call_frees_its_permit(&mut held, || allowed(&auth)).await;
}
