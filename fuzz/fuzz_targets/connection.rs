//! Drives whole connections over one shared broker state: arbitrary sequences of CONNECT
//! (with wills, credentials, session expiry, maximum packet size), SUBSCRIBE, UNSUBSCRIBE,
//! PUBLISH (aliases, retain, expiry), acknowledgements, AUTH, DISCONNECT, raw bytes, timers,
//! deliveries and dropped sockets, on a few connections at once, through the same calls the
//! connection driver makes. Nothing may panic, and the memory budget's account never goes
//! below zero (a release without its charge would wrap it around).
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use tollgate_broker::connection::{Close, Connection};
use tollgate_broker::listener::Listener;
use tollgate_broker::{Broker, BrokerConfig, Extensions, ListenerConfig, Server};
use tollgate_mqtt::*;

const TOPICS: [&str; 12] = [
    "a", "a/b", "a/b/c", "b", "/", "a//b", "$SYS/x", "x/y/z/w/v/u/t/s/r", "c/d", "a/b/c/d",
    "q", "long/topic/name/with/levels",
];
const FILTERS: [&str; 14] = [
    "a", "a/b", "+/b", "#", "a/#", "+", "+/+/+", "$SYS/#", "$share/g/a/#", "$share/g/#",
    "x/+/z/#", "/", "a/b/c/d/e/f/g/h/i/j", "q",
];
const CLIENTS: [&str; 4] = ["c0", "c1", "c2", ""];

#[derive(Arbitrary, Debug)]
struct WillSpec {
    topic: u8,
    qos: u8,
    retain: bool,
    delay: Option<u8>,
    payload: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open,
    Connect {
        version: u8,
        client: u8,
        clean: bool,
        expiry: Option<u16>,
        will: Option<WillSpec>,
        username: Option<u8>,
        max_packet: Option<u16>,
        receive_max: Option<u8>,
        alias_max: Option<u8>,
    },
    Subscribe {
        packet_id: u16,
        filters: Vec<(u8, u8, u8, bool)>,
        id: Option<u8>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<u8>,
    },
    Publish {
        topic: u8,
        qos: u8,
        retain: bool,
        payload: u16,
        alias: Option<u8>,
        packet_id: u16,
        expiry: Option<u8>,
    },
    Ack {
        kind: u8,
        packet_id: u16,
        reason: u8,
    },
    Auth {
        reason: u8,
        method: bool,
    },
    Raw(Vec<u8>),
    Ping,
    Disconnect {
        reason: u8,
        expiry: Option<u8>,
    },
    Deliver,
    Tick(u16),
    Drop,
}

#[derive(Arbitrary, Debug)]
struct Step {
    slot: u8,
    op: Op,
}

/// One connection of the harness: the state machine and the bytes it has not decoded yet.
struct Slot {
    conn: Connection,
    inbound: BytesMut,
    version: ProtocolVersion,
}

fn config() -> BrokerConfig {
    let mut config = BrokerConfig {
        listeners: vec![ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            allow_anonymous: true,
            ..ListenerConfig::default()
        }],
        sys_interval: std::time::Duration::ZERO,
        ..BrokerConfig::default()
    };
    let l = &mut config.limits;
    l.max_queued_messages = 8;
    l.max_queued_bytes = 8 * 1024;
    l.max_retained_messages = 16;
    l.max_retained_bytes = 16 * 1024;
    l.max_memory = 1024 * 1024;
    l.max_topic_levels = 8;
    l.max_filters_per_subscribe = 8;
    l.max_subscriptions_per_session = 16;
    l.max_inflight_messages = 4;
    l.receive_maximum = 4;
    l.topic_alias_maximum = 4;
    l.max_packet_size = 64 * 1024;
    config
}

fn packet_for(op: &Op, version: ProtocolVersion) -> Option<(Packet, ProtocolVersion)> {
    let packet = match op {
        Op::Connect {
            version: v,
            client,
            clean,
            expiry,
            will,
            username,
            max_packet,
            receive_max,
            alias_max,
        } => {
            let protocol = match v % 3 {
                0 => ProtocolVersion::V3_1,
                1 => ProtocolVersion::V3_1_1,
                _ => ProtocolVersion::V5,
            };
            let mut connect = Connect {
                protocol,
                clean_start: *clean,
                keep_alive: 30,
                client_id: CLIENTS[*client as usize % CLIENTS.len()].into(),
                username: username.map(|u| format!("user{}", u % 3)),
                password: username.map(|_| Bytes::from_static(b"pw")),
                ..Connect::default()
            };
            if protocol.is_v5() {
                connect.properties.session_expiry_interval = expiry.map(u32::from);
                connect.properties.maximum_packet_size =
                    max_packet.map(|m| u32::from(m).max(1));
                connect.properties.receive_maximum = receive_max.map(|r| u16::from(r).max(1));
                connect.properties.topic_alias_maximum = alias_max.map(u16::from);
            }
            connect.will = will.as_ref().map(|w| Will {
                topic: TOPICS[w.topic as usize % TOPICS.len()].into(),
                payload: Bytes::from(vec![b'w'; w.payload as usize]),
                qos: QoS::from_u8(w.qos % 3).unwrap(),
                retain: w.retain,
                properties: WillProperties {
                    will_delay_interval: w.delay.filter(|_| protocol.is_v5()).map(u32::from),
                    ..WillProperties::default()
                },
            });
            return Some((Packet::Connect(Box::new(connect)), protocol));
        }
        Op::Subscribe {
            packet_id,
            filters,
            id,
        } => Packet::Subscribe(Subscribe {
            packet_id: (*packet_id).max(1),
            properties: SubscribeProperties {
                subscription_identifier: id
                    .filter(|_| version.is_v5())
                    .map(|i| u32::from(i).max(1)),
                ..Default::default()
            },
            subscriptions: filters
                .iter()
                .take(20)
                .map(|(f, qos, handling, no_local)| Subscription {
                    filter: FILTERS[*f as usize % FILTERS.len()].into(),
                    options: SubscriptionOptions {
                        qos: QoS::from_u8(qos % 3).unwrap(),
                        no_local: *no_local && version.is_v5(),
                        retain_as_published: false,
                        retain_handling: match handling % 3 {
                            0 => RetainHandling::SendAtSubscribe,
                            1 => RetainHandling::SendIfNew,
                            _ => RetainHandling::DoNotSend,
                        },
                    },
                })
                .collect(),
        }),
        Op::Unsubscribe { packet_id, filters } => Packet::Unsubscribe(Unsubscribe {
            packet_id: (*packet_id).max(1),
            user_properties: Vec::new(),
            filters: filters
                .iter()
                .take(20)
                .map(|f| FILTERS[*f as usize % FILTERS.len()].into())
                .collect(),
        }),
        Op::Publish {
            topic,
            qos,
            retain,
            payload,
            alias,
            packet_id,
            expiry,
        } => {
            let qos = QoS::from_u8(qos % 3).unwrap();
            let mut properties = PublishProperties::default();
            if version.is_v5() {
                properties.topic_alias = alias.map(|a| u16::from(a % 6));
                properties.message_expiry_interval = expiry.map(u32::from);
            }
            Packet::Publish(Publish {
                dup: false,
                qos,
                retain: *retain,
                topic: TOPICS[*topic as usize % TOPICS.len()].into(),
                packet_id: (qos != QoS::AtMostOnce).then_some((*packet_id).max(1)),
                properties,
                payload: Bytes::from(vec![b'p'; (*payload as usize) % 4096]),
            })
        }
        Op::Ack {
            kind,
            packet_id,
            reason,
        } => {
            let ack = Ack {
                packet_id: (*packet_id % 8).max(1),
                reason_code: if version.is_v5() && reason % 4 == 0 {
                    ReasonCode::UNSPECIFIED_ERROR
                } else {
                    ReasonCode::SUCCESS
                },
                properties: Default::default(),
            };
            match kind % 4 {
                0 => Packet::PubAck(ack),
                1 => Packet::PubRec(ack),
                2 => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        }
        Op::Auth { reason, method } if version.is_v5() => Packet::Auth(Auth {
            reason_code: if reason % 2 == 0 {
                ReasonCode::REAUTHENTICATE
            } else {
                ReasonCode::CONTINUE_AUTHENTICATION
            },
            properties: AuthProperties {
                authentication_method: method.then(|| "m".to_owned()),
                ..Default::default()
            },
        }),
        Op::Ping => Packet::PingReq,
        Op::Disconnect { reason, expiry } => Packet::Disconnect(Disconnect {
            reason_code: if reason % 2 == 0 {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::DISCONNECT_WITH_WILL
            },
            properties: DisconnectProperties {
                session_expiry_interval: expiry.filter(|_| version.is_v5()).map(u32::from),
                ..Default::default()
            },
        }),
        _ => return None,
    };
    Some((packet, version))
}

/// Hands the slot's buffered bytes to its connection as the driver does; runs the
/// authentication chain when the connection asks. `Err` when the connection closed.
async fn process(slot: &mut Slot, listener: &Listener, now: Instant) -> Result<(), Close> {
    slot.conn.check_first_packet(&slot.inbound)?;
    loop {
        if let Some(request) = slot.conn.take_auth_request() {
            let decision = if slot.conn.is_reauthenticating() {
                listener.policy().chain.recheck(&request).await
            } else {
                listener.policy().chain.authenticate(&request).await
            };
            slot.conn.finish_authentication(decision, now)?;
        }
        if slot.conn.input_waits(&slot.inbound) {
            return Ok(());
        }
        match slot.conn.decoder().decode(&mut slot.inbound) {
            Ok(Some(packet)) => slot.conn.handle(packet, now)?,
            Ok(None) => return Ok(()),
            Err(error) => return Err(slot.conn.decode_failed(&error)),
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let config = config();
        let prepared = Server::prepare(config.clone(), Extensions::default()).unwrap();
        let listener = Arc::clone(prepared.listener(None).unwrap());
        let broker = Broker::new(config);
        let start = Instant::now();
        let mut clock = start;
        let mut slots: [Option<Slot>; 3] = [None, None, None];
        for (n, step) in steps.into_iter().take(200).enumerate() {
            let peer: SocketAddr = format!("127.0.0.{}:{}", step.slot % 3 + 1, 1000 + n)
                .parse()
                .unwrap();
            let index = step.slot as usize % slots.len();
            if matches!(step.op, Op::Open) || slots[index].is_none() {
                if let Some(old) = slots[index].take() {
                    let mut conn = old.conn;
                    conn.closed(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR));
                }
                slots[index] = Some(Slot {
                    conn: Connection::new(
                        Arc::clone(&broker),
                        Arc::clone(&listener),
                        peer,
                        None,
                        clock,
                    ),
                    inbound: BytesMut::new(),
                    version: ProtocolVersion::V3_1_1,
                });
                if matches!(step.op, Op::Open) {
                    continue;
                }
            }
            let slot = slots[index].as_mut().unwrap();
            let outcome = match &step.op {
                Op::Open => Ok(()),
                Op::Raw(bytes) => {
                    slot.inbound.extend_from_slice(&bytes[..bytes.len().min(4096)]);
                    process(slot, &listener, clock).await
                }
                Op::Deliver => slot.conn.pull_deliveries(clock),
                Op::Tick(seconds) => {
                    clock += Duration::from_secs(u64::from(*seconds % 120));
                    slot.conn.on_timer(clock)
                }
                Op::Drop => Err(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR)),
                op => match packet_for(op, slot.version) {
                    Some((packet, version)) => {
                        if matches!(packet, Packet::Connect(_)) {
                            slot.version = version;
                        }
                        let mut bytes = BytesMut::new();
                        if encode(&packet, version, &mut bytes).is_ok() {
                            slot.inbound.extend_from_slice(&bytes);
                        }
                        process(slot, &listener, clock).await
                    }
                    None => Ok(()),
                },
            };
            // What the connection wrote is taken by the socket.
            slot.conn.out.clear();
            if let Err(close) = outcome {
                let mut slot = slots[index].take().unwrap();
                slot.conn.closed(close);
            }
            assert!(
                broker.memory.used() < 1 << 40,
                "the memory account went below zero"
            );
        }
        for slot in slots.iter_mut() {
            if let Some(slot) = slot.take() {
                let mut conn = slot.conn;
                conn.closed(Close::abnormal(ReasonCode::UNSPECIFIED_ERROR));
            }
        }
        assert!(broker.memory.used() < 1 << 40);
    });
});
