//! Authorization over real connections: each enforcement rule per protocol version, policy
//! and Mosquitto ACL sources with %c / %u, wills, queued messages (also those restored from the
//! store), `$SYS`, and a policy reload applied to connected clients.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_broker::{
    AclFileSource, AuthenticatorConfig, AuthorizerConfig, BrokerConfig, DeniedPublish,
    DeniedSubscribeCode, PasswordFileConfig, PolicyFileSource,
};
use tollgate_mqtt::*;

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A policy: devices publish and read under devices/<client id>/, everyone may read `public/#`,
/// `admin` may read `$SYS/#`, nothing else.
const POLICY: &str = r#"
default = "deny"

[users.admin]
permissions = [{ filter = "$SYS/#", activity = "subscribe" }]

[[patterns]]
filter = "devices/%c/#"

[[patterns]]
filter = "users/%u/inbox"
activity = "subscribe"

[[patterns]]
filter = "public/#"
activity = "subscribe"

[[patterns]]
filter = "public/#"
activity = "publish"
qos = [0, 1]
"#;

struct Files(PathBuf);

impl Files {
    fn new(tag: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("tollgate-authz-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, "").unwrap();
        let mut editor = PasswordFileEditor::open(&passwd, false).unwrap();
        editor.set("alice", b"pw").unwrap();
        editor.set("admin", b"pw").unwrap();
        editor.save().unwrap();
        Files(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn policy(&self, text: &str) -> PathBuf {
        let path = self.path("policy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn configure(c: &mut BrokerConfig, files: &Files, authorizer: AuthorizerConfig) {
    c.authenticators = vec![AuthenticatorConfig {
        name: "users".into(),
        on_error: Default::default(),
        cache_ttl: Duration::from_secs(0),
        password_file: Some(PasswordFileConfig {
            path: files.path("passwd"),
            reload_interval: Duration::from_secs(0),
            max_parallel_hashes: 2,
            key: Default::default(),
        }),
        jwt: None,
        ..Default::default()
    }];
    c.authorizers = vec![authorizer];
    c.authorization.reload_interval = Duration::from_secs(0);
    c.throttle.enabled = false;
}

fn policy_authorizer(path: PathBuf) -> AuthorizerConfig {
    AuthorizerConfig {
        name: "policy".into(),
        policy_file: Some(PolicyFileSource { path }),
        acl_file: None,
        claims: None,
    }
}

async fn start_with_policy(
    files: &Files,
    f: impl FnOnce(&mut BrokerConfig),
) -> (tollgate_broker::Server, std::net::SocketAddr) {
    let path = files.policy(POLICY);
    start_broker(|c| {
        configure(c, files, policy_authorizer(path));
        f(c);
    })
    .await
}

async fn user(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    name: &str,
) -> TestClient {
    let mut connect = connect_packet(version, client_id);
    connect.username = Some(name.into());
    connect.password = Some("pw".into());
    let (client, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    client
}

#[tokio::test]
async fn allowed_actions_work_and_placeholders_bind_to_the_client() {
    let files = Files::new("allowed");
    let (_server, addr) = start_with_policy(&files, |_| {}).await;
    let mut d1 = TestClient::connect(addr, V5, "d1").await;
    assert_eq!(
        d1.subscribe(1, "devices/d1/#", QoS::AtLeastOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        d1.subscribe(2, "devices/d2/#", QoS::AtLeastOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED],
        "%c is this client only"
    );
    let mut alice = user(addr, V5, "phone", "alice").await;
    assert_eq!(
        alice
            .subscribe(1, "users/alice/inbox", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        alice
            .subscribe(2, "users/bob/inbox", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED],
        "%u is this user only"
    );
    let mut anonymous = TestClient::connect(addr, V5, "anon").await;
    assert_eq!(
        anonymous
            .subscribe(1, "users/+/inbox", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED],
        "no user name: %u rules never match"
    );
    assert_eq!(
        d1.publish("devices/d1/state", b"on", QoS::AtLeastOnce, false, 3)
            .await,
        ReasonCode::SUCCESS
    );
    assert_eq!(&d1.recv_publish().await.payload[..], b"on");
}

#[tokio::test]
async fn denied_publish_is_answered_per_protocol_version() {
    let files = Files::new("publish");
    let (_server, addr) = start_with_policy(&files, |_| {}).await;
    let mut watcher = TestClient::connect(addr, V5, "watcher").await;
    watcher.subscribe(1, "public/#", QoS::ExactlyOnce).await;

    // 5.0: QoS 1 and 2 are refused with 0x87, QoS 0 is dropped; the client stays.
    let mut c = TestClient::connect(addr, V5, "c5").await;
    assert_eq!(
        c.publish("devices/other/x", b"no", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        c.publish("public/a", b"no", QoS::ExactlyOnce, false, 2)
            .await,
        ReasonCode::NOT_AUTHORIZED,
        "QoS 2 is not allowed on public/#"
    );
    c.publish("devices/other/x", b"no", QoS::AtMostOnce, false, 3)
        .await;
    c.expect_nothing().await;
    watcher.expect_nothing().await;

    // 3.1.1: disconnected by default.
    let mut c = TestClient::connect(addr, V311, "c311").await;
    c.send(Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "devices/other/x".into(),
        packet_id: Some(1),
        payload: "no".into(),
        ..Publish::default()
    }))
    .await;
    assert!(c.expect_close().await.is_empty());

    // 3.1: always disconnected.
    let mut c = TestClient::connect(addr, V31, "c31").await;
    c.send(Packet::Publish(Publish {
        topic: "devices/other/x".into(),
        payload: "no".into(),
        ..Publish::default()
    }))
    .await;
    assert!(c.expect_close().await.is_empty());
    watcher.expect_nothing().await;
}

#[tokio::test]
async fn denied_publish_options_acknowledge_on_311_and_disconnect_on_5() {
    let files = Files::new("publish-options");
    let (_server, addr) = start_with_policy(&files, |c| {
        c.authorization.denied_publish_v311 = DeniedPublish::Acknowledge;
        c.authorization.disconnect_on_denied_publish_v5 = true;
    })
    .await;
    let mut c = TestClient::connect(addr, V311, "c311").await;
    assert_eq!(
        c.publish("devices/other/x", b"dropped", QoS::AtLeastOnce, false, 1)
            .await,
        ReasonCode::SUCCESS
    );
    c.expect_nothing().await;
    let mut c = TestClient::connect(addr, V5, "c5").await;
    c.send(Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "devices/other/x".into(),
        packet_id: Some(1),
        payload: "no".into(),
        ..Publish::default()
    }))
    .await;
    match c.expect_close().await.as_slice() {
        [Packet::PubAck(a), Packet::Disconnect(d)] => {
            assert_eq!(
                (a.reason_code, d.reason_code),
                (ReasonCode::NOT_AUTHORIZED, ReasonCode::NOT_AUTHORIZED)
            );
        }
        other => panic!("expected PUBACK 0x87 then DISCONNECT 0x87, got {other:?}"),
    }
}

#[tokio::test]
async fn denied_subscribe_refuses_only_that_filter_per_protocol_version() {
    let files = Files::new("subscribe");
    let (_server, addr) = start_with_policy(&files, |_| {}).await;
    let two = |id| {
        Packet::Subscribe(Subscribe {
            packet_id: id,
            properties: Default::default(),
            subscriptions: vec![
                Subscription {
                    filter: "public/news".into(),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        ..Default::default()
                    },
                },
                Subscription {
                    filter: "secret/#".into(),
                    options: SubscriptionOptions::default(),
                },
            ],
        })
    };
    for (version, refused) in [
        (V311, ReasonCode::UNSPECIFIED_ERROR),
        (V5, ReasonCode::NOT_AUTHORIZED),
    ] {
        let mut c = TestClient::connect(addr, version, "c").await;
        c.send(two(1)).await;
        match c.recv().await {
            Packet::SubAck(ack) => assert_eq!(
                ack.reason_codes,
                vec![ReasonCode::GRANTED_QOS_1, refused],
                "{version:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // 3.1 has no failure code: the client is disconnected.
    let mut c = TestClient::connect(addr, V31, "c31").await;
    c.send(two(1)).await;
    assert!(c.expect_close().await.is_empty());
}

#[tokio::test]
async fn denied_subscribe_code_can_be_0x80_for_5() {
    let files = Files::new("subscribe-80");
    let (_server, addr) = start_with_policy(&files, |c| {
        c.authorization.denied_subscribe_code_v5 = DeniedSubscribeCode::UnspecifiedError
    })
    .await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    assert_eq!(
        c.subscribe(1, "secret/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::UNSPECIFIED_ERROR]
    );
}

#[tokio::test]
async fn subscription_is_granted_at_the_highest_allowed_qos() {
    let files = Files::new("qos");
    let path = files.policy("default = \"deny\"\n[[patterns]]\nfilter = \"q/#\"\nqos = [0, 1]\n");
    let (_server, addr) = start_broker(|c| configure(c, &files, policy_authorizer(path))).await;
    let mut c = TestClient::connect(addr, V5, "c").await;
    assert_eq!(
        c.subscribe(1, "q/#", QoS::ExactlyOnce).await.reason_codes,
        vec![ReasonCode::GRANTED_QOS_1]
    );
}

#[tokio::test]
async fn will_is_checked_at_connect_and_again_when_sent() {
    let files = Files::new("will");
    let path = files.policy(POLICY);
    let (server, addr) =
        start_broker(|c| configure(c, &files, policy_authorizer(path.clone()))).await;
    for (version, code) in [
        (V311, ConnectReturnCode::NOT_AUTHORIZED),
        (V5, ReasonCode::NOT_AUTHORIZED),
    ] {
        let mut connect = connect_packet(version, "d1");
        connect.will = Some(Will {
            topic: "devices/d2/status".into(),
            payload: "gone".into(),
            ..Will::default()
        });
        let (mut c, ack) = TestClient::connect_with(addr, connect).await;
        assert_eq!(
            ack.reason_code, code,
            "a will to another device's topic is refused"
        );
        assert!(c.expect_close().await.is_empty());
    }
    let mut watcher = TestClient::connect(addr, V5, "w").await;
    watcher.subscribe(1, "public/#", QoS::AtMostOnce).await;
    let mut connect = connect_packet(V5, "d1");
    connect.will = Some(Will {
        topic: "public/d1".into(),
        payload: "gone".into(),
        ..Will::default()
    });
    let (mut c, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    // The policy changes: publishing under public/ is no longer allowed, so the will is not sent.
    std::fs::write(
        &path,
        POLICY.replace(
            "activity = \"publish\"\nqos = [0, 1]",
            "activity = \"publish\"\neffect = \"deny\"",
        ),
    )
    .unwrap();
    server.reload();
    // DISCONNECT with 0x04 asks for the will; the broker closes only after deciding on it.
    c.send(Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL,
        ..Default::default()
    }))
    .await;
    assert!(c.expect_close().await.is_empty());
    watcher.expect_nothing().await;
}

#[tokio::test]
async fn policy_reload_applies_to_connected_clients_at_once() {
    let files = Files::new("reload");
    let path = files.policy(POLICY);
    let (server, addr) =
        start_broker(|c| configure(c, &files, policy_authorizer(path.clone()))).await;
    let mut reader = TestClient::connect(addr, V5, "reader").await;
    reader.subscribe(1, "public/#", QoS::AtMostOnce).await;
    let mut writer = TestClient::connect(addr, V5, "writer").await;
    writer
        .publish("public/1", b"before", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(&reader.recv_publish().await.payload[..], b"before");

    std::fs::write(
        &path,
        POLICY.replace(
            "filter = \"public/#\"\nactivity = \"subscribe\"",
            "filter = \"other/#\"\nactivity = \"subscribe\"",
        ),
    )
    .unwrap();
    server.reload();
    // The reader's subscription is gone (a round trip lets its connection see the change).
    reader.expect_nothing().await;
    assert_eq!(
        writer
            .publish("public/1", b"after", QoS::AtLeastOnce, false, 2)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    reader.expect_nothing().await;
    assert_eq!(
        reader
            .subscribe(2, "public/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
}

#[tokio::test]
async fn queued_messages_are_delivered_only_if_still_readable() {
    let files = Files::new("queued");
    let path = files.policy(POLICY);
    let (server, addr) =
        start_broker(|c| configure(c, &files, policy_authorizer(path.clone()))).await;
    let mut connect = connect_packet(V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut away, _) = TestClient::connect_with(addr, connect.clone()).await;
    away.subscribe(1, "public/#", QoS::AtLeastOnce).await;
    away.disconnect().await;
    let mut writer = TestClient::connect(addr, V5, "writer").await;
    writer
        .publish("public/1", b"queued", QoS::AtLeastOnce, false, 1)
        .await;
    std::fs::write(
        &path,
        POLICY.replace(
            "filter = \"public/#\"\nactivity = \"subscribe\"",
            "filter = \"other/#\"\nactivity = \"subscribe\"",
        ),
    )
    .unwrap();
    server.reload();
    let (mut away, ack) = TestClient::connect_with(addr, connect).await;
    assert!(ack.session_present);
    away.expect_nothing().await;
}

#[tokio::test]
async fn messages_restored_after_a_restart_are_checked_against_the_policy_then_in_force() {
    let files = Files::new("restored");
    let store = files.path("store");
    let path = files.policy(POLICY);
    let persistent = |c: &mut BrokerConfig| {
        configure(c, &files, policy_authorizer(path.clone()));
        c.persistence.path = Some(store.clone());
    };
    let (server, addr) = start_broker(persistent).await;
    let mut connect = connect_packet(V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut away, _) = TestClient::connect_with(addr, connect.clone()).await;
    away.subscribe(1, "public/#", QoS::AtLeastOnce).await;
    away.disconnect().await;
    let mut writer = TestClient::connect(addr, V5, "writer").await;
    for (i, topic) in ["public/open", "public/secret"].into_iter().enumerate() {
        writer
            .publish(topic, b"kept", QoS::AtLeastOnce, true, i as u16 + 1)
            .await;
    }
    drop(writer);
    server.shutdown().await;

    // While the broker was down, public/secret stopped being readable.
    files.policy(&format!(
        "{POLICY}\n[[guards]]\nfilter = \"public/secret\"\nactivity = \"subscribe\"\neffect = \"deny\"\n"
    ));
    let (_server, addr) = start_broker(persistent).await;
    let (mut away, ack) = TestClient::connect_with(addr, connect).await;
    assert!(ack.session_present);
    let queued = away.recv_publish().await;
    assert_eq!(queued.topic, "public/open");
    away.ack(&queued).await;
    away.expect_nothing().await;
    let mut reader = TestClient::connect(addr, V5, "reader").await;
    reader.subscribe(1, "public/#", QoS::AtMostOnce).await;
    let retained = reader.recv_publish().await;
    assert_eq!(
        (retained.topic.as_str(), retained.retain),
        ("public/open", true)
    );
    reader.expect_nothing().await;
}

#[tokio::test]
async fn sys_is_readable_only_where_allowed() {
    let files = Files::new("sys");
    let (_server, addr) = start_with_policy(&files, |_| {}).await;
    let mut admin = user(addr, V5, "console", "admin").await;
    assert_eq!(
        admin
            .subscribe(1, "$SYS/broker/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    let mut alice = user(addr, V5, "phone", "alice").await;
    assert_eq!(
        alice
            .subscribe(1, "$SYS/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    // Even the admin may not write there.
    assert_eq!(
        admin
            .publish("$SYS/broker/x", b"x", QoS::AtLeastOnce, false, 2)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
}

#[tokio::test]
async fn mosquitto_acl_file_is_read_as_it_is() {
    let files = Files::new("acl");
    let acl = files.path("acl");
    std::fs::write(
        &acl,
        "# Mosquitto ACL\ntopic read public/#\n\nuser alice\ntopic readwrite alice/#\ntopic write inbox/bob\n\npattern readwrite devices/%c/#\npattern read users/%u/#\n",
    )
    .unwrap();
    let authorizer = AuthorizerConfig {
        name: "acl".into(),
        policy_file: None,
        acl_file: Some(AclFileSource {
            path: acl,
            default: tollgate_auth::permissions::DefaultBehaviour::Deny,
        }),
        claims: None,
    };
    let (_server, addr) = start_broker(|c| configure(c, &files, authorizer)).await;
    let mut alice = user(addr, V5, "a1", "alice").await;
    assert_eq!(
        alice
            .subscribe(1, "alice/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        alice
            .subscribe(2, "users/alice/x", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        alice
            .subscribe(3, "inbox/bob", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED],
        "write only"
    );
    assert_eq!(
        alice
            .publish("inbox/bob", b"hi", QoS::AtLeastOnce, false, 4)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        alice
            .publish("devices/a1/state", b"on", QoS::AtLeastOnce, false, 5)
            .await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        alice
            .publish("devices/a2/state", b"on", QoS::AtLeastOnce, false, 6)
            .await,
        ReasonCode::NOT_AUTHORIZED
    );
    // Lines before the first `user` apply to anonymous clients only, as in Mosquitto.
    let mut anonymous = TestClient::connect(addr, V5, "anon").await;
    assert_eq!(
        anonymous
            .subscribe(1, "public/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        anonymous
            .subscribe(2, "alice/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
}

#[tokio::test]
async fn a_wildcard_subscription_is_granted_but_denied_topics_are_withheld() {
    let files = Files::new("withheld");
    let path = files.policy("default = \"accept\"\n[[guards]]\nfilter = \"secret/#\"\neffect = \"deny\"\nactivity = \"subscribe\"\n");
    let (_server, addr) = start_broker(|c| configure(c, &files, policy_authorizer(path))).await;
    let mut all = TestClient::connect(addr, V5, "all").await;
    assert_eq!(
        all.subscribe(1, "#", QoS::AtLeastOnce).await.reason_codes,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        all.subscribe(2, "secret/plans", QoS::AtLeastOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    let mut p = TestClient::connect(addr, V5, "p").await;
    p.publish("secret/plans", b"hidden", QoS::AtLeastOnce, true, 1)
        .await;
    p.publish("open/news", b"shown", QoS::AtLeastOnce, false, 2)
        .await;
    assert_eq!(&all.recv_publish().await.payload[..], b"shown");
    all.expect_nothing().await;
    // The retained message under secret/ is withheld from a new wildcard subscriber too.
    let mut late = TestClient::connect(addr, V5, "late").await;
    late.subscribe(1, "#", QoS::AtLeastOnce).await;
    late.expect_nothing().await;
}

/// Gives user `operator` the roles `ops` and `eu`, as an identity provider would.
struct RoleGiver;

impl tollgate_auth::authentication::Authenticator for RoleGiver {
    fn name(&self) -> &str {
        "roles"
    }
    fn authenticate<'a>(
        &'a self,
        request: &'a tollgate_auth::authentication::ConnectRequest,
    ) -> tollgate_auth::authentication::BoxFuture<
        'a,
        Result<
            tollgate_auth::authentication::AuthOutcome,
            tollgate_auth::authentication::AuthError,
        >,
    > {
        use tollgate_auth::authentication::{AuthOutcome, Identity};
        use tollgate_auth::{Attribute, Source};
        Box::pin(async move {
            Ok(match request.username.as_deref() {
                Some("operator") => AuthOutcome::Allow(Identity {
                    roles: ["ops", "eu"]
                        .iter()
                        .map(|r| Attribute::new(*r, Source::Authenticator("roles".into())))
                        .collect(),
                    ..Identity::default()
                }),
                _ => AuthOutcome::Next,
            })
        })
    }
}

#[tokio::test]
async fn roles_placeholder_expands_to_one_rule_per_role_and_role_sections_apply() {
    let files = Files::new("roles");
    let path = files.policy(
        "default = \"deny\"\n[[patterns]]\nfilter = \"teams/${roles}/#\"\n\n[roles.ops]\npermissions = [{ filter = \"ops/console\", activity = \"subscribe\" }]\n",
    );
    let mut config = BrokerConfig::default();
    config.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
    config.listeners[0].allow_anonymous = false;
    config.sys_interval = Duration::from_secs(0);
    config.authorizers = vec![policy_authorizer(path)];
    config.authorization.reload_interval = Duration::from_secs(0);
    let server = tollgate_broker::Server::start_with(
        config,
        tollgate_broker::Extensions {
            authenticators: vec![std::sync::Arc::new(RoleGiver)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    let mut connect = connect_packet(V5, "op1");
    connect.username = Some("operator".into());
    let (mut op, ack) = TestClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    for (filter, expected) in [
        ("teams/ops/#", ReasonCode::GRANTED_QOS_0),
        ("teams/eu/alerts", ReasonCode::GRANTED_QOS_0),
        ("teams/us/#", ReasonCode::NOT_AUTHORIZED),
        ("ops/console", ReasonCode::GRANTED_QOS_0),
    ] {
        assert_eq!(
            op.subscribe(1, filter, QoS::AtMostOnce).await.reason_codes,
            vec![expected],
            "{filter}"
        );
    }
}

#[tokio::test]
async fn an_in_flight_message_is_not_sent_again_on_resume_once_its_topic_is_unreadable() {
    let files = Files::new("inflight");
    let path = files.policy(POLICY);
    let (server, addr) =
        start_broker(|c| configure(c, &files, policy_authorizer(path.clone()))).await;
    let mut connect = connect_packet(V5, "reader");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let (mut reader, _) = TestClient::connect_with(addr, connect.clone()).await;
    reader.subscribe(1, "public/#", QoS::AtLeastOnce).await;
    let mut writer = TestClient::connect(addr, V5, "writer").await;
    writer
        .publish("public/1", b"unacknowledged", QoS::AtLeastOnce, false, 1)
        .await;
    // Received, never acknowledged: it stays in flight.
    match reader.recv().await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"unacknowledged"),
        other => panic!("{other:?}"),
    }
    drop(reader);
    std::fs::write(
        &path,
        POLICY.replace(
            "filter = \"public/#\"\nactivity = \"subscribe\"",
            "filter = \"other/#\"\nactivity = \"subscribe\"",
        ),
    )
    .unwrap();
    server.reload();
    // The session is resumed; the message it may no longer read is not sent again.
    let (mut reader, ack) = TestClient::connect_with(addr, connect.clone()).await;
    assert!(ack.session_present);
    reader.expect_nothing().await;
    drop(reader);
    // Control: with the rule back, a message left in flight is sent again with DUP.
    std::fs::write(&path, POLICY).unwrap();
    server.reload();
    let (mut reader, _) = TestClient::connect_with(addr, connect.clone()).await;
    reader.subscribe(2, "public/#", QoS::AtLeastOnce).await;
    writer
        .publish("public/1", b"again", QoS::AtLeastOnce, false, 2)
        .await;
    match reader.recv().await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"again"),
        other => panic!("{other:?}"),
    }
    drop(reader);
    let (mut reader, _) = TestClient::connect_with(addr, connect).await;
    match reader.recv().await {
        Packet::Publish(p) => assert!(p.dup && &p.payload[..] == b"again"),
        other => panic!("{other:?}"),
    }
}
