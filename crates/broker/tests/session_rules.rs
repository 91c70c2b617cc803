//! Session rules on the broker's shared state, on tokio's paused clock (no sockets, no
//! waiting): will delays, and what a new connection does to a session and its will.

use std::sync::Arc;
use std::time::Duration;

use tollgate_broker::broker::{ClosingWill, OpenedSession};
use tollgate_broker::{Broker, BrokerConfig};
use tollgate_mqtt::{QoS, SubscriptionOptions, Will, WillProperties};

fn will() -> Will {
    Will {
        topic: "wills/dev".into(),
        payload: "gone".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    }
}

/// A session subscribed to `wills/#`, to see what is published.
fn watcher(broker: &Arc<Broker>) -> OpenedSession {
    let watcher = broker.open_session("watcher", true, 0, None).unwrap();
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    broker.subscribe(&watcher.session, "wills/#", options, None);
    watcher
}

async fn pass(seconds: u64) {
    tokio::time::advance(Duration::from_secs(seconds)).await;
    // Let the timers' tasks run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_delayed_will_goes_out_after_its_delay() {
    let broker = Broker::new(BrokerConfig::default());
    let watcher = watcher(&broker);
    let dev = broker.open_session("dev", true, 600, None).unwrap();
    broker.close_session(
        &dev.session,
        dev.generation,
        Some(ClosingWill {
            will: will(),
            delay: 10,
        }),
    );
    pass(5).await;
    assert_eq!(watcher.session.state.lock().queued(), 0, "not yet");
    pass(6).await;
    assert_eq!(watcher.session.state.lock().queued(), 1, "after the delay");
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_within_the_will_delay_cancels_the_will_with_clean_start_or_not() {
    for clean_start in [true, false] {
        let broker = Broker::new(BrokerConfig::default());
        let watcher = watcher(&broker);
        let dev = broker.open_session("dev", true, 600, None).unwrap();
        broker.close_session(
            &dev.session,
            dev.generation,
            Some(ClosingWill {
                will: will(),
                delay: 10,
            }),
        );
        pass(5).await;
        let again = broker.open_session("dev", clean_start, 600, None).unwrap();
        assert_eq!(again.present, !clean_start);
        pass(60).await;
        assert_eq!(
            watcher.session.state.lock().queued(),
            0,
            "clean start {clean_start}: the will was cancelled (MQTT-3.1.2-8)"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_taken_over_connection_sends_its_will_only_if_its_session_ended_and_it_is_due() {
    let broker = Broker::new(BrokerConfig::default());
    let watcher = watcher(&broker);
    // (will delay, the new connection's clean start, wills expected)
    for (delay, clean_start, expected) in [(0, false, 0), (10, true, 0), (0, true, 1)] {
        let old = broker.open_session("dev", false, 600, None).unwrap();
        let new = broker.open_session("dev", clean_start, 600, None).unwrap();
        assert_eq!(new.present, !clean_start);
        broker.close_session(
            &old.session,
            old.generation,
            Some(ClosingWill {
                will: will(),
                delay,
            }),
        );
        pass(60).await;
        let mut state = watcher.session.state.lock();
        assert_eq!(
            state.queued(),
            expected,
            "will delay {delay}, clean start {clean_start}"
        );
        while state.pop_queued().is_some() {}
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_that_was_not_persistent_is_not_resumed_by_a_takeover() {
    let broker = Broker::new(BrokerConfig::default());
    let old = broker.open_session("dev", true, 0, None).unwrap();
    let options = SubscriptionOptions::default();
    broker.subscribe(&old.session, "x", options, None);
    let new = broker.open_session("dev", false, 600, None).unwrap();
    assert!(!new.present);
    assert!(!Arc::ptr_eq(&old.session, &new.session));
    assert!(old.session.state.lock().has_ended());
    assert!(new.session.state.lock().subscriptions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_session_that_reconnects_often_keeps_one_pending_deadline_and_still_expires() {
    let broker = Broker::new(BrokerConfig::default());
    for _ in 0..1000 {
        let dev = broker.open_session("dev", false, 3600, None).unwrap();
        broker.close_session(
            &dev.session,
            dev.generation,
            Some(ClosingWill {
                will: will(),
                delay: 60,
            }),
        );
    }
    assert_eq!(
        broker.pending_session_deadlines(),
        1,
        "one entry for the session, not one per disconnect"
    );
    let watcher = watcher(&broker);
    pass(61).await;
    assert_eq!(
        watcher.session.state.lock().queued(),
        1,
        "the last will, once"
    );
    assert_eq!(broker.session_count(), 2, "dev has not expired yet");
    pass(3600).await;
    assert_eq!(
        broker.session_count(),
        1,
        "dev expired; the watcher remains"
    );
    assert_eq!(broker.pending_session_deadlines(), 0);
    let dev = broker.open_session("dev", false, 3600, None).unwrap();
    assert!(!dev.present, "the expired session is gone");
}
