//! The task that runs one connection: it owns the socket (through its [`Transport`]: plain or
//! TLS) and the clock, and feeds the protocol state machine in `connection/`. Its output
//! side (writes, the last flush, the linger) is `output.rs`.
//!
//! Reads wait for readiness before taking a buffer, so an idle connection holds no read
//! buffer; everything the state machine wrote since the last write goes out in one `write`
//! call, however many packets it holds.
//!
//! Output is bounded across every layer: when the bytes waiting (MQTT packets, TLS records,
//! WebSocket frames, pongs and close frames included) reach `max_connection_output_bytes`,
//! the connection stops reading, so a client that sends without reading (pings, PINGREQs,
//! QoS 1 publishes whose PUBACKs it never takes) is held back by TCP; if the client takes
//! none of it for `write_timeout`, the connection is closed. The connection's buffers are
//! charged to the broker's memory budget, and a connection receiving a large packet while
//! the budget refuses publishes is closed (5.0: DISCONNECT 0x97).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tollgate_auth::authentication::{ChainDecision, ConnectRequest, DenyReason};
use tollgate_auth::log::Escaped;
use tollgate_mqtt::ReasonCode;

use crate::broker::Broker;
use crate::clock::on_tokio;
use crate::connection::{Close, Connection, GrantResult};
use crate::listener::Listener;
use crate::memory::{Overload, Pressure};
use crate::transport::{ReadStatus, Transport};
use crate::websocket::WebSocket;

mod output;

use output::{flush_all, linger, max_output, pending_output, write_some, write_timeout};

/// What a connection costs besides its buffers (its task, socket registration, session and
/// principal), as charged to the memory budget.
const CONNECTION_OVERHEAD: usize = 2048;

/// A partial packet this large, while the memory budget refuses publishes, closes the
/// connection rather than growing its read buffer further.
const LARGE_PARTIAL_PACKET: usize = 64 * 1024;

/// A read this much smaller than a chunk means the socket is drained.
const READ_CHUNK: usize = 16 * 1024;

/// The most one wake-up reads before the connection looks at its other work (and, once its
/// scheduling budget is spent, lets other tasks run): a client that sends without pause
/// shares the worker like everyone else.
const READ_PER_WAKE: usize = 1024 * 1024;

/// How long the last bytes (a DISCONNECT, a refusing CONNACK) may take to leave.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A deadline that never comes, for a timer with nothing to time.
fn far_future() -> Instant {
    crate::clock::now() + Duration::from_secs(86400 * 365)
}

/// An authentication under way, beside the connection: the chain's decision once it comes.
type Authentication = Pin<Box<dyn Future<Output = ChainDecision> + Send>>;

/// A device grant's call to the identity provider, run beside the connection.
type GrantCall = Pin<Box<dyn Future<Output = GrantResult> + Send>>;

/// What woke a connection's task (several at once, possibly).
#[derive(Default)]
struct Wakeups {
    shutdown: bool,
    failed: bool,
    writable: bool,
    readable: bool,
    deliveries: bool,
    timer: bool,
    decided: Option<ChainDecision>,
    granted: Option<GrantResult>,
}

impl Wakeups {
    fn any(&self) -> bool {
        self.shutdown
            || self.failed
            || self.writable
            || self.readable
            || self.deliveries
            || self.timer
            || self.decided.is_some()
            || self.granted.is_some()
    }
}

/// Runs a connection until it closes; `held` (its slot in the listener's connection limits,
/// say) is dropped when the task ends.
///
/// The task's future is what every idle connection costs, so its layout is kept tight: the
/// connection's parts are made here, before the future, and spawned as this future itself
/// (no wrapper), so they live in it once; the loop that waits is a future of its own (its timer
/// and stop signal overlap with the closing steps), and everything used once
/// (authentication, the final flush, lingering) is boxed.
pub(crate) fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    listener: Arc<Listener>,
    held: impl Send + 'static,
) -> impl Future<Output = ()> + Send {
    let mut parts = open(stream, peer, &broker, &listener);
    drop((broker, listener)); // the connection holds its own references
    async move {
        // Captured, so it goes when the task does; never moved, so it needs no drop flag.
        let _held = &held;
        let Some(live) = parts.as_mut() else {
            return;
        };
        live.conn
            .broker()
            .memory
            .adjust(&mut live.charged, CONNECTION_OVERHEAD);
        let close = serve(live).await;
        live.conn.broker().memory.adjust(&mut live.charged, 0);
        live.read_buf = BytesMut::new();
        let Parts {
            transport, conn, ..
        } = live;
        // Send what is left (a DISCONNECT with its reason, a CONNACK refusal, a TLS
        // close_notify), within a bound.
        let _ = Box::pin(tokio::time::timeout(FINAL_FLUSH_TIMEOUT, async {
            flush_all(transport, conn).await?;
            // The close_notify goes after the last MQTT bytes: rustls sends nothing after it.
            transport.start_close();
            flush_all(transport, conn).await
        }))
        .await;
        conn.closed(close);
        let Some(Parts {
            transport, conn, ..
        }) = parts.take()
        else {
            return;
        };
        drop(conn);
        if close.by_client {
            // The client said DISCONNECT: it sends nothing more, so the socket can simply close.
            drop(transport);
        } else {
            Box::pin(linger(transport.into_stream())).await;
        }
    }
}

/// What a connection's task owns: made before the task's future, so they live in it once.
struct Parts {
    transport: Transport,
    conn: Connection,
    /// Input not yet handled; no allocation while the connection is idle.
    read_buf: BytesMut,
    /// What the memory budget holds for this connection now.
    charged: usize,
}

/// The transport (TLS and WebSocket layers as the listener has them) and the state machine of
/// a new connection; `None` if TLS cannot start.
fn open(
    stream: TcpStream,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    listener: &Arc<Listener>,
) -> Option<Parts> {
    let policy = listener.policy();
    let tls = match &policy.tls {
        None => None,
        Some(tls) => match tls.accept() {
            Ok(session) => Some(session),
            Err(e) => {
                tracing::error!(listener = %listener.name, "cannot start a TLS session: {e}");
                return None;
            }
        },
    };
    let ws = policy.config.websocket.as_ref().map(|w| {
        let max_frame = (broker.config.limits.max_packet_size as usize).max(64 * 1024) + 1024;
        WebSocket::new(w.path.clone(), max_frame).with_allowed_origins(w.allowed_origins.clone())
    });
    let transport = Transport::new(stream, tls, ws);
    let conn = Connection::new(
        Arc::clone(broker),
        Arc::clone(listener),
        peer,
        None,
        crate::clock::now(),
    );
    Some(Parts {
        transport,
        conn,
        read_buf: BytesMut::new(),
        charged: 0,
    })
}

/// When the connection's task must wake next: the state machine's deadline, or the write
/// timeout while output is `pending`.
fn deadline_of(conn: &Connection, output_moved: Instant, pending: bool) -> Option<Instant> {
    let stall = pending.then(|| output_moved + write_timeout(conn));
    [conn.deadline(), stall].into_iter().flatten().min()
}

/// The connection's buffers and per-connection state, as charged to the memory budget.
fn held_bytes(transport: &Transport, conn: &Connection, read_buf: &BytesMut) -> usize {
    CONNECTION_OVERHEAD
        + read_buf.capacity()
        + conn.out.capacity()
        + conn.held_bytes()
        + transport.held_bytes()
}

/// Waits for what concerns the connection (readiness, deliveries, its deadline, shutdown)
/// and hands it to the state machine, until the connection must close.
async fn serve(live: &mut Parts) -> Close {
    // When the client last took output, or the output was last empty.
    let mut output_moved = crate::clock::now();
    let timer = tokio::time::sleep_until(on_tokio(live.conn.deadline().unwrap_or_else(far_future)));
    tokio::pin!(timer);
    // The authentication being decided, if any: polled with everything else, so a connected
    // client whose re-check or re-authentication takes seconds goes on being served.
    let mut authentication: Option<Authentication> = None;
    // A device grant's call to the provider under way, if any.
    let mut grant_call: Option<GrantCall> = None;

    loop {
        let session = live.conn.wake();
        let wants_deliveries = session.is_some() && live.conn.wants_deliveries();
        let wants_write = !live.conn.out.is_empty() || live.transport.wants_write();
        // Input that must wait for a decision stays in the socket, not in the read buffer.
        let wants_read = pending_output(&live.transport, &live.conn) < max_output(&live.conn)
            && !live.conn.input_waits(&live.read_buf);
        // The stop signal and what borrows the connection are dropped before it is handled.
        let woken = {
            // Readiness and deliveries are polled in place (see `Wakeups`), with no future of their
            // own: the stop signal is the only waiter node an idle connection's task carries. It
            // is taken before the flag is looked at, so a stop in between is not missed.
            let stop = live.conn.broker().stop_signal();
            let mut stop_signal = std::pin::pin!(stop.notified());
            let (mut signal, mut deadline, stream) = (
                stop_signal.as_mut(),
                timer.as_mut(),
                live.transport.stream(),
            );
            let mut deciding = authentication.as_mut();
            let mut calling = grant_call.as_mut();
            // A `move` closure: it holds these references and copies of the flags, nothing more.
            std::future::poll_fn(move |cx| {
                let mut woken = Wakeups::default();
                if stop.is_stopped() || signal.as_mut().poll(cx).is_ready() {
                    woken.shutdown = true;
                    return Poll::Ready(woken);
                }
                if wants_write {
                    match stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => woken.writable = true,
                        Poll::Ready(Err(_)) => woken.failed = true,
                        Poll::Pending => {}
                    }
                }
                if wants_read {
                    match stream.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => woken.readable = true,
                        Poll::Ready(Err(_)) => woken.failed = true,
                        Poll::Pending => {}
                    }
                }
                if let (true, Some(wake)) = (wants_deliveries, session) {
                    woken.deliveries = wake.poll_notified(cx).is_ready();
                }
                woken.timer = deadline.as_mut().poll(cx).is_ready();
                if let Some(Poll::Ready(decision)) = deciding.as_mut().map(|a| a.as_mut().poll(cx))
                {
                    woken.decided = Some(decision);
                }
                if let Some(Poll::Ready(result)) = calling.as_mut().map(|c| c.as_mut().poll(cx)) {
                    woken.granted = Some(result);
                }
                if woken.any() {
                    Poll::Ready(woken)
                } else {
                    Poll::Pending
                }
            })
            .await
        };
        let mut step = if woken.shutdown {
            Err(live.conn.shutdown())
        } else if woken.failed {
            Err(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR))
        } else {
            Ok(())
        };
        if woken.writable {
            step = step
                .and_then(|()| write_some(&mut live.transport, &mut live.conn, &mut output_moved));
            step = step.and_then(|()| live.conn.pull_deliveries(crate::clock::now()));
        }
        if woken.readable {
            step = step.and_then(|()| {
                read_and_handle(
                    &mut live.transport,
                    &mut live.conn,
                    &mut live.read_buf,
                    &mut live.charged,
                )
            });
        }
        if woken.deliveries {
            step = step.and_then(|()| live.conn.pull_deliveries(crate::clock::now()));
        }
        if let Some(decision) = woken.decided {
            authentication = None;
            step = step.and_then(|()| {
                let now = crate::clock::now();
                live.conn
                    .finish_authentication(decision, now)
                    .and_then(|()| process_buffered(&mut live.conn, &mut live.read_buf, now))
            });
        }
        if let Some(result) = woken.granted {
            grant_call = None;
            step = step.and_then(|()| live.conn.finish_grant_call(result, crate::clock::now()));
        }
        if woken.timer {
            let now = crate::clock::now();
            if pending_output(&live.transport, &live.conn) > 0
                && now >= output_moved + write_timeout(&live.conn)
            {
                tracing::info!(client_id = ?live.conn.client_id().unwrap_or(""), "client took no output within the write timeout: closed");
                step = step.and(Err(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR)));
            }
            step = step.and_then(|()| live.conn.on_timer(now));
        }
        // CONNECT, an AUTH or a re-check asks the chain: start it beside the connection.
        if step.is_ok() && authentication.is_none() {
            authentication = start_authentication(&mut live.conn);
        }
        // A device grant's next call to the provider, likewise.
        if step.is_ok() && grant_call.is_none() {
            grant_call = live
                .conn
                .take_grant_call()
                .map(|work| Box::pin(work.run()) as GrantCall);
        }
        // Keep the timer on the current deadline (a packet arrived, CONNECT was accepted,
        // output started waiting).
        let pending = pending_output(&live.transport, &live.conn) > 0;
        if !pending {
            output_moved = crate::clock::now();
        }
        match deadline_of(&live.conn, output_moved, pending) {
            Some(deadline) if on_tokio(deadline) != timer.deadline() => {
                timer.as_mut().reset(on_tokio(deadline))
            }
            None => timer.as_mut().reset(on_tokio(far_future())),
            _ => {}
        }
        if let Err(close) = step {
            return close;
        }
        // Write what is ready now; the writable branch finishes what the socket did not take.
        if !live.conn.out.is_empty() || live.transport.wants_write() {
            if let Err(close) = write_some(&mut live.transport, &mut live.conn, &mut output_moved) {
                return close;
            }
        }
        let held = held_bytes(&live.transport, &live.conn, &live.read_buf);
        live.conn.broker().memory.adjust(&mut live.charged, held);
        live.conn.flush_counts();
    }
}

/// Reads what the socket has and hands every whole packet to the state machine, until the
/// socket is drained or the output waiting reaches `max_output`.
fn read_and_handle(
    transport: &mut Transport,
    conn: &mut Connection,
    buf: &mut BytesMut,
    charged: &mut usize,
) -> Result<(), Close> {
    let memory = Arc::clone(&conn.broker().memory);
    let max_output = max_output(conn);
    let mut read = 0usize;
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
        read += n;
        if let Some(certificate) = transport.take_certificate() {
            conn.set_certificate(certificate);
        }
        if let Some(exporter) = transport.take_exporter() {
            conn.set_tls_exporter(tollgate_auth::Secret::new(exporter.to_vec()));
        }
        let now = crate::clock::now();
        // Whatever was queued for this client before these bytes arrived goes out before the
        // answers to them: a PINGREQ round trip is a delivery barrier.
        conn.pull_deliveries(now)?;
        process_buffered(conn, buf, now)?;
        memory.adjust(charged, held_bytes(transport, conn, buf));
        if buf.len() >= LARGE_PARTIAL_PACKET && memory.pressure() >= Pressure::RefusePublishes {
            memory.record(Overload::PublishRefused);
            tracing::debug!(client_id = ?conn.client_id().unwrap_or(""), partial = buf.len(), "large packet refused: memory budget");
            return Err(conn.overloaded());
        }
        if conn.input_waits(buf)
            || n < READ_CHUNK / 4
            || read >= READ_PER_WAKE
            || pending_output(transport, conn) >= max_output
        {
            return Ok(());
        }
    }
}

/// Hands every whole packet in `buf` to the state machine; stops early at input that waits
/// for an authentication to be decided.
fn process_buffered(conn: &mut Connection, buf: &mut BytesMut, now: Instant) -> Result<(), Close> {
    conn.check_first_packet(buf)?;
    while !conn.input_waits(buf) {
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

/// The authentication of the CONNECT just received, if one is waiting, as a boxed future
/// owning its request: both are large and live only during CONNECT, and made here they never
/// take room in the connection task's own future.
fn start_authentication(conn: &mut Connection) -> Option<Authentication> {
    let connected = conn.is_reauthenticating();
    let request = conn.take_auth_request()?;
    let listener = Arc::clone(conn.listener());
    let broker = Arc::clone(conn.broker());
    let limit = broker.config.auth_timeout;
    Some(Box::pin(async move {
        let started = std::time::Instant::now();
        let decision = authenticate(&listener, &request, connected, limit).await;
        broker.hooks.counts().chain_latency(
            &listener.name,
            &decision,
            started.elapsed().as_secs_f64(),
        );
        decision
    }))
}

/// Runs the listener's chain, within the configured time: for a CONNECT, or again for a
/// `connected` client (never throttled, never from the cache). A timeout drops the chain's
/// work, and the throttle counts it against the address.
async fn authenticate(
    listener: &Listener,
    request: &ConnectRequest,
    connected: bool,
    limit: Duration,
) -> ChainDecision {
    let limit = limit.max(Duration::from_secs(1));
    let policy = listener.policy();
    let decision: Pin<Box<dyn Future<Output = ChainDecision> + Send + '_>> = if connected {
        Box::pin(policy.chain.recheck(request))
    } else {
        Box::pin(policy.chain.authenticate(request))
    };
    match tokio::time::timeout(limit, decision).await {
        Ok(decision) => decision,
        Err(_) => {
            tracing::warn!(listener = %Escaped(&listener.name), client_id = %Escaped(&request.client_id), "authentication timed out");
            ChainDecision::Refused {
                reason: DenyReason::BackendUnavailable,
                by: None,
                detail: "authentication timed out".into(),
            }
        }
    }
}
