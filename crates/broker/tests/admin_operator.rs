//! What operators decide through the admin API: bans (by client identifier, user name and
//! network; the clients named disconnected at once, new connections refused with 0x8A / 5),
//! revocations (the same effect as the revocation file, at once), both kept in the store
//! across a restart; forgetting cached authentications; explaining a decision
//! (`POST /authorize`) as the broker makes it; and the input each refuses.

mod common;
#[path = "../../auth/tests/common/http_service.rs"]
mod http_service;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::admin::*;
use common::*;
use http_service::{HttpService, Reply};
use serde_json::json;
use tollgate_broker::{AuthenticatorConfig, AuthorizerConfig, PolicyFileSource, RevocationConfig};
use tollgate_mqtt::*;

/// The CONNACK code a clean CONNECT of `client_id` (with `username`, if any) gets.
async fn connack(
    mqtt: std::net::SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    username: Option<&str>,
) -> ReasonCode {
    let mut connect = connect_packet(version, client_id);
    connect.username = username.map(str::to_owned);
    TestClient::connect_with(mqtt, connect).await.1.reason_code
}

fn expect_disconnect(packets: Vec<Packet>, reason: ReasonCode) {
    match packets.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, reason),
        other => panic!("expected DISCONNECT {reason:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_ban_disconnects_the_client_it_names_and_refuses_it_until_lifted() {
    let dir = TestDir::new("admin-ban");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut banned = TestClient::connect(mqtt, ProtocolVersion::V5, "dev-1").await;
    let mut other = TestClient::connect(mqtt, ProtocolVersion::V5, "dev-2").await;

    let made = request_json(
        admin,
        "POST",
        "/api/v1/bans",
        Some(ADMIN_TOKEN),
        &json!({"kind": "client", "value": "dev-1", "reason": "tampered", "expires_in": 3600}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let made = made.json();
    assert_eq!(made["disconnected"], 1);
    assert_eq!(made["by"], "ops");
    assert_eq!(made["reason"], "tampered");
    assert!(made["expires_at"].as_u64().unwrap() > made["made_at"].as_u64().unwrap());
    expect_disconnect(
        banned.expect_close().await,
        ReasonCode::ADMINISTRATIVE_ACTION,
    );
    other.expect_nothing().await;

    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "dev-1", None).await,
        ReasonCode::BANNED
    );
    assert_eq!(
        connack(mqtt, ProtocolVersion::V3_1_1, "dev-1", None).await,
        ConnectReturnCode::NOT_AUTHORIZED,
        "3.x: return code 5"
    );
    let listed = request(admin, "GET", "/api/v1/bans", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["data"][0]["kind"], "client");
    assert_eq!(listed["data"][0]["value"], "dev-1");
    let metrics = request(admin, "GET", "/metrics", Some(READ_TOKEN))
        .await
        .body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "tollgate_connections_refused_total{reason=\"banned\"} 2"),
        "{metrics}"
    );

    let lifted = request(
        admin,
        "DELETE",
        "/api/v1/bans/client/dev-1",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(lifted.status, 204, "{}", lifted.body);
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "dev-1", None).await,
        ReasonCode::SUCCESS
    );
    let again = request(
        admin,
        "DELETE",
        "/api/v1/bans/client/dev-1",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(again.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn a_ban_by_network_or_user_name_refuses_every_client_it_covers() {
    let dir = TestDir::new("admin-ban-net");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut mallory = connect_packet(ProtocolVersion::V3_1_1, "m-1");
    mallory.username = Some("mallory".into());
    let (mut mallory, _) = TestClient::connect_with(mqtt, mallory).await;
    let mut alice = TestClient::connect(mqtt, ProtocolVersion::V3_1_1, "a-1").await;

    let by_user = request_json(
        admin,
        "POST",
        "/api/v1/bans",
        Some(ADMIN_TOKEN),
        &json!({"kind": "user", "value": "mallory"}),
    )
    .await;
    assert_eq!(by_user.status, 201, "{}", by_user.body);
    assert_eq!(by_user.json()["expires_at"], serde_json::Value::Null);
    assert!(
        mallory.expect_close().await.is_empty(),
        "3.1.1: closed without a word"
    );
    alice.expect_nothing().await;
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "m-2", Some("mallory")).await,
        ReasonCode::BANNED
    );
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "a-2", Some("alice")).await,
        ReasonCode::SUCCESS
    );

    let by_network = request_json(
        admin,
        "POST",
        "/api/v1/bans",
        Some(ADMIN_TOKEN),
        &json!({"kind": "address", "value": "127.0.0.9/8", "reason": "lab network"}),
    )
    .await;
    assert_eq!(by_network.status, 201, "{}", by_network.body);
    let by_network = by_network.json();
    assert_eq!(by_network["value"], "127.0.0.0/8", "written by its base");
    assert_eq!(by_network["disconnected"], 1, "alice, from 127.0.0.1");
    assert!(alice.expect_close().await.is_empty());
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "anyone", None).await,
        ReasonCode::BANNED
    );
    let only_addresses = request(admin, "GET", "/api/v1/bans?kind=address", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(only_addresses["total"], 1);
    let lifted = request(
        admin,
        "DELETE",
        "/api/v1/bans/address/127.0.0.0/8",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(lifted.status, 204, "{}", lifted.body);
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "anyone", None).await,
        ReasonCode::SUCCESS
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bans_and_revocations_refuse_bad_input_read_tokens_and_a_full_list() {
    let dir = TestDir::new("admin-ban-input");
    let (server, _mqtt, admin) = start_with_admin(&dir, |admin| {
        admin.max_bans = 1;
        admin.max_revocations = 1;
        admin.max_request_bytes = 8192;
    })
    .await;
    let post = |path: &'static str, body: serde_json::Value| async move {
        request_json(admin, "POST", path, Some(ADMIN_TOKEN), &body).await
    };
    for (path, body, says) in [
        (
            "/api/v1/bans",
            json!({"kind": "jti", "value": "x"}),
            "kind must be",
        ),
        (
            "/api/v1/bans",
            json!({"kind": "client", "value": ""}),
            "1 to 1024 bytes",
        ),
        (
            "/api/v1/bans",
            json!({"kind": "address", "value": "10.0.0.0/99"}),
            "network",
        ),
        ("/api/v1/bans", json!({"kind": "client"}), "value"),
        (
            "/api/v1/bans",
            json!({"kind": "client", "value": "c", "until": 5}),
            "until",
        ),
        (
            "/api/v1/bans",
            json!({"kind": "client", "value": "c", "expires_in": 0}),
            "expires_in",
        ),
        (
            "/api/v1/bans",
            json!({"kind": "client", "value": "c", "reason": "r".repeat(1025)}),
            "reason",
        ),
        (
            "/api/v1/revocations",
            json!({"kind": "address", "value": "x"}),
            "kind must be",
        ),
        (
            "/api/v1/revocations",
            json!({"kind": "jti", "value": "j".repeat(1025)}),
            "1 to 1024 bytes",
        ),
    ] {
        let answer = post(path, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(
            answer.json()["error"].as_str().unwrap().contains(says),
            "{body}: {}",
            answer.body
        );
    }
    let big = json!({"kind": "client", "value": "c", "reason": "r".repeat(9000)});
    assert_eq!(
        post("/api/v1/bans", big).await.status,
        413,
        "larger than max_request_bytes"
    );

    let read_only = request_json(
        admin,
        "POST",
        "/api/v1/bans",
        Some(READ_TOKEN),
        &json!({"kind": "client", "value": "c"}),
    )
    .await;
    assert_eq!(read_only.status, 403);

    for (path, kind) in [
        ("/api/v1/bans", "client"),
        ("/api/v1/revocations", "client"),
    ] {
        assert_eq!(
            post(path, json!({"kind": kind, "value": "one"}))
                .await
                .status,
            201
        );
        let replaced = post(
            path,
            json!({"kind": kind, "value": "one", "reason": "again"}),
        )
        .await;
        assert_eq!(
            replaced.status, 201,
            "the same target is replaced, not added"
        );
        assert_eq!(replaced.json()["replaced"], true);
        let full = post(path, json!({"kind": kind, "value": "two"})).await;
        assert_eq!(full.status, 409, "{}", full.body);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_revocation_disconnects_at_once_refuses_reconnects_and_can_be_withdrawn() {
    let dir = TestDir::new("admin-revoke");
    let file = dir.write("revoked.txt", "client from-file\n");
    let (server, mqtt, admin) = start_admin_broker(&dir, |config| {
        config.revocation = Some(RevocationConfig {
            path: file,
            reload_interval: Duration::from_secs(0),
        });
    })
    .await;
    let mut sensor = TestClient::connect(mqtt, ProtocolVersion::V5, "sensor-7").await;
    let made = request_json(
        admin,
        "POST",
        "/api/v1/revocations",
        Some(ADMIN_TOKEN),
        &json!({"kind": "client", "value": "sensor-7", "reason": "stolen"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    expect_disconnect(sensor.expect_close().await, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "sensor-7", None).await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "from-file", None).await,
        ReasonCode::NOT_AUTHORIZED,
        "the file's entries still hold"
    );

    let listed = request(admin, "GET", "/api/v1/revocations", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(listed["total"], 2);
    let sources: Vec<(&str, &str)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["source"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("api", "sensor-7"), ("file", "from-file")]);

    let in_file = request(
        admin,
        "DELETE",
        "/api/v1/revocations/client/from-file",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(in_file.status, 409, "{}", in_file.body);
    let withdrawn = request(
        admin,
        "DELETE",
        "/api/v1/revocations/client/sensor-7",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(withdrawn.status, 204, "{}", withdrawn.body);
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "sensor-7", None).await,
        ReasonCode::SUCCESS
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bans_and_revocations_are_kept_across_a_restart() {
    let dir = TestDir::new("admin-operator-restart");
    let store = dir.0.join("store");
    let (server, _mqtt, admin) = start_admin_broker(&dir, persistent(&store)).await;
    for (path, kind, value) in [
        ("/api/v1/bans", "address", "127.0.0.0/8"),
        ("/api/v1/revocations", "user", "mallory"),
    ] {
        let made = request_json(
            admin,
            "POST",
            path,
            Some(ADMIN_TOKEN),
            &json!({"kind": kind, "value": value, "expires_in": 3600}),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    // Each answer waited for its commit: the store's commit times are in /metrics.
    let metrics = request(admin, "GET", "/metrics", Some(READ_TOKEN))
        .await
        .body;
    let commits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_store_commit_seconds_count "))
        .unwrap_or_else(|| panic!("no commit count in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(commits >= 2, "{commits} commits");
    server.shutdown().await;

    let (server, mqtt, admin) = start_admin_broker(&dir, persistent(&store)).await;
    assert_eq!(server.recovered().bans, 1);
    assert_eq!(server.recovered().revocations, 1);
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "anyone", None).await,
        ReasonCode::BANNED
    );
    let lifted = request(
        admin,
        "DELETE",
        "/api/v1/bans/address/127.0.0.0/8",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(lifted.status, 204);
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "m-1", Some("mallory")).await,
        ReasonCode::NOT_AUTHORIZED,
        "the revocation came back too"
    );
    let listed = request(admin, "GET", "/api/v1/revocations", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(listed["data"][0]["value"], "mallory");
    server.shutdown().await;

    let (server, mqtt, _admin) = start_admin_broker(&dir, persistent(&store)).await;
    assert_eq!(server.recovered().bans, 0, "the lifted ban stays lifted");
    assert_eq!(
        connack(mqtt, ProtocolVersion::V5, "anyone", None).await,
        ReasonCode::SUCCESS
    );
    server.shutdown().await;
}

#[tokio::test]
async fn forgetting_the_authentication_cache_makes_the_next_connect_ask_again() {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let hook = HttpService::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Reply::Json(200, json!({"result": "allow"}))
    })
    .await;
    let url = hook.url("/auth");
    let dir = TestDir::new("admin-cache");
    let (server, mqtt, admin) = start_admin_broker(&dir, |config| {
        config.listeners[0].allow_anonymous = false;
        config.throttle.enabled = false;
        config.authenticators = vec![AuthenticatorConfig {
            name: "hook".into(),
            webhook: Some(toml::from_str(&format!("url = \"{url}\"")).unwrap()),
            cache_ttl: Duration::from_secs(600),
            ..Default::default()
        }];
    })
    .await;
    let login = |id: &str| {
        let mut c = connect_packet(ProtocolVersion::V5, id);
        c.username = Some("alice".into());
        c.password = Some(b"pw".to_vec().into());
        c
    };
    for _ in 0..2 {
        let (_c, ack) = TestClient::connect_with(mqtt, login("a-1")).await;
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "the second was answered by the cache"
    );

    let read_only = request(
        admin,
        "DELETE",
        "/api/v1/authentication/cache",
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(read_only.status, 403);
    let forgot = request(
        admin,
        "DELETE",
        "/api/v1/authentication/cache",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(forgot.status, 204, "{}", forgot.body);
    let (_c, ack) = TestClient::connect_with(mqtt, login("a-1")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "asked again after the cache was forgotten"
    );
    server.shutdown().await;
}

/// Devices publish under `devices/<client id>/`, `admin` may read `$SYS/#`, nothing else.
const POLICY: &str = r#"
default = "deny"

[users.admin]
permissions = [{ filter = "$SYS/#", activity = "subscribe" }]

[[patterns]]
filter = "devices/%c/#"
"#;

#[tokio::test]
async fn authorize_explains_decisions_for_a_connected_client_and_a_stated_principal() {
    let dir = TestDir::new("admin-authorize");
    let policy = dir.write("policy.toml", POLICY);
    let (server, mqtt, admin) = start_admin_broker(&dir, |config| {
        config.authorizers = vec![AuthorizerConfig {
            name: "policy".into(),
            policy_file: Some(PolicyFileSource { path: policy }),
            acl_file: None,
            claims: None,
        }];
    })
    .await;
    let _d1 = TestClient::connect(mqtt, ProtocolVersion::V5, "d1").await;
    let ask = |body: serde_json::Value| async move {
        request_json(admin, "POST", "/api/v1/authorize", Some(READ_TOKEN), &body).await
    };

    let own =
        ask(json!({"client_id": "d1", "action": "publish", "topic": "devices/d1/temp", "qos": 1}))
            .await;
    assert_eq!(own.status, 200, "a read token may ask: {}", own.body);
    let own = own.json();
    assert_eq!(own["source"], "connected");
    assert_eq!(own["allowed"], true);
    assert_eq!(own["deciding_rule"]["template"], "devices/%c/#");
    assert_eq!(own["deciding_rule"]["filter"], "devices/d1/#");
    assert!(
        own["deciding_rule"]["origin"]
            .as_str()
            .unwrap()
            .contains("policy.toml"),
        "{own}"
    );
    assert_eq!(own["principal"]["client_id"], "d1");

    // The client's detail shows the same permissions, rule by rule, with their origins.
    let detail = request(admin, "GET", "/api/v1/clients/d1", Some(READ_TOKEN))
        .await
        .json();
    let rules = detail["permissions"]["rules"].as_array().unwrap();
    let templates: Vec<&str> = rules
        .iter()
        .map(|r| r["template"].as_str().unwrap())
        .collect();
    assert_eq!(templates, ["devices/%c/#"], "{detail}");
    assert_eq!(rules[0]["filter"], "devices/d1/#");
    assert!(rules[0]["origin"].as_str().unwrap().contains("policy.toml"));
    assert_eq!(detail["permissions"]["default"]["allowed"], false);

    let other = ask(json!({"client_id": "d1", "action": "publish", "topic": "devices/d2/temp"}))
        .await
        .json();
    assert_eq!(other["allowed"], false);
    assert_eq!(
        other["deciding_rule"],
        serde_json::Value::Null,
        "the default decided"
    );

    let stated = ask(json!({
        "client_id": "console",
        "principal": {"username": "admin"},
        "action": "subscribe",
        "topic": "$SYS/#"
    }))
    .await;
    assert_eq!(stated.status, 200, "{}", stated.body);
    let stated = stated.json();
    assert_eq!(stated["source"], "stated");
    assert_eq!(stated["allowed"], true, "{stated}");

    // What the broker would refuse at CONNECT is refused here too, with its reason code.
    let ban = request_json(
        admin,
        "POST",
        "/api/v1/bans",
        Some(ADMIN_TOKEN),
        &json!({"kind": "user", "value": "mallory"}),
    )
    .await;
    assert_eq!(ban.status, 201);
    let revoke = request_json(
        admin,
        "POST",
        "/api/v1/revocations",
        Some(ADMIN_TOKEN),
        &json!({"kind": "client", "value": "lost-1"}),
    )
    .await;
    assert_eq!(revoke.status, 201);
    for (client_id, username, code) in [("m", "mallory", 0x8A), ("lost-1", "bob", 0x87)] {
        let answer = ask(json!({
            "client_id": client_id,
            "principal": {"username": username},
            "action": "publish",
            "topic": "devices/m/x"
        }))
        .await
        .json();
        assert_eq!(answer["admitted"], false, "{answer}");
        assert_eq!(answer["refusal"]["reason_code"], code, "{answer}");
        assert_eq!(answer["allowed"], false);
    }

    for (body, status) in [
        (
            json!({"client_id": "nobody", "action": "publish", "topic": "a"}),
            404,
        ),
        (
            json!({"client_id": "d1", "action": "delete", "topic": "a"}),
            400,
        ),
        (
            json!({"client_id": "d1", "action": "publish", "topic": "a", "qos": 3}),
            400,
        ),
        (json!({"client_id": "d1", "action": "publish"}), 400),
        (
            json!({"client_id": "d1", "listener": "nope", "action": "publish", "topic": "a"}),
            400,
        ),
    ] {
        let answer = ask(body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert!(answer.json()["error"].is_string());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_jwks_fetches_and_their_failures_per_authenticator() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let provider = {
        let up = Arc::clone(&up);
        HttpService::start(move |_| {
            if up.load(Ordering::SeqCst) {
                Reply::Json(200, json!({"keys": []}))
            } else {
                Reply::Raw(503, String::new())
            }
        })
        .await
    };
    let jwks = provider.url("/jwks");
    let dir = TestDir::new("admin-jwks-metrics");
    let (server, mqtt, admin) = start_admin_broker(&dir, |config| {
        config.listeners[0].allow_anonymous = false;
        config.throttle.enabled = false;
        config.authenticators = vec![AuthenticatorConfig {
            name: "idp".into(),
            jwt: Some(
                toml::from_str(&format!(
                    "algorithms = [\"RS256\"]\njwks_url = \"{jwks}\"\njwks_refresh = 3600\njwks_min_refetch = 0\n"
                ))
                .unwrap(),
            ),
            ..Default::default()
        }];
    })
    .await;
    // A token naming a key: the broker must fetch the key set to judge it (its signature is
    // never reached: no key is ever found).
    use base64::Engine;
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let token = format!(
        "{}.{}.c2ln",
        part(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#),
        part(r#"{"sub":"alice"}"#)
    );
    let login = || {
        let mut c = connect_packet(ProtocolVersion::V5, "device");
        c.username = Some("device".into());
        c.password = Some(token.clone().into_bytes().into());
        c
    };
    let fetches = || async {
        let text = request(admin, "GET", "/metrics", Some(READ_TOKEN))
            .await
            .body;
        let value = |family: &str| -> u64 {
            let prefix = format!("{family}_total{{authenticator=\"idp\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .parse()
                .unwrap()
        };
        (
            value("tollgate_jwks_fetches"),
            value("tollgate_jwks_fetch_failures"),
        )
    };

    // The provider is down: the CONNECT is refused once its fetch failed. (The periodic
    // refresh fetches at start too, at a moment of its own: the counts below hold whenever
    // it runs.)
    let (_c, ack) = TestClient::connect_with(mqtt, login()).await;
    assert_eq!(ack.reason_code, ReasonCode::SERVER_UNAVAILABLE);
    let (fetched, failed) = fetches().await;
    assert!(fetched >= 1, "{fetched}");
    assert_eq!(failed, fetched, "every fetch so far failed");

    // Up again: the next CONNECT fetches (no keys are held), and that fetch works.
    up.store(true, Ordering::SeqCst);
    let (_c, ack) = TestClient::connect_with(mqtt, login()).await;
    assert!(ack.reason_code.is_error(), "no key for the token");
    let (fetched_now, failed_now) = fetches().await;
    assert!(failed_now >= failed, "{failed_now} >= {failed}");
    assert!(
        fetched_now > failed_now,
        "the fetch behind the second CONNECT worked: {fetched_now} fetches, {failed_now} failed"
    );
    assert!(provider.count() as u64 >= fetched_now);
    server.shutdown().await;
}
