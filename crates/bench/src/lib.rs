//! `tollgate-bench`: a load generator for MQTT brokers, written on tokio and Tollgate's own
//! codec (`tollgate-mqtt`).
//!
//! It drives any MQTT 3.1.1 or 5.0 broker on a TCP address and measures what users compare
//! brokers by: connect rate, point-to-point throughput at QoS 0, 1 and 2, fan-out 1 → N,
//! fan-in N → 1, latency percentiles at a fixed offered rate, and the broker's memory per
//! idle connection. Every message carries its publisher and sequence number, and every
//! delivery is counted, so loss, duplicates and reordering are reported beside the rate: a run
//! that loses messages at QoS 1 or 2 has failed, whatever its rate.
//!
//! Many connections share one task: each scenario's connections are futures multiplexed on a
//! few worker tasks ([`mux`]), one per runtime thread.
//!
//! Credentials: `--username`/`--password` for every connection, with `{i}` replaced by the
//! connection's number for one user per connection. A token travels as the password (the
//! comparison script signs one with openssl and passes it the same way to every connection).
//! With `--scram SCRAM-SHA-256` (or `-512`, MQTT 5) the user name and password log in by a
//! SCRAM exchange instead ([`scram`]); with `--ace-token T --ace-key PEM` by RFC 9431's
//! challenge with an Ed25519 proof-of-possession key ([`ace`]).
//!
//! TLS: `--tls-ca <PEM>` connects over TLS, trusting that CA, checking the broker's certificate
//! against `--tls-server-name` (default `localhost`). Client certificates are not offered.
#![warn(missing_docs)]

pub mod ace;
pub mod cli;
pub mod client;
pub mod clock;
pub mod flow;
pub mod mux;
pub mod payload;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod scram;
pub mod seq;
pub mod stats;
pub mod stream;
pub mod tls;
