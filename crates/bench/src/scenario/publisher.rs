//! One publishing connection: pipelined publishes, as fast as the windows allow or on a fixed
//! schedule, with every QoS 1/2 acknowledgement accounted for.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use tollgate_mqtt::{Packet, Publish, QoS, ReasonCode};

use crate::client::{Client, ClientError};
use crate::clock;
use crate::flow::{Phase, PublisherFlow};
use crate::payload::{self, Stamp};

/// Publishes written per round before reading acknowledgements again.
const MAX_BATCH: usize = 256;

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    /// Its number in the scenario (stamped in every payload).
    pub id: u32,
    /// Topic it publishes to.
    pub topic: String,
    /// QoS of its publishes.
    pub qos: QoS,
    /// Payload size, at least [`payload::HEADER_LEN`].
    pub payload_len: usize,
    /// QoS 1/2 publishes in flight at most (lowered to the broker's receive maximum).
    pub window: usize,
    /// Fixed rate in messages per second; `None`: as fast as the windows allow.
    pub rate: Option<f64>,
}

/// What one publisher did.
#[derive(Debug, Clone, Default)]
pub struct PublisherOutcome {
    /// Messages written.
    pub sent: u64,
    /// QoS 1/2 publishes acknowledged with success.
    pub acknowledged: u64,
    /// QoS 1/2 publishes acknowledged with an error reason code.
    pub rejected: u64,
    /// QoS 1/2 publishes still unacknowledged at the end.
    pub unacknowledged: u64,
    /// Furthest behind schedule, nanoseconds (fixed-rate publishers).
    pub max_lag_ns: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Publishes from the warm-up until the drain, then waits for its acknowledgements.
pub async fn run(
    mut client: Client,
    spec: PublisherSpec,
    flow: Arc<PublisherFlow>,
    mut phase: watch::Receiver<Phase>,
) -> PublisherOutcome {
    let mut out = PublisherOutcome::default();
    let result = drive(&mut client, &spec, &flow, &mut phase, &mut out).await;
    flow.set_sent(out.sent);
    flow.finish();
    match result {
        Ok(()) => {
            let _ = client.disconnect().await;
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

async fn drive(
    client: &mut Client,
    spec: &PublisherSpec,
    flow: &PublisherFlow,
    phase: &mut watch::Receiver<Phase>,
    out: &mut PublisherOutcome,
) -> Result<(), ClientError> {
    if phase.wait_for(|p| *p >= Phase::Warmup).await.is_err() {
        return Ok(());
    }
    let window = spec
        .window
        .min(usize::from(client.server_receive_maximum()))
        .max(1);
    let template = Publish {
        qos: spec.qos,
        topic: spec.topic.clone(),
        payload: Bytes::from(vec![0u8; spec.payload_len.max(payload::HEADER_LEN)]),
        ..Publish::default()
    };
    let mut ids = IdPool::default();
    let start = Instant::now();
    let mut seq = 0u64;
    loop {
        let now_phase = *phase.borrow_and_update();
        if now_phase >= Phase::Done {
            break;
        }
        let sending = now_phase < Phase::Drain;
        // How many messages are due by now (all of them without a fixed rate).
        let due = match spec.rate {
            Some(rate) => (start.elapsed().as_secs_f64() * rate) as u64 + 1,
            None => u64::MAX,
        };
        if sending {
            let sent_ns = clock::now_ns();
            let mut batch = 0;
            while seq < due
                && batch < MAX_BATCH
                && (spec.qos == QoS::AtMostOnce || ids.len() < window)
                && flow.has_room(seq)
            {
                let packet_id = match spec.qos {
                    QoS::AtMostOnce => None,
                    _ => Some(ids.take()),
                };
                let buf = client.queue_publish(&template, spec.qos, packet_id)?;
                payload::write(
                    buf,
                    &Stamp {
                        publisher: spec.id,
                        seq,
                        sent_ns,
                    },
                );
                seq += 1;
                batch += 1;
            }
            if let Some(rate) = spec.rate {
                if seq < due {
                    let scheduled = start + Duration::from_secs_f64(seq as f64 / rate);
                    let lag = Instant::now().saturating_duration_since(scheduled);
                    out.max_lag_ns = out.max_lag_ns.max(lag.as_nanos() as u64);
                }
            }
            out.sent = seq;
            flow.set_sent(seq);
        }
        client.flush().await?;
        if !sending && ids.is_empty() {
            break;
        }
        let window_open = spec.qos == QoS::AtMostOnce || ids.len() < window;
        let blocked_e2e = sending && window_open && !flow.has_room(seq);
        let next_due = spec
            .rate
            .map(|rate| start + Duration::from_secs_f64(seq as f64 / rate));
        let wait_schedule = sending && window_open && !blocked_e2e && seq >= due;
        let more_now = sending && window_open && !blocked_e2e && seq < due;
        tokio::select! {
            biased;
            read = client.fill() => {
                read?;
                handle_incoming(client, &mut ids, out)?;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = flow.wait_for_room(seq), if blocked_e2e => {}
            _ = sleep_until_opt(next_due), if wait_schedule => {}
            _ = tokio::task::yield_now(), if more_now => {}
        }
    }
    out.unacknowledged = ids.len() as u64;
    Ok(())
}

async fn sleep_until_opt(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Handles the acknowledgements read so far.
fn handle_incoming(
    client: &mut Client,
    ids: &mut IdPool,
    out: &mut PublisherOutcome,
) -> Result<(), ClientError> {
    while let Some(packet) = client.try_decode()? {
        match packet {
            Packet::PubAck(ack) => {
                if !ids.release(ack.packet_id) {
                    return Err(unknown("PUBACK", ack.packet_id));
                }
                count_ack(out, ack.reason_code);
            }
            Packet::PubRec(ack) => {
                if !ids.contains(ack.packet_id) {
                    return Err(unknown("PUBREC", ack.packet_id));
                }
                if is_error(ack.reason_code) {
                    ids.release(ack.packet_id);
                    out.rejected += 1;
                } else {
                    client.queue_ack(Packet::PubRel, ack.packet_id)?;
                }
            }
            Packet::PubComp(ack) => {
                if !ids.release(ack.packet_id) {
                    return Err(unknown("PUBCOMP", ack.packet_id));
                }
                count_ack(out, ack.reason_code);
            }
            Packet::Disconnect(d) => return Err(ClientError::Disconnected(d.reason_code)),
            Packet::PingResp => {}
            other => {
                return Err(ClientError::Protocol(format!(
                    "publisher got packet type {}",
                    other.packet_type()
                )))
            }
        }
    }
    Ok(())
}

fn is_error(code: ReasonCode) -> bool {
    code.0 >= 0x80
}

fn count_ack(out: &mut PublisherOutcome, code: ReasonCode) {
    if is_error(code) {
        out.rejected += 1;
    } else {
        out.acknowledged += 1;
    }
}

fn unknown(what: &str, id: u16) -> ClientError {
    ClientError::Protocol(format!("{what} for packet id {id}, which is not in flight"))
}

/// Packet identifiers in flight: a bit per identifier, handed out round-robin.
#[derive(Debug, Clone)]
pub struct IdPool {
    used: Vec<u64>,
    next: u16,
    count: usize,
}

impl Default for IdPool {
    fn default() -> Self {
        IdPool {
            used: vec![0; 65536 / 64],
            next: 1,
            count: 0,
        }
    }
}

impl IdPool {
    /// Takes a free identifier (1..=65535). All 65535 in use is a caller bug (windows are
    /// far smaller); it panics.
    pub fn take(&mut self) -> u16 {
        assert!(self.count < 65535, "all packet identifiers in flight");
        loop {
            let id = self.next;
            self.next = if self.next == u16::MAX {
                1
            } else {
                self.next + 1
            };
            if !self.contains(id) {
                self.used[usize::from(id) / 64] |= 1 << (id % 64);
                self.count += 1;
                return id;
            }
        }
    }

    /// Whether `id` is in flight.
    pub fn contains(&self, id: u16) -> bool {
        self.used[usize::from(id) / 64] & (1 << (id % 64)) != 0
    }

    /// Frees `id`; false if it was not in flight.
    pub fn release(&mut self, id: u16) -> bool {
        if id == 0 || !self.contains(id) {
            return false;
        }
        self.used[usize::from(id) / 64] &= !(1 << (id % 64));
        self.count -= 1;
        true
    }

    /// Identifiers in flight.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_skip_zero_and_wrap() {
        let mut pool = IdPool::default();
        let a = pool.take();
        let b = pool.take();
        assert_eq!((a, b), (1, 2));
        assert!(pool.release(a));
        assert!(!pool.release(a), "double release");
        assert!(!pool.release(0));
        // Walk to the end of the range: 65535 wraps to 1 (free again), skipping 2 (in use).
        for _ in 3..=65535u32 {
            let id = pool.take();
            pool.release(id);
        }
        assert_eq!(pool.take(), 1);
        assert_eq!(pool.take(), 3);
        assert_eq!(pool.len(), 3);
    }
}
