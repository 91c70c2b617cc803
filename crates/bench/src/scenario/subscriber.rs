//! One subscribing connection: counts and checks every delivery, acknowledges at QoS 1/2, and
//! records latencies while the run is measured.

use std::ops::Range;
use std::sync::Arc;

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tollgate_mqtt::{Packet, QoS};

use crate::client::{Client, ClientError};
use crate::clock;
use crate::flow::{Phase, PublisherFlow};
use crate::payload;
use crate::seq::SeqTracker;
use crate::stats;

/// What one subscriber expects.
#[derive(Debug, Clone)]
pub struct SubscriberSpec {
    /// The publishers whose messages it should receive (their numbers).
    pub publishers: Range<u32>,
    /// Whether to record latencies.
    pub record_latency: bool,
}

/// What one subscriber received.
#[derive(Debug, Clone)]
pub struct SubscriberOutcome {
    /// The publishers it expected, as in its spec.
    pub publishers: Range<u32>,
    /// One tracker per expected publisher, in order.
    pub trackers: Vec<SeqTracker>,
    /// Deliveries from no expected publisher, or without a readable payload.
    pub stray: u64,
    /// Latencies over the measured window, nanoseconds.
    pub latency: Option<Histogram<u64>>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Receives until the run is done.
pub async fn run(
    mut client: Client,
    spec: SubscriberSpec,
    flows: Arc<[Arc<PublisherFlow>]>,
    mut phase: watch::Receiver<Phase>,
) -> SubscriberOutcome {
    let count = (spec.publishers.end - spec.publishers.start) as usize;
    let mut out = SubscriberOutcome {
        publishers: spec.publishers.clone(),
        trackers: vec![SeqTracker::default(); count],
        stray: 0,
        latency: spec.record_latency.then(stats::new_histogram),
        error: None,
    };
    match drive(&mut client, &spec, &flows, &mut phase, &mut out).await {
        Ok(()) => {
            let _ = client.disconnect().await;
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

async fn drive(
    client: &mut Client,
    spec: &SubscriberSpec,
    flows: &[Arc<PublisherFlow>],
    phase: &mut watch::Receiver<Phase>,
    out: &mut SubscriberOutcome,
) -> Result<(), ClientError> {
    loop {
        tokio::select! {
            biased;
            read = client.fill() => {
                read?;
                let now_ns = clock::now_ns();
                let measuring = *phase.borrow() == Phase::Measure;
                handle_incoming(client, spec, flows, out, now_ns, measuring)?;
                client.flush().await?;
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() >= Phase::Done {
                    return Ok(());
                }
            }
        }
    }
}

fn handle_incoming(
    client: &mut Client,
    spec: &SubscriberSpec,
    flows: &[Arc<PublisherFlow>],
    out: &mut SubscriberOutcome,
    now_ns: u64,
    measuring: bool,
) -> Result<(), ClientError> {
    while let Some(packet) = client.try_decode()? {
        match packet {
            Packet::Publish(publish) => {
                match payload::read(&publish.payload)
                    .filter(|s| spec.publishers.contains(&s.publisher))
                {
                    Some(stamp) => {
                        let local = (stamp.publisher - spec.publishers.start) as usize;
                        out.trackers[local].record(stamp.seq);
                        if let Some(flow) = flows.get(stamp.publisher as usize) {
                            flow.record_delivery();
                        }
                        if measuring {
                            if let Some(h) = out.latency.as_mut() {
                                stats::record(h, now_ns.saturating_sub(stamp.sent_ns));
                            }
                        }
                    }
                    None => out.stray += 1,
                }
                match (publish.qos, publish.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => client.queue_ack(Packet::PubAck, id)?,
                    (QoS::ExactlyOnce, Some(id)) => client.queue_ack(Packet::PubRec, id)?,
                    _ => {}
                }
            }
            Packet::PubRel(ack) => client.queue_ack(Packet::PubComp, ack.packet_id)?,
            Packet::Disconnect(d) => return Err(ClientError::Disconnected(d.reason_code)),
            Packet::PingResp => {}
            other => {
                return Err(ClientError::Protocol(format!(
                    "subscriber got packet type {}",
                    other.packet_type()
                )))
            }
        }
    }
    Ok(())
}
