//! The HTTP webhook authenticator against a service on loopback: what it sends, how each
//! answer is taken, and failures that deny (fail closed).

mod common;

use common::held::{a_dropped_call_frees_its_permit, at_most_at_once, Held};
use common::http_service::{padded, HttpService, Reply};
use serde_json::json;
use tollgate_auth::authentication::{AuthOutcome, Authenticator, ConnectRequest, DenyReason};
use tollgate_auth::permissions::{compile, AuthorizerChain, DecidedBy, DefaultBehaviour};
use tollgate_auth::webhook::{WebhookAuthenticator, WebhookConfig};
use tollgate_auth::{CertificateInfo, Principal, Secret};
use tollgate_mqtt::QoS;

fn hook(service: &HttpService, extra: &str) -> WebhookAuthenticator {
    let config: WebhookConfig =
        toml::from_str(&format!("url = \"{}\"\n{extra}", service.url("/mqtt/auth"))).unwrap();
    WebhookAuthenticator::new("hook", config).unwrap()
}

fn request() -> ConnectRequest {
    let mut r = ConnectRequest::new("tls", "192.0.2.10:53122".parse().unwrap(), "sensor-7");
    r.username = Some("alice".into());
    r.password = Some(Secret::new("p@ss"));
    r.protocol_level = 5;
    r.certificate = Some(CertificateInfo {
        common_name: Some("sensor-7".into()),
        subject_alt_names: vec!["sensor-7.example".into()],
        fingerprint_sha256: "ab12".into(),
        ..CertificateInfo::default()
    });
    r
}

#[tokio::test]
async fn the_request_carries_what_the_client_presented_and_the_headers() {
    let service = HttpService::start(|_| Reply::Json(200, json!({"result": "next"}))).await;
    let auth = hook(&service, "[headers]\nAuthorization = \"Bearer hook-key\"");
    assert_eq!(
        auth.authenticate(&request()).await.unwrap(),
        AuthOutcome::Next
    );
    let sent = service.last();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.headers["authorization"], "Bearer hook-key");
    assert_eq!(
        sent.json(),
        json!({
            "client_id": "sensor-7", "username": "alice", "password": "p@ss",
            "protocol_version": "5.0", "peer_address": "192.0.2.10", "peer_port": 53122,
            "listener": "tls", "authentication_method": null,
            "certificate": {"common_name": "sensor-7", "subject_alt_names": ["sensor-7.example"],
                            "fingerprint_sha256": "ab12"}
        })
    );
    let quiet = hook(&service, "send_password = false");
    quiet.authenticate(&request()).await.unwrap();
    assert!(service.last().json().get("password").is_none());
}

#[tokio::test]
async fn an_allow_with_permissions_grants_exactly_them() {
    let service = HttpService::start(|r| {
        let body = r.json();
        if body["password"] == "p@ss" {
            Reply::Json(
                200,
                json!({"result": "allow", "roles": ["sensor"], "expires_in": 3600,
                       "permissions": [
                           {"filter": "plant/3/cmd/#", "action": "sub"},
                           {"filter": "plant/3/secret", "access": "deny"},
                           {"filter": "plant/3/#", "action": "pub", "qos": [0, 1]}],
                       "default": "deny"}),
            )
        } else {
            Reply::Json(
                200,
                json!({"result": "deny", "reason": "not_authorized", "detail": "locked"}),
            )
        }
    })
    .await;
    let auth = hook(&service, "");
    let AuthOutcome::Allow(identity) = auth.authenticate(&request()).await.unwrap() else {
        panic!("not allowed")
    };
    assert!(identity.expires_at.is_some());
    let principal = Principal {
        granted: identity.granted.clone(),
        roles: identity.roles.clone(),
        ..Principal::anonymous("sensor-7")
    };
    // No authorizer besides: the granted rules and their default decide everything.
    let p = compile(&principal, &AuthorizerChain::new());
    assert!(
        p.check_publish("plant/3/temp", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        !p.check_publish("plant/3/temp", QoS::ExactlyOnce, false)
            .allowed
    );
    assert!(
        !p.check_publish("plant/3/secret", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(
        p.check_subscribe("plant/3/cmd/+", QoS::AtLeastOnce, false)
            .allowed
    );
    assert!(
        !p.check_subscribe("plant/4/#", QoS::AtMostOnce, false)
            .allowed
    );
    let denied = p.check_publish("plant/3/secret", QoS::AtMostOnce, false);
    let DecidedBy::Rule(index) = denied.decided_by else {
        panic!("{denied:?}")
    };
    assert_eq!(
        p.rule(index).unwrap().origin.to_string(),
        "webhook `hook` entry 1"
    );
    assert_eq!(
        identity.granted.as_ref().unwrap().default,
        DefaultBehaviour::Deny
    );

    let mut wrong = request();
    wrong.password = Some(Secret::new("nope"));
    match auth.authenticate(&wrong).await.unwrap() {
        AuthOutcome::Deny { reason, detail } => {
            assert_eq!(reason, DenyReason::NotAuthorized);
            assert!(detail.contains("locked"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failures_and_malformed_answers_are_backend_errors() {
    for reply in [
        || Reply::Json(500, json!({"result": "allow"})),
        || Reply::Raw(200, "allow".into()),
        || Reply::Json(200, json!({"result": "perhaps"})),
        || {
            Reply::Json(
                200,
                json!({"result": "allow", "permissions": [{"filter": "a/#/b"}]}),
            )
        },
    ] {
        let service = HttpService::start(move |_| reply()).await;
        let result = hook(&service, "").authenticate(&request()).await;
        assert!(result.is_err(), "{result:?}");
    }
    let hanging = HttpService::start(|_| Reply::Hang).await;
    assert!(hook(&hanging, "timeout = 1")
        .authenticate(&request())
        .await
        .is_err());
}

#[test]
fn header_values_are_not_in_debug_output() {
    let config: WebhookConfig = toml::from_str(
        "url = \"https://hooks.example/auth\"\n[headers]\nAuthorization = \"Bearer topsecret\"",
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(shown.contains("Authorization") && !shown.contains("topsecret"));
}

#[tokio::test]
async fn an_answer_larger_than_max_response_bytes_is_refused_and_logged_without_its_body() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let allow = json!({"result": "allow", "claims": {"marker": "BODY-MARKER-7f3a"}});
    let (fits, too_large) = (
        padded(allow.clone(), "detail", 2000),
        padded(allow, "detail", 2001),
    );
    let service = HttpService::start(move |_| Reply::Json(200, fits.clone())).await;
    assert!(matches!(
        hook(&service, "max_response_bytes = 2000")
            .authenticate(&request())
            .await
            .unwrap(),
        AuthOutcome::Allow(_)
    ));
    let service = HttpService::start(move |_| Reply::Json(200, too_large.clone())).await;
    let e = hook(&service, "max_response_bytes = 2000")
        .authenticate(&request())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("max_response_bytes (2000 bytes)"),
        "{e}"
    );
    let logged = String::from_utf8(captured.0.lock().clone()).unwrap();
    assert!(
        logged.contains(&service.url("/mqtt/auth")) && logged.contains("2000"),
        "{logged}"
    );
    assert!(!logged.contains("BODY-MARKER"), "{logged}");
    // Without a length and without an end: cut off at the (default) limit.
    let service = HttpService::start(|_| Reply::Endless(200)).await;
    let e = hook(&service, "timeout = 30")
        .authenticate(&request())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("max_response_bytes (1048576 bytes)"),
        "{e}"
    );
}

/// A tracing writer keeping what is written.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

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
async fn a_redirect_is_not_followed_and_is_a_backend_error() {
    let service = HttpService::start(move |r| match r.path.as_str() {
        "/moved" => Reply::Json(200, json!({"result": "allow"})),
        _ => Reply::WithHeaders(
            307,
            vec![("Location".to_owned(), "/moved".to_owned())],
            String::new(),
        ),
    })
    .await;
    let e = hook(&service, "")
        .authenticate(&request())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("307"), "{e}");
    assert!(service.requests.lock().iter().all(|r| r.path != "/moved"));
}

#[tokio::test]
async fn hostile_expiries_in_an_answer_give_a_definite_outcome_never_a_panic() {
    let latest = std::time::SystemTime::now() + tollgate_auth::token::MAX_EXPIRY;
    for field in ["expires_at", "expires_in"] {
        for (value, allowed) in [
            (json!(u64::MAX), true),
            (json!(i64::MAX), true),
            (json!(null), true),
            (json!(-1), false),
            (json!(i64::MIN), false),
            (json!(1e300), false),
            (json!(60.5), false),
            (json!("60"), false),
            (json!(true), false),
            (json!([60]), false),
            (json!({"in": {"deeper": 60}}), false),
        ] {
            let answer = json!({"result": "allow", field: value.clone()});
            let service = HttpService::start(move |_| Reply::Json(200, answer.clone())).await;
            let auth = std::sync::Arc::new(hook(&service, ""));
            let result = tokio::spawn(async move { auth.authenticate(&request()).await })
                .await
                .unwrap_or_else(|e| panic!("{field} = {value}: {e}"));
            match (allowed, result) {
                (true, Ok(AuthOutcome::Allow(id))) => {
                    let expires = id.expires_at;
                    assert_eq!(expires.is_some(), !value.is_null(), "{field} = {value}");
                    assert!(
                        expires.is_none_or(|e| e <= latest + std::time::Duration::from_secs(60)),
                        "{field} = {value}: {expires:?}"
                    );
                }
                // Anything but a non-negative integer is a malformed answer.
                (false, Err(e)) => assert!(e.to_string().contains("malformed"), "{e}"),
                (_, other) => panic!("{field} = {value}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn at_most_max_concurrent_requests_calls_run_at_once() {
    let allowed = |auth: &std::sync::Arc<WebhookAuthenticator>| {
        let auth = std::sync::Arc::clone(auth);
        async move {
            matches!(
                auth.authenticate(&request()).await,
                Ok(AuthOutcome::Allow(_))
            )
        }
    };
    let mut held = Held::start(|_| Reply::Json(200, json!({"result": "allow"}))).await;
    let auth = std::sync::Arc::new(hook(
        &held.service,
        "timeout = 30\nmax_concurrent_requests = 2",
    ));
    at_most_at_once(&mut held, 2, 7, || allowed(&auth)).await;
    let mut held = Held::start(|_| Reply::Json(200, json!({"result": "allow"}))).await;
    let auth = std::sync::Arc::new(hook(
        &held.service,
        "timeout = 30\nmax_concurrent_requests = 1",
    ));
    a_dropped_call_frees_its_permit(&mut held, || allowed(&auth)).await;
    let config: WebhookConfig = toml::from_str("url = \"https://hooks.example/a\"").unwrap();
    assert_eq!(config.max_concurrent_requests, 64);
}
