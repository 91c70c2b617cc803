//! SCRAM-SHA-256 and SCRAM-SHA-512 as MQTT 5 enhanced authentication, over real connections:
//! CONNECT with the client's first message, AUTH 0x18 both ways, CONNACK with the broker's
//! proof; Mosquitto's PBKDF2 lines used for SCRAM-SHA-512; every refusal (wrong password,
//! unknown user, replayed answer, another method, no answer); a plain password for a SCRAM
//! user; re-authentication in several steps while the client is served.
//!
//! The client side is written here from RFC 5802 with the hash crates, not with the
//! broker's own SCRAM code.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use common::*;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_auth::scram::Mechanism;
use tollgate_broker::{AuthenticatorConfig, BrokerConfig, PasswordFileConfig};
use tollgate_mqtt::*;

const MOSQUITTO_FIXTURE: &str = include_str!("../../auth/tests/fixtures/mosquitto_passwd.txt");

/// The client's side of one exchange.
struct ScramClient {
    sha512: bool,
    password: String,
    client_first_bare: String,
    /// Filled by [`ScramClient::answer`]: what the broker's signature must be.
    expected_server_signature: Vec<u8>,
}

impl ScramClient {
    fn new(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            sha512: mechanism == Mechanism::Sha512,
            password: password.into(),
            client_first_bare: format!("n={user},r={nonce}"),
            expected_server_signature: Vec::new(),
        }
    }

    fn method(&self) -> &'static str {
        if self.sha512 {
            "SCRAM-SHA-512"
        } else {
            "SCRAM-SHA-256"
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        } else {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            Sha512::digest(data).to_vec()
        } else {
            Sha256::digest(data).to_vec()
        }
    }

    /// The client-final message answering `server_first`.
    fn answer(&mut self, server_first: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(server_first).unwrap();
        let field = |name: &str| {
            text.split(',')
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        let nonce = field("r=");
        let salt = STANDARD.decode(field("s=")).unwrap();
        let iterations: u32 = field("i=").parse().unwrap();
        let mut salted = vec![0u8; if self.sha512 { 64 } else { 32 }];
        if self.sha512 {
            pbkdf2::pbkdf2_hmac::<Sha512>(self.password.as_bytes(), &salt, iterations, &mut salted);
        } else {
            pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.hash(&client_key);
        let signature = self.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key");
        self.expected_server_signature = self.hmac(&server_key, auth_message.as_bytes());
        format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes()
    }

    /// Whether `server_final` proves the broker knew the keys.
    fn broker_proved(&self, server_final: &[u8]) -> bool {
        server_final == format!("v={}", STANDARD.encode(&self.expected_server_signature)).as_bytes()
    }
}

/// A password file with SCRAM-SHA-256 `dev1`/`pencil` and `dev3`/`chalk`, SCRAM-SHA-512
/// `dev2`/`crayon`, and
/// Mosquitto's own lines (`alice` / `secret1` is PBKDF2-SHA512).
fn scram_file(dir: &TestDir) -> PathBuf {
    let path = dir.write("passwd", MOSQUITTO_FIXTURE);
    let mut editor = PasswordFileEditor::open(&path, false).unwrap();
    editor
        .set_scram("dev1", "pencil", Mechanism::Sha256, 4096)
        .unwrap();
    editor
        .set_scram("dev2", "crayon", Mechanism::Sha512, 4096)
        .unwrap();
    editor
        .set_scram("dev3", "chalk", Mechanism::Sha256, 4096)
        .unwrap();
    editor.save().unwrap();
    path
}

fn with_scram_file(config: &mut BrokerConfig, path: PathBuf) {
    config.listeners[0].allow_anonymous = false;
    config.authenticators = vec![AuthenticatorConfig {
        name: "users".into(),
        password_file: Some(PasswordFileConfig {
            path,
            reload_interval: Duration::from_secs(0),
            max_parallel_hashes: 2,
            key: Default::default(),
        }),
        ..Default::default()
    }];
    config.throttle.enabled = false;
    config.limits.connect_timeout = Duration::from_secs(1);
}

fn scram_connect(client_id: &str, scram: &ScramClient) -> Connect {
    let mut connect = connect_packet(ProtocolVersion::V5, client_id);
    connect.properties.authentication_method = Some(scram.method().into());
    connect.properties.authentication_data = Some(Bytes::from(scram.first()));
    connect
}

fn auth(reason_code: ReasonCode, method: &str, data: Vec<u8>) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(method.into()),
            authentication_data: Some(Bytes::from(data)),
            ..Default::default()
        },
    })
}

/// The AUTH 0x18 the broker must send, with its data.
async fn challenge(client: &mut TestClient, method: &str) -> Vec<u8> {
    match client.recv().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
            assert_eq!(a.properties.authentication_method.as_deref(), Some(method));
            a.properties.authentication_data.unwrap().to_vec()
        }
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
}

/// Opens a connection and runs the exchange up to the broker's challenge.
async fn start(addr: std::net::SocketAddr, scram: &ScramClient) -> (TestClient, Vec<u8>) {
    let mut client = TestClient::open(addr, ProtocolVersion::V5).await;
    client
        .send(Packet::Connect(Box::new(scram_connect("dev", scram))))
        .await;
    let server_first = challenge(&mut client, scram.method()).await;
    (client, server_first)
}

/// Runs a whole exchange; the CONNACK.
async fn exchange(addr: std::net::SocketAddr, scram: &mut ScramClient) -> (TestClient, ConnAck) {
    let (mut client, server_first) = start(addr, scram).await;
    let answer = scram.answer(&server_first);
    client
        .send(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            scram.method(),
            answer,
        ))
        .await;
    match client.recv().await {
        Packet::ConnAck(ack) => (client, ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn scram_sha_256_and_sha_512_connect_and_the_broker_proves_it_knew_the_keys() {
    let dir = TestDir::new("scram-ok");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    for (mechanism, user, password) in [
        (Mechanism::Sha256, "dev1", "pencil"),
        (Mechanism::Sha512, "dev2", "crayon"),
    ] {
        let mut scram = ScramClient::new(mechanism, user, password, "fyko+d2lbbFgONRv9qkxdawL");
        let (mut client, ack) = exchange(addr, &mut scram).await;
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{user}");
        assert_eq!(
            ack.properties.authentication_method.as_deref(),
            Some(mechanism.name())
        );
        let server_final = ack.properties.authentication_data.unwrap();
        assert!(scram.broker_proved(&server_final), "{user}: server-final");
        // Connected as the user the exchange proved.
        client.subscribe(1, "t", QoS::AtMostOnce).await;
        client.publish("t", b"hi", QoS::AtMostOnce, false, 0).await;
        assert_eq!(client.recv_publish().await.payload.as_ref(), b"hi");
    }
}

#[tokio::test]
async fn mosquitto_pbkdf2_users_of_enough_iterations_can_use_scram_sha_512() {
    let dir = TestDir::new("scram-mosquitto");
    let path = scram_file(&dir);
    // A `$7$` line as `mosquitto_passwd -I 4096` writes it.
    let salt = b"mosquitto-salt-1";
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(b"hunter2", salt, 4096, &mut hash);
    let line = format!(
        "erin:$7$4096${}${}\n",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    );
    let text = std::fs::read_to_string(&path).unwrap() + &line;
    std::fs::write(&path, text).unwrap();
    let (_server, addr) = start_broker(|c| with_scram_file(c, path)).await;
    let mut scram = ScramClient::new(Mechanism::Sha512, "erin", "hunter2", "nonce-1");
    let (_client, ack) = exchange(addr, &mut scram).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(scram.broker_proved(&ack.properties.authentication_data.unwrap()));
    // Mosquitto's lines carry no SCRAM-SHA-256 keys, and its default of 101 iterations
    // (alice's line) is too weak to offer: both fail like a bad password.
    for (mechanism, user, password) in [
        (Mechanism::Sha256, "erin", "hunter2"),
        (Mechanism::Sha512, "alice", "secret1"),
    ] {
        let mut scram = ScramClient::new(mechanism, user, password, "nonce-2");
        let (_client, ack) = exchange(addr, &mut scram).await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "{user}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_fail_alike_and_only_at_the_proof() {
    let dir = TestDir::new("scram-wrong");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let mut wrong = ScramClient::new(Mechanism::Sha256, "dev1", "pencils", "n1");
    let (mut client, ack) = exchange(addr, &mut wrong).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    assert_eq!(
        ack.properties.authentication_data, None,
        "no proof for a failure"
    );
    assert!(client.expect_close().await.is_empty());

    // An unknown user is challenged like a known one, with the same salt each time.
    let unknown = ScramClient::new(Mechanism::Sha256, "nobody", "x", "n2");
    let (_c1, first) = start(addr, &unknown).await;
    let (_c2, again) = start(addr, &unknown).await;
    let salt = |m: &[u8]| {
        let text = String::from_utf8(m.to_vec()).unwrap();
        assert!(
            text.starts_with("r=n2") && text.ends_with(",i=4096"),
            "{text}"
        );
        text.split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(salt(&first), salt(&again));
    let mut unknown = ScramClient::new(Mechanism::Sha256, "nobody", "x", "n3");
    let (mut client, ack) = exchange(addr, &mut unknown).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    assert!(client.expect_close().await.is_empty());
}

#[tokio::test]
async fn an_answer_replayed_on_another_connection_is_refused() {
    let dir = TestDir::new("scram-replay");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "same-nonce");
    let (first, server_first) = start(addr, &scram).await;
    let answer = scram.answer(&server_first);
    drop(first);
    // The same first message and the recorded answer, on a fresh connection: the broker's
    // nonce differs, so the proof does not hold.
    let (mut client, _) = start(addr, &scram).await;
    client
        .send(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            scram.method(),
            answer,
        ))
        .await;
    match client.recv().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // Nor does the answer work as a first message.
    let mut connect = connect_packet(ProtocolVersion::V5, "dev");
    connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
    connect.properties.authentication_data = Some(Bytes::from(scram.answer(&server_first)));
    let (_client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
}

#[tokio::test]
async fn an_answer_with_another_method_or_reason_is_a_protocol_error() {
    let dir = TestDir::new("scram-method");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "n");
    for (reason, method) in [
        (ReasonCode::CONTINUE_AUTHENTICATION, "SCRAM-SHA-512"),
        (ReasonCode::REAUTHENTICATE, "SCRAM-SHA-256"),
    ] {
        let (mut client, server_first) = start(addr, &scram).await;
        let answer = scram.answer(&server_first);
        client.send(auth(reason, method, answer)).await;
        match client.expect_close().await.as_slice() {
            [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, ReasonCode::PROTOCOL_ERROR),
            other => panic!("expected CONNACK 0x82, got {other:?}"),
        }
    }
    // Anything but AUTH before CONNACK too.
    let (mut client, _) = start(addr, &scram).await;
    client.send(Packet::PingReq).await;
    match client.expect_close().await.as_slice() {
        [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected CONNACK 0x82, got {other:?}"),
    }
}

#[tokio::test]
async fn a_challenge_left_unanswered_ends_at_the_connect_timeout() {
    let dir = TestDir::new("scram-silent");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "n");
    let (mut client, _) = start(addr, &scram).await;
    // connect_timeout is 1 s: the close comes well within the client's 5 s wait.
    assert!(client.expect_close().await.is_empty());
}

#[tokio::test]
async fn malformed_first_messages_and_channel_binding_are_refused() {
    let dir = TestDir::new("scram-malformed");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    for data in [
        &b"p=tls-unique,,n=dev1,r=abc"[..],
        b"n,,n=dev1",
        b"garbage",
        b"",
    ] {
        let mut connect = connect_packet(ProtocolVersion::V5, "dev");
        connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
        connect.properties.authentication_data = Some(Bytes::copy_from_slice(data));
        let (mut client, ack) = TestClient::connect_with(addr, connect).await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "{}",
            String::from_utf8_lossy(data)
        );
        assert!(client.expect_close().await.is_empty());
    }
}

#[tokio::test]
async fn a_scram_user_may_also_log_in_with_a_plain_password() {
    let dir = TestDir::new("scram-plain");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    for (password, expected) in [
        ("pencil", ReasonCode::SUCCESS),
        ("pen", ReasonCode::BAD_USER_NAME_OR_PASSWORD),
    ] {
        let mut connect = connect_packet(ProtocolVersion::V3_1_1, "plain");
        connect.username = Some("dev1".into());
        connect.password = Some(Bytes::from(password));
        let (_client, ack) = TestClient::connect_with(addr, connect).await;
        let code = answers_as_v5(ack.reason_code);
        assert_eq!(code, expected, "{password}");
    }
}

/// A 3.1.1 return code as the 5.0 reason it stands for (0 success, 4 bad credentials).
fn answers_as_v5(code: ReasonCode) -> ReasonCode {
    match code.0 {
        0 => ReasonCode::SUCCESS,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        other => panic!("unexpected return code {other}"),
    }
}

#[tokio::test]
async fn re_authentication_in_several_steps_serves_the_client_meanwhile() {
    let dir = TestDir::new("scram-reauth");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "first");
    let (mut client, ack) = exchange(addr, &mut scram).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);

    let mut again = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "second");
    client
        .send(auth(
            ReasonCode::REAUTHENTICATE,
            again.method(),
            again.first(),
        ))
        .await;
    let server_first = challenge(&mut client, again.method()).await;
    // Waiting for the answer, the client is served.
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Packet::PingResp);
    let answer = again.answer(&server_first);
    client
        .send(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            again.method(),
            answer,
        ))
        .await;
    match client.recv().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason_code, ReasonCode::SUCCESS);
            assert!(again.broker_proved(&a.properties.authentication_data.unwrap()));
        }
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }

    // A wrong proof at re-authentication ends the connection with 0x87.
    let mut wrong = ScramClient::new(Mechanism::Sha256, "dev1", "crayon", "third");
    client
        .send(auth(
            ReasonCode::REAUTHENTICATE,
            wrong.method(),
            wrong.first(),
        ))
        .await;
    let server_first = challenge(&mut client, wrong.method()).await;
    let answer = wrong.answer(&server_first);
    client
        .send(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            wrong.method(),
            answer,
        ))
        .await;
    match client.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
}

#[tokio::test]
async fn re_authentication_cannot_change_the_user_or_the_method() {
    let dir = TestDir::new("scram-reauth-other");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "first");
    let (mut client, _) = exchange(addr, &mut scram).await;
    // dev3's own valid proof: the exchange succeeds, but the connection is dev1's.
    let mut other = ScramClient::new(Mechanism::Sha256, "dev3", "chalk", "x");
    client
        .send(auth(
            ReasonCode::REAUTHENTICATE,
            other.method(),
            other.first(),
        ))
        .await;
    let server_first = challenge(&mut client, other.method()).await;
    let answer = other.answer(&server_first);
    client
        .send(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            other.method(),
            answer,
        ))
        .await;
    match client.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }

    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "first");
    let (mut client, _) = exchange(addr, &mut scram).await;
    let sha512 = ScramClient::new(Mechanism::Sha512, "dev2", "crayon", "y");
    client
        .send(auth(
            ReasonCode::REAUTHENTICATE,
            sha512.method(),
            sha512.first(),
        ))
        .await;
    match client.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unanswered_re_authentication_challenge_ends_the_connection() {
    let dir = TestDir::new("scram-reauth-silent");
    let (_server, addr) = start_broker(|c| with_scram_file(c, scram_file(&dir))).await;
    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "first");
    let (mut client, _) = exchange(addr, &mut scram).await;
    let again = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "second");
    client
        .send(auth(
            ReasonCode::REAUTHENTICATE,
            again.method(),
            again.first(),
        ))
        .await;
    challenge(&mut client, again.method()).await;
    // connect_timeout is 1 s: the close comes well within the client's 5 s wait.
    match client.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
}

#[tokio::test]
async fn a_device_secret_and_a_users_scram_exchange_give_both_identities() {
    let dir = TestDir::new("scram-two");
    let users = scram_file(&dir);
    let devices = dir.write("devices", "");
    let mut editor = PasswordFileEditor::open(&devices, false).unwrap();
    editor.set("dev-a", b"device-secret").unwrap();
    editor.save().unwrap();
    let (server, addr) = start_broker(|c| {
        with_scram_file(c, users);
        c.authenticators.push(AuthenticatorConfig {
            name: "devices".into(),
            password_file: Some(PasswordFileConfig {
                path: devices,
                reload_interval: Duration::from_secs(0),
                max_parallel_hashes: 2,
                key: tollgate_broker::PasswordKey::ClientId,
            }),
            ..Default::default()
        });
        c.listeners[0].client_authenticators = vec!["devices".into()];
    })
    .await;
    let mut scram = ScramClient::new(Mechanism::Sha256, "dev1", "pencil", "two");
    let mut client = TestClient::open(addr, ProtocolVersion::V5).await;
    let mut connect = scram_connect("dev-a", &scram);
    connect.password = Some(Bytes::from_static(b"device-secret"));
    client.send(Packet::Connect(Box::new(connect))).await;
    let server_first = challenge(&mut client, scram.method()).await;
    let answer = scram.answer(&server_first);
    client
        .send(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            scram.method(),
            answer,
        ))
        .await;
    match client.recv().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let principal = server
        .broker()
        .connected_principal("dev-a")
        .expect("connected");
    assert_eq!(principal.username.as_deref(), Some("dev1"));
    assert_eq!(principal.client_identity.as_deref(), Some("dev-a"));

    // A wrong device secret is refused before any exchange.
    let mut connect = scram_connect("dev-a", &scram);
    connect.password = Some(Bytes::from_static(b"wrong"));
    let (_client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
}
