//! The audit feed over real connections: `GET /api/v1/events` as server-sent events
//! (connects, kicks, bans and denials as they happen; filters by type and client; its bound
//! on open streams; bad filters refused), and the `[audit] file` of JSON lines, complete when
//! the broker has shut down.

mod common;

use std::net::SocketAddr;

use common::admin::*;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_broker::AuditConfig;
use tollgate_mqtt::*;

/// An open event stream, read as it comes.
struct EventStream {
    stream: TcpStream,
    /// Bytes read and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked event-stream text not yet parsed into events.
    text: String,
}

impl EventStream {
    /// Opens `/api/v1/events` with `query`; the answer's status (the stream when 200).
    async fn open(admin: SocketAddr, query: &str) -> Result<EventStream, u16> {
        let mut stream = TcpStream::connect(admin).await.unwrap();
        let head = format!(
            "GET /api/v1/events{query} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut opened = EventStream {
            stream,
            raw: Vec::new(),
            text: String::new(),
        };
        let head = loop {
            if let Some(end) = find(&opened.raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&opened.raw[..end]).into_owned();
                opened.raw.drain(..end + 4);
                break head;
            }
            opened.read_more().await;
        };
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        if status != 200 {
            return Err(status);
        }
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/event-stream"),
            "{head}"
        );
        Ok(opened)
    }

    async fn read_more(&mut self) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(PACKET_TIMEOUT, self.stream.read(&mut buf))
            .await
            .expect("the stream sends within the timeout")
            .unwrap();
        assert!(n > 0, "the stream closed");
        self.raw.extend_from_slice(&buf[..n]);
    }

    /// The next event that is not a comment: its type and data.
    async fn next(&mut self) -> (String, Value) {
        loop {
            // Whole chunks into text.
            while let Some(line_end) = find(&self.raw, b"\r\n") {
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.raw[..line_end]).unwrap().trim(),
                    16,
                )
                .unwrap();
                if self.raw.len() < line_end + 2 + size + 2 {
                    break;
                }
                let chunk = self.raw[line_end + 2..line_end + 2 + size].to_vec();
                self.text.push_str(std::str::from_utf8(&chunk).unwrap());
                self.raw.drain(..line_end + 2 + size + 2);
            }
            if let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = None;
                for line in event.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = Some(k.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(d).unwrap());
                    }
                }
                match (kind, data) {
                    (Some(kind), Some(data)) => return (kind, data),
                    _ => continue, // a comment
                }
            }
            self.read_more().await;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn the_event_stream_tells_of_connects_kicks_and_bans_as_they_happen() {
    let dir = TestDir::new("admin-events");
    let (server, mqtt, admin) = start_with_admin(&dir, |_| {}).await;
    let mut events = EventStream::open(admin, "?type=connected,kicked,ban,connection_refused")
        .await
        .expect("a stream");

    let mut client = TestClient::connect(mqtt, ProtocolVersion::V5, "watched-1").await;
    let (kind, connected) = events.next().await;
    assert_eq!(kind, "connected");
    assert_eq!(connected["client_id"], "watched-1");
    assert_eq!(connected["protocol"], 5);
    assert!(connected["at"].as_u64().unwrap() > 0);

    let kick = request(
        admin,
        "DELETE",
        "/api/v1/clients/watched-1",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(kick.status, 204);
    client.expect_close().await;
    let (kind, kicked) = events.next().await;
    assert_eq!(kind, "kicked", "{kicked}");
    assert_eq!(kicked["client_id"], "watched-1");
    assert_eq!(kicked["detail"], "by ops");

    let ban = request_json(
        admin,
        "POST",
        "/api/v1/bans",
        Some(ADMIN_TOKEN),
        &json!({"kind": "client", "value": "watched-1"}),
    )
    .await;
    assert_eq!(ban.status, 201);
    let (kind, banned) = events.next().await;
    assert_eq!(kind, "ban");
    assert_eq!(banned["value"], "watched-1");
    assert_eq!(banned["by"], "ops");
    let (_c, ack) =
        TestClient::connect_with(mqtt, connect_packet(ProtocolVersion::V5, "watched-1")).await;
    assert_eq!(ack.reason_code, ReasonCode::BANNED);
    let (kind, refused) = events.next().await;
    assert_eq!(kind, "connection_refused");
    assert_eq!(refused["cause"], "banned");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stream_filtered_by_client_sees_only_that_client_and_bad_filters_are_refused() {
    let dir = TestDir::new("admin-events-filter");
    let (server, mqtt, admin) = start_with_admin(&dir, |admin| admin.max_event_streams = 1).await;
    assert_eq!(
        EventStream::open(admin, "?type=connected,nonsense")
            .await
            .err(),
        Some(400)
    );
    assert_eq!(
        EventStream::open(admin, "?colour=red").await.err(),
        Some(400)
    );
    let mut events = EventStream::open(admin, "?client_id=wanted")
        .await
        .expect("a stream");
    assert_eq!(
        EventStream::open(admin, "").await.err(),
        Some(503),
        "max_event_streams is 1"
    );
    let _other = TestClient::connect(mqtt, ProtocolVersion::V3_1_1, "other").await;
    let _wanted = TestClient::connect(mqtt, ProtocolVersion::V3_1_1, "wanted").await;
    // Anonymous clients are authenticated too: the first event of `wanted` is that.
    let (kind, first) = events.next().await;
    assert_eq!(kind, "authentication");
    assert_eq!(first["client_id"], "wanted", "{first}");
    assert_eq!(first["outcome"], "allow");
    let (kind, second) = events.next().await;
    assert_eq!(kind, "connected");
    assert_eq!(second["client_id"], "wanted");
    server.shutdown().await;
}

#[tokio::test]
async fn the_audit_file_holds_every_event_as_a_json_line_once_the_broker_has_stopped() {
    let dir = TestDir::new("admin-audit-file");
    let path = dir.0.join("audit.jsonl");
    let file = path.clone();
    let (server, mqtt, admin) = start_admin_broker(&dir, move |config| {
        config.audit = AuditConfig {
            file: Some(file),
            ..AuditConfig::default()
        };
    })
    .await;
    let mut client = connect_packet(ProtocolVersion::V5, "audited-1");
    client.username = Some("alice\n{\"type\":\"forged\"}".into());
    let (mut client, _) = TestClient::connect_with(mqtt, client).await;
    let kick = request(
        admin,
        "DELETE",
        "/api/v1/clients/audited-1",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(kick.status, 204);
    client.expect_close().await;
    server.shutdown().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for wanted in ["authentication", "connected", "kicked", "disconnected"] {
        assert!(types.contains(&wanted), "{wanted} in {types:?}");
    }
    assert!(
        !types.contains(&"forged"),
        "a user name cannot add a line: {text}"
    );
    let connected = lines.iter().find(|l| l["type"] == "connected").unwrap();
    assert_eq!(connected["username"], "alice\n{\"type\":\"forged\"}");
}

#[tokio::test]
async fn an_audit_file_that_cannot_be_opened_is_refused_at_its_key() {
    let dir = TestDir::new("admin-audit-bad");
    let mut config = anonymous_config();
    config.audit = AuditConfig {
        file: Some(dir.0.join("no-such-dir").join("audit.jsonl")),
        max_file_bytes: 10,
        keep_files: 0,
    };
    let problems = tollgate_broker::Server::prepare(config, Default::default())
        .err()
        .expect("refused")
        .to_string();
    for key in ["audit.file", "audit.max_file_bytes", "audit.keep_files"] {
        assert!(problems.contains(key), "{key} in {problems}");
    }
}
