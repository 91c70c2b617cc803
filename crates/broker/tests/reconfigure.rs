//! A new configuration applied to a running broker (`Server::reconfigure`, the binary's
//! SIGHUP): authentication, authorization, revocation and listener limits change at once,
//! connected clients stay, a configuration with a problem changes nothing, and what needs a
//! restart is listed and kept.

mod common;

use common::*;
use std::time::Duration;
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_broker::{
    AuthenticatorConfig, AuthorizerConfig, BrokerConfig, PasswordFileConfig, PolicyFileSource,
    RevocationConfig, Server,
};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A directory with a password file (`passwd`: user `alice`, password `pw`).
fn files(tag: &str) -> TestDir {
    let dir = TestDir::new(&format!("reconf-{tag}"));
    let passwd = dir.write("passwd", "");
    let mut editor = PasswordFileEditor::open(&passwd, false).unwrap();
    editor.set("alice", b"pw").unwrap();
    editor.save().unwrap();
    dir
}

async fn start(config: BrokerConfig) -> (Server, std::net::SocketAddr) {
    let server = Server::start(config).await.expect("broker starts");
    let addr = server.local_addrs()[0];
    (server, addr)
}

/// `config` with password logins required (the file's user `alice`, password `pw`).
fn with_passwords(mut config: BrokerConfig, files: &TestDir) -> BrokerConfig {
    config.listeners[0].allow_anonymous = false;
    config.authenticators = vec![AuthenticatorConfig {
        name: "users".into(),
        password_file: Some(PasswordFileConfig {
            path: files.0.join("passwd"),
            reload_interval: Duration::from_secs(0),
            max_parallel_hashes: 2,
            key: Default::default(),
        }),
        ..Default::default()
    }];
    config.throttle.enabled = false;
    config
}

fn alice(client_id: &str) -> Connect {
    let mut c = connect_packet(V5, client_id);
    c.username = Some("alice".into());
    c.password = Some(b"pw".to_vec().into());
    c
}

async fn connack(addr: std::net::SocketAddr, connect: Connect) -> ReasonCode {
    TestClient::connect_with(addr, connect).await.1.reason_code
}

#[tokio::test]
async fn a_new_configuration_changes_who_may_connect_and_keeps_connected_clients() {
    let files = files("authn");
    let (server, addr) = start(anonymous_config()).await;
    let mut stays = TestClient::connect(addr, V5, "stays").await;
    stays.subscribe(1, "news", QoS::AtLeastOnce).await;

    let outcome = server
        .reconfigure(with_passwords(anonymous_config(), &files))
        .expect("applied");
    assert!(outcome.needs_restart.is_empty(), "{outcome:?}");

    assert_eq!(
        connack(addr, connect_packet(V5, "anon")).await,
        ReasonCode::NOT_AUTHORIZED
    );
    let (mut publisher, ack) = TestClient::connect_with(addr, alice("alice")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    publisher
        .publish("news", b"still here", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(&stays.recv_publish().await.payload[..], b"still here");

    // And back: anonymous clients are let in again.
    server.reconfigure(anonymous_config()).expect("applied");
    assert_eq!(
        connack(addr, connect_packet(V5, "anon")).await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn a_new_authorizer_applies_to_connected_clients_at_once() {
    let files = files("authz");
    let (server, addr) = start(anonymous_config()).await;
    let mut reader = TestClient::connect(addr, V5, "reader").await;
    reader.subscribe(1, "secret/#", QoS::AtMostOnce).await;
    let mut writer = TestClient::connect(addr, V5, "writer").await;

    let policy = files.write(
        "policy.toml",
        "default = \"deny\"\n[[patterns]]\nfilter = \"public/#\"\n",
    );
    let mut config = anonymous_config();
    config.authorizers = vec![AuthorizerConfig {
        name: "policy".into(),
        policy_file: Some(PolicyFileSource { path: policy }),
        acl_file: None,
        claims: None,
    }];
    server.reconfigure(config).expect("applied");

    // The reader's subscription is gone (a round trip lets its connection see the change).
    reader.expect_nothing().await;
    assert_eq!(
        writer
            .publish("secret/1", b"no", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        writer
            .publish("public/1", b"yes", QoS::AtLeastOnce, false, 2)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    reader.expect_nothing().await;
}

#[tokio::test]
async fn a_new_revocation_file_disconnects_the_clients_it_names() {
    let files = files("revoke");
    let (server, addr) = start(anonymous_config()).await;
    let mut revoked = TestClient::connect(addr, V5, "lost-device").await;
    let mut kept = TestClient::connect(addr, V5, "other").await;

    let list = files.write("revoked", "client lost-device\n");
    let mut config = anonymous_config();
    config.revocation = Some(RevocationConfig {
        path: list,
        reload_interval: Duration::from_secs(0),
    });
    server.reconfigure(config).expect("applied");

    match revoked.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
    kept.expect_nothing().await;
    assert_eq!(
        connack(addr, connect_packet(V5, "lost-device")).await,
        ReasonCode::NOT_AUTHORIZED
    );

    // Without the table, the list is gone.
    server.reconfigure(anonymous_config()).expect("applied");
    assert_eq!(
        connack(addr, connect_packet(V5, "lost-device")).await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn a_configuration_with_a_problem_changes_nothing_and_names_the_key() {
    let files = files("bad");
    let (server, addr) = start(anonymous_config()).await;
    let mut config = with_passwords(anonymous_config(), &files);
    config.listeners[0].authenticators = Some(vec!["nobody".into()]);
    let problem = server.reconfigure(config).expect_err("refused");
    assert_eq!(
        problem.first().key.to_string(),
        "listener[0].authenticators"
    );

    let mut config = with_passwords(anonymous_config(), &files);
    config.authenticators[0]
        .password_file
        .as_mut()
        .unwrap()
        .path = files.0.join("missing");
    let problem = server.reconfigure(config).expect_err("refused");
    assert_eq!(
        problem.first().key.to_string(),
        "authenticator[0].password_file.path"
    );

    assert_eq!(
        connack(addr, connect_packet(V5, "anon")).await,
        ReasonCode::SUCCESS,
        "the running configuration is kept"
    );
}

#[tokio::test]
async fn settings_that_need_a_restart_are_listed_and_keep_their_running_value() {
    let (server, addr) = start(anonymous_config()).await;
    let mut config = anonymous_config();
    config.listeners[0].bind = "127.0.0.1:1".parse().unwrap();
    config.limits.max_packet_size = 64;
    config.listeners[0].max_connections = 1;
    let outcome = server.reconfigure(config).expect("applied");
    assert_eq!(outcome.needs_restart, vec!["listener[0].bind", "limits"]);

    // The packet size limit is the running one (a 1 KiB publish is taken)...
    let mut first = TestClient::connect(addr, V5, "first").await;
    assert_eq!(
        first
            .publish("t", &[0u8; 1024], QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    // ...while the listener's connection limit is the new one.
    let mut second = TestClient::open(addr, V5).await;
    assert!(second.expect_close().await.is_empty());
}
