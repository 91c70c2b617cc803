//! Connect rate: loops of TCP connect → CONNECT → CONNACK → DISCONNECT → wait for the broker
//! to close, many loops per worker task. Every cycle uses a new client identifier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cli::{secs, ConnectArgs};
use crate::client::Client;
use crate::flow::Phase;
use crate::mux::{self, BoxFuture};
use crate::report::{ConnectStats, Report};
use crate::scenario::Setup;

/// Pause after a failed cycle, so that a refusing broker is not hammered in a tight loop.
const FAILURE_BACKOFF: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Counters {
    cycles: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Runs the connect-rate scenario.
pub async fn run(setup: &Setup, args: &ConnectArgs) -> Report {
    let mut report = setup.report("connect");
    report.param("clients", args.clients);
    report.param("warmup s", args.warmup);
    report.param("duration s", args.duration);
    let counters = Arc::new(Counters::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);
    let timeout = setup.connect_timeout();
    let groups: Vec<Vec<BoxFuture<()>>> = (0..args.clients.max(1))
        .map(|loop_no| {
            let counters = Arc::clone(&counters);
            let phase = phase_rx.clone();
            // Options are made here (numbering connections) and per cycle below.
            let base = setup.connect_options(&format!("c{loop_no}n"), None);
            let addr = setup.addr;
            let fut: BoxFuture<()> = Box::pin(async move {
                let mut n = 0u64;
                while *phase.borrow() < Phase::Drain {
                    let mut opts = base.clone();
                    opts.client_id = format!("{}-{n}", base.client_id);
                    n += 1;
                    let cycle = async {
                        let (client, _) = Client::connect(addr, &opts, timeout).await?;
                        client.disconnect().await
                    };
                    match cycle.await {
                        Ok(()) => {
                            counters.cycles.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            counters.first_error.lock().get_or_insert(e.to_string());
                            tokio::time::sleep(FAILURE_BACKOFF).await;
                        }
                    }
                }
            });
            vec![fut]
        })
        .collect();
    drop(phase_rx);
    let running = tokio::spawn(mux::run_grouped(groups, setup.threads));

    tokio::time::sleep(secs(args.warmup)).await;
    let c0 = counters.cycles.load(Ordering::Relaxed);
    let cpu = setup.cpu_meter();
    let t0 = Instant::now();
    tokio::time::sleep(secs(args.duration)).await;
    let c1 = counters.cycles.load(Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    cpu.stop(c1 - c0, &mut report);
    let _ = phase_tx.send(Phase::Drain);
    if let Err(e) = running.await {
        report.fail(format!("load generator task failed: {e}"));
    }

    let failed = counters.failed.load(Ordering::Relaxed);
    report.connect = Some(ConnectStats {
        window_secs: window,
        cycles: c1 - c0,
        rate: (c1 - c0) as f64 / window,
        total_cycles: counters.cycles.load(Ordering::Relaxed),
        failed,
    });
    if failed > 0 {
        let first = counters.first_error.lock().clone().unwrap_or_default();
        report.fail(format!("{failed} connect cycles failed, first: {first}"));
    }
    report
}
