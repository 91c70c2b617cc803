//! Authentication over real connections: the password file in each hash format, reload
//! without dropping connections, CONNACK codes per cause and protocol version, throttling,
//! session ownership, client identifier patterns, and an authenticator supplied in code.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tollgate_auth::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, ThrottleConfig,
};
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_broker::{AuthenticatorConfig, BrokerConfig, Extensions, PasswordFileConfig, Server};
use tollgate_mqtt::*;

const FIXTURE: &str = include_str!("../../auth/tests/fixtures/mosquitto_passwd.txt");

/// A temporary directory removed at drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tollgate-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A password file with the Mosquitto fixture plus `dave`/`argon` written by our editor.
fn password_file(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("passwd");
    std::fs::write(&path, FIXTURE).unwrap();
    let mut editor = PasswordFileEditor::open(&path, false).unwrap();
    editor.set("dave", b"argon").unwrap();
    editor.save().unwrap();
    path
}

fn with_password_file(config: &mut BrokerConfig, path: PathBuf) {
    config.listeners[0].allow_anonymous = false;
    config.authenticators = vec![AuthenticatorConfig {
        name: "users".into(),
        on_error: Default::default(),
        cache_ttl: Duration::from_secs(0),
        password_file: Some(PasswordFileConfig {
            path,
            reload_interval: Duration::from_secs(0),
            max_parallel_hashes: 2,
            key: Default::default(),
        }),
        jwt: None,
        ..Default::default()
    }];
    config.throttle.enabled = false;
}

fn credentials(version: ProtocolVersion, client_id: &str, user: &str, password: &str) -> Connect {
    let mut c = connect_packet(version, client_id);
    c.username = Some(user.into());
    c.password = Some(password.to_owned().into_bytes().into());
    c
}

async fn connack(addr: std::net::SocketAddr, connect: Connect) -> ReasonCode {
    let (mut client, ack) = TestClient::connect_with(addr, connect).await;
    if ack.reason_code != ReasonCode::SUCCESS {
        assert!(
            client.expect_close().await.is_empty(),
            "a refused client is disconnected"
        );
    }
    ack.reason_code
}

#[tokio::test]
async fn mosquitto_pbkdf2_sha512_and_argon2id_lines_all_authenticate() {
    let dir = TempDir::new("formats");
    let path = password_file(&dir);
    let (_server, addr) = start_broker(|c| with_password_file(c, path)).await;
    for (user, password) in [
        ("alice", "secret1"),
        ("bob", "p@ss w0rd"),
        ("carol", "legacy"),
        ("dave", "argon"),
    ] {
        for version in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            assert_eq!(
                connack(addr, credentials(version, "c", user, password)).await,
                ReasonCode::SUCCESS,
                "{user} {version:?}"
            );
        }
    }
}

#[tokio::test]
async fn refusals_carry_the_right_code_per_protocol_version() {
    let dir = TempDir::new("codes");
    let path = password_file(&dir);
    let (_server, addr) = start_broker(|c| with_password_file(c, path)).await;
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let v5 = version == ProtocolVersion::V5;
        let code = |v5_code: ReasonCode, v3_code: ReasonCode| if v5 { v5_code } else { v3_code };
        assert_eq!(
            connack(addr, credentials(version, "c", "alice", "wrong")).await,
            code(
                ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                ConnectReturnCode::BAD_USER_NAME_OR_PASSWORD
            ),
            "wrong password, {version:?}"
        );
        assert_eq!(
            connack(addr, credentials(version, "c", "mallory", "x")).await,
            code(
                ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                ConnectReturnCode::BAD_USER_NAME_OR_PASSWORD
            ),
            "unknown user, {version:?}"
        );
        assert_eq!(
            connack(addr, connect_packet(version, "c")).await,
            code(
                ReasonCode::NOT_AUTHORIZED,
                ConnectReturnCode::NOT_AUTHORIZED
            ),
            "no credentials on a listener without anonymous access, {version:?}"
        );
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_then_banned() {
    let dir = TempDir::new("throttle");
    let path = password_file(&dir);
    let (_server, addr) = start_broker(|c| {
        with_password_file(c, path);
        c.throttle = ThrottleConfig {
            enabled: true,
            free_failures: 2,
            initial_backoff_ms: Duration::from_millis(60_000),
            ban_after: 4,
            ..ThrottleConfig::default()
        };
    })
    .await;
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        connack(addr, credentials(v5, "c", "alice", "guess1")).await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    assert_eq!(
        connack(addr, credentials(v5, "c", "alice", "guess2")).await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    assert_eq!(
        connack(addr, credentials(v5, "c", "alice", "guess3")).await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    // Past the free failures: even the right password waits out the backoff.
    assert_eq!(
        connack(addr, credentials(v5, "c", "alice", "secret1")).await,
        ReasonCode::CONNECTION_RATE_EXCEEDED
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V3_1_1, "c", "alice", "secret1")
        )
        .await,
        ConnectReturnCode::SERVER_UNAVAILABLE
    );
}

#[tokio::test]
async fn password_file_reload_applies_to_new_logins_without_dropping_connections() {
    let dir = TempDir::new("reload");
    let path = password_file(&dir);
    let (server, addr) = start_broker(|c| with_password_file(c, path.clone())).await;
    let mut connected = TestClient::connect_with(
        addr,
        credentials(ProtocolVersion::V5, "stays", "alice", "secret1"),
    )
    .await
    .0;
    let mut editor = PasswordFileEditor::open(&path, false).unwrap();
    editor.set("alice", b"rotated").unwrap();
    editor.delete("bob");
    editor.save().unwrap();
    server.reload();
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "c", "alice", "secret1")
        )
        .await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "c", "alice", "rotated")
        )
        .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "c", "bob", "p@ss w0rd")
        )
        .await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    connected.expect_nothing().await;
}

#[tokio::test]
async fn a_bad_password_file_at_reload_keeps_the_previous_users() {
    let dir = TempDir::new("badreload");
    let path = password_file(&dir);
    let (server, addr) = start_broker(|c| with_password_file(c, path.clone())).await;
    std::fs::write(&path, "alice:not-a-hash\n").unwrap();
    server.reload();
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "c", "alice", "secret1")
        )
        .await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn a_bad_password_file_at_start_is_an_error_naming_file_and_line() {
    let dir = TempDir::new("badstart");
    let path = dir.0.join("passwd");
    std::fs::write(&path, "alice:$7$101$eA==$eA==\nbroken line\n").unwrap();
    let mut config = BrokerConfig::default();
    config.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
    with_password_file(&mut config, path.clone());
    let err = Server::start(config)
        .await
        .err()
        .expect("the broker does not start");
    assert_eq!(
        err.to_string(),
        format!(
            "key `authenticator[0].password_file.path`: {}:2: expected `user:hash`",
            path.display()
        )
    );
}

#[tokio::test]
async fn another_principal_cannot_take_over_a_session() {
    let dir = TempDir::new("owner");
    let path = password_file(&dir);
    let (_server, addr) = start_broker(|c| with_password_file(c, path)).await;
    let mut alice = TestClient::connect_with(
        addr,
        credentials(ProtocolVersion::V5, "shared-id", "alice", "secret1"),
    )
    .await
    .0;
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "shared-id", "bob", "p@ss w0rd")
        )
        .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V3_1_1, "shared-id", "bob", "p@ss w0rd")
        )
        .await,
        ConnectReturnCode::NOT_AUTHORIZED
    );
    alice.expect_nothing().await;
    // The owner itself may take it over.
    let _again = TestClient::connect_with(
        addr,
        credentials(ProtocolVersion::V5, "shared-id", "alice", "secret1"),
    )
    .await;
    assert!(
        matches!(alice.expect_close().await.as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::SESSION_TAKEN_OVER)
    );
}

#[tokio::test]
async fn client_id_must_match_the_listeners_patterns() {
    let dir = TempDir::new("patterns");
    let path = password_file(&dir);
    let (_server, addr) = start_broker(|c| {
        with_password_file(c, path);
        c.listeners[0].client_id_patterns = vec!["%u".into(), "%u-*".into()];
    })
    .await;
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "alice-sensor", "alice", "secret1")
        )
        .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "bob-sensor", "alice", "secret1")
        )
        .await,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V3_1_1, "bob-sensor", "alice", "secret1")
        )
        .await,
        ConnectReturnCode::IDENTIFIER_REJECTED
    );
}

/// An authenticator supplied in code: `gate` lets in user `robot` with the password of the
/// day, denies other users of its realm, and fails like an unreachable backend for `flaky`.
struct Gate;

impl Authenticator for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            match request.username.as_deref() {
                Some("robot")
                    if request
                        .password
                        .as_ref()
                        .is_some_and(|p| p.expose() == b"beep") =>
                {
                    Ok(AuthOutcome::Allow(Default::default()))
                }
                Some("flaky") => Err(AuthError::new("directory unreachable")),
                Some(_) => Ok(AuthOutcome::deny(
                    tollgate_auth::authentication::DenyReason::BadCredentials,
                    "not a robot",
                )),
                None => Ok(AuthOutcome::Next),
            }
        })
    }
}

#[tokio::test]
async fn an_authenticator_supplied_in_code_joins_the_chain_and_fails_closed() {
    let mut config = BrokerConfig::default();
    config.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
    config.listeners[0].allow_anonymous = false;
    config.sys_interval = Duration::from_secs(0);
    let server = Server::start_with(
        config,
        Extensions {
            authenticators: vec![Arc::new(Gate)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    assert_eq!(
        connack(addr, credentials(ProtocolVersion::V5, "r", "robot", "beep")).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        connack(addr, credentials(ProtocolVersion::V5, "r", "human", "hi")).await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    assert_eq!(
        connack(addr, credentials(ProtocolVersion::V5, "r", "flaky", "x")).await,
        ReasonCode::SERVER_UNAVAILABLE
    );
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V3_1_1, "r", "flaky", "x")
        )
        .await,
        ConnectReturnCode::SERVER_UNAVAILABLE
    );
    // The broker keeps serving others.
    assert_eq!(
        connack(
            addr,
            credentials(ProtocolVersion::V5, "r2", "robot", "beep")
        )
        .await,
        ReasonCode::SUCCESS
    );
}
