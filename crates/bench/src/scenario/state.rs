//! State to restart a broker with, and how long a restart takes to serve it.
//!
//! `fill` leaves persistent sessions (`fill-s{i}`, each subscribed at QoS 1 to `fill/s/{i}`,
//! then disconnected) and retained messages (`fill/r/{i}`, published at QoS 1 by a few
//! connections with many in flight). `probe`, started with the broker, tries to connect
//! until the broker serves, then resumes the last session (its CONNACK must say the session
//! is present) and reads the last retained message: the restart time is from the probe's
//! start to each.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tollgate_mqtt::{Packet, Publish, QoS};

use crate::cli::{secs, FillArgs, ProbeArgs};
use crate::client::{Client, ClientError, ConnectOptions};
use crate::report::{Report, StateStats};
use crate::scenario::Setup;

/// How often the probe tries to connect while the broker is not listening yet.
const PROBE_RETRY: Duration = Duration::from_millis(5);

fn session_id(i: usize) -> String {
    format!("fill-s{i}")
}

fn retained_topic(i: usize) -> String {
    format!("fill/r/{i}")
}

/// Failures of one phase: how many, and the first one's text.
#[derive(Default)]
struct Failures {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Failures {
    fn note(&self, e: &ClientError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.first.lock().get_or_insert_with(|| e.to_string());
    }

    fn report(&self, what: &str, report: &mut Report) {
        let count = self.count.load(Ordering::Relaxed);
        if count > 0 {
            let first = self.first.lock().clone().unwrap_or_default();
            report.fail(format!("{count} {what} failed, first: {first}"));
        }
    }
}

/// Runs `fill`.
pub async fn fill(setup: &Setup, args: &FillArgs) -> Report {
    let mut report = setup.report("fill");
    report.param("sessions", args.state.sessions);
    report.param("retained", args.state.retained);
    report.param("payload", args.payload);
    report.param("clients", args.clients);
    let workers = args.clients.max(1);
    let timeout = setup.connect_timeout();

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (next, failures) = (Arc::clone(&next), Arc::clone(&failures));
        let mut opts = setup.connect_options("fill", None);
        opts.persistent = true;
        let (addr, total) = (setup.addr, args.state.sessions);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                opts.client_id = session_id(i);
                let leave = async {
                    let (mut client, _) = Client::connect(addr, &opts, timeout).await?;
                    client
                        .subscribe(&format!("fill/s/{i}"), QoS::AtLeastOnce, timeout)
                        .await?;
                    client.disconnect().await
                };
                if let Err(e) = leave.await {
                    failures.note(&e);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let sessions_secs = started.elapsed().as_secs_f64();
    failures.report("sessions", &mut report);

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let payload = Bytes::from(vec![b'r'; args.payload]);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (next, failures, payload) = (Arc::clone(&next), Arc::clone(&failures), payload.clone());
        let opts = setup.connect_options("fill-pub", None);
        let (addr, total, window) = (setup.addr, args.state.retained, args.window.max(1));
        tasks.push(tokio::spawn(async move {
            let publish = async {
                let (mut client, _) = Client::connect(addr, &opts, timeout).await?;
                publish_retained(&mut client, &next, total, window, &payload, timeout).await?;
                client.disconnect().await
            };
            if let Err(e) = publish.await {
                failures.note(&e);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let retained_secs = started.elapsed().as_secs_f64();
    failures.report("retained publishers", &mut report);
    report.state = Some(StateStats {
        sessions: args.state.sessions as u64,
        retained: args.state.retained as u64,
        sessions_secs,
        retained_secs,
        ..StateStats::default()
    });
    report
}

/// Publishes retained messages with the indices `next` hands out, below `total`, keeping up
/// to `window` unacknowledged; returns when every one is acknowledged.
async fn publish_retained(
    client: &mut Client,
    next: &AtomicUsize,
    total: usize,
    window: usize,
    payload: &Bytes,
    timeout: Duration,
) -> Result<(), ClientError> {
    let mut in_flight = 0usize;
    let mut packet_id: u16 = 0;
    let mut exhausted = false;
    loop {
        while !exhausted && in_flight < window {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                exhausted = true;
                break;
            }
            packet_id = packet_id.checked_add(1).unwrap_or(1);
            client.queue(&Packet::Publish(Publish {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: retained_topic(i),
                packet_id: Some(packet_id),
                payload: payload.clone(),
                ..Publish::default()
            }))?;
            in_flight += 1;
        }
        client.flush().await?;
        if in_flight == 0 {
            return Ok(());
        }
        let packet = tokio::time::timeout(timeout, client.recv())
            .await
            .map_err(|_| ClientError::Timeout("PUBACK"))??;
        match packet {
            Packet::PubAck(ack) if ack.reason_code.0 < 0x80 => in_flight -= 1,
            Packet::PubAck(ack) => return Err(ClientError::Refused("PUBLISH", ack.reason_code)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected PUBACK, got packet type {}",
                    other.packet_type()
                )))
            }
        }
    }
}

/// Runs `probe`.
pub async fn probe(setup: &Setup, args: &ProbeArgs) -> Report {
    let mut report = setup.report("probe");
    report.param("sessions", args.state.sessions);
    report.param("retained", args.state.retained);
    let started = Instant::now();
    let deadline = started + secs(args.timeout);
    let timeout = setup.connect_timeout();
    let mut stats = StateStats::default();

    let mut opts = setup.connect_options("probe", None);
    opts.persistent = true;
    opts.client_id = session_id(args.state.sessions.saturating_sub(1));
    let resumed = loop {
        match Client::connect(setup.addr, &opts, timeout).await {
            Ok(connected) => break Some(connected),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(PROBE_RETRY).await,
            Err(e) => {
                report.fail(format!("the broker did not serve in time: {e}"));
                break None;
            }
        }
    };
    if let Some((client, ack)) = resumed {
        stats.ready_secs = Some(started.elapsed().as_secs_f64());
        if args.state.sessions > 0 && !ack.session_present {
            report.fail(format!("{} was not restored", opts.client_id));
        }
        let _ = client.disconnect().await;
        if args.state.retained > 0 {
            let topic = retained_topic(args.state.retained - 1);
            match read_retained(setup, &topic, timeout).await {
                Ok(()) => stats.restored_secs = Some(started.elapsed().as_secs_f64()),
                Err(e) => report.fail(format!("{topic} was not restored: {e}")),
            }
        }
    }
    stats.rss_kib = setup
        .common
        .broker_pid
        .and_then(|pid| crate::procfs::sample(pid).ok())
        .map(|s| s.rss_kib);
    report.state = Some(stats);
    report
}

/// Subscribes (clean session) to `topic` and waits for its retained message.
async fn read_retained(setup: &Setup, topic: &str, timeout: Duration) -> Result<(), ClientError> {
    let opts: ConnectOptions = setup.connect_options("probe-reader", None);
    let (mut client, _) = Client::connect(setup.addr, &opts, timeout).await?;
    client.subscribe(topic, QoS::AtMostOnce, timeout).await?;
    let packet = tokio::time::timeout(timeout, client.recv())
        .await
        .map_err(|_| ClientError::Timeout("retained PUBLISH"))??;
    match packet {
        Packet::Publish(p) if p.retain && p.topic == topic => client.disconnect().await,
        other => Err(ClientError::Protocol(format!(
            "expected the retained message, got packet type {}",
            other.packet_type()
        ))),
    }
}
