//! A service that holds every request until the test lets it go, counting how many it holds
//! at once: to check how many calls an authenticator makes at the same time, with the
//! service's own counters and channels as the only synchronisation (no sleeps).

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::http_service::{HttpService, Received, Reply};

/// The held service.
pub struct Held {
    /// The service itself (its URL, the requests it got).
    pub service: HttpService,
    arrived: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Held {
    /// Starts a service that holds each request, then answers it with `reply`.
    pub async fn start(reply: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Held {
        let (tx, arrived) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (g, i, m) = (gate.clone(), in_flight.clone(), most.clone());
        let service = HttpService::start(move |request| {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let _ = tx.send(());
            let (gate, in_flight) = (g.clone(), i.clone());
            let answer = reply(request);
            Reply::After(Box::pin(async move {
                gate.acquire().await.expect("the gate stays open").forget();
                // Counted out before the answer is written: a finished call is no longer held.
                in_flight.fetch_sub(1, Ordering::SeqCst);
                answer
            }))
        })
        .await;
        Held {
            service,
            arrived,
            gate,
            in_flight,
            most,
        }
    }

    /// Waits for the next request to arrive (a watchdog fails the test after 30 s).
    pub async fn arrived(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.arrived.recv())
            .await
            .expect("a request arrives")
            .expect("the service runs");
    }

    /// Lets `n` held requests be answered.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Requests held right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests held at once so far.
    pub fn most_in_flight(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// Starts `total` authentications at once (`start` makes each: a future saying whether it was
/// allowed) against `held`, an authenticator's service, and checks that exactly `limit` of them
/// reach it at once: the first `limit` arrive and are held; from then on, each time one is let
/// go and finishes, one more arrives, and never more than `limit` are held.
pub async fn at_most_at_once<F, Fut>(held: &mut Held, limit: usize, total: usize, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    assert!(total > limit);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    for _ in 0..total {
        let (call, tx) = (start(), done_tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(call.await);
        });
    }
    for _ in 0..limit {
        held.arrived().await;
    }
    assert_eq!(held.in_flight(), limit);
    let mut arrivals = limit;
    for finished in 1..=total {
        held.release(1);
        let allowed = tokio::time::timeout(Duration::from_secs(30), done.recv())
            .await
            .expect("an authentication finishes")
            .expect("the task reports");
        assert!(allowed, "authentication {finished} was not allowed");
        if arrivals < total {
            held.arrived().await;
            arrivals += 1;
        }
        assert!(
            held.in_flight() <= limit,
            "{} held at once",
            held.in_flight()
        );
    }
    assert_eq!(arrivals, total);
    assert_eq!(held.service.count(), total);
    assert_eq!(held.most_in_flight(), limit, "the peak is the limit");
}

/// With `max_concurrent_requests = 1`: a call given up while its request is held (its future
/// dropped, as the broker's authentication timeout does) frees its permit at once, so the next
/// call reaches the service although the first one was never answered.
pub async fn a_dropped_call_frees_its_permit<F, Fut>(held: &mut Held, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let first = tokio::spawn(start());
    held.arrived().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let second = tokio::spawn(start());
    held.arrived().await;
    assert_eq!(held.service.count(), 2);
    held.release(2);
    assert!(second.await.unwrap(), "the second call was not allowed");
}
