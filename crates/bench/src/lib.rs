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
//! connection's number for one user per connection.
//!
//! TODO (not implemented yet, no flag pretends otherwise): TLS connections (`--tls`, with a CA
//! file and optional client certificate) and token authentication (a JWT per connection,
//! signed HS256/RS256/ES256/EdDSA, sent as the password or in 5.0 enhanced authentication),
//! for the connect-rate comparisons the issue asks for once identity work has landed.
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod clock;
pub mod flow;
pub mod mux;
pub mod payload;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod seq;
pub mod stats;
