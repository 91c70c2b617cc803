//! What lies between a TCP socket and MQTT bytes: nothing (plain MQTT) or a TLS session.
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

/// Bytes asked of the socket per plain read.
const READ_CHUNK: usize = 16 * 1024;

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

/// A socket with its optional TLS session.
pub struct Transport {
    stream: TcpStream,
    tls: Option<Box<ServerConnection>>,
    certificate_checked: bool,
    certificate: Option<CertificateInfo>,
}

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
    /// Plain MQTT over TCP.
    pub fn plain(stream: TcpStream) -> Transport {
        Transport {
            stream,
            tls: None,
            certificate_checked: true,
            certificate: None,
        }
    }

    /// MQTT over TLS; the handshake happens as bytes flow.
    pub fn tls(stream: TcpStream, session: ServerConnection) -> Transport {
        Transport {
            stream,
            tls: Some(Box::new(session)),
            certificate_checked: false,
            certificate: None,
        }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether bytes wait to be written below the MQTT layer (TLS records, a handshake).
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// The verified client certificate, once, when the TLS handshake has completed with one.
    pub fn take_certificate(&mut self) -> Option<CertificateInfo> {
        self.certificate.take()
    }

    /// Reads from the socket once and appends the MQTT bytes it yields to `buf`.
    pub fn read(&mut self, buf: &mut BytesMut) -> io::Result<ReadStatus> {
        let Some(tls) = self.tls.as_mut() else {
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            return match self.stream.try_read_buf(buf) {
                Ok(0) => Ok(ReadStatus::Closed),
                Ok(n) => Ok(ReadStatus::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadStatus::WouldBlock),
                Err(e) => Err(e),
            };
        };
        let n = match tls.read_tls(&mut SocketIo(&self.stream)) {
            Ok(0) => return Ok(ReadStatus::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadStatus::WouldBlock),
            Err(e) => return Err(e),
        };
        let state = match tls.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                // rustls queued an alert: try to send it before the connection closes.
                let _ = tls.write_tls(&mut SocketIo(&self.stream));
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        };
        let plaintext = state.plaintext_bytes_to_read();
        let peer_closed = state.peer_has_closed();
        if plaintext > 0 {
            let start = buf.len();
            buf.resize(start + plaintext, 0);
            tls.reader().read_exact(&mut buf[start..])?;
        }
        if !self.certificate_checked && !tls.is_handshaking() {
            self.certificate_checked = true;
            self.certificate = tls
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| certificate_info(der));
        }
        if peer_closed && plaintext == 0 {
            return Ok(ReadStatus::Closed);
        }
        Ok(ReadStatus::Data(n))
    }

    /// Moves bytes from `out` towards the socket without blocking: all of it for plain TCP,
    /// as much as the TLS session buffers (then its records) for TLS. Returns the bytes the
    /// socket took.
    pub fn write(&mut self, out: &mut BytesMut) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            let mut written = 0;
            while !out.is_empty() {
                match self.stream.try_write(out) {
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
            match tls.write_tls(&mut SocketIo(&self.stream)) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // rustls takes more plaintext once records have left.
            if !out.is_empty() {
                let taken = tls.writer().write(out)?;
                out.advance(taken);
            }
        }
        Ok(written)
    }

    /// Starts closing: a TLS close_notify is queued (and written by the next `write`).
    pub fn start_close(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
        }
    }

    /// Takes the socket for the final, lingering close.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}
