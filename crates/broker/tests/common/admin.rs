//! The admin HTTP API as tests reach it: a broker with an admin listener and two tokens, and
//! one HTTP/1.1 request at a time over a plain socket (the listener closes after each).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_broker::{admin_token_line, AdminConfig, AdminRole, BrokerConfig, Server};

use super::{start_broker, TestDir, PACKET_TIMEOUT};

pub const ADMIN_TOKEN: &str = "admin-secret-0123456789abcdef";
pub const READ_TOKEN: &str = "read-secret-0123456789abcdef";

/// An HTTP answer: status, headers (names lowercased) and body.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one HTTP/1.1 request and reads the answer to the end (the admin listener closes
/// after each).
pub async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Answer {
    send(addr, method, path, token, None).await
}

/// [`request`] with a JSON body.
pub async fn request_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Answer {
    send(addr, method, path, token, Some(body.to_string())).await
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
    });
    let body = if body.is_empty() {
        "\r\n".to_owned()
    } else {
        body
    };
    let text =
        format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n{body}");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PACKET_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer within the timeout")
        .unwrap();
    let raw = String::from_utf8(raw).expect("a text answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// A broker with an admin listener on a free port, and an admin and a read token.
pub async fn start_with_admin(
    dir: &TestDir,
    tune: impl FnOnce(&mut AdminConfig),
) -> (Server, SocketAddr, SocketAddr) {
    start_admin_broker(dir, |config| tune(config.admin.as_mut().unwrap())).await
}

/// [`start_with_admin`] with `tune` applied to the whole configuration (its `admin` table
/// already set).
pub async fn start_admin_broker(
    dir: &TestDir,
    tune: impl FnOnce(&mut BrokerConfig),
) -> (Server, SocketAddr, SocketAddr) {
    let tokens = dir.write(
        "admin.tokens",
        &format!(
            "# test tokens\n{}\n{}\n",
            admin_token_line("ops", AdminRole::Admin, ADMIN_TOKEN),
            admin_token_line("dash", AdminRole::Read, READ_TOKEN)
        ),
    );
    let (server, mqtt) = start_broker(|config| {
        config.admin = Some(AdminConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            token_file: Some(tokens),
            ..AdminConfig::default()
        });
        tune(config);
    })
    .await;
    let admin = server.admin_addr().expect("the admin listener is bound");
    (server, mqtt, admin)
}

/// Sends `bytes` on a new admin connection and reads until the broker closes it; the status
/// of its answer, if it gave one.
pub async fn raw_exchange(admin: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(admin).await.unwrap();
    // The broker may close before reading all of it: a failed write is an answer too.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PACKET_TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("the broker closes the connection within the timeout");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|s| s.parse().ok())
}
