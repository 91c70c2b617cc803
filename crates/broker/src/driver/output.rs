//! The connection's output side: how much may wait, writing what the socket takes, the last
//! flush before closing, and the linger that keeps a closing socket from answering with a
//! reset.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tollgate_mqtt::ReasonCode;

use crate::clock::on_tokio;
use crate::connection::{Close, Connection};
use crate::transport::Transport;

/// How long a closing connection waits for the client to close its side.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// How much a closing connection reads and discards at most while it lingers.
const LINGER_MAX_BYTES: usize = 256 * 1024;

/// The output waiting (in bytes, every layer) at which the connection stops reading.
pub(super) fn max_output(conn: &Connection) -> usize {
    conn.broker()
        .config
        .limits
        .max_connection_output_bytes
        .max(1)
}

/// How long output may wait with the client taking none of it before the connection closes.
pub(super) fn write_timeout(conn: &Connection) -> Duration {
    conn.broker()
        .config
        .limits
        .write_timeout
        .max(Duration::from_secs(1))
}

/// Bytes waiting to be written in every layer of the connection.
pub(super) fn pending_output(transport: &Transport, conn: &Connection) -> usize {
    conn.out.len() + transport.pending_output()
}

/// Closes the socket gracefully: FIN after the last packet, then reads and discards what the
/// client still sends (PUBRELs in flight, say) until it closes too, for a bounded time and
/// amount. Closing with unread input would make the kernel answer with a reset, which can
/// destroy the DISCONNECT just sent before the client reads it.
pub(super) async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = crate::clock::now() + LINGER_TIMEOUT;
    let mut discarded = 0usize;
    let mut sink = [0u8; 1024];
    while discarded < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(on_tokio(deadline), stream.readable()).await {
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

/// Writes as much of the pending output as the socket takes without blocking; notes when
/// the client took any (`output_moved`).
pub(super) fn write_some(
    transport: &mut Transport,
    conn: &mut Connection,
    output_moved: &mut Instant,
) -> Result<(), Close> {
    match transport.write(&mut conn.out) {
        Ok(n) => {
            if n > 0 {
                *output_moved = crate::clock::now();
            }
            conn.counts.bytes_sent += n as u64
        }
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

/// Writes everything pending, every layer included, waiting for the socket as needed.
pub(super) async fn flush_all(transport: &mut Transport, conn: &mut Connection) -> io::Result<()> {
    while !conn.out.is_empty() || transport.wants_write() {
        transport.stream().writable().await?;
        if write_some(transport, conn, &mut crate::clock::now()).is_err() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
    }
    Ok(())
}
