//! Client-supplied text (client identifiers, user names, topics) never starts a log line: a
//! newline in a client id would otherwise write an audit line of the client's choosing. In a
//! test binary of its own, so that the capturing subscriber is the process's only one.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tollgate_broker::{AuthenticatorConfig, BrokerConfig, PasswordFileConfig};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const FIXTURE: &str = include_str!("../../auth/tests/fixtures/mosquitto_passwd.txt");

fn credentials(client_id: &str, user: &str, password: &str) -> Connect {
    let mut c = connect_packet(V5, client_id);
    c.username = Some(user.into());
    c.password = Some(password.to_owned().into_bytes().into());
    c
}

fn with_password_file(config: &mut BrokerConfig, path: std::path::PathBuf) {
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
}

/// Collects what the broker logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn client_supplied_text_cannot_start_a_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let path = std::env::temp_dir().join(format!("tollgate-forgery-{}.passwd", std::process::id()));
    std::fs::write(&path, FIXTURE).unwrap();
    let (_server, addr) = start_broker(|c| {
        with_password_file(c, path.clone());
        c.throttle.enabled = false;
    })
    .await;
    let forged = "x\nFORGED tollgate::audit: outcome=\"allow\" username=\"root\"";
    // As a client id, a user name and a topic, refused and accepted.
    let (_, refused) = TestClient::connect_with(addr, credentials(forged, forged, "wrong")).await;
    assert_eq!(refused.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    let (mut c, ack) =
        TestClient::connect_with(addr, credentials(forged, "alice", "secret1")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    c.subscribe(1, "ok", QoS::AtMostOnce).await;
    c.publish(&"a/".repeat(200), b"deep", QoS::AtMostOnce, false, 0)
        .await;
    c.expect_close().await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("x\\u{a}FORGED"),
        "the id is logged, escaped:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("FORGED")),
        "a forged line:\n{text}"
    );
    let _ = std::fs::remove_file(path);
}
