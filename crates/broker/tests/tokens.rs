//! JWT access tokens over real connections: in the password field and in MQTT 5
//! authentication data, permissions from the token's claims, and re-authentication. (A
//! token's expiry ending the connection runs on the protocol core, in `protocol.rs`.)

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::time::Duration;
use tollgate_auth::jwt::{unix_now, JwtConfig, TokenClaimsConfig, TokenLocation};
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
        cache_ttl: Duration::from_secs(0),
        password_file: None,
        jwt: Some(jwt),
        ..Default::default()
    }];
    c.authorizers = vec![AuthorizerConfig {
        name: "token".into(),
        policy_file: None,
        acl_file: None,
        claims: Some(ClaimsSettings::default()),
    }];
    c.authorization.reload_interval = Duration::from_secs(0);
    c.throttle.enabled = false;
}

fn jwt_config() -> JwtConfig {
    JwtConfig {
        algorithms: vec!["HS256".into()],
        secret: Some(SECRET.into()),
        claims: TokenClaimsConfig {
            username_marker: Some("JWT".into()),
            ..TokenClaimsConfig::default()
        },
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
        claims: TokenClaimsConfig {
            token_from: TokenLocation::AuthenticationData,
            authentication_method: Some("jwt".into()),
            username_marker: None,
            ..jwt_config().claims.clone()
        },
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

fn auth_data_config() -> JwtConfig {
    JwtConfig {
        leeway: Duration::from_secs(0),
        claims: TokenClaimsConfig {
            token_from: TokenLocation::AuthenticationData,
            authentication_method: Some("jwt".into()),
            username_marker: None,
            ..jwt_config().claims.clone()
        },
        ..jwt_config()
    }
}

async fn connect_with_token(
    addr: std::net::SocketAddr,
    client_id: &str,
    token: &str,
) -> TestClient {
    let mut connect = connect_packet(ProtocolVersion::V5, client_id);
    connect.properties.authentication_method = Some("jwt".into());
    connect.properties.authentication_data = Some(token.to_owned().into_bytes().into());
    let (client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    client
}

fn reauth(token: &str) -> Packet {
    Packet::Auth(Auth {
        reason_code: ReasonCode::REAUTHENTICATE,
        properties: AuthProperties {
            authentication_method: Some("jwt".into()),
            authentication_data: Some(token.to_owned().into_bytes().into()),
            ..Default::default()
        },
    })
}

#[tokio::test]
async fn reauthentication_with_a_fresh_token_renews_the_rights_and_keeps_the_session() {
    let (_server, addr) = start_broker(|c| with_jwt(c, auth_data_config())).await;
    let mut c = connect_with_token(
        addr,
        "renewer",
        &token(json!({ "sub": "dev", "exp": unix_now() + 2, "topics": ["r/#"] })),
    )
    .await;
    c.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    c.send(reauth(&token(
        json!({ "sub": "dev", "exp": unix_now() + 600, "topics": ["r/#"] }),
    )))
    .await;
    match c.recv().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason_code, ReasonCode::SUCCESS);
            assert_eq!(a.properties.authentication_method.as_deref(), Some("jwt"));
        }
        other => panic!("expected AUTH success, got {other:?}"),
    }
    // (That the renewed principal outlives the first token's expiry is shown on the protocol
    // core's clock: tests/protocol.rs.) The session is untouched: its subscription still
    // delivers.
    assert_eq!(
        c.publish("r/1", b"still here", QoS::AtLeastOnce, false, 2)
            .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(&c.recv_publish().await.payload[..], b"still here");
}

#[tokio::test]
async fn reauthentication_applies_the_new_tokens_permissions() {
    let (_server, addr) = start_broker(|c| with_jwt(c, auth_data_config())).await;
    let mut c = connect_with_token(
        addr,
        "mover",
        &token(json!({ "sub": "dev", "exp": unix_now() + 600, "topics": ["a/#"] })),
    )
    .await;
    c.subscribe(1, "a/#", QoS::AtLeastOnce).await;
    c.send(reauth(&token(
        json!({ "sub": "dev", "exp": unix_now() + 600, "topics": ["b/#"] }),
    )))
    .await;
    assert!(matches!(c.recv().await, Packet::Auth(a) if a.reason_code == ReasonCode::SUCCESS));
    assert_eq!(
        c.publish("a/1", b"old", QoS::AtLeastOnce, false, 2).await,
        ReasonCode::NOT_AUTHORIZED,
        "a/# is no longer granted"
    );
    assert_eq!(
        c.subscribe(3, "b/#", QoS::AtLeastOnce).await.reason_codes,
        vec![ReasonCode::GRANTED_QOS_1]
    );
}

#[tokio::test]
async fn a_failed_reauthentication_ends_the_connection_with_0x87() {
    let (_server, addr) = start_broker(|c| with_jwt(c, auth_data_config())).await;
    for bad in [
        encode(
            &Header::new(Algorithm::HS256),
            &json!({ "sub": "dev", "exp": unix_now() + 600 }),
            &EncodingKey::from_secret(b"forged"),
        )
        .unwrap(),
        token(json!({ "sub": "someone-else", "exp": unix_now() + 600 })),
    ] {
        let mut c = connect_with_token(
            addr,
            "failer",
            &token(json!({ "sub": "dev", "exp": unix_now() + 600 })),
        )
        .await;
        c.send(reauth(&bad)).await;
        match c.expect_close().await.as_slice() {
            [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
            other => panic!("expected DISCONNECT 0x87, got {other:?}"),
        }
    }
}
