//! The device authorization grant relayed over MQTT (seed 004, RFC 8628), over real
//! connections against a scripted provider: the user code sent to the device, the token
//! endpoint polled (`authorization_pending`, `slow_down`), the token handed over and the
//! connection upgraded in place (or closed for a reconnect), the token renewed with the
//! refresh token, and every way it ends otherwise: denied, expired, provider down, too many
//! grants at once, another client's topic.

mod common;
#[path = "../../auth/tests/common/http_service.rs"]
mod http_service;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_service::{HttpService, Reply};
use serde_json::{json, Value};
use tollgate_auth::jwt::unix_now;
use tollgate_broker::{BrokerConfig, Server};
use tollgate_mqtt::*;

const SIGNING: &str = "the-provider-signs-access-tokens-with-this";
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Anonymous devices may only ask for a grant; alice may use her devices' topics.
const POLICY: &str = r##"
default = "deny"

[anonymous]
permissions = [{ filter = "$tollgate/device/authorize/#", activity = "publish" }, { filter = "$tollgate/device/authorize", activity = "publish" }]

[users.alice]
permissions = [{ filter = "devices/alice/#" }]
"##;

fn access_token(sub: &str, lifetime: u64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "exp": unix_now() + lifetime}),
        &jsonwebtoken::EncodingKey::from_secret(SIGNING.as_bytes()),
    )
    .unwrap()
}

/// How the scripted provider behaves.
#[derive(Clone, Copy)]
enum Provider {
    /// Pending once, slow_down once, then granted (with a refresh token); a refresh grants
    /// again.
    Approves { lifetime: u64 },
    /// Pending once, then access_denied.
    Denies,
    /// Always pending.
    Waits,
    /// The token endpoint fails (HTTP 503).
    TokenEndpointDown,
    /// The device authorization endpoint fails.
    AuthorizationDown,
}

struct Idp {
    service: HttpService,
    polls: Arc<AtomicUsize>,
    refreshes: Arc<AtomicUsize>,
}

async fn provider(behaviour: Provider) -> Idp {
    let polls = Arc::new(AtomicUsize::new(0));
    let refreshes = Arc::new(AtomicUsize::new(0));
    let (p, r) = (Arc::clone(&polls), Arc::clone(&refreshes));
    let service = HttpService::start(move |request| {
        let form = request.form();
        match (request.path.as_str(), behaviour) {
            ("/device", Provider::AuthorizationDown) => Reply::Json(503, json!({})),
            ("/device", _) => Reply::Json(
                200,
                json!({
                    "device_code": "the-device-code",
                    "user_code": "WDJB-MJHT",
                    "verification_uri": "https://idp.test/device",
                    "verification_uri_complete": "https://idp.test/device?user_code=WDJB-MJHT",
                    "expires_in": 600,
                    "interval": 1,
                }),
            ),
            ("/token", _) if form.get("grant_type").map(String::as_str) == Some("refresh_token") => {
                r.fetch_add(1, Ordering::SeqCst);
                assert_eq!(form.get("refresh_token").map(String::as_str), Some("refresh-1"));
                let lifetime = match behaviour {
                    Provider::Approves { lifetime } => lifetime,
                    _ => 600,
                };
                Reply::Json(
                    200,
                    json!({"access_token": access_token("alice", lifetime + 600), "token_type": "Bearer", "expires_in": lifetime + 600, "refresh_token": "refresh-1"}),
                )
            }
            ("/token", behaviour) => {
                assert_eq!(
                    form.get("grant_type").map(String::as_str),
                    Some("urn:ietf:params:oauth:grant-type:device_code")
                );
                assert_eq!(form.get("device_code").map(String::as_str), Some("the-device-code"));
                let n = p.fetch_add(1, Ordering::SeqCst);
                match (behaviour, n) {
                    (Provider::TokenEndpointDown, _) => Reply::Json(503, json!({})),
                    (_, 0) | (Provider::Waits, _) => {
                        Reply::Json(400, json!({"error": "authorization_pending"}))
                    }
                    (Provider::Denies, _) => Reply::Json(400, json!({"error": "access_denied"})),
                    (Provider::Approves { .. }, 1) => Reply::Json(400, json!({"error": "slow_down"})),
                    (Provider::Approves { lifetime }, _) => Reply::Json(
                        200,
                        json!({"access_token": access_token("alice", lifetime), "token_type": "Bearer", "expires_in": lifetime, "refresh_token": "refresh-1"}),
                    ),
                    _ => Reply::Json(500, json!({})),
                }
            }
            _ => Reply::Json(404, json!({})),
        }
    })
    .await;
    Idp {
        service,
        polls,
        refreshes,
    }
}

fn config(dir: &TestDir, idp: &Idp, extra: &str) -> BrokerConfig {
    let policy = dir.write("policy.toml", POLICY);
    let text = format!(
        r#"
[[listener]]
name = "bootstrap"
bind = "127.0.0.1:0"
allow_anonymous = true
authenticators = []
max_session_expiry = 0
device_grant = "idp"

[throttle]
enabled = false

[[authorizer]]
name = "policy"
policy_file = {{ path = "{policy}" }}

[[device_grant]]
name = "idp"
{extra}

[device_grant.provider]
device_authorization_endpoint = "{device}"
token_endpoint = "{token}"
client_id = "tollgate"
client_secret = "broker-secret"

[device_grant.provider.verify]
algorithms = ["HS256"]
secret = "{SIGNING}"
"#,
        policy = policy.display(),
        device = idp.service.url("/device"),
        token = idp.service.url("/token"),
    );
    let mut config: BrokerConfig = toml::from_str(&text).expect("the test's TOML");
    config.authorization.reload_interval = Duration::from_secs(0);
    config
}

async fn start(config: BrokerConfig) -> (Server, std::net::SocketAddr) {
    let server = Server::start(config).await.expect("broker starts");
    let addr = server.local_addrs()[0];
    (server, addr)
}

/// The JSON of the next answer on `topic` (QoS 0), waiting for the broker's polls: one
/// `slow_down` makes the next poll 6 s after the last.
async fn answer_on(client: &mut TestClient, topic: &str) -> Value {
    let publish = next_publish(client).await;
    assert_eq!(publish.topic, topic);
    assert!(!publish.retain);
    serde_json::from_slice(&publish.payload).expect("JSON")
}

/// The next PUBLISH, waiting for the broker's polls.
async fn next_publish(client: &mut TestClient) -> Publish {
    match client.try_recv_within(Duration::from_secs(15)).await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test]
async fn a_3_1_1_device_gets_its_code_then_its_token_and_becomes_the_user_in_place() {
    let idp = provider(Provider::Approves { lifetime: 600 }).await;
    let dir = TestDir::new("device-grant");
    let (server, addr) = start(config(&dir, &idp, "")).await;
    let mut device = TestClient::connect(addr, V311, "thermostat-1").await;
    assert_eq!(
        device
            .publish(
                "$tollgate/device/authorize/thermostat-1",
                b"",
                QoS::AtLeastOnce,
                false,
                2
            )
            .await,
        ReasonCode::SUCCESS
    );
    let code = answer_on(&mut device, "$tollgate/device/thermostat-1").await;
    assert_eq!(code["user_code"], "WDJB-MJHT");
    assert_eq!(code["verification_uri"], "https://idp.test/device");
    assert_eq!(
        code["verification_uri_complete"],
        "https://idp.test/device?user_code=WDJB-MJHT"
    );
    assert_eq!(code["expires_in"], 600);
    assert!(
        code.get("device_code").is_none(),
        "the device code stays with the broker"
    );

    let token = answer_on(&mut device, "$tollgate/device/thermostat-1").await;
    assert_eq!(token["upgraded"], true, "{token}");
    assert!(token["access_token"].is_string());
    assert!(
        token.get("refresh_token").is_none(),
        "kept by the broker unless configured"
    );
    assert!(
        idp.polls.load(Ordering::SeqCst) >= 3,
        "pending, slow_down, granted"
    );
    let principal = server.broker().connected_principal("thermostat-1").unwrap();
    assert_eq!(principal.username.as_deref(), Some("alice"));
    assert_eq!(principal.authenticated_by.as_str(), "idp");

    // The same connection now has alice's permissions.
    let mut watcher = connect_watcher(&server, addr).await;
    device
        .publish("devices/alice/temp", b"21", QoS::AtLeastOnce, false, 3)
        .await;
    let seen = watcher.recv_publish().await;
    assert_eq!(seen.payload.as_ref(), b"21");
    let _ = &mut watcher;
}

/// A second device of alice's, to see what the first publishes.
async fn connect_watcher(_server: &Server, addr: std::net::SocketAddr) -> TestClient {
    // An anonymous client cannot read devices/alice/#: the watcher goes through the grant
    // too, on the scripted provider that approves at once.
    let mut watcher = TestClient::connect(addr, V5, "watcher-1").await;
    watcher
        .send(Packet::Publish(Publish {
            qos: QoS::AtMostOnce,
            topic: "$tollgate/device/authorize".into(),
            properties: PublishProperties {
                response_topic: Some("w/answers".into()),
                ..Default::default()
            },
            ..Publish::default()
        }))
        .await;
    let code = answer_on(&mut watcher, "w/answers").await;
    assert!(code["user_code"].is_string());
    let token = answer_on(&mut watcher, "w/answers").await;
    assert_eq!(token["upgraded"], true);
    let ack = watcher
        .subscribe(1, "devices/alice/#", QoS::AtMostOnce)
        .await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_0]);
    watcher
}

#[tokio::test]
async fn a_v5_device_answered_on_its_response_topic_reconnects_with_the_token() {
    let idp = provider(Provider::Approves { lifetime: 600 }).await;
    let dir = TestDir::new("device-grant-v5");
    let config = config(
        &dir,
        &idp,
        "upgrade = \"reconnect\"\nsend_refresh_token = true",
    );
    let (_server, addr) = start(config).await;
    let mut device = TestClient::connect(addr, V5, "sensor-1").await;
    device
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            packet_id: Some(1),
            topic: "$tollgate/device/authorize".into(),
            properties: PublishProperties {
                response_topic: Some("sensor-1/grant".into()),
                correlation_data: Some(Bytes::from_static(b"c-1")),
                ..Default::default()
            },
            ..Publish::default()
        }))
        .await;
    match device.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let code = next_publish(&mut device).await;
    assert_eq!(code.topic, "sensor-1/grant");
    assert_eq!(
        code.properties.correlation_data.as_deref(),
        Some(&b"c-1"[..])
    );
    let token = next_publish(&mut device).await;
    assert_eq!(
        token.properties.correlation_data.as_deref(),
        Some(&b"c-1"[..])
    );
    let json: Value = serde_json::from_slice(&token.payload).unwrap();
    assert_eq!(json["reconnect"], true);
    assert_eq!(json["refresh_token"], "refresh-1");
    match device.recv().await {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason_code, ReasonCode::SUCCESS);
            assert!(d.properties.reason_string.unwrap().contains("reconnect"));
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(device.try_recv().await.is_none());
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires_and_pushed_to_the_device() {
    // The access token lives 62 s and is renewed 60 s before: at once.
    let idp = provider(Provider::Approves { lifetime: 62 }).await;
    let dir = TestDir::new("device-grant-refresh");
    let (server, addr) = start(config(&dir, &idp, "refresh_before = 60")).await;
    let mut device = TestClient::connect(addr, V311, "dev-r").await;
    device
        .publish(
            "$tollgate/device/authorize/dev-r",
            b"",
            QoS::AtMostOnce,
            false,
            1,
        )
        .await;
    let _code = answer_on(&mut device, "$tollgate/device/dev-r").await;
    let first = answer_on(&mut device, "$tollgate/device/dev-r").await;
    let first_expiry = server
        .broker()
        .connected_principal("dev-r")
        .unwrap()
        .expires_at
        .unwrap();
    let renewed = answer_on(&mut device, "$tollgate/device/dev-r").await;
    assert_ne!(renewed["access_token"], first["access_token"]);
    assert_eq!(idp.refreshes.load(Ordering::SeqCst), 1);
    let principal = server.broker().connected_principal("dev-r").unwrap();
    assert_eq!(principal.username.as_deref(), Some("alice"));
    assert!(
        principal.expires_at.unwrap() > first_expiry,
        "the principal lives on"
    );
}

#[tokio::test]
async fn each_way_a_grant_ends_without_a_token_is_told_to_the_device() {
    for (behaviour, extra, wanted) in [
        (Provider::Denies, "", "access_denied"),
        (Provider::Waits, "max_lifetime = 2", "expired_token"),
        (
            Provider::TokenEndpointDown,
            "max_failures = 2",
            "temporarily_unavailable",
        ),
        (Provider::AuthorizationDown, "", "temporarily_unavailable"),
    ] {
        let idp = provider(behaviour).await;
        let dir = TestDir::new(&format!("device-grant-{wanted}"));
        let (server, addr) = start(config(&dir, &idp, extra)).await;
        let mut device = TestClient::connect(addr, V311, "dev-x").await;
        device
            .publish(
                "$tollgate/device/authorize/dev-x",
                b"",
                QoS::AtLeastOnce,
                false,
                1,
            )
            .await;
        let mut answer = answer_on(&mut device, "$tollgate/device/dev-x").await;
        if answer.get("user_code").is_some() {
            answer = answer_on(&mut device, "$tollgate/device/dev-x").await;
        }
        assert_eq!(answer["error"], wanted, "{answer}");
        assert!(answer.get("access_token").is_none());
        // Still the anonymous device, still served; and it may ask again.
        let principal = server.broker().connected_principal("dev-x").unwrap();
        assert_eq!(principal.username, None);
        device.expect_nothing().await;
    }
}

#[tokio::test]
async fn grants_under_way_are_bounded_and_a_device_asks_for_itself_only() {
    let idp = provider(Provider::Waits).await;
    let dir = TestDir::new("device-grant-bounds");
    let (_server, addr) = start(config(&dir, &idp, "max_pending_per_address = 1")).await;
    let mut first = TestClient::connect(addr, V311, "dev-1").await;
    first
        .publish(
            "$tollgate/device/authorize/dev-1",
            b"",
            QoS::AtLeastOnce,
            false,
            1,
        )
        .await;
    let code = answer_on(&mut first, "$tollgate/device/dev-1").await;
    assert!(code["user_code"].is_string());
    // A second request on the same connection while one is under way.
    first
        .publish(
            "$tollgate/device/authorize/dev-1",
            b"",
            QoS::AtLeastOnce,
            false,
            2,
        )
        .await;
    let again = answer_on(&mut first, "$tollgate/device/dev-1").await;
    assert_eq!(again["error"], "invalid_request");
    // Another device from the same address: the bound.
    let mut second = TestClient::connect(addr, V5, "dev-2").await;
    assert_eq!(
        second
            .publish("devices/alice/t", b"x", QoS::AtLeastOnce, false, 9)
            .await,
        ReasonCode::NOT_AUTHORIZED,
        "an anonymous device may only ask"
    );
    second
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            packet_id: Some(1),
            topic: "$tollgate/device/authorize/dev-2".into(),
            ..Publish::default()
        }))
        .await;
    match second.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let busy = answer_on(&mut second, "$tollgate/device/dev-2").await;
    assert_eq!(busy["error"], "temporarily_unavailable");
    // Asking on another client's topic is refused.
    second
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            packet_id: Some(2),
            topic: "$tollgate/device/authorize/dev-1".into(),
            ..Publish::default()
        }))
        .await;
    match second.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // The first device leaving gives its slot back.
    first.disconnect().await;
    second
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            packet_id: Some(3),
            topic: "$tollgate/device/authorize/dev-2".into(),
            ..Publish::default()
        }))
        .await;
    match second.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let code = answer_on(&mut second, "$tollgate/device/dev-2").await;
    assert!(code["user_code"].is_string(), "{code}");
}

#[tokio::test]
async fn an_address_starts_at_most_its_grants_per_minute() {
    let idp = provider(Provider::Denies).await;
    let dir = TestDir::new("device-grant-rate");
    let (_server, addr) = start(config(&dir, &idp, "max_requests_per_minute = 1")).await;
    let mut device = TestClient::connect(addr, V311, "dev-rate").await;
    device
        .publish(
            "$tollgate/device/authorize/dev-rate",
            b"",
            QoS::AtLeastOnce,
            false,
            1,
        )
        .await;
    let code = answer_on(&mut device, "$tollgate/device/dev-rate").await;
    assert!(code["user_code"].is_string());
    let denied = answer_on(&mut device, "$tollgate/device/dev-rate").await;
    assert_eq!(denied["error"], "access_denied");
    // The grant is over; starting another within the minute costs the provider nothing.
    let before = idp.service.count();
    device
        .publish(
            "$tollgate/device/authorize/dev-rate",
            b"",
            QoS::AtLeastOnce,
            false,
            2,
        )
        .await;
    let slow = answer_on(&mut device, "$tollgate/device/dev-rate").await;
    assert_eq!(slow["error"], "slow_down");
    assert_eq!(idp.service.count(), before, "no call to the provider");
}

#[tokio::test]
async fn a_session_upgraded_in_place_is_the_users_and_no_anonymous_client_resumes_it() {
    let idp = provider(Provider::Approves { lifetime: 600 }).await;
    let dir = TestDir::new("device-grant-owner");
    let mut config = config(&dir, &idp, "");
    // A bootstrap listener that keeps sessions (the docs advise against it: this is the case
    // where it matters).
    config.listeners[0].max_session_expiry = None;
    let (_server, addr) = start(config).await;
    let mut connect = connect_packet(V5, "kept-1");
    connect.properties.session_expiry_interval = Some(600);
    let (mut device, ack) = TestClient::connect_with(addr, connect.clone()).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    device
        .send(Packet::Publish(Publish {
            qos: QoS::AtMostOnce,
            topic: "$tollgate/device/authorize/kept-1".into(),
            ..Publish::default()
        }))
        .await;
    let _code = answer_on(&mut device, "$tollgate/device/kept-1").await;
    let token = answer_on(&mut device, "$tollgate/device/kept-1").await;
    assert_eq!(token["upgraded"], true);
    device.disconnect().await;
    // An anonymous client with the device's client identifier: the session is alice's now.
    connect.clean_start = false;
    let (_intruder, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn a_provider_token_issuer_hands_a_device_its_grant_s_token_again() {
    let idp = provider(Provider::Approves { lifetime: 600 }).await;
    let dir = TestDir::new("device-grant-issuer");
    let mut config = config(&dir, &idp, "");
    config
        .token_issuers
        .push(toml::from_str("name = \"provider\"\nsource = \"provider\"").unwrap());
    config.listeners[0].token_issuer = Some("provider".into());
    // alice may ask the issuer (by subscription)
    dir.write(
        "policy.toml",
        &POLICY.replace(
            "[{ filter = \"devices/alice/#\" }]",
            "[{ filter = \"devices/alice/#\" }, { filter = \"$tollgate/token\", activity = \"subscribe\" }]",
        ),
    );
    let (_server, addr) = start(config).await;
    let mut device = TestClient::connect(addr, V311, "dev-t").await;
    device
        .publish(
            "$tollgate/device/authorize/dev-t",
            b"",
            QoS::AtMostOnce,
            false,
            1,
        )
        .await;
    let _code = answer_on(&mut device, "$tollgate/device/dev-t").await;
    let token = answer_on(&mut device, "$tollgate/device/dev-t").await;
    let ack = device
        .subscribe(1, "$tollgate/token", QoS::AtMostOnce)
        .await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_0]);
    let again = answer_on(&mut device, "$tollgate/token").await;
    assert_eq!(again["access_token"], token["access_token"], "{again}");
}
