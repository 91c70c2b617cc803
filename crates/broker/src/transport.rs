//! What lies between a TCP socket and MQTT bytes: nothing (plain MQTT), a TLS session, a
//! WebSocket, or both (secure WebSocket).
//!
//! Everything here is non-blocking: the driver waits for the socket's readiness, then asks the
//! transport to move what it can. TLS uses rustls's own state machine (`ServerConnection`),
//! fed through `try_read`/`try_write`, so that a TLS connection needs no extra task or buffer
//! copy beyond what rustls keeps itself.

use std::io::{self, Read, Write};

use bytes::{Buf, BytesMut};
use rustls::ServerConnection;
use tokio::net::TcpStream;
use tollgate_auth::CertificateInfo;

use crate::tls::certificate_info;
use crate::websocket::{WebSocket, WebSocketError};

/// Most bytes asked of the socket per plain read.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes asked of the socket by a connection's first reads: a CONNECT is small, and a large
/// buffer freed right after it leaves holes in the heap that idle connections then pay for.
const FIRST_READ: usize = 512;

/// The result of one read attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// This many bytes came from the socket (MQTT bytes, if any, were appended).
    Data(usize),
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed the connection.
    Closed,
}

/// A socket with its optional TLS session and WebSocket layer.
pub struct Transport {
    stream: TcpStream,
    tls: Option<Box<ServerConnection>>,
    ws: Option<Box<WebSocket>>,
    certificate_checked: bool,
    /// Boxed: most connections never have one, and every connection's task carries this.
    certificate: Option<Box<CertificateInfo>>,
    /// The TLS exporter value of RFC 9431 (`ace`), once the handshake is done, until taken.
    exporter: Option<Box<[u8; 32]>>,
    /// How much to ask of the socket next: grows while reads fill it, up to `READ_CHUNK`.
    read_size: usize,
}

/// What a TLS session holds in buffers and state, roughly (rustls does not say).
const TLS_SESSION_BYTES: usize = 16 * 1024;

/// Above this many framed bytes waiting, WebSocket framing pauses (backpressure reaches the
/// MQTT layer's buffer).
const WS_SEND_HIGH_WATER: usize = 64 * 1024;

/// `io::Read`/`io::Write` over a tokio socket's non-blocking calls, for rustls.
struct SocketIo<'a>(&'a TcpStream);

impl Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport {
    /// A transport over `stream`: TLS when a session is given, WebSocket when a layer is.
    pub fn new(
        stream: TcpStream,
        tls: Option<ServerConnection>,
        ws: Option<WebSocket>,
    ) -> Transport {
        Transport {
            stream,
            certificate_checked: tls.is_none(),
            exporter: None,
            tls: tls.map(Box::new),
            ws: ws.map(Box::new),
            certificate: None,
            read_size: FIRST_READ,
        }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether bytes wait to be written below the MQTT layer (TLS records, a handshake,
    /// WebSocket frames).
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
            || self.ws.as_ref().is_some_and(|w| !w.outbound.is_empty())
    }

    /// Bytes waiting to be written below the MQTT layer: WebSocket frames (pongs and close
    /// frames included), and TLS records (rustls does not say how many: while it has any,
    /// they count as its whole send buffer).
    pub fn pending_output(&self) -> usize {
        let ws = self.ws.as_ref().map_or(0, |w| w.outbound.len());
        let tls = match &self.tls {
            Some(tls) if tls.wants_write() => crate::tls::TLS_SEND_BUFFER,
            _ => 0,
        };
        ws + tls
    }

    /// What the layers below MQTT hold in memory: WebSocket buffers, and an estimate of a TLS
    /// session's own buffers.
    pub fn held_bytes(&self) -> usize {
        let ws = self
            .ws
            .as_ref()
            .map_or(0, |w| w.inbound.capacity() + w.outbound.capacity());
        let tls = if self.tls.is_some() {
            TLS_SESSION_BYTES
        } else {
            0
        };
        ws + tls
    }

    /// The verified client certificate, once, when the TLS handshake has completed with one.
    pub fn take_certificate(&mut self) -> Option<CertificateInfo> {
        self.certificate.take().map(|c| *c)
    }

    /// The TLS session's exporter value for RFC 9431 (label
    /// `EXPORTER-ACE-MQTT-Sign-Challenge`, empty context, 32 bytes), once, when the handshake
    /// has completed.
    pub fn take_exporter(&mut self) -> Option<[u8; 32]> {
        self.exporter.take().map(|e| *e)
    }

    /// Reads from the socket once and appends the MQTT bytes it yields to `buf`.
    pub fn read(&mut self, buf: &mut BytesMut) -> io::Result<ReadStatus> {
        let Transport {
            stream,
            tls,
            ws,
            certificate_checked,
            certificate,
            exporter,
            read_size,
        } = self;
        let target = match ws.as_mut() {
            Some(ws) => &mut ws.inbound,
            None => &mut *buf,
        };
        let status = read_below(stream, tls, target, *read_size)?;
        if let ReadStatus::Data(n) = status {
            // A read that filled what was asked means more is coming: ask for more next time.
            if n >= *read_size {
                *read_size = (*read_size * 4).min(READ_CHUNK);
            }
        }
        if let Some(tls) = tls.as_ref() {
            if !*certificate_checked && !tls.is_handshaking() {
                *certificate_checked = true;
                *certificate = tls
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|der| Box::new(certificate_info(der)));
                *exporter = tls
                    .export_keying_material(
                        [0u8; 32],
                        tollgate_auth::ace::EXPORTER_LABEL,
                        Some(&[]),
                    )
                    .ok()
                    .map(Box::new);
            }
        }
        if let Some(ws) = ws.as_mut() {
            match ws.receive(buf) {
                Ok(()) => {}
                Err(WebSocketError::Closed) => return Ok(ReadStatus::Closed),
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("websocket: {e:?}"),
                    ))
                }
            }
        }
        Ok(status)
    }

    /// Moves bytes from `out` towards the socket without blocking. Returns the bytes the
    /// socket took.
    pub fn write(&mut self, out: &mut BytesMut) -> io::Result<usize> {
        let Transport {
            stream, tls, ws, ..
        } = self;
        match ws.as_mut() {
            None => write_below(stream, tls, out),
            Some(ws) => {
                if ws.outbound.len() < WS_SEND_HIGH_WATER {
                    ws.send(out);
                }
                write_below(stream, tls, &mut ws.outbound)
            }
        }
    }

    /// Starts closing: a WebSocket close frame, then a TLS close_notify, are queued (the next
    /// `write` sends them).
    pub fn start_close(&mut self) {
        let Transport {
            stream, tls, ws, ..
        } = self;
        if let Some(ws) = ws.as_mut() {
            ws.close();
            // Hand the close frame to TLS before its close_notify: nothing is sent after that.
            let _ = write_below(stream, tls, &mut ws.outbound);
        }
        if let Some(tls) = tls.as_mut() {
            tls.send_close_notify();
        }
    }

    /// Takes the socket for the final, lingering close.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// Reads once from the socket (through TLS if any) into `target`.
fn read_below(
    stream: &TcpStream,
    tls: &mut Option<Box<ServerConnection>>,
    target: &mut BytesMut,
    size: usize,
) -> io::Result<ReadStatus> {
    let Some(tls) = tls.as_mut() else {
        if target.capacity() - target.len() < size / 4 {
            target.reserve(size);
        }
        return match stream.try_read_buf(target) {
            Ok(0) => Ok(ReadStatus::Closed),
            Ok(n) => Ok(ReadStatus::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadStatus::WouldBlock),
            Err(e) => Err(e),
        };
    };
    let n = match tls.read_tls(&mut SocketIo(stream)) {
        Ok(0) => return Ok(ReadStatus::Closed),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadStatus::WouldBlock),
        Err(e) => return Err(e),
    };
    let state = match tls.process_new_packets() {
        Ok(state) => state,
        Err(e) => {
            // rustls queued an alert: try to send it before the connection closes.
            let _ = tls.write_tls(&mut SocketIo(stream));
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    };
    let plaintext = state.plaintext_bytes_to_read();
    let peer_closed = state.peer_has_closed();
    if plaintext > 0 {
        let start = target.len();
        target.resize(start + plaintext, 0);
        tls.reader().read_exact(&mut target[start..])?;
    }
    if peer_closed && plaintext == 0 {
        return Ok(ReadStatus::Closed);
    }
    Ok(ReadStatus::Data(n))
}

/// Moves bytes from `out` to the socket (through TLS if any) without blocking.
fn write_below(
    stream: &TcpStream,
    tls: &mut Option<Box<ServerConnection>>,
    out: &mut BytesMut,
) -> io::Result<usize> {
    let Some(tls) = tls.as_mut() else {
        let mut written = 0;
        while !out.is_empty() {
            match stream.try_write(out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    out.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        return Ok(written);
    };
    if !out.is_empty() && !tls.is_handshaking() {
        let taken = tls.writer().write(out)?;
        out.advance(taken);
    }
    let mut written = 0;
    while tls.wants_write() {
        match tls.write_tls(&mut SocketIo(stream)) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        // rustls takes more plaintext once records have left.
        if !out.is_empty() && !tls.is_handshaking() {
            let taken = tls.writer().write(out)?;
            out.advance(taken);
        }
    }
    Ok(written)
}
