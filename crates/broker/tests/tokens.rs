//! JWT access tokens over real connections: in the password field and in MQTT 5
//! authentication data, permissions from the token's claims, and the end of the principal's
//! rights when the token expires.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate_auth::jwt::{unix_now, JwtConfig, TokenLocation};
use tollgate_auth::policy::ClaimsSettings;
use tollgate_broker::{AuthenticatorConfig, AuthorizerConfig, BrokerConfig};
use tollgate_mqtt::*;

const SECRET: &str = "a-secret-the-identity-provider-shares";

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn with_jwt(c: &mut BrokerConfig, jwt: JwtConfig) {
    c.listeners[0].allow_anonymous = false;
    c.authenticators = vec![AuthenticatorConfig {
        name: "idp".into(),
        on_error: Default::default(),
        cache_ttl: 0,
        password_file: None,
        jwt: Some(jwt),
    }];
    c.authorizers = vec![AuthorizerConfig {
        name: "token".into(),
        policy_file: None,
        acl_file: None,
        claims: Some(ClaimsSettings::default()),
    }];
    c.authorization.reload_interval = 0;
    c.throttle.enabled = false;
}

fn jwt_config() -> JwtConfig {
    JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some(SECRET.into()),
        username_marker: Some("JWT".into()),
        ..JwtConfig::default()
    }
}

fn password_connect(version: ProtocolVersion, client_id: &str, token: &str) -> Connect {
    let mut c = connect_packet(version, client_id);
    c.username = Some("JWT".into());
    c.password = Some(token.to_owned().into_bytes().into());
    c
}

#[tokio::test]
async fn a_token_in_the_password_authenticates_and_its_topics_claim_grants_permissions() {
    let (server, addr) = start_broker(|c| with_jwt(c, jwt_config())).await;
    let t = token(json!({ "sub": "sensor-9", "exp": unix_now() + 600, "topics": ["plant/7/#"] }));
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let (mut c, ack) =
            TestClient::connect_with(addr, password_connect(version, "s9", &t)).await;
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{version:?}");
        assert_eq!(
            server
                .broker()
                .connected_principal("s9")
                .unwrap()
                .username
                .as_deref(),
            Some("sensor-9")
        );
        if version == ProtocolVersion::V5 {
            assert_eq!(
                c.subscribe(1, "plant/7/temp", QoS::AtMostOnce)
                    .await
                    .reason_codes,
                vec![ReasonCode::GRANTED_QOS_0]
            );
            assert_eq!(
                c.subscribe(2, "plant/8/temp", QoS::AtMostOnce)
                    .await
                    .reason_codes,
                vec![ReasonCode::NOT_AUTHORIZED]
            );
        }
        c.disconnect().await;
    }
    let expired = token(json!({ "sub": "sensor-9", "exp": unix_now() - 3600 }));
    let (_c, ack) =
        TestClient::connect_with(addr, password_connect(ProtocolVersion::V5, "s9", &expired)).await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        "an expired token gets no session back"
    );
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "x", "exp": unix_now() + 60 }),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let (_c, ack) = TestClient::connect_with(
        addr,
        password_connect(ProtocolVersion::V3_1_1, "x", &forged),
    )
    .await;
    assert_eq!(
        ack.reason_code,
        ConnectReturnCode::BAD_USER_NAME_OR_PASSWORD
    );
}

#[tokio::test]
async fn a_token_in_mqtt5_authentication_data_is_answered_with_the_method() {
    let jwt = JwtConfig {
        token_from: TokenLocation::AuthenticationData,
        authentication_method: Some("jwt".into()),
        username_marker: None,
        ..jwt_config()
    };
    let (_server, addr) = start_broker(|c| with_jwt(c, jwt)).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "app");
    connect.properties.authentication_method = Some("jwt".into());
    connect.properties.authentication_data = Some(
        token(json!({ "sub": "app", "exp": unix_now() + 600 }))
            .into_bytes()
            .into(),
    );
    // The password field stays free for something else.
    connect.username = Some("app".into());
    connect.password = Some("client-secret".into());
    let (_c, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(ack.properties.authentication_method.as_deref(), Some("jwt"));
}

#[tokio::test]
async fn the_connection_ends_when_the_token_expires() {
    let (_server, addr) = start_broker(|c| {
        with_jwt(
            c,
            JwtConfig {
                leeway: 0,
                ..jwt_config()
            },
        )
    })
    .await;
    let t = token(json!({ "sub": "short", "exp": unix_now() + 2, "topics": ["x/#"] }));
    let (mut c, ack) =
        TestClient::connect_with(addr, password_connect(ProtocolVersion::V5, "short", &t)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    // Keep alive is 60 s: only the token's expiry can end the connection this soon.
    match c.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 at expiry, got {other:?}"),
    }
}
