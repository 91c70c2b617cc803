//! Two identities on one CONNECT without a certificate (seed 000): the device's identifier
//! and secret (a client secrets file, `key = "client_id"`) in the password, the user's
//! token in MQTT 5 authentication data (or, for 3.1.1, in the user name), giving one
//! principal whose client identity and user name each come from their own authenticator
//! and each count in permissions.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use tollgate_auth::jwt::unix_now;
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_broker::{AuditConfig, BrokerConfig, Server};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const SIGNING: &str = "the-identity-provider-signs-with-this";

/// A device may use its own topics for its current user only.
const POLICY: &str = r#"
default = "deny"

[[patterns]]
filter = "devices/%c/users/%u/#"
"#;

fn token(sub: &str, lifetime: u64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "exp": unix_now() + lifetime, "roles": ["operator"]}),
        &jsonwebtoken::EncodingKey::from_secret(SIGNING.as_bytes()),
    )
    .unwrap()
}

fn config(dir: &TestDir) -> BrokerConfig {
    let secrets = dir.write("devices.secrets", "");
    let mut editor = PasswordFileEditor::open(&secrets, false).unwrap();
    editor.set("sensor-7", b"device-secret").unwrap();
    editor.save().unwrap();
    let policy = dir.write("policy.toml", POLICY);
    let text = format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
client_authenticators = ["devices"]
authenticators = ["user-token", "user-token-v311"]

[throttle]
enabled = false

[[authenticator]]
name = "devices"
password_file = {{ path = "{secrets}", key = "client_id", reload_interval = 0 }}

[[authenticator]]
name = "user-token"
jwt = {{ algorithms = ["HS256"], secret = "{SIGNING}", token_from = "authentication_data", authentication_method = "jwt", roles_claims = ["roles"] }}

[[authenticator]]
name = "user-token-v311"
jwt = {{ algorithms = ["HS256"], secret = "{SIGNING}", token_from = "username" }}

[[authorizer]]
name = "policy"
policy_file = {{ path = "{policy}" }}
"#,
        secrets = secrets.display(),
        policy = policy.display(),
    );
    let mut config: BrokerConfig = toml::from_str(&text).unwrap();
    config.authorization.reload_interval = Duration::from_secs(0);
    config
}

fn device_and_user(client_id: &str, secret: &[u8], user_token: Option<&str>) -> Connect {
    let mut c = connect_packet(V5, client_id);
    c.password = Some(Bytes::copy_from_slice(secret));
    if let Some(t) = user_token {
        c.properties.authentication_method = Some("jwt".into());
        c.properties.authentication_data = Some(Bytes::copy_from_slice(t.as_bytes()));
    }
    c
}

async fn start(config: BrokerConfig) -> (Server, std::net::SocketAddr) {
    let server = Server::start(config).await.expect("broker starts");
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[tokio::test]
async fn the_device_secret_and_the_user_token_make_one_principal_with_both_identities() {
    let dir = TestDir::new("two-ids");
    let mut config = config(&dir);
    let audit = dir.0.join("audit.jsonl");
    config.audit = AuditConfig {
        file: Some(audit.clone()),
        ..AuditConfig::default()
    };
    let (server, addr) = start(config).await;
    let alice = token("alice", 600);
    let (mut client, ack) = TestClient::connect_with(
        addr,
        device_and_user("sensor-7", b"device-secret", Some(&alice)),
    )
    .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{ack:?}");
    let principal = server.broker().connected_principal("sensor-7").unwrap();
    assert_eq!(principal.username.as_deref(), Some("alice"));
    assert_eq!(principal.client_identity.as_deref(), Some("sensor-7"));
    assert_eq!(principal.client_identity_by.as_deref(), Some("devices"));
    assert_eq!(principal.authenticated_by.as_str(), "user-token");
    // Each identity counts in the permissions: %c is the device, %u the user.
    for (topic, wanted) in [
        (
            "devices/sensor-7/users/alice/t",
            ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ),
        ("devices/sensor-7/users/bob/t", ReasonCode::NOT_AUTHORIZED),
        ("devices/sensor-8/users/alice/t", ReasonCode::NOT_AUTHORIZED),
    ] {
        assert_eq!(
            client
                .publish(topic, b"x", QoS::AtLeastOnce, false, 1)
                .await,
            wanted,
            "{topic}"
        );
    }

    // Re-authentication renews the user's token; the device stays who it is.
    let renewed = token("alice", 1200);
    client
        .send(Packet::Auth(Auth {
            reason_code: ReasonCode::REAUTHENTICATE,
            properties: AuthProperties {
                authentication_method: Some("jwt".into()),
                authentication_data: Some(Bytes::copy_from_slice(renewed.as_bytes())),
                ..Default::default()
            },
        }))
        .await;
    match client.recv().await {
        Packet::Auth(auth) => assert_eq!(auth.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected AUTH, got {other:?}"),
    }
    let principal = server.broker().connected_principal("sensor-7").unwrap();
    assert_eq!(principal.client_identity.as_deref(), Some("sensor-7"));
    assert_eq!(
        client
            .publish(
                "devices/sensor-7/users/alice/t",
                b"x",
                QoS::AtLeastOnce,
                false,
                2
            )
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    client.disconnect().await;
    server.shutdown().await;

    // The audit line names both identities and both authenticators.
    let text = std::fs::read_to_string(&audit).unwrap();
    let line: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "authentication" && l["outcome"] == "allow")
        .expect("an authentication event");
    assert_eq!(line["username"], "alice");
    assert_eq!(line["authenticator"], "user-token");
    assert_eq!(line["client_identity"], "sensor-7");
    assert_eq!(line["client_authenticator"], "devices");
}

#[tokio::test]
async fn each_identity_is_checked_and_either_failing_refuses() {
    let dir = TestDir::new("two-ids-refused");
    let (_server, addr) = start(config(&dir)).await;
    let alice = token("alice", 600);
    for (connect, why) in [
        (
            device_and_user("sensor-7", b"wrong-secret", Some(&alice)),
            "a wrong device secret",
        ),
        (
            device_and_user("sensor-9", b"device-secret", Some(&alice)),
            "an unknown device",
        ),
        (
            device_and_user("sensor-7", b"device-secret", Some("not.a.token")),
            "a user token that does not verify",
        ),
    ] {
        let (_, ack) = TestClient::connect_with(addr, connect).await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "{why}"
        );
    }
    // No device secret at all: a known device without its secret is refused as a wrong
    // password is; an unknown one presenting nothing is not authorized.
    let mut bare = connect_packet(V5, "sensor-7");
    bare.properties.authentication_method = Some("jwt".into());
    bare.properties.authentication_data = Some(Bytes::copy_from_slice(alice.as_bytes()));
    let (_, ack) = TestClient::connect_with(addr, bare.clone()).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    bare.client_id = "sensor-9".into();
    let (_, ack) = TestClient::connect_with(addr, bare).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn a_device_alone_is_named_after_itself_and_a_user_name_beside_it_is_not_taken() {
    let dir = TestDir::new("two-ids-device");
    let (server, addr) = start(config(&dir)).await;
    let mut connect = device_and_user("sensor-7", b"device-secret", None);
    connect.username = Some("admin".into());
    let (_client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let principal = server.broker().connected_principal("sensor-7").unwrap();
    assert_eq!(principal.username.as_deref(), Some("sensor-7"));
    assert_eq!(principal.client_identity.as_deref(), Some("sensor-7"));
    assert_eq!(principal.authenticated_by.as_str(), "devices");
}

#[tokio::test]
async fn a_3_1_1_device_sends_its_secret_as_password_and_the_user_token_as_user_name() {
    let dir = TestDir::new("two-ids-v311");
    let (server, addr) = start(config(&dir)).await;
    let mut connect = connect_packet(ProtocolVersion::V3_1_1, "sensor-7");
    connect.username = Some(token("carol", 600));
    connect.password = Some(Bytes::from_static(b"device-secret"));
    let (mut client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let principal = server.broker().connected_principal("sensor-7").unwrap();
    assert_eq!(principal.username.as_deref(), Some("carol"));
    assert_eq!(principal.client_identity.as_deref(), Some("sensor-7"));
    assert_eq!(
        client
            .publish(
                "devices/sensor-7/users/carol/t",
                b"x",
                QoS::AtLeastOnce,
                false,
                1
            )
            .await,
        ReasonCode::SUCCESS
    );
}
