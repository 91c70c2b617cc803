//! MQTT over WebSocket (RFC 6455), server side, without I/O: the HTTP upgrade with the `mqtt`
//! subprotocol, then frames in both directions.
//!
//! MQTT treats the WebSocket as a byte stream: the payloads of binary frames are concatenated
//! into MQTT bytes whatever the frame boundaries, and everything the broker sends goes out as
//! binary frames. Pings are answered, a close is answered and ends the connection, and
//! anything else (text frames, unmasked client frames, reserved bits, oversized frames) closes
//! it with the matching status code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, BufMut, BytesMut};
use sha1::{Digest, Sha1};

/// Largest HTTP upgrade request accepted.
const MAX_HANDSHAKE: usize = 8 * 1024;

/// The GUID of RFC 6455 section 1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a WebSocket connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebSocketError {
    /// The upgrade request was not acceptable (an HTTP error response was queued).
    BadHandshake(String),
    /// A frame broke the protocol (a close frame with this status was queued).
    Protocol(u16, &'static str),
    /// The client closed the WebSocket (the close was answered).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    Closing,
}

/// The WebSocket layer of one connection.
#[derive(Debug)]
pub struct WebSocket {
    phase: Phase,
    path: Option<String>,
    allowed_origins: Option<Vec<String>>,
    max_frame: usize,
    /// Bytes received and not yet decoded (a partial request or frame).
    pub inbound: BytesMut,
    /// Bytes to send below this layer: the handshake response, frames, pongs, a close.
    pub outbound: BytesMut,
}

impl WebSocket {
    /// A new connection. `path`: the request path required (any when `None`);
    /// `max_frame`: the largest frame payload accepted.
    pub fn new(path: Option<String>, max_frame: usize) -> WebSocket {
        WebSocket {
            phase: Phase::Handshake,
            path,
            allowed_origins: None,
            max_frame,
            inbound: BytesMut::new(),
            outbound: BytesMut::new(),
        }
    }

    /// Only pages from these origins may open the WebSocket (a request with no `Origin` is
    /// not from a page, and is served).
    pub fn with_allowed_origins(mut self, origins: Option<Vec<String>>) -> WebSocket {
        self.allowed_origins = origins;
        self
    }

    /// Whether the upgrade is done and MQTT bytes may be sent.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Decodes what `inbound` holds: answers the handshake, appends MQTT bytes to `mqtt`,
    /// answers control frames.
    pub fn receive(&mut self, mqtt: &mut BytesMut) -> Result<(), WebSocketError> {
        loop {
            match self.phase {
                Phase::Handshake => {
                    let Some(end) = find_header_end(&self.inbound) else {
                        if self.inbound.len() > MAX_HANDSHAKE {
                            return Err(self.reject(
                                431,
                                "Request Header Fields Too Large",
                                "upgrade request too large",
                            ));
                        }
                        return Ok(());
                    };
                    let request = self.inbound.split_to(end);
                    self.accept(&request)?;
                    self.phase = Phase::Open;
                }
                Phase::Open => {
                    if !self.decode_frame(mqtt)? {
                        return Ok(());
                    }
                }
                Phase::Closing => {
                    self.inbound.clear();
                    return Err(WebSocketError::Closed);
                }
            }
        }
    }

    fn reject(&mut self, status: u16, reason: &str, detail: &str) -> WebSocketError {
        self.outbound.put_slice(
            format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        self.phase = Phase::Closing;
        WebSocketError::BadHandshake(detail.to_owned())
    }

    fn accept(&mut self, request: &[u8]) -> Result<(), WebSocketError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(request) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(self.reject(400, "Bad Request", "malformed HTTP request")),
        }
        if parsed.method != Some("GET") {
            return Err(self.reject(405, "Method Not Allowed", "not a GET"));
        }
        if let (Some(required), Some(path)) = (&self.path, parsed.path) {
            let path = path.split('?').next().unwrap_or(path);
            if path != required {
                let detail = format!("path {path} is not {required}");
                return Err(self.reject(404, "Not Found", &detail));
            }
        }
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let has_token = |name: &str, token: &str| {
            header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
            return Err(self.reject(400, "Bad Request", "not a WebSocket upgrade"));
        }
        if let (Some(allowed), Some(origin)) = (&self.allowed_origins, header("Origin")) {
            let origin = origin.trim();
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
                return Err(self.reject(403, "Forbidden", "origin not allowed"));
            }
        }
        if header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
            self.outbound.put_slice(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n");
            self.phase = Phase::Closing;
            return Err(WebSocketError::BadHandshake(
                "unsupported WebSocket version".into(),
            ));
        }
        let Some(key) = header("Sec-WebSocket-Key").map(str::trim) else {
            return Err(self.reject(400, "Bad Request", "no Sec-WebSocket-Key"));
        };
        // The MQTT subprotocol: `mqtt`, or `mqttv3.1` from old 3.1 clients. A client that
        // offers protocols but neither of these is refused; one that offers none is served.
        let protocol = match header("Sec-WebSocket-Protocol") {
            None => None,
            Some(offered) => match offered
                .split(',')
                .map(str::trim)
                .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"))
            {
                Some(p) => Some(p.to_owned()),
                None => {
                    return Err(self.reject(400, "Bad Request", "subprotocol mqtt not offered"))
                }
            },
        };
        let accept = STANDARD.encode(Sha1::digest(format!("{key}{ACCEPT_GUID}").as_bytes()));
        self.outbound.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        self.outbound.put_slice(accept.as_bytes());
        if let Some(p) = protocol {
            self.outbound.put_slice(b"\r\nSec-WebSocket-Protocol: ");
            self.outbound.put_slice(p.as_bytes());
        }
        self.outbound.put_slice(b"\r\n\r\n");
        Ok(())
    }

    /// Decodes one frame if `inbound` holds a whole one. Returns whether it did.
    fn decode_frame(&mut self, mqtt: &mut BytesMut) -> Result<bool, WebSocketError> {
        let b = &self.inbound;
        if b.len() < 2 {
            return Ok(false);
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0f);
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() < 4 => return Ok(false),
            126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() < 10 => return Ok(false),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
                10,
            ),
            n => (u64::from(n), 2),
        };
        if rsv != 0 {
            return Err(self.fail(1002, "reserved bits set"));
        }
        if !masked {
            return Err(self.fail(1002, "client frames must be masked"));
        }
        let is_control = opcode & 0x08 != 0;
        if is_control && (len > 125 || !fin) {
            return Err(self.fail(1002, "bad control frame"));
        }
        if len > self.max_frame as u64 {
            return Err(self.fail(1009, "frame too large"));
        }
        let len = len as usize;
        if b.len() < at + 4 + len {
            return Ok(false);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        at += 4;
        self.inbound.advance(at);
        let mut payload = self.inbound.split_to(len);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        match opcode {
            // Binary and continuation frames carry MQTT bytes (MQTT ignores frame boundaries).
            0x0 | 0x2 => mqtt.put_slice(&payload),
            0x1 => return Err(self.fail(1003, "MQTT needs binary frames")),
            0x8 => {
                // Answer with the same status, then the connection ends.
                let status = if payload.len() >= 2 {
                    &payload[..2]
                } else {
                    &[0x03, 0xe8][..]
                };
                let status = u16::from_be_bytes([status[0], status[1]]);
                self.control(0x8, &status.to_be_bytes());
                self.phase = Phase::Closing;
                return Err(WebSocketError::Closed);
            }
            0x9 => self.control(0xA, &payload),
            0xA => {}
            _ => return Err(self.fail(1002, "unknown opcode")),
        }
        Ok(true)
    }

    fn control(&mut self, opcode: u8, payload: &[u8]) {
        self.outbound.put_u8(0x80 | opcode);
        self.outbound.put_u8(payload.len() as u8);
        self.outbound.put_slice(payload);
    }

    fn fail(&mut self, status: u16, why: &'static str) -> WebSocketError {
        self.control(0x8, &status.to_be_bytes());
        self.phase = Phase::Closing;
        WebSocketError::Protocol(status, why)
    }

    /// Frames MQTT bytes from `out` as one binary frame in `outbound` (all of them).
    pub fn send(&mut self, out: &mut BytesMut) {
        if out.is_empty() || self.phase != Phase::Open {
            return;
        }
        let len = out.len();
        self.outbound.reserve(len + 10);
        self.outbound.put_u8(0x82);
        if len < 126 {
            self.outbound.put_u8(len as u8);
        } else if len <= usize::from(u16::MAX) {
            self.outbound.put_u8(126);
            self.outbound.put_u16(len as u16);
        } else {
            self.outbound.put_u8(127);
            self.outbound.put_u64(len as u64);
        }
        self.outbound.put_slice(out);
        out.clear();
    }

    /// Queues a normal close (1000) if the WebSocket is open.
    pub fn close(&mut self) {
        if self.phase == Phase::Open {
            self.control(0x8, &1000u16.to_be_bytes());
            self.phase = Phase::Closing;
        }
    }
}

fn find_header_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

    fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x80 | opcode];
        assert!(payload.len() < 126);
        f.push(0x80 | payload.len() as u8);
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn open() -> WebSocket {
        let mut ws = WebSocket::new(Some("/mqtt".into()), 1 << 20);
        ws.inbound.put_slice(UPGRADE.as_bytes());
        ws.receive(&mut BytesMut::new()).unwrap();
        ws.outbound.clear();
        ws
    }

    #[test]
    fn upgrade_answers_with_the_rfc_accept_key_and_the_mqtt_protocol() {
        let mut ws = WebSocket::new(Some("/mqtt".into()), 1 << 20);
        ws.inbound.put_slice(UPGRADE.as_bytes());
        ws.receive(&mut BytesMut::new()).unwrap();
        let response = String::from_utf8(ws.outbound.to_vec()).unwrap();
        assert!(response.starts_with("HTTP/1.1 101"));
        // The example of RFC 6455 section 1.3.
        assert!(
            response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{response}"
        );
        assert!(response.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
        assert!(ws.is_open());
    }

    #[test]
    fn bad_upgrades_get_http_errors() {
        for (request, status) in [
            (UPGRADE.replace("/mqtt", "/other"), "404"),
            (UPGRADE.replace("Protocol: mqtt", "Protocol: chat"), "400"),
            (UPGRADE.replace("Version: 13", "Version: 8"), "426"),
            (UPGRADE.replace("GET", "POST"), "405"),
        ] {
            let mut ws = WebSocket::new(Some("/mqtt".into()), 1 << 20);
            ws.inbound.put_slice(request.as_bytes());
            assert!(matches!(
                ws.receive(&mut BytesMut::new()),
                Err(WebSocketError::BadHandshake(_))
            ));
            assert!(
                String::from_utf8_lossy(&ws.outbound).starts_with(&format!("HTTP/1.1 {status}"))
            );
        }
    }

    #[test]
    fn only_allowed_origins_may_upgrade_and_requests_without_one_are_served() {
        let allowed = Some(vec!["https://console.example.com".to_owned()]);
        for (request, status) in [
            (
                UPGRADE.replace("Host: x\r\n", "Host: x\r\nOrigin: https://evil.example\r\n"),
                "403",
            ),
            (
                UPGRADE.replace(
                    "Host: x\r\n",
                    "Host: x\r\nOrigin: HTTPS://Console.Example.com\r\n",
                ),
                "101",
            ),
            (UPGRADE.to_owned(), "101"),
        ] {
            let mut ws =
                WebSocket::new(Some("/mqtt".into()), 1 << 20).with_allowed_origins(allowed.clone());
            ws.inbound.put_slice(request.as_bytes());
            let _ = ws.receive(&mut BytesMut::new());
            assert!(
                String::from_utf8_lossy(&ws.outbound).starts_with(&format!("HTTP/1.1 {status}")),
                "{request}"
            );
        }
    }

    #[test]
    fn binary_frames_in_pieces_become_one_byte_stream_and_pings_are_answered() {
        let mut ws = open();
        let mut mqtt = BytesMut::new();
        let mut bytes = masked_frame(0x2, &[0xc0]);
        bytes.extend(masked_frame(0x9, b"hi"));
        bytes.extend(masked_frame(0x2, &[0x00]));
        for chunk in bytes.chunks(3) {
            ws.inbound.put_slice(chunk);
            ws.receive(&mut mqtt).unwrap();
        }
        assert_eq!(&mqtt[..], &[0xc0, 0x00]);
        assert_eq!(&ws.outbound[..], &[0x8a, 2, b'h', b'i']);
    }

    #[test]
    fn protocol_violations_close_with_the_right_status() {
        for (frame, status) in [
            (masked_frame(0x1, b"text"), 1003u16),
            (
                {
                    let mut f = masked_frame(0x2, b"x");
                    f[1] &= 0x7f;
                    f.truncate(2);
                    f.push(b'x');
                    f
                },
                1002,
            ),
        ] {
            let mut ws = open();
            ws.inbound.put_slice(&frame);
            assert!(
                matches!(ws.receive(&mut BytesMut::new()), Err(WebSocketError::Protocol(s, _)) if s == status)
            );
            assert_eq!(
                &ws.outbound[..],
                &[&[0x88, 2][..], &status.to_be_bytes()].concat()[..]
            );
        }
    }

    #[test]
    fn outgoing_bytes_are_one_binary_frame() {
        let mut ws = open();
        let mut out = BytesMut::from(&[0x20, 0x02, 0x00, 0x00][..]);
        ws.send(&mut out);
        assert!(out.is_empty());
        assert_eq!(&ws.outbound[..], &[0x82, 4, 0x20, 0x02, 0x00, 0x00]);
    }
}
