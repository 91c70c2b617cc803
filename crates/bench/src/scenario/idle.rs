//! Idle connections: open many, hold them without traffic, and read the broker's resident
//! memory before and after to get its cost per connection.

use std::time::Instant;

use crate::cli::{secs, IdleArgs};
use crate::client::{Client, ClientError};
use crate::mux::{self, BoxFuture};
use crate::procfs;
use crate::report::{IdleStats, Report};
use crate::scenario::Setup;

/// Runs the idle-connections scenario.
pub async fn run(setup: &Setup, args: &IdleArgs) -> Report {
    let mut report = setup.report("idle");
    report.param("connections", args.connections);
    report.param("keep alive s", args.keep_alive);
    report.param("settle s", args.settle);
    let rss = || {
        setup
            .common
            .broker_pid
            .and_then(|pid| procfs::sample(pid).ok())
            .map(|s| s.rss_kib)
    };
    let rss_before = rss();
    let timeout = setup.connect_timeout();
    let started = Instant::now();
    let futures: Vec<BoxFuture<Result<Client, ClientError>>> = (0..args.connections)
        .map(|_| {
            let mut opts = setup.connect_options("i", None);
            opts.keep_alive = args.keep_alive;
            let addr = setup.addr;
            Box::pin(async move { Client::connect(addr, &opts, timeout).await.map(|(c, _)| c) })
                as BoxFuture<_>
        })
        .collect();
    let results = mux::run_limited(futures, setup.common.setup_concurrency).await;
    let connect_secs = started.elapsed().as_secs_f64();
    let mut clients = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(c) => clients.push(c),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let connected = clients.len() as u64;
    let failed = args.connections as u64 - connected;

    tokio::time::sleep(secs(args.settle)).await;
    let rss_after = rss();
    tokio::time::sleep(secs(args.hold)).await;

    let kib_per_connection = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => Some((a as f64 - b as f64) / connected as f64),
        _ => None,
    };
    report.idle = Some(IdleStats {
        requested: args.connections as u64,
        connected,
        failed,
        connect_secs,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        kib_per_connection,
    });
    if let Some(e) = first_error {
        report.fail(format!("{failed} connections failed, first: {e}"));
    }
    if setup.common.broker_pid.is_some() && rss_after.is_none() {
        report.fail("could not read the broker's RSS from /proc");
    }

    // Close politely, a bounded number at a time.
    let closing: Vec<BoxFuture<Result<(), ClientError>>> = clients
        .into_iter()
        .map(|c| Box::pin(c.disconnect()) as BoxFuture<_>)
        .collect();
    mux::run_limited(closing, setup.common.setup_concurrency.max(256)).await;
    report
}
