//! The task that runs one connection: it owns the socket (through its [`Transport`]: plain or
//! TLS) and the clock, and feeds the protocol state machine in `connection.rs`.
//!
//! Reads wait for readiness before taking a buffer, so an idle connection holds no read
//! buffer; everything the state machine wrote since the last write goes out in one `write`
//! call, however many packets it holds.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tollgate_auth::authentication::{ChainDecision, ConnectRequest, DenyReason};
use tollgate_mqtt::ReasonCode;

use crate::broker::Broker;
use crate::connection::{Close, Connection, OUT_HIGH_WATER};
use crate::listener::Listener;
use crate::transport::{ReadStatus, Transport};
use crate::websocket::WebSocket;

/// Above this many bytes not yet written, the connection stops reading: a client that sends
/// without reading its acknowledgements is held back by TCP instead of growing our buffer.
const OUT_READ_PAUSE: usize = 4 * OUT_HIGH_WATER;

/// A read this much smaller than a chunk means the socket is drained.
const READ_CHUNK: usize = 16 * 1024;

/// How long the last bytes (a DISCONNECT, a refusing CONNACK) may take to leave.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a closing connection waits for the client to close its side.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// How much a closing connection reads and discards at most while it lingers.
const LINGER_MAX_BYTES: usize = 256 * 1024;

/// Runs a connection until it closes.
pub async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    listener: Arc<Listener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match &listener.tls {
        None => None,
        Some(tls) => match tls.accept() {
            Ok(session) => Some(session),
            Err(e) => {
                tracing::error!(listener = %listener.name, "cannot start a TLS session: {e}");
                return;
            }
        },
    };
    let ws = listener.config.websocket.as_ref().map(|w| {
        let max_frame = (broker.config.limits.max_packet_size as usize).max(64 * 1024) + 1024;
        WebSocket::new(w.path.clone(), max_frame)
    });
    let mut transport = Transport::new(stream, tls, ws);
    let mut conn = Connection::new(
        Arc::clone(&broker),
        Arc::clone(&listener),
        peer,
        None,
        Instant::now(),
    );
    let mut read_buf = BytesMut::new();
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let timer = tokio::time::sleep_until(conn.deadline().unwrap_or(far_future));
    tokio::pin!(timer);

    let close = loop {
        let session = conn.session().cloned();
        let wants_deliveries = session.is_some() && conn.wants_deliveries();
        let wants_write = !conn.out.is_empty() || transport.wants_write();
        // One readiness future for both directions (two would double what every idle
        // connection's task holds).
        let wants_read = conn.out.len() < OUT_READ_PAUSE;
        let interest = match (wants_read, wants_write) {
            (true, true) => Interest::READABLE.add(Interest::WRITABLE),
            (false, _) => Interest::WRITABLE,
            (true, false) => Interest::READABLE,
        };
        let step = tokio::select! {
            biased;
            _ = shutdown.changed() => Err(conn.shutdown()),
            ready = transport.stream().ready(interest) => match ready {
                Ok(ready) => {
                    let mut step = Ok(());
                    if ready.is_writable() && wants_write {
                        step = write_some(&mut transport, &mut conn).and_then(|()| conn.pull_deliveries(Instant::now()));
                    }
                    if ready.is_readable() || ready.is_read_closed() {
                        step = step.and_then(|()| read_and_handle(&mut transport, &mut conn, &mut read_buf));
                    }
                    step
                }
                Err(_) => Err(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR)),
            },
            _ = async { session.as_ref().expect("guarded").wake.notified().await }, if wants_deliveries => {
                conn.pull_deliveries(Instant::now())
            }
            _ = &mut timer => {
                let result = conn.on_timer(Instant::now());
                timer.as_mut().reset(conn.deadline().unwrap_or(far_future));
                result
            }
        };
        // Keep the timer on the current deadline (a packet arrived, or CONNECT was accepted).
        if let Some(deadline) = conn.deadline() {
            if deadline != timer.deadline() && deadline > Instant::now() {
                timer.as_mut().reset(deadline);
            }
        }
        // CONNECT was received: run the authentication chain (the client waits for CONNACK;
        // anything it sent meanwhile stays in the buffer until the chain has decided).
        let step = match (step, conn.take_auth_request()) {
            (Ok(()), Some(request)) => {
                // Boxed: the authentication future is large and lives only during CONNECT; kept
                // inline it would make every idle connection's task that much bigger.
                let decision = Box::pin(authenticate(
                    &listener,
                    &request,
                    broker.config.auth_timeout,
                ))
                .await;
                conn.finish_authentication(decision, Instant::now())
                    .and_then(|()| process_buffered(&mut conn, &mut read_buf, Instant::now()))
            }
            (step, _) => step,
        };
        if let Err(close) = step {
            break close;
        }
        // Write what is ready now; the writable branch finishes what the socket did not take.
        if !conn.out.is_empty() || transport.wants_write() {
            if let Err(close) = write_some(&mut transport, &mut conn) {
                break close;
            }
        }
        conn.counts.flush(&broker.stats);
    };

    // Send what is left (a DISCONNECT with its reason, a CONNACK refusal, a TLS close_notify),
    // within a bound.
    // (Boxed, like authentication: closing happens once, its futures need not sit in every
    // idle connection's task.)
    let _ = Box::pin(tokio::time::timeout(FINAL_FLUSH_TIMEOUT, async {
        flush_all(&mut transport, &mut conn).await?;
        // The close_notify goes after the last MQTT bytes: rustls sends nothing after it.
        transport.start_close();
        flush_all(&mut transport, &mut conn).await
    }))
    .await;
    conn.closed(close);
    if close.by_client {
        // The client said DISCONNECT: it sends nothing more, so the socket can simply close.
        drop(transport);
    } else {
        Box::pin(linger(transport.into_stream())).await;
    }
}

/// Closes the socket gracefully: FIN after the last packet, then reads and discards what the
/// client still sends (PUBRELs in flight, say) until it closes too, for a bounded time and
/// amount. Closing with unread input would make the kernel answer with a reset, which can
/// destroy the DISCONNECT just sent before the client reads it.
async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut discarded = 0usize;
    let mut sink = [0u8; 1024];
    while discarded < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            },
            _ => return,
        }
    }
}

/// Reads what the socket has and hands every whole packet to the state machine.
fn read_and_handle(
    transport: &mut Transport,
    conn: &mut Connection,
    buf: &mut BytesMut,
) -> Result<(), Close> {
    loop {
        let status = transport.read(buf).map_err(|e| {
            tracing::debug!(error = %e, "read failed");
            Close::abnormal(ReasonCode::UNSPECIFIED_ERROR)
        })?;
        let n = match status {
            ReadStatus::Data(n) => n,
            ReadStatus::WouldBlock => {
                // A wake-up with nothing to read (readiness left set after the last read) must
                // not leave the buffer it reserved on an idle connection.
                if buf.is_empty() && buf.capacity() > 0 {
                    *buf = BytesMut::new();
                }
                return Ok(());
            }
            ReadStatus::Closed => return Err(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR)),
        };
        conn.counts.bytes_received += n as u64;
        if let Some(certificate) = transport.take_certificate() {
            conn.set_certificate(certificate);
        }
        let now = Instant::now();
        // Whatever was queued for this client before these bytes arrived goes out before the
        // answers to them: a PINGREQ round trip is a delivery barrier.
        conn.pull_deliveries(now)?;
        process_buffered(conn, buf, now)?;
        if conn.is_authenticating() || n < READ_CHUNK / 4 {
            return Ok(());
        }
    }
}

/// Hands every whole packet in `buf` to the state machine; stops early while CONNECT waits
/// for authentication.
fn process_buffered(conn: &mut Connection, buf: &mut BytesMut, now: Instant) -> Result<(), Close> {
    while !conn.is_authenticating() {
        match conn.decoder().decode(buf) {
            Ok(Some(packet)) => conn.handle(packet, now)?,
            Ok(None) => break,
            Err(error) => return Err(conn.decode_failed(&error)),
        }
    }
    if buf.is_empty() && buf.capacity() > 0 {
        // Give the memory back: an idle connection should hold no read buffer.
        *buf = BytesMut::new();
    }
    Ok(())
}

/// Runs the listener's chain, within the configured time.
async fn authenticate(
    listener: &Listener,
    request: &ConnectRequest,
    timeout_secs: u64,
) -> ChainDecision {
    let limit = Duration::from_secs(timeout_secs.max(1));
    match tokio::time::timeout(limit, listener.chain.authenticate(request)).await {
        Ok(decision) => decision,
        Err(_) => {
            tracing::warn!(listener = %listener.name, client_id = %request.client_id, "authentication timed out");
            ChainDecision::Refused {
                reason: DenyReason::BackendUnavailable,
                by: None,
                detail: "authentication timed out".into(),
            }
        }
    }
}

/// Writes as much of the pending output as the socket takes without blocking.
fn write_some(transport: &mut Transport, conn: &mut Connection) -> Result<(), Close> {
    match transport.write(&mut conn.out) {
        Ok(n) => conn.counts.bytes_sent += n as u64,
        Err(e) => {
            tracing::debug!(error = %e, "write failed");
            return Err(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR));
        }
    }
    if conn.out.is_empty() && conn.out.capacity() > 0 {
        // Idle connections hold no write buffer either.
        conn.out = BytesMut::new();
    }
    Ok(())
}

async fn flush_all(transport: &mut Transport, conn: &mut Connection) -> io::Result<()> {
    while !conn.out.is_empty() || transport.wants_write() {
        transport.stream().writable().await?;
        if write_some(transport, conn).is_err() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
    }
    Ok(())
}
