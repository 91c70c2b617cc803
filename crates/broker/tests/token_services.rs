//! Authenticators that call a service, over real connections: an HTTP webhook whose answer
//! carries permissions, opaque tokens by introspection, the password grant forwarded to a token
//! endpoint; and the revocation list, which ends connections at once and refuses reconnects.

mod common;
#[path = "../../auth/tests/common/http_service.rs"]
mod http_service;

use common::*;
use http_service::{HttpService, Reply};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::time::Duration;
use tollgate_auth::jwt::{unix_now, JwtConfig};
use tollgate_broker::{AuthenticatorConfig, BrokerConfig, RevocationConfig};
use tollgate_mqtt::*;

fn only(c: &mut BrokerConfig, authenticator: AuthenticatorConfig) {
    c.listeners[0].allow_anonymous = false;
    c.authenticators = vec![authenticator];
    c.throttle.enabled = false;
}

fn login(version: ProtocolVersion, client_id: &str, user: &str, password: &str) -> Connect {
    let mut c = connect_packet(version, client_id);
    c.username = Some(user.into());
    c.password = Some(password.to_owned().into_bytes().into());
    c
}

#[tokio::test]
async fn a_webhooks_permissions_are_enforced_on_the_connection() {
    let hook = HttpService::start(|r| {
        let body = r.json();
        match (body["username"].as_str(), body["password"].as_str()) {
            (Some("alice"), Some("pw")) => Reply::Json(
                200,
                json!({"result": "allow", "permissions": [
                    {"filter": "alice/#", "action": "all"},
                    {"filter": "public/#", "action": "sub"}], "default": "deny"}),
            ),
            (Some("bob"), _) => {
                Reply::Json(200, json!({"result": "deny", "reason": "not_authorized"}))
            }
            _ => Reply::Json(500, json!({})),
        }
    })
    .await;
    let url = hook.url("/auth");
    let (_server, addr) = start_broker(|c| only(c, webhook(&url, ""))).await;
    let (mut alice, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V5, "a1", "alice", "pw")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        alice
            .publish("alice/temp", b"1", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS,
        "allowed (and nobody listens)"
    );
    assert_eq!(
        alice
            .publish("public/news", b"1", QoS::AtLeastOnce, false, 2)
            .await,
        ReasonCode::NOT_AUTHORIZED,
        "subscribe-only"
    );
    assert_eq!(
        alice
            .subscribe(3, "public/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        alice
            .subscribe(4, "bob/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED],
        "the webhook's default (deny) decides"
    );
    let (_bob, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V5, "b1", "bob", "pw")).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    // The webhook failing (HTTP 500) fails closed, and the broker serves everyone else.
    let (_carol, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V3_1_1, "c1", "carol", "pw")).await;
    assert_eq!(ack.reason_code, ConnectReturnCode::SERVER_UNAVAILABLE);
    alice.expect_nothing().await;
}

/// A webhook authenticator named `hook` calling `url`, with more settings (TOML lines) in
/// `extra`.
fn webhook(url: &str, extra: &str) -> AuthenticatorConfig {
    AuthenticatorConfig {
        name: "hook".into(),
        webhook: Some(toml::from_str(&format!("url = \"{url}\"\n{extra}")).unwrap()),
        ..Default::default()
    }
}

/// An introspection authenticator named `opaque` asking `endpoint` as client `tollgate`, with
/// more settings (TOML lines) in `extra`.
fn introspection(endpoint: &str, extra: &str) -> AuthenticatorConfig {
    AuthenticatorConfig {
        name: "opaque".into(),
        introspection: Some(
            toml::from_str(&format!(
                "endpoint = \"{endpoint}\"\nclient_id = \"tollgate\"\n{extra}"
            ))
            .unwrap(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_opaque_token_is_introspected_at_connect() {
    let idp = HttpService::start(|r| {
        if r.form().get("token").map(String::as_str) == Some("opaque-123") {
            Reply::Json(
                200,
                json!({"active": true, "client_id": "meter-4", "exp": unix_now() + 600}),
            )
        } else {
            Reply::Json(200, json!({"active": false}))
        }
    })
    .await;
    let endpoint = idp.url("/introspect");
    let (server, addr) = start_broker(|c| {
        only(
            c,
            introspection(
                &endpoint,
                "client_secret = \"x\"\nusername_claim = \"client_id\"",
            ),
        )
    })
    .await;
    let (_c, ack) = TestClient::connect_with(
        addr,
        login(ProtocolVersion::V3_1_1, "m4", "token", "opaque-123"),
    )
    .await;
    assert_eq!(ack.reason_code, ConnectReturnCode::ACCEPTED);
    let principal = server.broker().connected_principal("m4").unwrap();
    assert_eq!(principal.username.as_deref(), Some("meter-4"));
    assert!(principal.expires_at.is_some());
    let (_c, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V5, "m5", "token", "made-up")).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
}

const SIGNING: &str = "provider-signing-secret";

/// A JWT authenticator named `idp` for HS256 tokens signed with [`SIGNING`].
fn hs256_authenticator() -> AuthenticatorConfig {
    AuthenticatorConfig {
        name: "idp".into(),
        jwt: Some(JwtConfig {
            algorithms: vec!["HS256".into()],
            secret: Some(SIGNING.into()),
            ..JwtConfig::default()
        }),
        ..Default::default()
    }
}

fn jwt(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SIGNING.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_password_grant_lets_in_the_user_the_provider_vouches_for() {
    let idp = HttpService::start(|r| {
        let form = r.form();
        if form.get("username").map(String::as_str) == Some("alice@example.com")
            && form.get("password").map(String::as_str) == Some("correct horse")
        {
            let token = jwt(json!({"sub": "auth0|42", "exp": unix_now() + 600}));
            Reply::Json(200, json!({"access_token": token, "token_type": "Bearer"}))
        } else {
            Reply::Json(400, json!({"error": "invalid_grant"}))
        }
    })
    .await;
    let endpoint = idp.url("/oauth/token");
    let (server, addr) = start_broker(|c| {
        only(
            c,
            AuthenticatorConfig {
                name: "auth0".into(),
                password_grant: Some(
                    toml::from_str(&format!(
                        "token_endpoint = \"{endpoint}\"\nclient_id = \"broker\"\nclient_secret = \"s\"\n[verify]\nalgorithms = [\"HS256\"]\nsecret = \"{SIGNING}\""
                    ))
                    .unwrap(),
                ),
                ..Default::default()
            },
        )
    })
    .await;
    let (_c, ack) = TestClient::connect_with(
        addr,
        login(
            ProtocolVersion::V5,
            "app",
            "alice@example.com",
            "correct horse",
        ),
    )
    .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        server
            .broker()
            .connected_principal("app")
            .unwrap()
            .username
            .as_deref(),
        Some("auth0|42")
    );
    let (_c, ack) = TestClient::connect_with(
        addr,
        login(
            ProtocolVersion::V3_1_1,
            "app2",
            "alice@example.com",
            "wrong",
        ),
    )
    .await;
    assert_eq!(
        ack.reason_code,
        ConnectReturnCode::BAD_USER_NAME_OR_PASSWORD
    );
}

#[tokio::test]
async fn revocation_disconnects_at_once_and_the_token_gets_no_session_back() {
    let dir = std::env::temp_dir().join(format!("tollgate-revocation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("revoked.txt");
    std::fs::write(&list, "# nothing revoked yet\n").unwrap();
    let revocation_path = list.clone();
    let (server, addr) = start_broker(move |c| {
        only(
            c,
            AuthenticatorConfig {
                cache_ttl: Duration::from_secs(600),
                ..hs256_authenticator()
            },
        );
        c.revocation = Some(RevocationConfig {
            path: revocation_path,
            reload_interval: Duration::from_secs(0),
        });
    })
    .await;
    let stolen = jwt(json!({"sub": "d1", "jti": "t-1", "exp": unix_now() + 600}));
    let fresh = jwt(json!({"sub": "d1", "jti": "t-2", "exp": unix_now() + 600}));
    let persistent = |token: &str| {
        let mut c = login(ProtocolVersion::V5, "d1", "d1", token);
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(600);
        c
    };
    let (mut c, ack) = TestClient::connect_with(addr, persistent(&stolen)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    c.subscribe(1, "cmd/d1", QoS::AtLeastOnce).await;
    let (mut other, ack) = TestClient::connect_with(
        addr,
        login(
            ProtocolVersion::V5,
            "d9",
            "d9",
            &jwt(json!({"sub": "d9", "jti": "t-9", "exp": unix_now() + 600})),
        ),
    )
    .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);

    std::fs::write(&list, "jti t-1\n").unwrap();
    server.reload(); // what SIGHUP does; the file watcher does the same within reload_interval
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 on revocation, got {other:?}"),
    }
    other.expect_nothing().await;
    // The revoked token is refused even though the chain's cache remembered it, and gets no
    // session back.
    let (_c, ack) = TestClient::connect_with(addr, persistent(&stolen)).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    assert!(!ack.session_present);
    // A new token for the same device gets its session.
    let (_c, ack) = TestClient::connect_with(addr, persistent(&fresh)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(ack.session_present);
}

#[tokio::test]
async fn a_revocation_file_with_an_error_stops_the_start_with_its_line() {
    let dir = std::env::temp_dir().join(format!("tollgate-revocation-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("revoked.txt");
    std::fs::write(&list, "jti ok\ntoken abc\n").unwrap();
    let config = BrokerConfig {
        revocation: Some(RevocationConfig {
            path: list.clone(),
            reload_interval: Duration::from_secs(0),
        }),
        listeners: vec![tollgate_broker::ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        }],
        ..BrokerConfig::default()
    };
    let error = tollgate_broker::Server::start(config).await.err().unwrap();
    assert!(error.to_string().contains("revoked.txt:2"), "{error}");
}

#[tokio::test]
async fn the_revocation_file_is_watched() {
    let dir =
        std::env::temp_dir().join(format!("tollgate-revocation-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("revoked.txt");
    std::fs::write(&list, "").unwrap();
    let revocation_path = list.clone();
    let (_server, addr) = start_broker(move |c| {
        only(c, hs256_authenticator());
        c.revocation = Some(RevocationConfig {
            path: revocation_path,
            reload_interval: Duration::from_secs(1),
        });
    })
    .await;
    let token = jwt(json!({"sub": "lost-sensor", "exp": unix_now() + 600}));
    let (mut c, ack) = TestClient::connect_with(
        addr,
        login(ProtocolVersion::V3_1_1, "s", "lost-sensor", &token),
    )
    .await;
    assert_eq!(ack.reason_code, ConnectReturnCode::ACCEPTED);
    c.expect_nothing().await;
    std::fs::write(&list, "user lost-sensor\n").unwrap();
    // No SIGHUP: the watcher notices the change (the wait is bounded by the packet timeout).
    assert!(
        c.expect_close().await.is_empty(),
        "3.1.1 gets no DISCONNECT"
    );
}

/// Waits until the provider has been asked twice more (bounded by the packet timeout).
async fn asked_twice(asked: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    for _ in 0..2 {
        tokio::time::timeout(PACKET_TIMEOUT, asked.recv())
            .await
            .expect("the provider is asked again")
            .unwrap();
    }
}

#[tokio::test]
async fn a_token_revoked_at_the_provider_ends_the_connection_at_the_next_recheck() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let active = Arc::new(AtomicBool::new(true));
    let down = Arc::new(AtomicBool::new(false));
    let (asked, mut asked_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (flag, outage) = (Arc::clone(&active), Arc::clone(&down));
    let idp = HttpService::start(move |_| {
        let _ = asked.send(());
        if outage.load(Ordering::SeqCst) {
            Reply::Json(503, json!({}))
        } else if flag.load(Ordering::SeqCst) {
            Reply::Json(
                200,
                json!({"active": true, "sub": "meter-9", "exp": unix_now() + 600}),
            )
        } else {
            Reply::Json(200, json!({"active": false}))
        }
    })
    .await;
    let endpoint = idp.url("/introspect");
    let (_server, addr) = start_broker(|c| {
        only(
            c,
            introspection(&endpoint, "cache_ttl = 0\nrecheck_interval = 1"),
        )
    })
    .await;
    let (mut c, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V5, "m9", "token", "opaque-9")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    // CONNECT, then a re-check a second later: the token is still active, the client stays.
    asked_twice(&mut asked_rx).await;
    c.expect_nothing().await;
    assert_eq!(
        c.subscribe(1, "meters/9", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    // The provider down at a re-check: the connection is kept (fail closed applies to new
    // rights, not to the ones granted), and checked again later.
    down.store(true, Ordering::SeqCst);
    asked_twice(&mut asked_rx).await;
    c.expect_nothing().await;
    // Revoked at the provider: the next re-check ends the connection.
    down.store(false, Ordering::SeqCst);
    active.store(false, Ordering::SeqCst);
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 at the re-check, got {other:?}"),
    }
}

#[tokio::test]
async fn a_subscriber_is_served_while_its_webhook_recheck_is_being_decided() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let allow = json!({"result": "allow", "permissions": [{"filter": "t/#", "action": "all"}]});
    // The subscriber's first call (CONNECT) is answered at once; its re-checks are held until
    // the test lets them go.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let subscriber_calls = Arc::new(AtomicUsize::new(0));
    let (asked, mut asked_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (held, calls) = (Arc::clone(&gate), Arc::clone(&subscriber_calls));
    let hook = HttpService::start(move |r| {
        let answer = allow.clone();
        if r.json()["username"].as_str() != Some("subscriber") {
            return Reply::Json(200, answer);
        }
        let _ = asked.send(());
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Json(200, answer);
        }
        let held = Arc::clone(&held);
        Reply::After(Box::pin(async move {
            let _permit = held.acquire().await;
            Reply::Json(200, answer)
        }))
    })
    .await;
    let url = hook.url("/auth");
    let (_server, addr) = start_broker(|c| only(c, webhook(&url, "recheck_interval = 1"))).await;
    let (mut subscriber, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V5, "s1", "subscriber", "pw")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        subscriber
            .subscribe(1, "t/#", QoS::AtLeastOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    let (mut publisher, ack) =
        TestClient::connect_with(addr, login(ProtocolVersion::V5, "p1", "publisher", "pw")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    // CONNECT, then the first re-check, which the webhook holds.
    asked_twice(&mut asked_rx).await;
    for (n, payload) in [b"0", b"1", b"2"].into_iter().enumerate() {
        publisher
            .publish("t/held", payload, QoS::AtLeastOnce, false, n as u16 + 1)
            .await;
        let delivered = subscriber.recv_publish().await;
        assert_eq!(
            delivered.payload.as_ref(),
            payload,
            "delivered during the re-check"
        );
        subscriber.expect_nothing().await; // PINGREQ answered meanwhile
    }
    assert_eq!(
        subscriber_calls.load(Ordering::SeqCst),
        2,
        "the re-check is still being decided"
    );
    // The webhook answers allow: the client stays, and is re-checked again later.
    gate.add_permits(1_000);
    asked_rx.recv().await.unwrap();
    publisher
        .publish("t/after", b"x", QoS::AtLeastOnce, false, 9)
        .await;
    assert_eq!(subscriber.recv_publish().await.payload.as_ref(), b"x");
}
