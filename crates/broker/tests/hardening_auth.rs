//! Attacks on authentication, scaled down: parallel guessing, a fleet locked out through a
//! shared user name, authentications and connections piling up, forged log lines. Each
//! asserts the bound, and that a well-behaved client on another address is served.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::sync::Semaphore;
use tollgate_auth::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, Identity,
};
use tollgate_auth::jwt::{JwtConfig, TokenClaimsConfig};
use tollgate_broker::{AuthenticatorConfig, BrokerConfig, Extensions, PasswordFileConfig, Server};
use tollgate_mqtt::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const FIXTURE: &str = include_str!("../../auth/tests/fixtures/mosquitto_passwd.txt");

fn password_file(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tollgate-hardening-{tag}-{}.passwd",
        std::process::id()
    ));
    std::fs::write(&path, FIXTURE).unwrap();
    path
}

fn with_password_file(config: &mut BrokerConfig, path: std::path::PathBuf) {
    config.listeners[0].allow_anonymous = false;
    config.authenticators = vec![AuthenticatorConfig {
        name: "users".into(),
        password_file: Some(PasswordFileConfig {
            path,
            reload_interval: Duration::from_secs(0),
            max_parallel_hashes: 2,
            key: Default::default(),
        }),
        ..Default::default()
    }];
}

fn credentials(client_id: &str, user: &str, password: &str) -> Connect {
    let mut c = connect_packet(V5, client_id);
    c.username = Some(user.into());
    c.password = Some(password.to_owned().into_bytes().into());
    c
}

async fn connack_from(addr: std::net::SocketAddr, from: &str, connect: Connect) -> ReasonCode {
    let mut client = TestClient::open_from(addr, from, V5).await;
    client.send(Packet::Connect(Box::new(connect))).await;
    match client.try_recv().await {
        Some(Packet::ConnAck(ack)) => ack.reason_code,
        None => ReasonCode::UNSPECIFIED_ERROR,
        Some(other) => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn parallel_wrong_passwords_are_throttled_as_they_arrive_and_a_good_user_gets_in() {
    let path = password_file("parallel");
    let (_server, addr) = start_broker(|c| with_password_file(c, path.clone())).await;
    let mut attempts = Vec::new();
    for i in 0..60 {
        attempts.push(tokio::spawn(connack_from(
            addr,
            "127.0.0.1",
            credentials(&format!("guess{i}"), "alice", "wrong"),
        )));
    }
    let mut checked = 0;
    let mut throttled = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            ReasonCode::BAD_USER_NAME_OR_PASSWORD => checked += 1,
            ReasonCode::CONNECTION_RATE_EXCEEDED | ReasonCode::BANNED => throttled += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The user name's three free failures are the parallel guesses that get checked, and one
    // more if those three were already answered when it arrived (past the free failures,
    // one attempt at a time; its failure starts the backoff that refuses the rest).
    assert!(
        (3..=4).contains(&checked),
        "checked {checked}, throttled {throttled}"
    );
    assert_eq!(checked + throttled, 60);
    // bob, from another address, with the right password.
    assert_eq!(
        connack_from(
            addr,
            "127.0.0.2",
            credentials("bob-phone", "bob", "p@ss w0rd")
        )
        .await,
        ReasonCode::SUCCESS
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_shared_marker_user_name_is_never_throttled_so_a_fleet_cannot_be_locked_out() {
    const SECRET: &str = "shared-hs256-secret";
    let (_server, addr) = start_broker(|c| {
        c.listeners[0].allow_anonymous = false;
        c.authenticators = vec![AuthenticatorConfig {
            name: "auth0".into(),
            jwt: Some(JwtConfig {
                algorithms: vec!["HS256".into()],
                secret: Some(SECRET.into()),
                claims: TokenClaimsConfig {
                    username_marker: Some("JWT".into()),
                    ..TokenClaimsConfig::default()
                },
                ..JwtConfig::default()
            }),
            ..Default::default()
        }];
    })
    .await;
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "x", "exp": 4_000_000_000u64}),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    for i in 0..6 {
        assert_eq!(
            connack_from(
                addr,
                "127.0.0.1",
                credentials(&format!("bad{i}"), "JWT", &forged)
            )
            .await,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD
        );
    }
    let good = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "device-7", "exp": 4_000_000_000u64}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    for from in ["127.0.0.2", "127.0.0.1"] {
        assert_eq!(
            connack_from(addr, from, credentials("device-7", "JWT", &good)).await,
            ReasonCode::SUCCESS,
            "a device with a valid token from {from}"
        );
    }
}

/// An authenticator that answers only when the test lets it, and says who has arrived.
struct Gate {
    open: Arc<Semaphore>,
    arrived: Arc<Semaphore>,
}

impl Authenticator for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn authenticate<'a>(
        &'a self,
        _: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            self.arrived.add_permits(1);
            let _permit = self.open.acquire().await.expect("open");
            Ok(AuthOutcome::Allow(Identity::default()))
        })
    }
}

#[tokio::test]
async fn authentications_waiting_are_bounded_per_address_and_per_listener() {
    let open = Arc::new(Semaphore::new(0));
    let arrived = Arc::new(Semaphore::new(0));
    let mut config = BrokerConfig {
        listeners: vec![tollgate_broker::ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            max_pending_authentications_per_address: 2,
            max_pending_authentications: 3,
            ..Default::default()
        }],
        sys_interval: Duration::from_secs(0),
        ..BrokerConfig::default()
    };
    config.throttle.enabled = false;
    let gate = Gate {
        open: open.clone(),
        arrived: arrived.clone(),
    };
    let server = Server::start_with(
        config,
        Extensions {
            authenticators: vec![Arc::new(gate)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    let waiting = |from: &'static str, id: &str| {
        let connect = credentials(id, "u", "p");
        tokio::spawn(connack_from(addr, from, connect))
    };
    let first = waiting("127.0.0.1", "a1");
    let second = waiting("127.0.0.1", "a2");
    arrived.acquire_many(2).await.unwrap().forget();
    assert_eq!(
        connack_from(addr, "127.0.0.1", credentials("a3", "u", "p")).await,
        ReasonCode::SERVER_BUSY,
        "the address has two waiting"
    );
    let other = waiting("127.0.0.2", "b1");
    arrived.acquire().await.unwrap().forget();
    assert_eq!(
        connack_from(addr, "127.0.0.3", credentials("c1", "u", "p")).await,
        ReasonCode::SERVER_BUSY,
        "the listener has three waiting"
    );
    open.add_permits(100);
    for task in [first, second, other] {
        assert_eq!(task.await.unwrap(), ReasonCode::SUCCESS);
    }
    // Once they are done, new ones are taken again.
    assert_eq!(
        connack_from(addr, "127.0.0.1", credentials("a4", "u", "p")).await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn connections_are_bounded_per_address_before_anything_is_read() {
    let (server, addr) = start_broker(|c| c.listeners[0].max_connections_per_address = 3).await;
    let mut kept = Vec::new();
    for i in 0..3 {
        kept.push(TestClient::connect(addr, V5, &format!("c{i}")).await);
    }
    let mut fourth = TestClient::open(addr, V5).await;
    fourth
        .send(Packet::Connect(Box::new(connect_packet(V5, "c4"))))
        .await;
    assert!(
        fourth.try_recv().await.is_none(),
        "closed without a CONNACK"
    );
    assert!(
        server
            .broker()
            .memory
            .count(tollgate_broker::memory::Overload::ConnectionLimited)
            >= 1
    );
    assert_served(addr).await;
    drop(kept);
}

#[tokio::test]
async fn a_burst_of_connections_beyond_the_rate_is_closed() {
    let (_server, addr) = start_broker(|c| c.listeners[0].max_connection_rate = 5).await;
    let mut refused = 0;
    let mut kept = Vec::new();
    for _ in 0..20 {
        let mut c = TestClient::open(addr, V5).await;
        c.send(Packet::Connect(Box::new(connect_packet(V5, ""))))
            .await;
        match c.try_recv().await {
            Some(Packet::ConnAck(ack)) => {
                assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
                kept.push(c);
            }
            None => refused += 1,
            Some(other) => panic!("{other:?}"),
        }
    }
    assert!(refused >= 10, "{refused} of 20 refused at 5 per second");
}

#[tokio::test]
async fn one_address_flooding_connections_is_held_to_its_own_rate_and_others_get_in() {
    let (_server, addr) = start_broker(|c| {
        c.listeners[0].max_connection_rate_per_address = 5;
        c.listeners[0].max_connection_rate = 50;
    })
    .await;
    let mut refused = 0;
    for _ in 0..60 {
        let mut c = TestClient::open_from(addr, "127.0.0.1", V5).await;
        c.send(Packet::Connect(Box::new(connect_packet(V5, ""))))
            .await;
        if c.try_recv().await.is_none() {
            refused += 1;
        }
    }
    assert!(refused >= 50, "{refused} of 60 refused at 5 per second");
    // The listener's own rate (50) was not used up by the refused ones.
    assert_served(addr).await;
}
