//! RFC 9431 (the MQTT-TLS profile of ACE) over real TLS connections: a token with an Ed25519
//! `cnf.jwk` or a symmetric `cnf.kid`, proved by a signature or MAC over the TLS exporter
//! value, or by the broker's challenge; every refusal (wrong proof, a proof from another TLS
//! session, a replayed answer, a token for another key, an expired token, no TLS); the AIF
//! scope applied by the claims authorizer.
//!
//! The client side (exporter, signatures, MACs) is written here with rustls, jsonwebtoken and
//! the hash crates, not with the broker's code.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use common::*;
use hmac::{Hmac, Mac};
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tollgate_auth::policy::ClaimsSettings;
use tollgate_broker::{AuthenticatorConfig, AuthorizerConfig, BrokerConfig, TlsConfig};
use tollgate_mqtt::*;

const AS_SECRET: &str = "the authorization server's signing secret";
/// The symmetric PoP key the AS shares with the broker under kid `k1` (base64url).
const SYMMETRIC: &[u8] = b"sixteen-byte-key-and-more";
const EXPORTER_LABEL: &[u8] = b"EXPORTER-ACE-MQTT-Sign-Challenge";

struct Pki {
    dir: TestDir,
    server_der: CertificateDer<'static>,
}

fn pki(tag: &str) -> Pki {
    let dir = TestDir::new(&format!("ace-{tag}"));
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    dir.write("server.pem", &cert.pem());
    dir.write("server.key", &key.serialize_pem());
    Pki {
        server_der: cert.der().clone(),
        dir,
    }
}

async fn ace_broker(pki: &Pki, tls: bool) -> (tollgate_broker::Server, SocketAddr) {
    let table = format!(
        "name = \"ace\"\n[ace]\nsymmetric_keys = {{ k1 = \"{}\" }}\nace_as_hint = {{ AS = \"https://as.example/token\", audience = \"tollgate\" }}\n[ace.verify]\nalgorithms = [\"HS256\"]\nsecret = \"{AS_SECRET}\"\n",
        URL_SAFE_NO_PAD.encode(SYMMETRIC)
    );
    let authenticator: AuthenticatorConfig = toml::from_str(&table).unwrap();
    let tls_config = TlsConfig {
        cert: pki.dir.0.join("server.pem"),
        key: pki.dir.0.join("server.key"),
        ..toml::from_str::<TlsConfig>("cert = \"x\"\nkey = \"y\"\n").unwrap()
    };
    start_broker(move |c: &mut BrokerConfig| {
        if tls {
            c.listeners[0].tls = Some(tls_config);
        }
        c.listeners[0].allow_anonymous = false;
        c.authenticators = vec![authenticator];
        c.authorizers = vec![AuthorizerConfig {
            name: "scope".into(),
            policy_file: None,
            acl_file: None,
            claims: Some(ClaimsSettings::default()),
        }];
        c.authorization.reload_interval = Duration::from_secs(0);
        c.throttle.enabled = false;
        c.limits.connect_timeout = Duration::from_secs(1);
    })
    .await
}

/// A TLS connection and its exporter value.
async fn tls_open(pki: &Pki, addr: SocketAddr) -> (TestClient, [u8; 32]) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let exporter = tls
        .get_ref()
        .1
        .export_keying_material([0u8; 32], EXPORTER_LABEL, Some(&[]))
        .unwrap();
    (
        TestClient::over(Box::new(tls), ProtocolVersion::V5),
        exporter,
    )
}

/// A client's Ed25519 key: its JWK `x` and a signer.
struct Ed25519 {
    x: String,
    signing: jsonwebtoken::EncodingKey,
}

fn ed25519() -> Ed25519 {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    Ed25519 {
        x: URL_SAFE_NO_PAD.encode(key.public_key_raw()),
        signing: jsonwebtoken::EncodingKey::from_ed_pem(key.serialize_pem().as_bytes()).unwrap(),
    }
}

impl Ed25519 {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let b64 =
            jsonwebtoken::crypto::sign(message, &self.signing, jsonwebtoken::Algorithm::EdDSA)
                .unwrap();
        URL_SAFE_NO_PAD.decode(b64).unwrap()
    }
}

fn hs256(message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SYMMETRIC).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The AS's token for `sub` with `cnf` and the AIF scope `tele/<sub>/#` (pub and sub),
/// expiring `exp_in` seconds from now (negative: already expired).
fn token(sub: &str, cnf: serde_json::Value, exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "sub": sub,
        "exp": now + exp_in,
        "cnf": cnf,
        "scope": [[format!("tele/{sub}/#"), ["pub", "sub"]]],
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(AS_SECRET.as_bytes()),
    )
    .unwrap()
}

fn jwk_cnf(key: &Ed25519) -> serde_json::Value {
    serde_json::json!({ "jwk": { "kty": "OKP", "crv": "Ed25519", "x": key.x } })
}

/// `Token Length | Token | proof`.
fn auth_data(token: &str, proof: &[u8]) -> Bytes {
    let mut data = (token.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(token.as_bytes());
    data.extend_from_slice(proof);
    Bytes::from(data)
}

fn ace_connect(client_id: &str, data: Bytes) -> Connect {
    let mut connect = connect_packet(ProtocolVersion::V5, client_id);
    connect.properties.authentication_method = Some("ace".into());
    connect.properties.authentication_data = Some(data);
    connect
}

async fn connack(client: &mut TestClient) -> ReasonCode {
    match client.recv().await {
        Packet::ConnAck(ack) => ack.reason_code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// The broker's challenge: its 8-byte nonce.
async fn challenge(client: &mut TestClient) -> Vec<u8> {
    match client.recv().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
            assert_eq!(a.properties.authentication_method.as_deref(), Some("ace"));
            let nonce = a.properties.authentication_data.unwrap().to_vec();
            assert_eq!(nonce.len(), 8);
            nonce
        }
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
}

fn answer(client_nonce: &[u8; 8], proof: Vec<u8>) -> Packet {
    let mut data = client_nonce.to_vec();
    data.extend(proof);
    Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: AuthProperties {
            authentication_method: Some("ace".into()),
            authentication_data: Some(Bytes::from(data)),
            ..Default::default()
        },
    })
}

#[tokio::test]
async fn an_ed25519_proof_over_the_tls_exporter_connects_within_the_tokens_scope() {
    let pki = pki("t1");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    let token = token("dev1", jwk_cnf(&key), 600);
    let (mut client, exporter) = tls_open(&pki, addr).await;
    let data = auth_data(&token, &key.sign(&exporter));
    client
        .send(Packet::Connect(Box::new(ace_connect("d1", data))))
        .await;
    assert_eq!(connack(&mut client).await, ReasonCode::SUCCESS);
    // The AIF scope: tele/dev1/# only.
    let suback = client.subscribe(1, "tele/dev1/#", QoS::AtLeastOnce).await;
    assert_eq!(suback.reason_codes, [ReasonCode::GRANTED_QOS_1]);
    let refused = client.subscribe(2, "tele/dev2/#", QoS::AtLeastOnce).await;
    assert!(refused.reason_codes[0].0 >= 0x80, "{refused:?}");
}

#[tokio::test]
async fn a_proof_made_on_another_tls_session_or_with_another_key_is_refused() {
    let pki = pki("t2");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    let token = token("dev1", jwk_cnf(&key), 600);
    // A proof recorded on one session, replayed on another.
    let (_first, exporter) = tls_open(&pki, addr).await;
    let recorded = key.sign(&exporter);
    let (mut client, _) = tls_open(&pki, addr).await;
    client
        .send(Packet::Connect(Box::new(ace_connect(
            "d1",
            auth_data(&token, &recorded),
        ))))
        .await;
    assert_eq!(connack(&mut client).await, ReasonCode::NOT_AUTHORIZED);
    // Someone else's key signing over the right exporter: the token is for another key.
    let thief = ed25519();
    let (mut client, exporter) = tls_open(&pki, addr).await;
    client
        .send(Packet::Connect(Box::new(ace_connect(
            "d1",
            auth_data(&token, &thief.sign(&exporter)),
        ))))
        .await;
    assert_eq!(connack(&mut client).await, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn the_brokers_challenge_is_answered_with_a_mac_of_the_shared_key() {
    let pki = pki("t3");
    let (_server, addr) = ace_broker(&pki, true).await;
    let token = token("dev2", serde_json::json!({ "kid": "k1" }), 600);
    let (mut client, _) = tls_open(&pki, addr).await;
    client
        .send(Packet::Connect(Box::new(ace_connect(
            "d2",
            auth_data(&token, b""),
        ))))
        .await;
    let rs_nonce = challenge(&mut client).await;
    let client_nonce = *b"cnonce-8";
    let mut signed = rs_nonce.clone();
    signed.extend_from_slice(&client_nonce);
    client.send(answer(&client_nonce, hs256(&signed))).await;
    assert_eq!(connack(&mut client).await, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn a_recorded_answer_does_not_answer_another_challenge() {
    let pki = pki("t4");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    let token = token("dev1", jwk_cnf(&key), 600);
    let (mut first, _) = tls_open(&pki, addr).await;
    first
        .send(Packet::Connect(Box::new(ace_connect(
            "d1",
            auth_data(&token, b""),
        ))))
        .await;
    let rs_nonce = challenge(&mut first).await;
    let client_nonce = *b"12345678";
    let mut signed = rs_nonce;
    signed.extend_from_slice(&client_nonce);
    let recorded = answer(&client_nonce, key.sign(&signed));
    drop(first);
    let (mut client, _) = tls_open(&pki, addr).await;
    client
        .send(Packet::Connect(Box::new(ace_connect(
            "d1",
            auth_data(&token, b""),
        ))))
        .await;
    challenge(&mut client).await;
    client.send(recorded).await;
    assert_eq!(connack(&mut client).await, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn expired_unknown_key_and_malformed_tokens_are_refused() {
    let pki = pki("t5");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    let cases = [
        auth_data(&token("dev1", jwk_cnf(&key), -120), b""),
        auth_data(
            &token("dev1", serde_json::json!({ "kid": "unknown" }), 600),
            b"",
        ),
        auth_data(
            &token(
                "dev1",
                serde_json::json!({ "jwk": { "kty": "oct", "k": "c2VjcmV0" } }),
                600,
            ),
            b"",
        ),
        auth_data("not a token", b""),
        Bytes::from_static(b"\x00\x40short"),
        Bytes::new(),
    ];
    for data in cases {
        let (mut client, _) = tls_open(&pki, addr).await;
        client
            .send(Packet::Connect(Box::new(ace_connect("d1", data.clone()))))
            .await;
        assert_eq!(
            connack(&mut client).await,
            ReasonCode::NOT_AUTHORIZED,
            "{data:?}"
        );
    }
}

#[tokio::test]
async fn a_proof_over_the_tls_exporter_needs_tls() {
    let pki = pki("t6");
    let (_server, addr) = ace_broker(&pki, false).await;
    let key = ed25519();
    let token = token("dev1", jwk_cnf(&key), 600);
    let connect = ace_connect("d1", auth_data(&token, &key.sign(&[0u8; 32])));
    let (_client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn re_authentication_with_a_new_token_takes_the_challenge() {
    let pki = pki("reauth");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    let (mut client, exporter) = tls_open(&pki, addr).await;
    let first = token("dev1", jwk_cnf(&key), 600);
    client
        .send(Packet::Connect(Box::new(ace_connect(
            "d1",
            auth_data(&first, &key.sign(&exporter)),
        ))))
        .await;
    assert_eq!(connack(&mut client).await, ReasonCode::SUCCESS);
    let reauth = |token: &str| {
        Packet::Auth(Auth {
            reason_code: ReasonCode::REAUTHENTICATE,
            properties: AuthProperties {
                authentication_method: Some("ace".into()),
                authentication_data: Some(auth_data(token, b"")),
                ..Default::default()
            },
        })
    };
    client
        .send(reauth(&token("dev1", jwk_cnf(&key), 1200)))
        .await;
    let rs_nonce = challenge(&mut client).await;
    let client_nonce = *b"reauth-1";
    let mut signed = rs_nonce;
    signed.extend_from_slice(&client_nonce);
    client.send(answer(&client_nonce, key.sign(&signed))).await;
    match client.recv().await {
        Packet::Auth(a) => assert_eq!(a.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    // A wrong proof at the next re-authentication ends the connection with 0x87.
    client
        .send(reauth(&token("dev1", jwk_cnf(&key), 1200)))
        .await;
    challenge(&mut client).await;
    client
        .send(answer(b"reauth-2", ed25519().sign(b"whatever")))
        .await;
    match client.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
}

#[tokio::test]
async fn mqtt_311_clients_send_the_token_in_the_user_name_and_the_proof_as_password() {
    let pki = pki("v311");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    let token = token("dev1", jwk_cnf(&key), 600);
    for (proof_key, expected) in [(&key, 0u8), (&ed25519(), 5u8)] {
        let (mut client, exporter) = tls_open(&pki, addr).await;
        client.version = ProtocolVersion::V3_1_1;
        let mut connect = connect_packet(ProtocolVersion::V3_1_1, "d1");
        connect.username = Some(format!("ace{}", URL_SAFE_NO_PAD.encode(&token)));
        connect.password = Some(Bytes::from(proof_key.sign(&exporter)));
        client.send(Packet::Connect(Box::new(connect))).await;
        // 3.1.1 return codes: 0 accepted, 5 not authorized.
        assert_eq!(connack(&mut client).await.0, expected);
    }
    // A user name that merely starts with `ace` is not an ace login: the chain goes on (and,
    // with no other authenticator, refuses it as bad credentials, 4).
    let (mut client, _) = tls_open(&pki, addr).await;
    client.version = ProtocolVersion::V3_1_1;
    let mut connect = connect_packet(ProtocolVersion::V3_1_1, "d1");
    connect.username = Some("acevedo".into());
    connect.password = Some(Bytes::from_static(b"password"));
    client.send(Packet::Connect(Box::new(connect))).await;
    assert_eq!(connack(&mut client).await.0, 4);
}

#[tokio::test]
async fn a_connect_without_a_token_is_refused_with_the_authorization_servers_hint() {
    let pki = pki("hint");
    let (_server, addr) = ace_broker(&pki, true).await;
    let (mut client, _) = tls_open(&pki, addr).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "d1");
    connect.properties.authentication_method = Some("ace".into());
    client.send(Packet::Connect(Box::new(connect))).await;
    match client.recv().await {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
            let (name, value) = &ack.properties.user_properties[0];
            assert_eq!(name, "ace_as_hint");
            let hint: serde_json::Value = serde_json::from_str(value).unwrap();
            assert_eq!(
                hint,
                serde_json::json!({ "AS": "https://as.example/token", "audience": "tollgate" })
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn at_token_expiry_the_client_is_disconnected_and_its_will_published() {
    let pki = pki("expiry");
    let (_server, addr) = ace_broker(&pki, true).await;
    let key = ed25519();
    // A subscriber with a long token.
    let (mut subscriber, exporter) = tls_open(&pki, addr).await;
    let long = token("dev1", jwk_cnf(&key), 600);
    subscriber
        .send(Packet::Connect(Box::new(ace_connect(
            "watcher",
            auth_data(&long, &key.sign(&exporter)),
        ))))
        .await;
    assert_eq!(connack(&mut subscriber).await, ReasonCode::SUCCESS);
    subscriber
        .subscribe(1, "tele/dev1/#", QoS::AtMostOnce)
        .await;
    // A device whose token ends in two seconds, with a will in its scope.
    let (mut device, exporter) = tls_open(&pki, addr).await;
    let short = token("dev1", jwk_cnf(&key), 2);
    let mut connect = ace_connect("d1", auth_data(&short, &key.sign(&exporter)));
    connect.will = Some(Will {
        topic: "tele/dev1/status".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    device.send(Packet::Connect(Box::new(connect))).await;
    assert_eq!(connack(&mut device).await, ReasonCode::SUCCESS);
    match device.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
    let will = subscriber.recv_publish().await;
    assert_eq!(
        (will.topic.as_str(), will.payload.as_ref()),
        ("tele/dev1/status", &b"gone"[..])
    );
}

#[tokio::test]
async fn an_ace_authenticator_with_a_cache_is_refused_at_its_key() {
    // A cached allow would let one proof over one TLS session's exporter log in another.
    let table = format!(
        "name = \"ace\"\ncache_ttl = 60\n[ace.verify]\nalgorithms = [\"HS256\"]\nsecret = \"{AS_SECRET}\"\n"
    );
    let mut config = anonymous_config();
    config.authenticators = vec![toml::from_str(&table).unwrap()];
    let error = match tollgate_broker::Server::start(config).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("an ace authenticator with cache_ttl was accepted"),
    };
    assert!(error.contains("authenticator[0].cache_ttl"), "{error}");
    assert!(error.contains("replayed"), "{error}");
}
