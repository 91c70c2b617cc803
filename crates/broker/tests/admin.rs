//! The admin HTTP API over real HTTP: authentication (no token, a wrong token, a read-only
//! token writing, the throttle), the client listing and details, the kick, sessions, retained
//! messages, reload, `/metrics`, bad input, and the bounds on pages, request heads and slow
//! requests.

mod common;

use std::time::Duration;

use common::admin::*;
use common::*;
use tollgate_broker::{
    admin_token_line, AdminConfig, AdminRole, AuthorizerConfig, PolicyFileSource, Server,
};
use tollgate_mqtt::*;

#[tokio::test]
async fn every_request_needs_a_valid_token_and_writes_need_the_admin_role() {
    let dir = TestDir::new("admin-auth");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let _client = TestClient::connect(mqtt, ProtocolVersion::V5, "device-1").await;

    let none = request(admin, "GET", "/api/v1/clients", None).await;
    assert_eq!(none.status, 401);
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert!(none.json()["error"]
        .as_str()
        .unwrap()
        .contains("bearer token"));
    for path in ["/healthz", "/metrics", "/readyz"] {
        assert_eq!(
            request(admin, "GET", path, None).await.status,
            401,
            "{path}"
        );
    }
    let wrong = request(admin, "GET", "/api/v1/clients", Some("not-a-token")).await;
    assert_eq!(wrong.status, 401);

    let read = request(admin, "GET", "/api/v1/clients", Some(READ_TOKEN)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let kick = request(
        admin,
        "DELETE",
        "/api/v1/clients/device-1",
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(kick.status, 403);
    assert!(kick.json()["error"].as_str().unwrap().contains("read-only"));
    assert!(
        server.broker().connected_principal("device-1").is_some(),
        "a refused kick leaves the client connected"
    );

    assert_eq!(
        request(admin, "GET", "/healthz", Some(READ_TOKEN))
            .await
            .json()["status"],
        "ok"
    );
    assert_eq!(
        request(admin, "GET", "/readyz", Some(READ_TOKEN))
            .await
            .json()["ready"],
        true
    );
    let missing = request(admin, "GET", "/api/v1/nothing", Some(READ_TOKEN)).await;
    assert_eq!(missing.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn an_address_failing_too_often_is_refused_even_with_a_good_token() {
    let dir = TestDir::new("admin-throttle");
    let (server, _, admin) = start_with_admin(&dir, |a| {
        a.max_failures = 3;
        a.ban = Duration::from_secs(600);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            request(admin, "GET", "/healthz", Some("guess"))
                .await
                .status,
            401
        );
    }
    let refused = request(admin, "GET", "/healthz", Some(ADMIN_TOKEN)).await;
    assert_eq!(refused.status, 429);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 600, "{retry}");
    server.shutdown().await;
}

#[tokio::test]
async fn clients_are_listed_filtered_and_paged_and_one_is_shown_with_its_principal() {
    let dir = TestDir::new("admin-clients");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut a = TestClient::connect(mqtt, ProtocolVersion::V5, "sensor-a").await;
    a.subscribe(1, "cmd/sensor-a/#", QoS::AtLeastOnce).await;
    a.publish("cmd/sensor-a/x", &[7u8; 100], QoS::AtMostOnce, false, 0)
        .await;
    let _ = a.recv_publish().await;
    // A later round trip: the counts of the rounds before it are in.
    a.expect_nothing().await;
    let _b = TestClient::connect(mqtt, ProtocolVersion::V3_1_1, "sensor-b").await;
    let _c = TestClient::connect(mqtt, ProtocolVersion::V5, "gateway").await;

    let all = request(admin, "GET", "/api/v1/clients", Some(READ_TOKEN))
        .await
        .json();
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gateway", "sensor-a", "sensor-b"]);
    assert_eq!(all["total"], 3);
    let counted = &all["data"][1];
    assert_eq!(counted["messages_in"], 1, "{counted}");
    assert_eq!(counted["messages_out"], 1, "{counted}");
    assert!(counted["bytes_in"].as_u64().unwrap() > 100, "{counted}");
    assert!(counted["bytes_out"].as_u64().unwrap() > 100, "{counted}");
    assert_eq!(all["data"][2]["messages_in"], 0);
    assert!(all["next"].is_null());

    let sensors = request(
        admin,
        "GET",
        "/api/v1/clients?client_id=sensor&protocol=5.0",
        Some(READ_TOKEN),
    )
    .await
    .json();
    assert_eq!(sensors["total"], 1);
    assert_eq!(sensors["data"][0]["client_id"], "sensor-a");
    assert_eq!(sensors["data"][0]["protocol"], "5.0");
    let local = request(
        admin,
        "GET",
        "/api/v1/clients?address=127.0.0.0/8&limit=2",
        Some(READ_TOKEN),
    )
    .await
    .json();
    assert_eq!(local["data"].as_array().unwrap().len(), 2);
    assert_eq!(local["next"], "sensor-a");
    let rest = request(
        admin,
        "GET",
        "/api/v1/clients?address=127.0.0.0/8&limit=2&after=sensor-a",
        Some(READ_TOKEN),
    )
    .await
    .json();
    assert_eq!(rest["data"][0]["client_id"], "sensor-b");
    assert!(rest["next"].is_null());
    let elsewhere = request(
        admin,
        "GET",
        "/api/v1/clients?address=192.0.2.0/24",
        Some(READ_TOKEN),
    )
    .await
    .json();
    assert_eq!(elsewhere["total"], 0);

    let shown = request(admin, "GET", "/api/v1/clients/sensor-a", Some(READ_TOKEN)).await;
    assert_eq!(shown.status, 200);
    let shown = shown.json();
    assert_eq!(shown["principal"]["authenticated_by"], "anonymous");
    assert_eq!(shown["subscriptions"][0]["filter"], "cmd/sensor-a/#");
    assert_eq!(shown["subscriptions"][0]["qos"], 1);
    assert!(shown["connected_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        request(admin, "GET", "/api/v1/clients/nobody", Some(READ_TOKEN))
            .await
            .status,
        404
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_query_input_gets_400_with_a_message() {
    let dir = TestDir::new("admin-bad-input");
    let (server, _, admin) = start_with_admin(&dir, |_| {}).await;
    for (path, says) in [
        ("/api/v1/clients?address=not-an-address", "address must be"),
        ("/api/v1/clients?protocol=4", "protocol must be"),
        ("/api/v1/clients?limit=0", "limit must be"),
        ("/api/v1/clients?limit=many", "limit"),
        ("/api/v1/clients?colour=red", "colour"),
    ] {
        let answer = request(admin, "GET", path, Some(READ_TOKEN)).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert!(
            answer.json()["error"].as_str().unwrap().contains(says),
            "{path}: {}",
            answer.body
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_kicked_5_0_client_gets_disconnect_0x98_and_its_session_stays() {
    let dir = TestDir::new("admin-kick");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "to-kick");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(300);
    let (mut client, _) = TestClient::connect_with(mqtt, connect).await;
    let kick = request(
        admin,
        "DELETE",
        "/api/v1/clients/to-kick",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(kick.status, 204, "{}", kick.body);
    let before = client.expect_close().await;
    match before.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::ADMINISTRATIVE_ACTION),
        other => panic!("expected DISCONNECT 0x98, got {other:?}"),
    }
    assert_eq!(
        server.broker().session_count(),
        1,
        "the persistent session outlives the kick"
    );
    let metrics = request(admin, "GET", "/metrics", Some(READ_TOKEN))
        .await
        .body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "tollgate_identity_disconnects_total{cause=\"kicked\"} 1"),
        "{metrics}"
    );
    let again = request(
        admin,
        "DELETE",
        "/api/v1/clients/to-kick",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(again.status, 404, "nobody is connected as to-kick any more");
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_are_openmetrics_text_with_the_broker_counters() {
    let dir = TestDir::new("admin-metrics");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut client = TestClient::connect(mqtt, ProtocolVersion::V5, "counted").await;
    client.subscribe(1, "m/#", QoS::AtLeastOnce).await;
    client
        .send(Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            topic: "m/1".into(),
            packet_id: Some(7),
            payload: b"abc".as_slice().to_vec().into(),
            ..Publish::default()
        }))
        .await;
    // Its PUBACK and its delivery back to it, in either order.
    for _ in 0..2 {
        match client.recv().await {
            Packet::PubAck(ack) => assert_eq!(ack.packet_id, 7),
            Packet::Publish(delivered) => client.ack(&delivered).await,
            other => panic!("expected PUBACK or PUBLISH, got {other:?}"),
        }
    }
    // The connection adds its counts to the broker's after each round of work: the answer
    // to a later PINGREQ comes after the rounds that received and sent the message.
    client.send(Packet::PingReq).await;
    assert!(matches!(client.recv().await, Packet::PingResp));
    let answer = request(admin, "GET", "/metrics", Some(READ_TOKEN)).await;
    assert_eq!(answer.status, 200);
    assert!(answer
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = answer.body;
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("tollgate_authentications_total{")
                && l.contains("authenticator=\"anonymous\"")
                && l.contains("outcome=\"allow\"")
                && l.ends_with(" 1")),
        "no count of the anonymous allow in\n{text}"
    );
    for line in [
        "# TYPE tollgate_authentications counter",
        "# TYPE tollgate_connections gauge",
        "tollgate_connections 1",
        "tollgate_sessions 1",
        "tollgate_subscriptions 1",
        "# TYPE tollgate_connections_accepted counter",
        "tollgate_connections_accepted_total 1",
        "tollgate_messages_received_total{qos=\"0\"} 0",
        "tollgate_messages_received_total{qos=\"1\"} 1",
        "tollgate_messages_sent_total{qos=\"1\"} 1",
        "# UNIT tollgate_payload_received_bytes bytes",
        "tollgate_payload_received_bytes_total{qos=\"1\"} 3",
        "tollgate_payload_sent_bytes_total{qos=\"1\"} 3",
        "# UNIT tollgate_received_bytes bytes",
        "tollgate_queued_deliveries 0",
        "tollgate_inflight_deliveries 0",
        "tollgate_listener_connections{listener=\"127.0.0.1:0\"} 1",
        "tollgate_listener_sessions{listener=\"127.0.0.1:0\"} 1",
        "tollgate_offline_sessions 0",
        "tollgate_overload_total{kind=\"throttled\"} 0",
        "# TYPE tollgate_authentication_seconds histogram",
        "tollgate_authentication_seconds_count{listener=\"127.0.0.1:0\",authenticator=\"anonymous\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in\n{text}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_authorization_decisions_by_action_result_and_authorizer() {
    let dir = TestDir::new("admin-metrics-decisions");
    let policy = dir.write(
        "policy.toml",
        "default = \"deny\"\n[[patterns]]\nfilter = \"devices/%c/#\"\n",
    );
    let (server, mqtt, admin) = start_admin_broker(&dir, |config| {
        config.authorizers = vec![AuthorizerConfig {
            name: "fleet-policy".into(),
            policy_file: Some(PolicyFileSource { path: policy }),
            acl_file: None,
            claims: None,
        }];
    })
    .await;
    let mut client = TestClient::connect(mqtt, ProtocolVersion::V5, "d1").await;
    let ack = client.subscribe(1, "devices/d1/#", QoS::AtMostOnce).await;
    assert_eq!(ack.reason_codes, [ReasonCode::SUCCESS]);
    let refused = client.subscribe(2, "elsewhere/#", QoS::AtMostOnce).await;
    assert!(refused.reason_codes[0].is_error());
    client
        .publish("devices/d1/t", b"1", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(client.recv_publish().await.topic, "devices/d1/t");
    assert!(client
        .publish("devices/d2/t", b"1", QoS::AtLeastOnce, false, 3)
        .await
        .is_error());
    client.send(Packet::PingReq).await;
    assert!(matches!(client.recv().await, Packet::PingResp));

    let text = request(admin, "GET", "/metrics", Some(READ_TOKEN))
        .await
        .body;
    let line = |action: &str, result: &str, by: &str, n: u64| {
        format!("tollgate_authorization_decisions_total{{action=\"{action}\",result=\"{result}\",authorizer=\"fleet-policy\",decided_by=\"{by}\"}} {n}")
    };
    for expected in [
        line("subscribe", "allow", "rule", 1),
        line("subscribe", "deny", "default", 1),
        line("publish", "allow", "rule", 1),
        line("publish", "deny", "default", 1),
        line("receive", "allow", "rule", 1),
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "no line `{expected}` in\n{text}"
        );
    }
    assert!(
        !text.contains("action=\"receive\",result=\"deny\""),
        "nothing was withheld: {text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_admin_table_without_a_token_file_or_with_a_bad_one_is_refused_at_its_key() {
    let dir = TestDir::new("admin-config");
    let mut config = anonymous_config();
    config.admin = Some(AdminConfig::default());
    let problems = Server::prepare(config, Default::default())
        .err()
        .expect("refused");
    assert!(
        problems.to_string().contains("admin.token_file"),
        "{problems}"
    );
    let mut config = anonymous_config();
    config.admin = Some(AdminConfig {
        token_file: Some(dir.write("ok.tokens", "")),
        max_request_bytes: 100,
        ..AdminConfig::default()
    });
    let problems = Server::prepare(config, Default::default())
        .err()
        .expect("refused");
    assert!(
        problems
            .to_string()
            .contains("admin.max_request_bytes`: must be at least 8192 bytes"),
        "{problems}"
    );
    let bad = dir.write("bad.tokens", "ops:root:00\n");
    let mut config = anonymous_config();
    config.admin = Some(AdminConfig {
        token_file: Some(bad),
        ..AdminConfig::default()
    });
    let problems = Server::prepare(config, Default::default())
        .err()
        .expect("refused");
    let text = problems.to_string();
    assert!(
        text.contains("admin.token_file") && text.contains("bad.tokens:1: role must be"),
        "{text}"
    );
}

#[tokio::test]
async fn an_offline_session_is_listed_shown_and_ended_but_not_under_a_connected_client() {
    let dir = TestDir::new("admin-sessions");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3600);
    let (mut away, _) = TestClient::connect_with(mqtt, connect).await;
    away.subscribe(1, "news/#", QoS::AtLeastOnce).await;
    away.disconnect().await;
    let _here = TestClient::connect(mqtt, ProtocolVersion::V5, "here").await;
    // The broker closes the socket after DISCONNECT once the session is detached.
    let listed = request(admin, "GET", "/api/v1/sessions", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["data"][0]["client_id"], "away");
    assert_eq!(listed["data"][0]["expiry_interval"], 3600);
    assert_eq!(listed["data"][0]["subscriptions"][0]["filter"], "news/#");
    let metrics = request(admin, "GET", "/metrics", Some(READ_TOKEN))
        .await
        .body;
    for line in [
        "tollgate_offline_sessions 1",
        "tollgate_listener_sessions{listener=\"127.0.0.1:0\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    let shown = request(admin, "GET", "/api/v1/sessions/away", Some(READ_TOKEN)).await;
    assert_eq!(shown.status, 200);
    assert_eq!(
        request(admin, "GET", "/api/v1/sessions/here", Some(READ_TOKEN))
            .await
            .status,
        404,
        "a connected client's session is not offline"
    );
    assert_eq!(
        request(admin, "DELETE", "/api/v1/sessions/away", Some(READ_TOKEN))
            .await
            .status,
        403
    );
    let busy = request(admin, "DELETE", "/api/v1/sessions/here", Some(ADMIN_TOKEN)).await;
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert_eq!(
        request(admin, "DELETE", "/api/v1/sessions/away", Some(ADMIN_TOKEN))
            .await
            .status,
        204
    );
    assert_eq!(
        request(admin, "GET", "/api/v1/sessions/away", Some(READ_TOKEN))
            .await
            .status,
        404
    );
    assert_eq!(
        request(admin, "DELETE", "/api/v1/sessions/away", Some(ADMIN_TOKEN))
            .await
            .status,
        404
    );
    assert_eq!(
        server.broker().session_count(),
        1,
        "only the connected client's session is left"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn retained_messages_are_listed_by_filter_and_deleted_by_topic() {
    let dir = TestDir::new("admin-retained");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut publisher = TestClient::connect(mqtt, ProtocolVersion::V5, "pub").await;
    publisher
        .publish("state/a", b"on", QoS::AtLeastOnce, true, 1)
        .await;
    publisher
        .publish("state/b/c", b"off", QoS::AtLeastOnce, true, 2)
        .await;
    publisher
        .publish("other", b"x", QoS::AtLeastOnce, true, 3)
        .await;
    let listed = request(
        admin,
        "GET",
        "/api/v1/retained?filter=state/%23",
        Some(READ_TOKEN),
    )
    .await
    .json();
    let topics: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["state/a", "state/b/c"]);
    assert_eq!(listed["data"][0]["payload"], "on");
    assert_eq!(listed["data"][0]["payload_bytes"], 2);
    let bad = request(
        admin,
        "GET",
        "/api/v1/retained?filter=state/%23/more",
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        request(
            admin,
            "DELETE",
            "/api/v1/retained/state/b/c",
            Some(READ_TOKEN)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        request(
            admin,
            "DELETE",
            "/api/v1/retained/state/b/c",
            Some(ADMIN_TOKEN)
        )
        .await
        .status,
        204
    );
    assert_eq!(
        request(
            admin,
            "DELETE",
            "/api/v1/retained/state/b/c",
            Some(ADMIN_TOKEN)
        )
        .await
        .status,
        404
    );
    let mut reader = TestClient::connect(mqtt, ProtocolVersion::V5, "reader").await;
    reader.subscribe(1, "state/#", QoS::AtMostOnce).await;
    assert_eq!(reader.recv_publish().await.topic, "state/a");
    reader.expect_nothing().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_reload_needs_the_admin_role_and_reads_the_token_file_again() {
    let dir = TestDir::new("admin-reload");
    let (server, _, admin) = start_with_admin(&dir, |_| {}).await;
    assert_eq!(
        request(admin, "POST", "/api/v1/reload", Some(READ_TOKEN))
            .await
            .status,
        403
    );
    let later = "added-later-0123456789abcdef";
    assert_eq!(
        request(admin, "GET", "/healthz", Some(later)).await.status,
        401
    );
    let file = dir.0.join("admin.tokens");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&admin_token_line("later", AdminRole::Read, later));
    text.push('\n');
    std::fs::write(&file, text).unwrap();
    let reloaded = request(admin, "POST", "/api/v1/reload", Some(ADMIN_TOKEN)).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    assert_eq!(
        request(admin, "GET", "/healthz", Some(later)).await.status,
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_page_is_never_longer_than_max_page_size_whatever_limit_asks() {
    let dir = TestDir::new("admin-page-bound");
    let (server, mqtt, admin) = start_with_admin(&dir, |a| a.max_page_size = 2).await;
    let _a = TestClient::connect(mqtt, ProtocolVersion::V5, "a").await;
    let _b = TestClient::connect(mqtt, ProtocolVersion::V5, "b").await;
    let _c = TestClient::connect(mqtt, ProtocolVersion::V5, "c").await;
    let page = request(
        admin,
        "GET",
        "/api/v1/clients?limit=1000000",
        Some(READ_TOKEN),
    )
    .await
    .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["total"], 3);
    assert_eq!(page["next"], "b");
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_head_over_max_request_bytes_is_refused_with_431() {
    let dir = TestDir::new("admin-head-bound");
    let (server, _, admin) = start_with_admin(&dir, |a| a.max_request_bytes = 8192).await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {READ_TOKEN}\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(20_000)
    );
    assert_eq!(raw_exchange(admin, huge.as_bytes()).await, Some(431));
    assert_eq!(
        request(admin, "GET", "/healthz", Some(READ_TOKEN))
            .await
            .status,
        200,
        "the listener serves the next request"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_that_does_not_arrive_within_request_timeout_is_closed() {
    let dir = TestDir::new("admin-slow");
    let (server, _, admin) = start_with_admin(&dir, |a| {
        a.request_timeout = Duration::from_secs(1);
        a.max_connections = 1;
    })
    .await;
    // Half a request head, never finished, on the only connection the listener serves.
    let answered = raw_exchange(admin, b"GET /healthz HTTP/1.1\r\nHost: adm").await;
    assert!(answered.is_none() || answered == Some(408), "{answered:?}");
    assert_eq!(
        request(admin, "GET", "/healthz", Some(READ_TOKEN))
            .await
            .status,
        200,
        "the connection slot is free again"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_names_every_route_and_each_one_it_names_is_routed() {
    let dir = TestDir::new("admin-openapi");
    let (server, _mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let answer = request(admin, "GET", "/api/v1/openapi.json", Some(READ_TOKEN)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let unrouted = request(admin, "GET", "/api/v1/nothing", Some(ADMIN_TOKEN)).await;
    assert_eq!(unrouted.body, "{\"error\":\"no such endpoint\"}");
    let mut operations = 0;
    for (path, methods) in paths {
        let concrete = path
            .replace("{client_id}", "nobody")
            .replace("{topic}", "a/b")
            .replace("{kind}", "client")
            .replace("{value}", "nobody");
        for method in methods.as_object().unwrap().keys() {
            if path == "/api/v1/events" {
                continue; // a stream: answered in tests/admin_events.rs
            }
            let answer = request(
                admin,
                &method.to_ascii_uppercase(),
                &concrete,
                Some(ADMIN_TOKEN),
            )
            .await;
            assert_ne!(
                answer.body, "{\"error\":\"no such endpoint\"}",
                "{method} {path} is in the document but not routed"
            );
            operations += 1;
        }
    }
    let routed = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/api/v1/openapi.json",
        "/api/v1/clients",
        "/api/v1/clients/{client_id}",
        "/api/v1/sessions",
        "/api/v1/sessions/{client_id}",
        "/api/v1/retained",
        "/api/v1/retained/{topic}",
        "/api/v1/bans",
        "/api/v1/bans/{kind}/{value}",
        "/api/v1/revocations",
        "/api/v1/revocations/{kind}/{value}",
        "/api/v1/authorize",
        "/api/v1/authentication/cache",
        "/api/v1/events",
        "/api/v1/reload",
    ];
    for path in routed {
        assert!(
            paths.contains_key(path),
            "{path} is routed but not documented"
        );
    }
    assert_eq!(paths.len(), routed.len());
    assert!(operations >= 20, "{operations}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_console_is_served_without_a_token_and_forbids_framing_and_inline_script() {
    let dir = TestDir::new("admin-console");
    let (server, _mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let answer = request(admin, "GET", path, None).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(answer.header("content-type").unwrap().starts_with(kind));
        let policy = answer.header("content-security-policy").unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let page = request(admin, "GET", "/", None).await.body;
    assert!(page.contains("<script src=\"/console/app.js\" defer></script>"));
    assert!(!page.contains("<script>"), "no inline script");
    assert_eq!(
        request(admin, "GET", "/api/v1/clients", None).await.status,
        401,
        "the API still needs a token"
    );
    assert_eq!(
        request(admin, "GET", "/console/other.js", None)
            .await
            .status,
        401
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_jwt_from_the_configured_issuer_is_an_admin_or_read_token_by_its_role() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use tollgate_auth::jwt::{unix_now, JwtConfig};
    const SECRET: &str = "admin-issuer-secret-0123456789abcdef";
    let dir = TestDir::new("admin-jwt");
    let (server, _mqtt, admin) = start_with_admin(&dir, |admin| {
        let mut jwt: JwtConfig = toml::from_str(
            "algorithms = [\"HS256\"]\nissuer = \"https://idp.example\"\naudience = [\"tollgate-admin-api\"]\nroles_claims = [\"roles\"]\n",
        )
        .unwrap();
        jwt.secret = Some(SECRET.into());
        admin.jwt = Some(jwt);
        admin.max_failures = 100;
    })
    .await;
    let token_for = |aud: &str, roles: &[&str], secret: &str, exp: u64| {
        encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice", "iss": "https://idp.example", "aud": aud, "exp": exp, "roles": roles}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let token = |roles: &[&str], secret: &str, exp: u64| {
        token_for("tollgate-admin-api", roles, secret, exp)
    };
    let later = unix_now() + 600;
    let admin_jwt = token(&["tollgate-admin"], SECRET, later);
    let read_jwt = token(&["tollgate-read"], SECRET, later);
    let no_role = token(&["other"], SECRET, later);
    let forged = token(&["tollgate-admin"], "guess", later);
    let expired = token(&["tollgate-admin"], SECRET, unix_now() - 3600);
    let for_mqtt = token_for("mqtt-broker", &["tollgate-admin"], SECRET, later);

    assert_eq!(
        request(admin, "GET", "/api/v1/clients", Some(&read_jwt))
            .await
            .status,
        200
    );
    assert_eq!(
        request(
            admin,
            "DELETE",
            "/api/v1/authentication/cache",
            Some(&read_jwt)
        )
        .await
        .status,
        403,
        "a read token may not write"
    );
    assert_eq!(
        request(
            admin,
            "DELETE",
            "/api/v1/authentication/cache",
            Some(&admin_jwt)
        )
        .await
        .status,
        204
    );
    assert_eq!(
        request(admin, "GET", "/api/v1/clients", Some(&no_role))
            .await
            .status,
        403
    );
    for bad in [&forged, &expired, &for_mqtt] {
        assert_eq!(
            request(admin, "GET", "/api/v1/clients", Some(bad))
                .await
                .status,
            401
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_jwt_whose_issuer_keys_cannot_be_fetched_is_refused_with_503() {
    let dir = TestDir::new("admin-jwt-down");
    // A port nothing listens on: the issuer's keys cannot be had.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let (server, _mqtt, admin) = start_with_admin(&dir, |admin| {
        admin.jwt = Some(
            toml::from_str(&format!(
                "algorithms = [\"RS256\"]\njwks_url = \"{jwks}\"\nissuer = \"https://idp.example\"\naudience = [\"api\"]\n"
            ))
            .unwrap(),
        );
    })
    .await;
    // An RS256 token naming a key: the signature is never checked, the keys cannot be
    // fetched first.
    use base64::Engine;
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let token = format!(
        "{}.{}.c2ln",
        part(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#),
        part(r#"{"sub":"alice"}"#)
    );
    let answer = request(admin, "GET", "/api/v1/clients", Some(&token)).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(
        request(admin, "GET", "/api/v1/clients", Some(ADMIN_TOKEN))
            .await
            .status,
        200,
        "file tokens still work"
    );
    server.shutdown().await;
}
