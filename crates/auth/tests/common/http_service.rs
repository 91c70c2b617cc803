//! A small HTTP/1.1 service on loopback for tests of the authenticators that call one
//! (introspection, token endpoint, webhook): each request is handed to a closure that answers
//! with a status and a JSON body; every request is kept for the test to inspect.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `GET`…
    pub method: String,
    /// The path.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// The body, as text.
    pub body: String,
}

impl Received {
    /// The body as `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> HashMap<String, String> {
        self.body
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// What the service answers: a status and a body, or no answer at all (to make the caller
/// time out).
pub enum Reply {
    /// Status and JSON body.
    Json(u16, serde_json::Value),
    /// Status and a raw body.
    Raw(u16, String),
    /// Status, more headers (`Location`…) and a raw body.
    WithHeaders(u16, Vec<(String, String)>, String),
    /// A whole response written as it is (a head announcing more than follows, say); then the
    /// connection stays open until the caller closes it.
    Verbatim(String),
    /// Status, then a chunked body that never ends: chunks are written until the caller
    /// closes the connection.
    Endless(u16),
    /// Never answer (the connection stays open until the caller gives up).
    Hang,
    /// The reply this future gives, once it gives it (a request held until a test lets it go).
    After(std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>),
}

type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

/// The running service.
pub struct HttpService {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request so far.
    pub requests: Arc<Mutex<Vec<Received>>>,
}

impl HttpService {
    /// Starts a service answering with `handler`.
    pub async fn start(
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> HttpService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let kept = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (handler, kept) = (Arc::clone(&handler), Arc::clone(&kept));
                tokio::spawn(async move {
                    while let Some(request) = read_request(&mut socket).await {
                        kept.lock().push(request.clone());
                        let mut reply = handler(&request);
                        if let Reply::After(later) = reply {
                            reply = later.await;
                        }
                        let (status, headers, body) = match reply {
                            Reply::Json(status, body) => (status, Vec::new(), body.to_string()),
                            Reply::Raw(status, body) => (status, Vec::new(), body),
                            Reply::WithHeaders(status, headers, body) => (status, headers, body),
                            Reply::Verbatim(response) => {
                                if socket.write_all(response.as_bytes()).await.is_ok() {
                                    hold(&mut socket).await;
                                }
                                return;
                            }
                            Reply::Endless(status) => {
                                endless(&mut socket, status).await;
                                return;
                            }
                            Reply::Hang | Reply::After(_) => {
                                hold(&mut socket).await;
                                return;
                            }
                        };
                        let headers: String = headers
                            .iter()
                            .map(|(name, value)| format!("{name}: {value}\r\n"))
                            .collect();
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HttpService { addr, requests }
    }

    /// The URL of `path` on this service.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().len()
    }

    /// The last request.
    pub fn last(&self) -> Received {
        self.requests.lock().last().cloned().expect("a request")
    }
}

/// Holds the connection until the caller closes it.
async fn hold(socket: &mut tokio::net::TcpStream) {
    let mut sink = [0u8; 64];
    while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// A chunked answer that goes on until the caller stops reading and closes the connection.
async fn endless(socket: &mut tokio::net::TcpStream, status: u16) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
}

/// `value` (an object) with a string field `field` making its JSON text `size` bytes long.
pub fn padded(mut value: serde_json::Value, field: &str, size: usize) -> serde_json::Value {
    value[field] = serde_json::Value::String(String::new());
    let bare = value.to_string().len();
    assert!(size >= bare, "{size} is below the {bare} bytes of {value}");
    value[field] = serde_json::Value::String("x".repeat(size - bare));
    assert_eq!(value.to_string().len(), size);
    value
}

/// Reads one request (headers, then a Content-Length body); `None` at end of stream.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
