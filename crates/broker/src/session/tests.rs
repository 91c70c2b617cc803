//! A session's queue, in-flight window and wake-ups.

use std::time::Instant;

use bytes::Bytes;
use tollgate_mqtt::{Publish, QoS};

use super::messages::delivery_bytes;
use super::*;
use crate::memory::Overload;
use crate::message::Message;

fn delivery(qos: QoS, payload: &str) -> Delivery {
    let publish = Publish {
        topic: "t".into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        ..Publish::default()
    };
    Delivery::new(
        Message::new(publish, 0, Instant::now()),
        qos,
        false,
        Vec::new(),
    )
}

fn payloads(session: &Session) -> Vec<Bytes> {
    session
        .state
        .lock()
        .queue
        .iter()
        .map(|d| d.message.publish.payload.clone())
        .collect()
}

fn session(limits: QueueLimits) -> Session {
    let session = Session::new(1, "c".into(), 0, limits, MemoryBudget::new(0), None);
    let _ = session.state.lock().open(None);
    session
}

#[test]
fn full_queue_drops_qos0_first_then_new_messages() {
    let session = session(QueueLimits::messages(2));
    assert_eq!(
        session.enqueue(delivery(QoS::AtMostOnce, "a")),
        EnqueueOutcome::Queued
    );
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, "b")),
        EnqueueOutcome::Queued
    );
    assert_eq!(
        session.enqueue(delivery(QoS::AtMostOnce, "c")),
        EnqueueOutcome::Dropped
    );
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, "d")),
        EnqueueOutcome::QueuedDroppingQos0
    );
    assert_eq!(
        payloads(&session),
        vec![Bytes::from_static(b"b"), Bytes::from_static(b"d")]
    );
    assert_eq!(
        session.enqueue(delivery(QoS::ExactlyOnce, "e")),
        EnqueueOutcome::Dropped
    );
    assert_eq!(
        payloads(&session),
        vec![Bytes::from_static(b"b"), Bytes::from_static(b"d")]
    );
}

#[test]
fn the_queue_is_bounded_in_bytes_across_queue_and_in_flight_window() {
    let big = "x".repeat(1000);
    let one = delivery_bytes(&delivery(QoS::AtLeastOnce, &big));
    let session = session(QueueLimits {
        max_messages: 100,
        max_bytes: 3 * one,
        queue_qos0_offline: false,
    });
    for _ in 0..3 {
        assert_eq!(
            session.enqueue(delivery(QoS::AtLeastOnce, &big)),
            EnqueueOutcome::Queued
        );
    }
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, &big)),
        EnqueueOutcome::Dropped,
        "a fourth would pass the byte bound"
    );
    {
        // Sent but not acknowledged still counts.
        let mut state = session.state.lock();
        let sent = state.pop_queued().unwrap();
        state.push_inflight(InFlight {
            packet_id: 1,
            delivery: sent,
            state: OutgoingState::AwaitingPubAck,
        });
        assert_eq!(state.held_bytes(), 3 * one);
    }
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, &big)),
        EnqueueOutcome::Dropped
    );
    session.state.lock().remove_inflight(1);
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, &big)),
        EnqueueOutcome::Queued,
        "an acknowledgement makes room"
    );
}

#[test]
fn a_large_qos1_message_evicts_as_many_qos0_messages_as_it_needs() {
    let small = delivery_bytes(&delivery(QoS::AtMostOnce, "a"));
    let session = session(QueueLimits {
        max_messages: 100,
        max_bytes: 3 * small + 10,
        queue_qos0_offline: false,
    });
    for _ in 0..3 {
        session.enqueue(delivery(QoS::AtMostOnce, "a"));
    }
    let wide = "b".repeat(small + 5);
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, &wide)),
        EnqueueOutcome::QueuedDroppingQos0
    );
    let left = payloads(&session);
    assert_eq!(left.len(), 2, "two QoS 0 messages had to go: {left:?}");
    assert!(session.state.lock().held_bytes() <= 3 * small + 10);
}

#[test]
fn qos0_is_shed_under_memory_pressure_and_overhead_is_charged() {
    let budget = MemoryBudget::new(1000);
    let session = Session::new(
        1,
        "c".into(),
        0,
        QueueLimits::messages(10),
        Arc::clone(&budget),
        None,
    );
    let _ = session.state.lock().open(None);
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, "a")),
        EnqueueOutcome::Queued
    );
    let overhead = budget.used();
    assert!(overhead > 0, "a queued delivery is charged");
    budget.charge(700);
    assert_eq!(
        session.enqueue(delivery(QoS::AtMostOnce, "b")),
        EnqueueOutcome::Shed
    );
    assert_eq!(budget.count(Overload::ShedQos0), 1);
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, "c")),
        EnqueueOutcome::Queued,
        "QoS 1 still goes"
    );
    session.state.lock().clear_messages();
    assert_eq!(budget.used(), 700);
}

#[test]
fn offline_session_skips_qos0_unless_configured() {
    let budget = MemoryBudget::new(0);
    let session = Session::new(
        1,
        "c".into(),
        0,
        QueueLimits::messages(10),
        budget.clone(),
        None,
    );
    assert_eq!(
        session.enqueue(delivery(QoS::AtMostOnce, "a")),
        EnqueueOutcome::Skipped
    );
    assert_eq!(
        session.enqueue(delivery(QoS::AtLeastOnce, "b")),
        EnqueueOutcome::Queued
    );
    let keeping = Session::new(
        2,
        "d".into(),
        0,
        QueueLimits {
            queue_qos0_offline: true,
            ..QueueLimits::messages(10)
        },
        budget,
        None,
    );
    assert_eq!(
        keeping.enqueue(delivery(QoS::AtMostOnce, "a")),
        EnqueueOutcome::Queued
    );
}

#[test]
fn a_new_connection_gets_its_own_wake_and_the_old_one_is_woken() {
    let session = session(QueueLimits::messages(10));
    let (first, old) = session.state.lock().attach();
    let (second, new) = session.state.lock().attach();
    assert!(second > first);
    assert!(!Arc::ptr_eq(&old, &new));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(
        old.poll_notified(&mut cx).is_ready(),
        "the old connection is told"
    );
    assert!(new.poll_notified(&mut cx).is_pending());
    session.enqueue(delivery(QoS::AtLeastOnce, "m"));
    assert!(
        new.poll_notified(&mut cx).is_ready(),
        "deliveries wake the new one"
    );
    assert!(
        old.poll_notified(&mut cx).is_pending(),
        "and not the old one"
    );
}

#[test]
fn packet_ids_skip_zero_and_ids_in_flight() {
    let mut state = SessionState::new(1, 0, MemoryBudget::new(0), None);
    state.last_packet_id = u16::MAX - 1;
    assert_eq!(state.next_packet_id(), u16::MAX);
    assert_eq!(state.next_packet_id(), 1);
    // Fill the window so that it spans every identifier but 3.
    state.last_packet_id = 1;
    for id in (4..=u16::MAX).chain(1..=2) {
        state.push_inflight(InFlight {
            packet_id: id,
            delivery: delivery(QoS::AtLeastOnce, "x"),
            state: OutgoingState::AwaitingPubAck,
        });
    }
    state.last_packet_id = 2;
    assert_eq!(state.next_packet_id(), 3);
}
