//! The message scenarios (pairs, fan-out, fan-in, latency): who publishes to whom, the run's
//! timeline (setup, warm-up, measured window, drain), and the account at the end.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tollgate_mqtt::QoS;

use crate::cli::{secs, MessageArgs};
use crate::client::{Client, ClientError};
use crate::flow::{Phase, PublisherFlow};
use crate::mux::{self, BoxFuture};
use crate::payload;
use crate::report::MessageStats;
use crate::report::Report;
use crate::scenario::publisher::{self, PublisherOutcome, PublisherSpec};
use crate::scenario::subscriber::{self, SubscriberOutcome, SubscriberSpec};
use crate::scenario::Setup;
use crate::seq::Tally;
use crate::stats::{self, LatencySummary};

/// How drains are watched.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Errors listed in a report at most; the rest are counted.
const MAX_LISTED_ERRORS: usize = 3;

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// N publisher/subscriber pairs, one topic each.
    Pairs(usize),
    /// One publisher, N subscribers.
    FanOut(usize),
    /// N publishers, one subscriber.
    FanIn(usize),
}

/// Topics, and which publishers and subscribers are on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The topic of each publisher.
    pub publisher_topic: Vec<usize>,
    /// The topic of each subscriber.
    pub subscriber_topic: Vec<usize>,
    /// Groups of connections kept on one worker task: (subscribers, publishers).
    pub groups: Vec<(Vec<usize>, Vec<usize>)>,
}

impl Topology {
    /// The topology of `shape`. Publishers of one topic have consecutive numbers.
    pub fn of(shape: Shape) -> Topology {
        match shape {
            Shape::Pairs(n) => Topology {
                publisher_topic: (0..n).collect(),
                subscriber_topic: (0..n).collect(),
                groups: (0..n).map(|i| (vec![i], vec![i])).collect(),
            },
            Shape::FanOut(n) => Topology {
                publisher_topic: vec![0],
                subscriber_topic: vec![0; n],
                groups: std::iter::once((vec![], vec![0]))
                    .chain((0..n).map(|i| (vec![i], vec![])))
                    .collect(),
            },
            Shape::FanIn(n) => Topology {
                publisher_topic: vec![0; n],
                subscriber_topic: vec![0],
                groups: std::iter::once((vec![0], vec![]))
                    .chain((0..n).map(|i| (vec![], vec![i])))
                    .collect(),
            },
        }
    }

    /// Subscribers on `topic`.
    pub fn subscribers_of(&self, topic: usize) -> usize {
        self.subscriber_topic
            .iter()
            .filter(|&&t| t == topic)
            .count()
    }

    /// The numbers of the publishers on `topic` (consecutive by construction).
    pub fn publishers_of(&self, topic: usize) -> Range<u32> {
        let first = self.publisher_topic.iter().position(|&t| t == topic);
        match first {
            Some(start) => {
                let len = self.publisher_topic[start..]
                    .iter()
                    .take_while(|&&t| t == topic)
                    .count();
                start as u32..(start + len) as u32
            }
            None => 0..0,
        }
    }
}

/// A message scenario, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name in the report.
    pub name: &'static str,
    /// Who publishes to whom.
    pub shape: Shape,
    /// QoS of publishes and subscriptions.
    pub qos: QoS,
    /// Payload size.
    pub payload: usize,
    /// Window per publisher.
    pub window: usize,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Give up on missing deliveries after this long without one.
    pub drain_timeout: Duration,
    /// Offered rate over all publishers (latency scenario); `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Fail when a fixed-rate publisher falls further behind than this (ms).
    pub max_lag_ms: Option<f64>,
}

impl Plan {
    /// A plan for `shape` with the command line's message options.
    pub fn new(shape: Shape, args: &MessageArgs) -> Plan {
        Plan {
            name: match shape {
                Shape::Pairs(_) => "pairs",
                Shape::FanOut(_) => "fan-out",
                Shape::FanIn(_) => "fan-in",
            },
            shape,
            qos: args.qos,
            payload: args.payload.max(payload::HEADER_LEN),
            window: args.window.max(1),
            warmup: secs(args.warmup),
            duration: secs(args.duration),
            drain_timeout: secs(args.drain_timeout),
            rate: None,
            max_lag_ms: None,
        }
    }
}

enum Outcome {
    Subscriber(SubscriberOutcome),
    Publisher(PublisherOutcome),
}

/// Runs a message scenario and reports on it.
pub async fn run(setup: &Setup, plan: &Plan) -> Report {
    let mut report = setup.report(plan.name);
    let topology = Topology::of(plan.shape);
    let (n_pub, n_sub) = (
        topology.publisher_topic.len(),
        topology.subscriber_topic.len(),
    );
    report.param("publishers", n_pub);
    report.param("subscribers", n_sub);
    report.param("payload", plan.payload);
    report.param("window", plan.window);
    report.param("warmup s", plan.warmup.as_secs_f64());
    report.param("duration s", plan.duration.as_secs_f64());
    if n_pub == 0 || n_sub == 0 {
        report.fail("a scenario needs at least one publisher and one subscriber");
        return report;
    }
    let topic = |t: usize| format!("tgb/{:08x}/{t}", setup.run_id);
    let flows: Arc<[Arc<PublisherFlow>]> = topology
        .publisher_topic
        .iter()
        .map(|&t| {
            Arc::new(PublisherFlow::new(
                topology.subscribers_of(t) as u64,
                plan.window as u64,
            ))
        })
        .collect();

    // Setup: subscribers first (each subscribed before any publisher connects), then publishers.
    let subscribers = match connect_all(
        setup,
        n_sub,
        "s",
        |i| Some(topic(topology.subscriber_topic[i])),
        plan.qos,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            report.fail(format!("setting up subscribers: {e}"));
            return report;
        }
    };
    let publishers = match connect_all(setup, n_pub, "p", |_| None, plan.qos).await {
        Ok(c) => c,
        Err(e) => {
            report.fail(format!("setting up publishers: {e}"));
            return report;
        }
    };

    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let mut subscribers: Vec<Option<Client>> = subscribers.into_iter().map(Some).collect();
    let mut publishers: Vec<Option<Client>> = publishers.into_iter().map(Some).collect();
    let per_publisher_rate = plan.rate.map(|r| r / n_pub as f64);
    let groups: Vec<Vec<BoxFuture<Outcome>>> = topology
        .groups
        .iter()
        .map(|(subs, pubs)| {
            let mut group: Vec<BoxFuture<Outcome>> = Vec::new();
            for &s in subs {
                let client = subscribers[s].take().expect("each subscriber in one group");
                let spec = SubscriberSpec {
                    publishers: topology.publishers_of(topology.subscriber_topic[s]),
                    record_latency: plan.rate.is_some(),
                };
                let fut = subscriber::run(client, spec, Arc::clone(&flows), phase_rx.clone());
                group.push(Box::pin(async move { Outcome::Subscriber(fut.await) }));
            }
            for &p in pubs {
                let client = publishers[p].take().expect("each publisher in one group");
                let spec = PublisherSpec {
                    id: p as u32,
                    topic: topic(topology.publisher_topic[p]),
                    qos: plan.qos,
                    payload_len: plan.payload,
                    window: plan.window,
                    rate: per_publisher_rate,
                };
                let fut = publisher::run(client, spec, Arc::clone(&flows[p]), phase_rx.clone());
                group.push(Box::pin(async move { Outcome::Publisher(fut.await) }));
            }
            group
        })
        .collect();
    drop(phase_rx);
    let running = tokio::spawn(mux::run_grouped(groups, setup.threads));

    // Timeline.
    let _ = phase_tx.send(Phase::Warmup);
    tokio::time::sleep(plan.warmup).await;
    let delivered_0 = total_delivered(&flows);
    let sent_0 = total_sent(&flows);
    let cpu = setup.cpu_meter();
    let t0 = Instant::now();
    let _ = phase_tx.send(Phase::Measure);
    tokio::time::sleep(plan.duration).await;
    let delivered_1 = total_delivered(&flows);
    let sent_1 = total_sent(&flows);
    let window = t0.elapsed().as_secs_f64();
    let window_deliveries = delivered_1 - delivered_0;
    cpu.stop(window_deliveries, &mut report);
    let _ = phase_tx.send(Phase::Drain);
    drain(&flows, plan.drain_timeout, &running).await;
    let _ = phase_tx.send(Phase::Done);
    let outcomes = match running.await {
        Ok(o) => o,
        Err(e) => {
            report.fail(format!("load generator task failed: {e}"));
            return report;
        }
    };

    // The account.
    let mut errors = Vec::new();
    let mut tally = Tally::default();
    let mut stray = 0;
    let mut latency = plan.rate.is_some().then(stats::new_histogram);
    let (mut acknowledged, mut rejected, mut unacknowledged, mut published, mut max_lag_ns) =
        (0, 0, 0, 0, 0);
    for outcome in &outcomes {
        match outcome {
            Outcome::Publisher(p) => {
                published += p.sent;
                acknowledged += p.acknowledged;
                rejected += p.rejected;
                unacknowledged += p.unacknowledged;
                max_lag_ns = max_lag_ns.max(p.max_lag_ns);
                errors.extend(p.error.iter().map(|e| format!("publisher: {e}")));
            }
            Outcome::Subscriber(s) => {
                for (tracker, p) in s.trackers.iter().zip(s.publishers.clone()) {
                    tally.add(&tracker.finish(flows[p as usize].sent()));
                }
                stray += s.stray;
                if let (Some(total), Some(h)) = (latency.as_mut(), s.latency.as_ref()) {
                    let _ = total.add(h);
                }
                errors.extend(s.error.iter().map(|e| format!("subscriber: {e}")));
            }
        }
    }
    let qos = plan.qos as u8;
    report.messages = Some(MessageStats {
        qos,
        window_secs: window,
        publish_rate: (sent_1 - sent_0) as f64 / window,
        delivery_rate: window_deliveries as f64 / window,
        window_deliveries,
        published,
        acknowledged,
        rejected,
        unacknowledged,
        tally,
        stray,
        offered_rate: plan.rate,
        max_send_lag_ms: plan.rate.map(|_| max_lag_ns as f64 / 1e6),
    });
    report.latency = latency.as_ref().and_then(LatencySummary::of);
    judge(
        &mut report,
        qos,
        &tally,
        &errors,
        rejected,
        unacknowledged,
        stray,
    );
    if let (Some(limit), Some(rate)) = (plan.max_lag_ms, plan.rate) {
        let lag_ms = max_lag_ns as f64 / 1e6;
        if lag_ms > limit {
            report.fail(format!(
                "offered rate {rate:.0} msg/s not sustained: publishers fell {lag_ms:.1} ms behind"
            ));
        }
    }
    report
}

/// Marks the report failed for errors, and at QoS 1/2 for any loss; duplicates, reordering
/// and strays fail at any QoS. Loss at QoS 0 is reported, not failed.
fn judge(
    report: &mut Report,
    qos: u8,
    tally: &Tally,
    errors: &[String],
    rejected: u64,
    unacknowledged: u64,
    stray: u64,
) {
    if !errors.is_empty() {
        let listed: Vec<&str> = errors
            .iter()
            .take(MAX_LISTED_ERRORS)
            .map(String::as_str)
            .collect();
        report.fail(format!(
            "{} connection error(s): {}",
            errors.len(),
            listed.join("; ")
        ));
    }
    if qos > 0 && tally.lost > 0 {
        report.fail(format!(
            "{} of {} deliveries lost at QoS {qos} ({} in gaps, {} never came after the last \
             one received)",
            tally.lost,
            tally.expected,
            tally.lost - tally.missing_at_end,
            tally.missing_at_end
        ));
    }
    if rejected > 0 {
        report.fail(format!("{rejected} publishes refused by the broker"));
    }
    if unacknowledged > 0 {
        report.fail(format!("{unacknowledged} publishes never acknowledged"));
    }
    if tally.duplicates > 0 {
        report.fail(format!("{} duplicate deliveries", tally.duplicates));
    }
    if tally.out_of_order > 0 {
        report.fail(format!("{} deliveries out of order", tally.out_of_order));
    }
    if stray > 0 || tally.unexpected > 0 {
        report.fail(format!(
            "{} stray deliveries, {} unknown sequence numbers",
            stray, tally.unexpected
        ));
    }
}

/// Connects `n` clients; with a topic, each subscribes to it before the function returns.
async fn connect_all(
    setup: &Setup,
    n: usize,
    role: &str,
    topic: impl Fn(usize) -> Option<String>,
    qos: QoS,
) -> Result<Vec<Client>, String> {
    let timeout = setup.connect_timeout();
    let futures: Vec<_> = (0..n)
        .map(|i| {
            let mut opts = setup.connect_options(role, Some(u16::MAX));
            let filter = topic(i);
            opts.persistent = filter.is_some() && setup.common.persistent_subscribers;
            let addr = setup.addr;
            Box::pin(async move {
                let (mut client, _) = Client::connect(addr, &opts, timeout).await?;
                if let Some(filter) = filter {
                    let granted = client.subscribe(&filter, qos, timeout).await?;
                    if granted != qos {
                        return Err(ClientError::Protocol(format!(
                            "subscribed at QoS {}, granted {}",
                            qos as u8, granted as u8
                        )));
                    }
                }
                Ok(client)
            }) as BoxFuture<Result<Client, ClientError>>
        })
        .collect();
    let results = mux::run_limited(futures, setup.common.setup_concurrency).await;
    let mut clients = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first = None;
    for r in results {
        match r {
            Ok(c) => clients.push(c),
            Err(e) => {
                failed += 1;
                first.get_or_insert(e.to_string());
            }
        }
    }
    match first {
        None => Ok(clients),
        Some(e) => Err(format!("{failed} of {n} failed, first: {e}")),
    }
}

/// Waits until every publisher is done and every message it sent has been delivered, or
/// until no delivery has come for `timeout`.
async fn drain<T>(
    flows: &[Arc<PublisherFlow>],
    timeout: Duration,
    running: &tokio::task::JoinHandle<T>,
) {
    let mut last = total_delivered(flows);
    let mut last_progress = Instant::now();
    loop {
        if flows.iter().all(|f| f.is_finished() && f.is_drained()) || running.is_finished() {
            return;
        }
        tokio::time::sleep(DRAIN_POLL).await;
        let now = total_delivered(flows);
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= timeout {
            return;
        }
    }
}

fn total_delivered(flows: &[Arc<PublisherFlow>]) -> u64 {
    flows.iter().map(|f| f.delivered()).sum()
}

fn total_sent(flows: &[Arc<PublisherFlow>]) -> u64 {
    flows.iter().map(|f| f.sent()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_have_one_topic_each() {
        let t = Topology::of(Shape::Pairs(3));
        assert_eq!(t.subscribers_of(1), 1);
        assert_eq!(t.publishers_of(2), 2..3);
        assert_eq!(t.groups.len(), 3);
    }

    #[test]
    fn fan_out_and_fan_in() {
        let out = Topology::of(Shape::FanOut(5));
        assert_eq!(out.subscribers_of(0), 5);
        assert_eq!(out.publishers_of(0), 0..1);
        let inn = Topology::of(Shape::FanIn(4));
        assert_eq!(inn.subscribers_of(0), 1);
        assert_eq!(inn.publishers_of(0), 0..4);
        assert_eq!(inn.publishers_of(1), 0..0);
    }

    #[test]
    fn loss_fails_only_above_qos_0() {
        let lossy = Tally {
            expected: 10,
            deliveries: 9,
            lost: 1,
            ..Tally::default()
        };
        let mut r0 = Report::new("pairs", None, String::new(), String::new());
        judge(&mut r0, 0, &lossy, &[], 0, 0, 0);
        assert!(r0.ok);
        let mut r1 = Report::new("pairs", None, String::new(), String::new());
        judge(&mut r1, 1, &lossy, &[], 0, 0, 0);
        assert!(!r1.ok);
        assert!(r1.failures[0].contains("1 of 10 deliveries lost at QoS 1"));
        let dup = Tally {
            duplicates: 1,
            ..Tally::default()
        };
        let mut r2 = Report::new("pairs", None, String::new(), String::new());
        judge(&mut r2, 0, &dup, &[], 0, 0, 0);
        assert!(!r2.ok);
    }
}
