//! An embedder's event hooks see what happens, in order: connections, publishes, deliveries,
//! audited denials and disconnections, with the clients and topics they concern; a hook that
//! panics harms neither the connection nor the other hooks.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use tollgate_auth::audit::{Action, AuditEvent};
use tollgate_broker::{Event, EventHook, Extensions, Server};
use tollgate_mqtt::*;

/// What a hook saw, owned, in a form a test can compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected(String, Option<String>, bool),
    Published(String, String, QoS, Vec<u8>),
    Delivered(String, String, QoS),
    Denied(String, Action, String),
    Disconnected(String, ReasonCode, bool),
}

/// Sends what it sees down a channel (quick, never blocking, as a hook must be).
struct Recording(mpsc::UnboundedSender<Seen>);

impl EventHook for Recording {
    fn on_event(&self, event: &Event<'_>) {
        let seen = match *event {
            Event::Connected {
                client_id,
                username,
                session_present,
                ..
            } => Seen::Connected(client_id.into(), username.map(Into::into), session_present),
            Event::Published {
                client_id,
                topic,
                qos,
                payload,
                ..
            } => Seen::Published(client_id.into(), topic.into(), qos, payload.to_vec()),
            Event::Delivered {
                client_id,
                topic,
                qos,
            } => Seen::Delivered(client_id.into(), topic.into(), qos),
            Event::Audit(AuditEvent::Denied {
                client_id,
                action,
                topic,
                ..
            }) => Seen::Denied((*client_id).into(), *action, (*topic).into()),
            Event::Disconnected {
                client_id,
                reason,
                by_client,
            } => Seen::Disconnected(client_id.into(), reason, by_client),
            Event::Audit(_) => return,
        };
        let _ = self.0.send(seen);
    }
}

/// A broker on a free port telling `hooks` of what happens, and its address.
async fn start_with(hooks: Vec<Arc<dyn EventHook>>) -> (Server, std::net::SocketAddr) {
    let server = Server::start_with(
        anonymous_config(),
        Extensions {
            hooks,
            ..Extensions::default()
        },
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

async fn next(events: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    // The bound only keeps a broken broker from hanging the test; the event is awaited.
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the hook is alive")
}

#[tokio::test]
async fn hooks_see_connections_publishes_deliveries_denials_and_disconnections() {
    let (sender, mut events) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(vec![Arc::new(Recording(sender))]).await;
    let v5 = ProtocolVersion::V5;

    let mut subscriber = TestClient::connect(addr, v5, "sub").await;
    assert_eq!(
        next(&mut events).await,
        Seen::Connected("sub".into(), None, false)
    );
    subscriber.subscribe(1, "a/b", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::connect(addr, v5, "pub").await;
    assert_eq!(
        next(&mut events).await,
        Seen::Connected("pub".into(), None, false)
    );

    let acked = publisher
        .publish("a/b", b"hello", QoS::AtLeastOnce, false, 7)
        .await;
    assert_eq!(acked, ReasonCode::SUCCESS);
    assert_eq!(subscriber.recv_publish().await.payload.as_ref(), b"hello");
    assert_eq!(
        next(&mut events).await,
        Seen::Published(
            "pub".into(),
            "a/b".into(),
            QoS::AtLeastOnce,
            b"hello".to_vec()
        )
    );
    assert_eq!(
        next(&mut events).await,
        Seen::Delivered("sub".into(), "a/b".into(), QoS::AtLeastOnce)
    );

    // `$SYS` is read-only: the denial is audited, and the hook sees it typed.
    let refused = publisher
        .publish("$SYS/forged", b"x", QoS::AtLeastOnce, false, 8)
        .await;
    assert_eq!(refused, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(
        next(&mut events).await,
        Seen::Denied("pub".into(), Action::Publish, "$SYS/forged".into())
    );

    publisher.disconnect().await;
    assert_eq!(
        next(&mut events).await,
        Seen::Disconnected("pub".into(), ReasonCode::SUCCESS, true)
    );
    drop(subscriber);
    assert_eq!(
        next(&mut events).await,
        Seen::Disconnected("sub".into(), ReasonCode::UNSPECIFIED_ERROR, false)
    );
}

/// Panics at every event.
struct Panicking;

impl EventHook for Panicking {
    fn on_event(&self, _: &Event<'_>) {
        panic!("a broken hook");
    }
}

#[tokio::test]
async fn a_hook_that_panics_neither_ends_the_connection_nor_silences_the_other_hooks() {
    let (sender, mut events) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(vec![Arc::new(Panicking), Arc::new(Recording(sender))]).await;
    let mut client = TestClient::connect(addr, ProtocolVersion::V5, "c").await;
    assert_eq!(
        next(&mut events).await,
        Seen::Connected("c".into(), None, false)
    );
    client.subscribe(1, "t", QoS::AtLeastOnce).await;
    let acked = client.publish("t", b"on", QoS::AtLeastOnce, false, 2).await;
    assert_eq!(acked, ReasonCode::SUCCESS);
    assert_eq!(client.recv_publish().await.payload.as_ref(), b"on");
}
