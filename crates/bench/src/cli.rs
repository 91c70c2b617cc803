//! Command-line interface: one subcommand per scenario, each with the common options.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tollgate_mqtt::{ProtocolVersion, QoS};

/// Load generator for MQTT brokers (any broker: Tollgate, Mosquitto, …).
#[derive(Debug, Parser)]
#[command(name = "tollgate-bench", version, about)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: ScenarioCmd,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum ScenarioCmd {
    /// Connect rate: loops of TCP connect → CONNECT → CONNACK → DISCONNECT → close.
    Connect(ConnectArgs),
    /// Point-to-point throughput: N publisher/subscriber pairs, one topic per pair.
    Pairs(PairsArgs),
    /// Fan-out: one publisher, N subscribers on its topic.
    FanOut(FanOutArgs),
    /// Fan-in: N publishers, one subscriber on their common topic.
    FanIn(FanInArgs),
    /// Latency percentiles at a fixed offered rate, over N pairs.
    Latency(LatencyArgs),
    /// Idle connections held open; with --broker-pid, the broker's memory per connection.
    Idle(IdleArgs),
    /// Fills a broker with state to restart it with: persistent sessions (each with one
    /// subscription) and retained messages.
    Fill(FillArgs),
    /// Waits for a (re)starting broker to serve the state `fill` left: from the probe's start
    /// to a CONNACK resuming the last session, and to the last retained message.
    Probe(ProbeArgs),
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Broker host (an address; loopback for benchmarks on one machine).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short, long)]
    pub port: u16,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long = "mqtt", default_value = "3.1.1", value_parser = parse_version)]
    pub version: ProtocolVersion,
    /// User name for every connection; `{i}` is replaced with the connection's number.
    #[arg(long)]
    pub username: Option<String>,
    /// Password for every connection; `{i}` is replaced with the connection's number.
    #[arg(long)]
    pub password: Option<String>,
    /// Log in by SCRAM (`SCRAM-SHA-256` or `SCRAM-SHA-512`, MQTT 5 enhanced authentication)
    /// with the user name and password instead of sending them in CONNECT.
    #[arg(long, requires_all = ["username", "password"])]
    pub scram: Option<String>,
    /// Log in by RFC 9431 `ace` (MQTT 5) with this token, answering the broker's challenge
    /// with the Ed25519 key of `--ace-key`.
    #[arg(long, requires = "ace_key", conflicts_with = "scram")]
    pub ace_token: Option<String>,
    /// The Ed25519 private key (PKCS#8 PEM) the `--ace-token` is bound to.
    #[arg(long, requires = "ace_token")]
    pub ace_key: Option<std::path::PathBuf>,
    /// Connect over TLS, trusting the CA certificates in this PEM file.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name the broker's TLS certificate must carry (with `--tls-ca`).
    #[arg(long, default_value = "localhost", requires = "tls_ca")]
    pub tls_server_name: String,
    /// Worker threads (and tasks) of the load generator; default: the number of CPUs.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Connections opened at once during setup.
    #[arg(long, default_value_t = 128)]
    pub setup_concurrency: usize,
    /// Seconds allowed for each CONNECT → CONNACK and SUBSCRIBE → SUBACK.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// The broker's process id: its CPU time (and RSS, for `idle`) is read from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// A name for the broker in the report.
    #[arg(long)]
    pub label: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Subscribers keep a persistent session (clean start 0; 5.0: session expiry one hour),
    /// so the broker keeps their messages as it would for devices that go offline (with
    /// persistence on: on disk).
    #[arg(long)]
    pub persistent_subscribers: bool,
}

/// Options of the message scenarios.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// QoS of publishes and subscriptions (0, 1 or 2).
    #[arg(long, default_value = "0", value_parser = parse_qos)]
    pub qos: QoS,
    /// Payload size in bytes (at least 20: publisher, sequence number, timestamp).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Messages per publisher in flight: unacknowledged (QoS 1/2) and, end to end, not yet
    /// delivered to its average subscriber.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds of publishing before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds without a new delivery after which the drain gives up on missing messages.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
}

/// `connect` options.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connect loops running at once.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds of connecting before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
}

/// `pairs` options.
#[derive(Debug, Clone, Args)]
pub struct PairsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub message: MessageArgs,
    /// Publisher/subscriber pairs.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
}

/// `fan-out` options.
#[derive(Debug, Clone, Args)]
pub struct FanOutArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub message: MessageArgs,
    /// Subscribers of the one publisher.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
}

/// `fan-in` options.
#[derive(Debug, Clone, Args)]
pub struct FanInArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub message: MessageArgs,
    /// Publishers to the one subscriber.
    #[arg(long, default_value_t = 100)]
    pub publishers: usize,
}

/// `latency` options.
#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub message: MessageArgs,
    /// Publisher/subscriber pairs.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// Offered rate: messages per second over all publishers.
    #[arg(long)]
    pub rate: f64,
    /// Fail the run when a publisher falls further than this behind its schedule (ms):
    /// the offered rate was not sustained.
    #[arg(long, default_value_t = 50.0)]
    pub max_lag_ms: f64,
}

/// `idle` options.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Seconds to wait after the last CONNACK before reading the broker's RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Seconds to keep the connections open after reading the RSS.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Keep alive asked for, seconds (0: none, so nothing is sent while idle).
    #[arg(long, default_value_t = 0)]
    pub keep_alive: u16,
}

/// The state `fill` leaves and `probe` looks for.
#[derive(Debug, Clone, Args)]
pub struct StateSize {
    /// Persistent sessions (client ids `fill-s0` …), each subscribed to its own topic at
    /// QoS 1; `probe` resumes the last one.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Retained messages (topics `fill/r/0` …), published at QoS 1; `probe` reads the last.
    #[arg(long, default_value_t = 1000)]
    pub retained: usize,
}

/// `fill` options.
#[derive(Debug, Clone, Args)]
pub struct FillArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub state: StateSize,
    /// Payload size of the retained messages, bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Connections working at once (session loops, retained publishers).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Retained publishes in flight per publisher.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
}

/// `probe` options.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub state: StateSize,
    /// Seconds to keep trying.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
}

/// Seconds as a [`Duration`], negative and non-finite values as zero.
pub fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s)
    } else {
        Duration::ZERO
    }
}

/// Parses `3.1`, `3.1.1`/`4` or `5`/`5.0`.
pub fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "3.1" | "3" => Ok(ProtocolVersion::V3_1),
        "3.1.1" | "4" => Ok(ProtocolVersion::V3_1_1),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err(format!("unknown MQTT version `{s}` (3.1, 3.1.1 or 5)")),
    }
}

/// The version as written on the command line.
pub fn version_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::V3_1 => "3.1",
        ProtocolVersion::V3_1_1 => "3.1.1",
        ProtocolVersion::V5 => "5",
    }
}

/// Parses a QoS: 0, 1 or 2.
pub fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from([
            "tollgate-bench",
            "pairs",
            "--port",
            "4000",
            "--mqtt",
            "5",
            "--qos",
            "2",
            "--pairs",
            "3",
        ])
        .unwrap();
        match cli.scenario {
            ScenarioCmd::Pairs(a) => {
                assert_eq!(a.common.port, 4000);
                assert_eq!(a.common.version, ProtocolVersion::V5);
                assert_eq!(a.message.qos, QoS::ExactlyOnce);
                assert_eq!(a.pairs, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["tollgate-bench", "pairs", "--port", "1", "--qos", "3"]).is_err()
        );
        assert!(Cli::try_parse_from(["tollgate-bench", "latency", "--port", "1"]).is_err());
    }

    #[test]
    fn durations_are_never_negative() {
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
    }
}
