//! Accepting connections on one listener: the listening socket, the connection rate (in all
//! and per address) and the connection count checked before anything is spent on a new
//! connection, and the wait for every connection to close at shutdown.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use tollgate_auth::authentication::AddressKey;

use crate::broker::Broker;
use crate::driver::run_connection;
use crate::listener::Listener;
use crate::memory::Overload;

/// A listening socket on `bind` with a listen backlog of `backlog`.
pub(crate) fn listen(bind: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if bind.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    socket.listen(backlog.max(1))
}

/// New connections allowed per second, as a bucket of tokens refilled continuously (a burst
/// of one second's worth is allowed).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_second: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: per_second,
            at: now,
        }
    }

    /// Takes a token if there is one at `now`.
    fn take(&mut self, per_second: f64, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(per_second);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Most addresses whose connection rate is tracked at once.
const RATE_TRACKED_ADDRESSES: usize = 100_000;

/// The connection rate of a listener, in all and per address (IPv6: per /64), so that one
/// address flooding the listener is held to its own rate and leaves the rest to others.
struct ConnectionRate {
    per_second: f64,
    per_address: f64,
    listener: Bucket,
    addresses: HashMap<AddressKey, Bucket>,
}

impl ConnectionRate {
    fn new(per_second: u32, per_address: u32) -> ConnectionRate {
        let now = Instant::now();
        ConnectionRate {
            per_second: f64::from(per_second),
            per_address: f64::from(per_address),
            listener: Bucket::full(f64::from(per_second), now),
            addresses: HashMap::new(),
        }
    }

    /// The rates it was made with: in all, per address.
    fn settings(&self) -> (u32, u32) {
        (self.per_second as u32, self.per_address as u32)
    }

    /// Whether one more connection from `address` may be accepted now.
    fn admit(&mut self, address: std::net::IpAddr) -> bool {
        let now = Instant::now();
        if self.per_address > 0.0 {
            let key = AddressKey::of(address);
            if self.addresses.len() >= RATE_TRACKED_ADDRESSES && !self.addresses.contains_key(&key)
            {
                // Forget the addresses whose bucket has refilled: they are as good as new.
                let per_address = self.per_address;
                self.addresses.retain(|_, b| {
                    b.tokens + now.duration_since(b.at).as_secs_f64() * per_address < per_address
                });
            }
            let per_address = self.per_address;
            let bucket = self
                .addresses
                .entry(key)
                .or_insert_with(|| Bucket::full(per_address, now));
            if !bucket.take(per_address, now) {
                return false;
            }
        }
        self.per_second <= 0.0 || self.listener.take(self.per_second, now)
    }
}

/// Accepts connections on `listener` until `shutdown`, each one admitted by the listener's
/// connection limits and rate and then run as its own task; returns once every connection
/// it accepted has ended.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: Arc<Listener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rate = ConnectionRate::new(0, 0);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let policy = config.policy();
                    let rates = (policy.config.max_connection_rate, policy.config.max_connection_rate_per_address);
                    if rate.settings() != rates {
                        rate = ConnectionRate::new(rates.0, rates.1);
                    }
                    // Limits apply before anything else is spent on the connection (no TLS
                    // handshake, no task): a refused one is simply closed.
                    // The address's own limit first: an address at its cap does not use up
                    // the listener's rate for everyone else.
                    let Ok(held) = config.connections.try_hold(peer.ip()) else {
                        broker.memory.record(Overload::ConnectionLimited);
                        continue;
                    };
                    if !rate.admit(peer.ip()) {
                        broker.memory.record(Overload::ConnectionLimited);
                        continue;
                    }
                    if policy.config.tcp_nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    // Spawned as it is, with no async block around it: a wrapper would store
                    // what it captures a second time in every connection's task.
                    tokio::spawn(run_connection(
                        stream,
                        peer,
                        Arc::clone(&broker),
                        Arc::clone(&config),
                        held,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    // Wait for every connection to finish closing: each task holds its place in the
    // listener's connection count until it ends.
    config.connections.none_held().await;
}
