//! What the broker acknowledged survives a crash: a real `tollgate serve` process with
//! `[persistence]` on, under QoS 1 and QoS 2 load, killed with SIGKILL at a random moment,
//! several times in a row. After every restart, every message the broker acknowledged
//! (PUBACK, PUBREC) reaches every persistent-session subscriber (online during the load or
//! offline), no QoS 2 message reaches a subscriber twice, the subscriptions and the retained
//! message are back.
//!
//! `TOLLGATE_CRASH_CYCLES` sets the number of kills (3 by default; `.ci/run` and the note use
//! more), `TOLLGATE_CRASH_MESSAGES` the most messages each of the two publishers sends per
//! cycle (1500), `TOLLGATE_CRASH_SEED` the random seed (printed, so a failure can be
//! replayed).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_mqtt::*;

/// Topics of the two publishers (QoS 1 and QoS 2).
const TOPICS: [(&str, QoS); 2] = [
    ("crash/q/1", QoS::AtLeastOnce),
    ("crash/q/2", QoS::ExactlyOnce),
];
const RETAINED: &str = "crash/retained";
/// Subscribers: client id, its QoS, whether it stays connected during the load.
const SUBSCRIBERS: [(&str, QoS, bool); 3] = [
    ("sub-online", QoS::ExactlyOnce, true),
    ("sub-offline-1", QoS::AtLeastOnce, false),
    ("sub-offline-2", QoS::ExactlyOnce, false),
];
/// How long a check waits for what it expects before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// A small deterministic random sequence (xorshift), seeded and printed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Broker {
    /// Starts `tollgate serve` with `config` and waits for its listener's address in its log.
    fn start(config: &Path) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tollgate starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the broker logs its listener before exiting")
                .unwrap();
            if line.contains("state restored") {
                eprintln!("{line}");
            }
            if let Some(at) = line.split("address=").nth(1) {
                let addr = at.split_whitespace().next().unwrap();
                break addr.parse().unwrap();
            }
        };
        // Keep draining the log so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Broker { child, addr }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        let _ = self.child.wait();
    }
}

/// A raw MQTT 5.0 client with QoS 2 receiver state that outlives its connections, as a real
/// device's does.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr, client_id: &str, clean_start: bool) -> (Client, bool) {
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).unwrap();
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
        };
        client
            .send(Packet::Connect(Box::new(Connect {
                protocol: ProtocolVersion::V5,
                clean_start,
                keep_alive: 60,
                client_id: client_id.into(),
                properties: ConnectProperties {
                    session_expiry_interval: Some(if clean_start { 0 } else { 3600 }),
                    receive_maximum: Some(100),
                    ..ConnectProperties::default()
                },
                ..Connect::default()
            })))
            .await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) if ack.reason_code == ReasonCode::SUCCESS => {
                (client, ack.session_present)
            }
            other => panic!("{client_id}: expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V5, &mut out).unwrap();
        let _ = self.stream.write_all(&out).await;
    }

    /// The next packet, or `None` once the connection is gone.
    async fn recv(&mut self) -> Option<Packet> {
        let decoder = Decoder {
            role: Role::Client,
            version: ProtocolVersion::V5,
            maximum_packet_size: u32::MAX,
        };
        loop {
            if let Some(packet) = decoder.decode(&mut self.buf).expect("well-formed") {
                return Some(packet);
            }
            match tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }
}

/// What one subscriber has been given, across every connection and restart.
#[derive(Default)]
struct Received {
    /// Messages delivered (payloads), with how many times.
    counts: HashMap<String, usize>,
    /// QoS 2 packet identifiers received and not yet released (the receiver's state).
    held: HashSet<u16>,
}

impl Received {
    /// Handles one packet from the broker as a QoS 2 receiver must: a PUBLISH whose
    /// identifier is held is a resend, not a new delivery. Returns the payload of a message
    /// it counted.
    async fn take(&mut self, client: &mut Client, packet: Packet) -> Option<String> {
        match packet {
            Packet::Publish(p) => {
                let payload = String::from_utf8(p.payload.to_vec()).unwrap();
                let counted = match (p.qos, p.packet_id) {
                    (QoS::ExactlyOnce, Some(id)) => {
                        let new = self.held.insert(id);
                        client
                            .send(Packet::PubRec(Ack {
                                packet_id: id,
                                ..Ack::default()
                            }))
                            .await;
                        new
                    }
                    (QoS::AtLeastOnce, Some(id)) => {
                        client
                            .send(Packet::PubAck(Ack {
                                packet_id: id,
                                ..Ack::default()
                            }))
                            .await;
                        true
                    }
                    _ => true,
                };
                if !counted {
                    return None;
                }
                *self.counts.entry(payload.clone()).or_default() += 1;
                Some(payload)
            }
            Packet::PubRel(rel) => {
                self.held.remove(&rel.packet_id);
                client
                    .send(Packet::PubComp(Ack {
                        packet_id: rel.packet_id,
                        ..Ack::default()
                    }))
                    .await;
                None
            }
            _ => None,
        }
    }
}

type Shared<T> = Arc<Mutex<T>>;

/// Publishes up to `count` numbered messages on `topic` until the broker goes, up to 16
/// unacknowledged; each acknowledged (PUBACK, or PUBREC without error) one is added to
/// `acked`. Then waits for the broker to go.
async fn publish_until_killed(
    addr: SocketAddr,
    client_id: String,
    (topic, qos): (&'static str, QoS),
    (first, count): (u64, u64),
    acked: Shared<BTreeSet<String>>,
) {
    let (mut client, _) = Client::connect(addr, &client_id, true).await;
    let mut in_flight: HashMap<u16, String> = HashMap::new();
    let mut n = first;
    loop {
        while in_flight.len() < 16 && n < first + count {
            n += 1;
            let id = (n % 60000) as u16 + 1;
            let payload = format!("{topic}#{n}");
            client
                .send(Packet::Publish(Publish {
                    qos,
                    topic: topic.into(),
                    packet_id: Some(id),
                    payload: Bytes::from(payload.clone()),
                    ..Publish::default()
                }))
                .await;
            in_flight.insert(id, payload);
        }
        match client.recv().await {
            Some(Packet::PubAck(ack)) if !ack.reason_code.is_error() => {
                if let Some(p) = in_flight.remove(&ack.packet_id) {
                    acked.lock().unwrap().insert(p);
                }
            }
            Some(Packet::PubRec(ack)) if !ack.reason_code.is_error() => {
                if let Some(p) = in_flight.remove(&ack.packet_id) {
                    acked.lock().unwrap().insert(p);
                }
                client
                    .send(Packet::PubRel(Ack {
                        packet_id: ack.packet_id,
                        ..Ack::default()
                    }))
                    .await;
            }
            Some(Packet::PubComp(_)) => {}
            Some(other) => panic!("publisher: unexpected {other:?}"),
            None => return,
        }
    }
}

/// Takes what the broker sends `client` until it goes.
async fn receive_until_killed(mut client: Client, received: Shared<Received>) {
    while let Some(packet) = client.recv().await {
        let mut r = std::mem::take(&mut *received.lock().unwrap());
        r.take(&mut client, packet).await;
        *received.lock().unwrap() = r;
    }
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("tollgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
sys_interval = 0
[[listener]]
bind = "127.0.0.1:0"
allow_anonymous = true
[limits]
max_queued_messages = 1000000
max_queued_bytes = 1073741824
[persistence]
path = "{}"
"#,
            dir.join("store").display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill_and_no_qos2_message_comes_twice() {
    let cycles: usize = std::env::var("TOLLGATE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("TOLLGATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let messages: u64 = std::env::var("TOLLGATE_CRASH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    eprintln!("crash test: {cycles} cycles, at most {messages} messages per publisher and cycle, TOLLGATE_CRASH_SEED={seed}");
    let mut random = Random(seed);
    let dir = std::env::temp_dir().join(format!("tollgate-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir);

    // The subscribers' persistent sessions are made once.
    let broker = Broker::start(&config);
    for (id, qos, _) in SUBSCRIBERS {
        let (mut client, _) = Client::connect(broker.addr, id, false).await;
        client
            .send(Packet::Subscribe(Subscribe {
                packet_id: 1,
                subscriptions: vec![Subscription {
                    filter: "crash/q/#".into(),
                    options: SubscriptionOptions {
                        qos,
                        ..SubscriptionOptions::default()
                    },
                }],
                properties: SubscribeProperties::default(),
            }))
            .await;
        assert!(matches!(client.recv().await, Some(Packet::SubAck(_))));
    }
    broker.kill();

    let acked: Shared<BTreeSet<String>> = Shared::default();
    let received: Vec<Shared<Received>> = SUBSCRIBERS.iter().map(|_| Shared::default()).collect();
    let mut retained_acked = 0u64;
    let mut acknowledged_total = 0;
    for cycle in 0..cycles {
        let broker = Broker::start(&config);
        let addr = broker.addr;
        // Load: the online subscriber reads, both publishers publish, a retained message
        // names the cycle; then SIGKILL at a random moment.
        let mut tasks = Vec::new();
        for ((id, _, online), received) in SUBSCRIBERS.iter().zip(&received) {
            if *online {
                let (client, present) = Client::connect(addr, id, false).await;
                assert!(present, "{id}'s session is back (cycle {cycle})");
                tasks.push(tokio::spawn(receive_until_killed(
                    client,
                    Arc::clone(received),
                )));
            }
        }
        for (i, publisher) in TOPICS.into_iter().enumerate() {
            tasks.push(tokio::spawn(publish_until_killed(
                addr,
                format!("pub-{i}-{cycle}"),
                publisher,
                (cycle as u64 * 1_000_000, messages),
                Arc::clone(&acked),
            )));
        }
        let (mut retainer, _) = Client::connect(addr, &format!("retainer-{cycle}"), true).await;
        retainer
            .send(Packet::Publish(Publish {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: RETAINED.into(),
                packet_id: Some(1),
                payload: Bytes::from(format!("{cycle}")),
                ..Publish::default()
            }))
            .await;
        if let Some(Packet::PubAck(_)) = retainer.recv().await {
            retained_acked = cycle as u64;
        }
        // A random moment: during the load, or after it.
        tokio::time::sleep(Duration::from_millis(20 + random.below(400))).await;
        broker.kill();
        for task in tasks {
            let _ = task.await;
        }

        // After the restart, every subscriber gets everything acknowledged so far.
        let broker = Broker::start(&config);
        let addr = broker.addr;
        let expected = acked.lock().unwrap().clone();
        acknowledged_total = expected.len();
        for ((id, qos, _), received) in SUBSCRIBERS.iter().zip(&received) {
            let (mut client, present) = Client::connect(addr, id, false).await;
            assert!(
                present,
                "{id}'s session is back after the kill (cycle {cycle})"
            );
            let mut r = std::mem::take(&mut *received.lock().unwrap());
            let mut missing: BTreeSet<&String> = expected
                .iter()
                .filter(|p| !r.counts.contains_key(*p))
                .collect();
            let deadline = tokio::time::Instant::now() + PATIENCE;
            while !missing.is_empty() {
                let packet = tokio::time::timeout_at(deadline, client.recv()).await;
                match packet {
                    Ok(Some(packet)) => {
                        if let Some(payload) = r.take(&mut client, packet).await {
                            missing.remove(&payload);
                        }
                    }
                    _ => {
                        let missing: Vec<_> = missing.iter().take(5).collect();
                        panic!(
                            "cycle {cycle}: {id} lacks {} of {} acknowledged messages, e.g. {missing:?} (TOLLGATE_CRASH_SEED={seed})",
                            missing.len(),
                            expected.len(),
                        );
                    }
                }
            }
            if *qos == QoS::ExactlyOnce {
                let twice: Vec<_> = r
                    .counts
                    .iter()
                    .filter(|(p, n)| p.starts_with(TOPICS[1].0) && **n > 1)
                    .collect();
                assert!(
                    twice.is_empty(),
                    "cycle {cycle}: {id} got QoS 2 messages more than once: {twice:?} (TOLLGATE_CRASH_SEED={seed})"
                );
            }
            *received.lock().unwrap() = r;
            client.send(Packet::Disconnect(Disconnect::default())).await;
        }
        // The retained message is the last acknowledged one, or a later one.
        let (mut reader, _) = Client::connect(addr, "retained-reader", true).await;
        reader
            .send(Packet::Subscribe(Subscribe {
                packet_id: 1,
                subscriptions: vec![Subscription {
                    filter: RETAINED.into(),
                    options: SubscriptionOptions::default(),
                }],
                properties: SubscribeProperties::default(),
            }))
            .await;
        let mut retained = None;
        while let Some(packet) = reader.recv().await {
            if let Packet::Publish(p) = packet {
                retained = Some(String::from_utf8(p.payload.to_vec()).unwrap());
                break;
            }
        }
        let retained: u64 = retained
            .expect("the retained message is back")
            .parse()
            .unwrap();
        assert!(
            retained >= retained_acked,
            "cycle {cycle}: retained {retained} is older than the acknowledged {retained_acked}"
        );
        broker.kill();
    }
    eprintln!(
        "crash test: {cycles} kills, {acknowledged_total} acknowledged messages, all delivered to {} subscribers, no QoS 2 duplicate",
        SUBSCRIBERS.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
