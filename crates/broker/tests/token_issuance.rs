//! Tokens handed over MQTT (seed 001) over real connections: a MQTT 5 request on
//! `$tollgate/token/request`, a subscription to `$tollgate/token` (and the seed's
//! `access_token/#`), the token reconnected with in place of the password, and every
//! refusal: no permission to ask, the rate limit, an anonymous client, a revoked token; and
//! that nobody else ever sees a token.

mod common;
#[path = "../../auth/tests/common/http_service.rs"]
mod http_service;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::admin::{request as admin_request, ADMIN_TOKEN};
use common::*;
use http_service::{HttpService, Reply};
use serde_json::{json, Value};
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_broker::{admin_token_line, AdminConfig, AdminRole, AuditConfig};
use tollgate_broker::{BrokerConfig, Server};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

/// alice, carol and anonymous clients may ask for tokens, bob may not; everyone has
/// `devices/<user>/#`; spy may subscribe everywhere.
const POLICY: &str = r##"
default = "deny"

[anonymous]
roles = ["token-user"]

[users.alice]
roles = ["token-user"]

[users.carol]
roles = ["token-user"]

[users.spy]
permissions = [
  { filter = "#", activity = "subscribe" },
  { filter = "$tollgate/#", activity = "subscribe" },
]

[roles.token-user]
permissions = [
  { filter = "$tollgate/token/request", activity = "publish" },
  { filter = "$tollgate/token", activity = "subscribe" },
  { filter = "access_token/#", activity = "subscribe" },
]

[[patterns]]
filter = "devices/%u/#"
"##;

struct Setup {
    dir: TestDir,
    key: PathBuf,
}

impl Setup {
    fn new(tag: &str, algorithm: &'static rcgen::SignatureAlgorithm) -> Setup {
        let dir = TestDir::new(tag);
        let passwd = dir.write("passwd", "");
        let mut editor = PasswordFileEditor::open(&passwd, false).unwrap();
        for user in ["alice", "bob", "carol", "spy"] {
            editor.set(user, b"pw").unwrap();
        }
        editor.save().unwrap();
        dir.write("policy.toml", POLICY);
        dir.write("revoked.txt", "");
        let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
        let key = dir.write("issuer.pem", &key.serialize_pem());
        Setup { dir, key }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }

    /// The configuration: one listener offering the issuer, the issuer's own tokens
    /// trusted, a password file; `extra` is TOML appended to the `[[token_issuer]]` table.
    fn config(&self, algorithm: &str, extra: &str) -> BrokerConfig {
        let text = format!(
            r#"
[[listener]]
bind = "127.0.0.1:0"
authenticators = ["self", "passwords"]
token_issuer = "broker"

[[listener]]
name = "open"
bind = "127.0.0.1:0"
allow_anonymous = true
authenticators = []
token_issuer = "broker"

[throttle]
enabled = false

[revocation]
path = "{revoked}"

[[authenticator]]
name = "self"
jwt = {{ token_issuer = "broker" }}

[[authenticator]]
name = "passwords"
password_file = {{ path = "{passwd}", reload_interval = 0 }}

[[authorizer]]
name = "policy"
policy_file = {{ path = "{policy}" }}

[[token_issuer]]
name = "broker"
signing_key = "{key}"
algorithm = "{algorithm}"
kid = "tollgate-test-1"
issuer = "https://broker.test/tollgate"
audience = "tollgate-test"
lifetime = 600
{extra}
"#,
            revoked = self.path("revoked.txt"),
            passwd = self.path("passwd"),
            policy = self.path("policy.toml"),
            key = self.key.display(),
        );
        let mut config: BrokerConfig = toml::from_str(&text).expect("the test's TOML");
        config.authorization.reload_interval = Duration::from_secs(0);
        config
    }
}

async fn start(config: BrokerConfig) -> (Server, std::net::SocketAddr, std::net::SocketAddr) {
    let server = Server::start(config).await.expect("broker starts");
    let addrs = server.local_addrs().to_vec();
    (server, addrs[0], addrs[1])
}

fn login(version: ProtocolVersion, client_id: &str, user: &str, password: &[u8]) -> Connect {
    let mut c = connect_packet(version, client_id);
    c.username = Some(user.into());
    c.password = Some(Bytes::copy_from_slice(password));
    c
}

async fn connected(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    user: &str,
    password: &[u8],
) -> TestClient {
    let (client, ack) =
        TestClient::connect_with(addr, login(version, client_id, user, password)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{user}: {ack:?}");
    client
}

/// A MQTT 5 token request, QoS 1, answered on `reply/<client>`.
fn request(packet_id: u16, response_topic: Option<&str>) -> Publish {
    Publish {
        qos: QoS::AtLeastOnce,
        topic: "$tollgate/token/request".into(),
        packet_id: Some(packet_id),
        properties: PublishProperties {
            response_topic: response_topic.map(Into::into),
            correlation_data: Some(Bytes::from_static(b"corr-1")),
            ..Default::default()
        },
        ..Publish::default()
    }
}

/// Sends a request and returns the PUBACK's reason and the answer's JSON.
async fn ask(client: &mut TestClient, packet_id: u16) -> (ReasonCode, Value, Publish) {
    client
        .send(Packet::Publish(request(packet_id, Some("reply/me"))))
        .await;
    let mut reason = None;
    let mut answer = None;
    while reason.is_none() || answer.is_none() {
        match client.recv().await {
            Packet::PubAck(ack) => {
                assert_eq!(ack.packet_id, packet_id);
                reason = Some(ack.reason_code);
            }
            Packet::Publish(p) => answer = Some(p),
            other => panic!("expected PUBACK and the answer, got {other:?}"),
        }
    }
    let answer = answer.unwrap();
    let json = serde_json::from_slice(&answer.payload).expect("the answer is JSON");
    (reason.unwrap(), json, answer)
}

/// The claims of a JWT, unverified (the broker's acceptance of it is what verifies it).
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_v5_request_gets_a_token_to_reconnect_with_and_keep_the_same_permissions() {
    let setup = Setup::new("token-v5", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_server, addr, _) = start(setup.config("ES256", "")).await;
    let mut alice = connected(addr, V5, "alice-1", "alice", b"pw").await;
    let (reason, json, answer) = ask(&mut alice, 1).await;
    assert_eq!(reason, ReasonCode::SUCCESS);
    assert_eq!(answer.topic, "reply/me");
    assert_eq!(answer.qos, QoS::AtMostOnce);
    assert!(!answer.retain);
    assert_eq!(
        answer.properties.correlation_data.as_deref(),
        Some(&b"corr-1"[..])
    );
    assert_eq!(
        answer.properties.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(json["token_type"], "Bearer");
    let expires_in = json["expires_in"].as_u64().unwrap();
    assert!((590..=600).contains(&expires_in), "{json}");
    let token = json["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], "https://broker.test/tollgate");
    assert_eq!(claims["aud"], "tollgate-test");
    assert_eq!(claims["client_id"], "alice-1");
    assert_eq!(claims["acl_default"], "deny");
    let acl = claims["acl"].as_array().unwrap();
    assert!(
        acl.iter()
            .any(|r| r["filter"] == "devices/alice/#" && r["access"] == "allow"),
        "{acl:?}"
    );
    alice.disconnect().await;

    // The password is no longer needed: the token gives alice, with her permissions.
    let mut again = connected(addr, V5, "alice-1", "anything", token.as_bytes()).await;
    assert_eq!(
        again
            .publish("devices/alice/t", b"x", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        again
            .publish("devices/bob/t", b"x", QoS::AtLeastOnce, false, 2)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    // The same request again, before it expires, gives a fresh token.
    let (reason, json, _) = ask(&mut again, 3).await;
    assert_eq!(reason, ReasonCode::SUCCESS);
    let renewed = json["access_token"].as_str().unwrap();
    assert_ne!(renewed, token);
    assert_ne!(claims_of(renewed)["jti"], claims["jti"]);
    again.disconnect().await;

    // Bound to the client identifier it was issued to.
    let (_, ack) =
        TestClient::connect_with(addr, login(V5, "someone-else", "x", token.as_bytes())).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
}

#[tokio::test]
async fn a_3_1_1_subscription_gets_the_token_and_nobody_else_sees_it() {
    let setup = Setup::new("token-sub", &rcgen::PKCS_ED25519);
    let (_server, addr, _) = start(setup.config("EdDSA", "")).await;
    let mut spy = connected(addr, V311, "spy", "spy", b"pw").await;
    for (id, filter) in [(1, "#"), (2, "$tollgate/#")] {
        let ack = spy.subscribe(id, filter, QoS::AtLeastOnce).await;
        assert_eq!(
            ack.reason_codes,
            vec![ReasonCode::GRANTED_QOS_1],
            "{filter}"
        );
    }
    let mut carol = connected(addr, V311, "carol-1", "carol", b"pw").await;
    let ack = carol
        .subscribe(1, "$tollgate/token", QoS::AtLeastOnce)
        .await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_0]);
    let answer = carol.recv_publish().await;
    assert_eq!(answer.topic, "$tollgate/token");
    assert!(!answer.retain);
    let json: Value = serde_json::from_slice(&answer.payload).unwrap();
    let token = json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token)["sub"], "carol");
    // The subscription is not kept: nothing else ever arrives on it, and UNSUBSCRIBE finds
    // none... and subscribing again asks again.
    let ack = carol.subscribe(2, "$tollgate/token", QoS::AtMostOnce).await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_0]);
    let second = carol.recv_publish().await;
    assert_eq!(second.topic, "$tollgate/token");

    // The spy saw none of it: the first message it gets is one published after.
    let mut other = connected(addr, V311, "alice-x", "alice", b"pw").await;
    other
        .publish("devices/alice/marker", b"m", QoS::AtLeastOnce, false, 1)
        .await;
    let seen = spy.recv_publish().await;
    assert_eq!(seen.topic, "devices/alice/marker");
    spy.expect_nothing().await;

    // And carol reconnects with the token as the password.
    carol.disconnect().await;
    let again = connected(addr, V311, "carol-1", "carol", token.as_bytes()).await;
    again.disconnect().await;
}

#[tokio::test]
async fn the_seed_form_subscribes_to_access_token_and_gets_it_on_that_tree() {
    let setup = Setup::new("token-seed", &rcgen::PKCS_ECDSA_P256_SHA256);
    let config = setup.config("ES256", "subscribe_topic = \"access_token/#\"");
    let (_server, addr, _) = start(config).await;
    let mut spy = connected(addr, V311, "spy", "spy", b"pw").await;
    spy.subscribe(1, "#", QoS::AtMostOnce).await;
    let mut carol = connected(addr, V311, "carol-1", "carol", b"pw").await;
    let ack = carol.subscribe(1, "access_token/#", QoS::AtLeastOnce).await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_0]);
    let answer = carol.recv_publish().await;
    assert_eq!(answer.topic, "access_token/token");
    let json: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert!(json["access_token"].is_string(), "{json}");
    spy.expect_nothing().await;
}

#[tokio::test]
async fn asking_without_permission_is_refused_like_any_publish_or_subscribe() {
    let setup = Setup::new("token-denied", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_server, addr, _) = start(setup.config("ES256", "")).await;
    let mut bob = connected(addr, V5, "bob-1", "bob", b"pw").await;
    bob.send(Packet::Publish(request(1, Some("reply/me"))))
        .await;
    match bob.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let ack = bob.subscribe(2, "$tollgate/token", QoS::AtMostOnce).await;
    assert_eq!(ack.reason_codes, vec![ReasonCode::NOT_AUTHORIZED]);
    bob.expect_nothing().await;
    // Another `$tollgate/` topic is the broker's: refused even with a permission for it.
    let mut alice = connected(addr, V5, "alice-1", "alice", b"pw").await;
    assert_eq!(
        alice
            .publish("$tollgate/token/other", b"x", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    // A request with no Response Topic has nowhere to be answered.
    alice.send(Packet::Publish(request(2, None))).await;
    match alice.recv().await {
        Packet::PubAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR)
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    alice.expect_nothing().await;
}

#[tokio::test]
async fn requests_past_the_rate_are_refused_with_slow_down() {
    let setup = Setup::new("token-rate", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_server, addr, _) = start(setup.config("ES256", "max_requests_per_minute = 2")).await;
    let mut alice = connected(addr, V5, "alice-1", "alice", b"pw").await;
    for id in 1..=2 {
        let (reason, json, _) = ask(&mut alice, id).await;
        assert_eq!(reason, ReasonCode::SUCCESS, "{json}");
    }
    let (reason, json, _) = ask(&mut alice, 3).await;
    assert_eq!(reason, ReasonCode::QUOTA_EXCEEDED);
    assert_eq!(json["error"], "slow_down");
    assert!(json.get("access_token").is_none());
    // The limit is the principal's, not the connection's.
    let mut second = connected(addr, V5, "alice-2", "alice", b"pw").await;
    let (reason, json, _) = ask(&mut second, 1).await;
    assert_eq!(reason, ReasonCode::QUOTA_EXCEEDED);
    assert_eq!(json["error"], "slow_down");
    // Another principal has its own.
    let mut carol = connected(addr, V5, "carol-1", "carol", b"pw").await;
    let (reason, _, _) = ask(&mut carol, 1).await;
    assert_eq!(reason, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn an_anonymous_client_is_refused_a_token() {
    let setup = Setup::new("token-anon", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_server, _, open) = start(setup.config("ES256", "")).await;
    let mut anonymous = TestClient::connect(open, V5, "anon-1").await;
    let (reason, json, _) = ask(&mut anonymous, 1).await;
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(json["error"], "access_denied");
    // Nor does a user name nobody checked help.
    let mut named = connected(open, V5, "anon-2", "alice", b"").await;
    let (reason, json, _) = ask(&mut named, 1).await;
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(json["error"], "access_denied");
}

#[tokio::test]
async fn a_revoked_token_no_longer_connects() {
    let setup = Setup::new("token-revoked", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (server, addr, _) = start(setup.config("ES256", "")).await;
    let mut alice = connected(addr, V5, "alice-1", "alice", b"pw").await;
    let (_, json, _) = ask(&mut alice, 1).await;
    let token = json["access_token"].as_str().unwrap().to_owned();
    let jti = claims_of(&token)["jti"].as_str().unwrap().to_owned();
    alice.disconnect().await;
    setup.dir.write("revoked.txt", &format!("jti {jti}\n"));
    server.reload();
    let (_, ack) =
        TestClient::connect_with(addr, login(V5, "alice-1", "alice", token.as_bytes())).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn the_issuer_misconfigured_is_refused_at_its_key() {
    let setup = Setup::new("token-config", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut config = setup.config("ES256", "");
    config.token_issuers[0].signing_key = None;
    let problems = Server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        problems.contains("token_issuer[0].signing_key"),
        "{problems}"
    );

    let mut config = setup.config("EdDSA", "");
    config.token_issuers[0].algorithm = "EdDSA".into();
    let problems = Server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        problems.contains("token_issuer[0].signing_key"),
        "{problems}"
    );

    let mut config = setup.config("ES256", "");
    config.listeners[0].token_issuer = Some("nobody".into());
    let problems = Server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(problems.contains("listener[0].token_issuer"), "{problems}");

    let mut config = setup.config("ES256", "");
    config.token_issuers[0].subscribe_topic = "a/+/b".into();
    let problems = Server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        problems.contains("token_issuer[0].subscribe_topic"),
        "{problems}"
    );
}

#[tokio::test]
async fn the_jwks_is_public_and_every_request_is_counted_and_audited_without_the_token() {
    let setup = Setup::new("token-admin", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut config = setup.config("ES256", "max_requests_per_minute = 1");
    let tokens = setup.dir.write(
        "admin.tokens",
        &format!(
            "{}\n",
            admin_token_line("ops", AdminRole::Admin, ADMIN_TOKEN)
        ),
    );
    config.admin = Some(AdminConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        token_file: Some(tokens),
        ..AdminConfig::default()
    });
    let audit = setup.dir.0.join("audit.jsonl");
    config.audit = AuditConfig {
        file: Some(audit.clone()),
        ..AuditConfig::default()
    };
    let (server, addr, _) = start(config).await;
    let admin = server.admin_addr().unwrap();

    let jwks = admin_request(admin, "GET", "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200);
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], "tollgate-test-1");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert!(keys[0].get("d").is_none(), "no private part: {}", keys[0]);

    let mut alice = connected(addr, V5, "alice-1", "alice", b"pw").await;
    let (_, issued, _) = ask(&mut alice, 1).await;
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let (_, refused, _) = ask(&mut alice, 2).await;
    assert_eq!(refused["error"], "slow_down");
    let mut bob = connected(addr, V5, "bob-1", "bob", b"pw").await;
    assert_eq!(
        bob.publish_packet(request(1, Some("reply/me"))).await,
        ReasonCode::NOT_AUTHORIZED
    );

    let metrics = admin_request(admin, "GET", "/metrics", Some(ADMIN_TOKEN)).await;
    for line in [
        r#"tollgate_token_requests_total{issuer="broker",outcome="issued"} 1"#,
        r#"tollgate_token_requests_total{issuer="broker",outcome="rate_limited"} 1"#,
        r#"tollgate_token_requests_total{issuer="broker",outcome="not_authorized"} 1"#,
    ] {
        assert!(metrics.body.contains(line), "{line} in {}", metrics.body);
    }
    server.shutdown().await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let requests: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "token_request")
        .collect();
    assert_eq!(requests.len(), 3, "{text}");
    let jti = claims_of(&token)["jti"].clone();
    assert!(requests
        .iter()
        .any(|r| r["outcome"] == "issued" && r["jti"] == jti));
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(signature),
        "the token is never in the audit trail"
    );
}

#[tokio::test]
async fn a_provider_issuer_hands_the_token_the_password_grant_obtained() {
    let setup = Setup::new("token-provider", &rcgen::PKCS_ECDSA_P256_SHA256);
    let signing = "the-provider-signs-with-this-secret";
    let idp = HttpService::start(move |r| {
        let form = r.form();
        if form.get("password").map(String::as_str) == Some("correct horse") {
            let claims = json!({"sub": "alice", "exp": tollgate_auth::jwt::unix_now() + 300});
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(signing.as_bytes()),
            )
            .unwrap();
            Reply::Json(
                200,
                json!({"access_token": token, "refresh_token": "refresh-1", "token_type": "Bearer"}),
            )
        } else {
            Reply::Json(400, json!({"error": "invalid_grant"}))
        }
    })
    .await;
    let mut config = setup.config("ES256", "");
    let endpoint = idp.url("/oauth/token");
    config.authenticators.push(toml::from_str(&format!(
        "name = \"idp\"\n[password_grant]\ntoken_endpoint = \"{endpoint}\"\nclient_id = \"broker\"\nclient_secret = \"s\"\n[password_grant.verify]\nalgorithms = [\"HS256\"]\nsecret = \"{signing}\""
    ))
    .unwrap());
    config.listeners[0].authenticators = Some(vec!["idp".into()]);
    config.listeners[0].token_issuer = Some("provider".into());
    config.token_issuers.push(
        toml::from_str("name = \"provider\"\nsource = \"provider\"\ninclude_refresh_token = true")
            .unwrap(),
    );
    let (_server, addr, _) = start(config).await;
    let mut alice = connected(addr, V5, "alice-1", "alice", b"correct horse").await;
    let (reason, json, _) = ask(&mut alice, 1).await;
    assert_eq!(reason, ReasonCode::SUCCESS, "{json}");
    assert_eq!(
        claims_of(json["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
    assert_eq!(json["refresh_token"], "refresh-1");
    let expires_in = json["expires_in"].as_u64().unwrap();
    assert!((290..=300).contains(&expires_in), "{json}");
    assert_eq!(
        json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
}

#[tokio::test]
async fn a_provider_token_about_to_expire_is_renewed_before_it_is_handed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let setup = Setup::new("token-provider-refresh", &rcgen::PKCS_ECDSA_P256_SHA256);
    let signing = "the-provider-signs-with-this-secret";
    let token_for = move |lifetime: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"sub": "alice", "exp": tollgate_auth::jwt::unix_now() + lifetime}),
            &jsonwebtoken::EncodingKey::from_secret(signing.as_bytes()),
        )
        .unwrap()
    };
    let refreshes = Arc::new(AtomicUsize::new(0));
    // 0: renewals succeed; 1: the provider refuses them
    let refuse = Arc::new(AtomicUsize::new(0));
    let (counted, refusing) = (Arc::clone(&refreshes), Arc::clone(&refuse));
    let idp = HttpService::start(move |r| {
        let form = r.form();
        match form.get("grant_type").map(String::as_str) {
            Some("password") => Reply::Json(
                200,
                json!({"access_token": token_for(30), "refresh_token": "refresh-1"}),
            ),
            Some("refresh_token") => {
                counted.fetch_add(1, Ordering::SeqCst);
                assert_eq!(
                    form.get("refresh_token").map(String::as_str),
                    Some("refresh-1")
                );
                if refusing.load(Ordering::SeqCst) == 1 {
                    Reply::Json(400, json!({"error": "invalid_grant"}))
                } else {
                    Reply::Json(
                        200,
                        json!({"access_token": token_for(600), "refresh_token": "refresh-2"}),
                    )
                }
            }
            _ => Reply::Json(400, json!({"error": "unsupported_grant_type"})),
        }
    })
    .await;
    let mut config = setup.config("ES256", "");
    let endpoint = idp.url("/oauth/token");
    config.authenticators.push(toml::from_str(&format!(
        "name = \"idp\"\n[password_grant]\ntoken_endpoint = \"{endpoint}\"\nclient_id = \"broker\"\nclient_secret = \"s\"\n[password_grant.verify]\nalgorithms = [\"HS256\"]\nsecret = \"{signing}\""
    ))
    .unwrap());
    config.listeners[0].authenticators = Some(vec!["idp".into()]);
    config.listeners[0].token_issuer = Some("provider".into());
    config.token_issuers.push(
        toml::from_str("name = \"provider\"\nsource = \"provider\"\nrefresh_before = 60").unwrap(),
    );
    let (server, addr, _) = start(config).await;
    let mut alice = connected(addr, V5, "alice-1", "alice", b"pw").await;
    let before = server
        .broker()
        .connected_principal("alice-1")
        .unwrap()
        .expires_at
        .unwrap();
    // 30 s left, within refresh_before: renewed first.
    let (reason, json, _) = ask(&mut alice, 1).await;
    assert_eq!(reason, ReasonCode::SUCCESS, "{json}");
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    let expires_in = json["expires_in"].as_u64().unwrap();
    assert!(expires_in > 500, "the renewed token: {json}");
    let after = server
        .broker()
        .connected_principal("alice-1")
        .unwrap()
        .expires_at
        .unwrap();
    assert!(after > before, "the connection lives on with the new token");
    // Now far from its expiry: handed as it is, no renewal.
    let (_, again, _) = ask(&mut alice, 2).await;
    assert_eq!(again["access_token"], json["access_token"]);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);

    // A renewal the provider refuses is answered as a refusal.
    refuse.store(1, Ordering::SeqCst);
    let mut second = connected(addr, V5, "alice-2", "alice", b"pw").await;
    let (_, refused, _) = ask(&mut second, 1).await;
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    assert_eq!(refreshes.load(Ordering::SeqCst), 2);
}
