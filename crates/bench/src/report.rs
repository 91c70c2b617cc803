//! What a run reports, as a table for people and as JSON for scripts.

use std::fmt::Write as _;

use serde::Serialize;

use crate::seq::Tally;
use crate::stats::LatencySummary;

/// The outcome of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name (`connect`, `pairs`, `fan-out`, `fan-in`, `latency`, `idle`).
    pub scenario: String,
    /// A label for the broker, as given with `--label`.
    pub label: Option<String>,
    /// The broker's address.
    pub target: String,
    /// MQTT version used (`3.1.1` or `5`).
    pub mqtt: String,
    /// Whether the run succeeded: no errors, and at QoS 1/2 no loss, duplicates or reordering.
    pub ok: bool,
    /// Why it did not, one line each.
    pub failures: Vec<String>,
    /// The scenario's parameters, for the record (a JSON object, in the order given).
    #[serde(serialize_with = "as_map")]
    pub params: Vec<(String, String)>,
    /// Message scenarios: rates and delivery accounting.
    pub messages: Option<MessageStats>,
    /// Latency scenario: percentiles over the measured window.
    pub latency: Option<LatencySummary>,
    /// Connect scenario.
    pub connect: Option<ConnectStats>,
    /// Idle scenario.
    pub idle: Option<IdleStats>,
    /// Fill and probe scenarios.
    pub state: Option<StateStats>,
    /// Broker CPU over the measured window, when `--broker-pid` was given.
    pub broker_cpu: Option<CpuStats>,
    /// The load generator's own CPU seconds over the measured window: beside the broker's,
    /// it tells which of the two saturated the machine.
    pub generator_cpu_seconds: Option<f64>,
}

/// Rates and delivery accounting of a message scenario.
#[derive(Debug, Clone, Serialize)]
pub struct MessageStats {
    /// QoS of publishes and subscriptions.
    pub qos: u8,
    /// Seconds measured.
    pub window_secs: f64,
    /// Messages published per second in the window.
    pub publish_rate: f64,
    /// Deliveries received per second in the window (the throughput).
    pub delivery_rate: f64,
    /// Deliveries received in the window.
    pub window_deliveries: u64,
    /// Messages published over the whole run.
    pub published: u64,
    /// QoS 1/2 publishes acknowledged with success.
    pub acknowledged: u64,
    /// QoS 1/2 publishes the broker acknowledged with an error reason code (5.0).
    pub rejected: u64,
    /// QoS 1/2 publishes never acknowledged.
    pub unacknowledged: u64,
    /// Deliveries over the whole run, counted against what was published.
    pub tally: Tally,
    /// Deliveries from no known publisher, or without a readable payload.
    pub stray: u64,
    /// Latency scenario: the offered rate asked for, messages per second.
    pub offered_rate: Option<f64>,
    /// Latency scenario: the furthest publishers fell behind their schedule, milliseconds.
    pub max_send_lag_ms: Option<f64>,
}

/// Connect-rate results.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectStats {
    /// Seconds measured.
    pub window_secs: f64,
    /// Whole CONNECT → CONNACK → DISCONNECT cycles completed in the window.
    pub cycles: u64,
    /// Cycles per second.
    pub rate: f64,
    /// Cycles completed over the whole run, warm-up included.
    pub total_cycles: u64,
    /// Cycles that failed over the whole run.
    pub failed: u64,
}

/// Idle-connection results.
#[derive(Debug, Clone, Serialize)]
pub struct IdleStats {
    /// Connections asked for.
    pub requested: u64,
    /// Connections held open (CONNACK received).
    pub connected: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Seconds to open them all.
    pub connect_secs: f64,
    /// Broker RSS before connecting, KiB.
    pub rss_before_kib: Option<u64>,
    /// Broker RSS with every connection open, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after − before) / connected, KiB.
    pub kib_per_connection: Option<f64>,
}

/// What `fill` left, or how long `probe` waited for it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateStats {
    /// Persistent sessions left (fill).
    pub sessions: u64,
    /// Retained messages left (fill).
    pub retained: u64,
    /// Seconds to leave the sessions (fill).
    pub sessions_secs: f64,
    /// Seconds to leave the retained messages (fill).
    pub retained_secs: f64,
    /// Seconds from the probe's start to a CONNACK resuming the last session (probe).
    pub ready_secs: Option<f64>,
    /// Seconds from the probe's start to the last retained message (probe).
    pub restored_secs: Option<f64>,
    /// Broker RSS once restored, KiB (probe, with --broker-pid).
    pub rss_kib: Option<u64>,
}

/// Broker CPU time over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct CpuStats {
    /// User + system CPU seconds.
    pub seconds: f64,
    /// Seconds of the window.
    pub window_secs: f64,
    /// CPU seconds per million deliveries (message scenarios) or connections (connect).
    pub per_million: Option<f64>,
}

impl Report {
    /// A report with nothing filled in yet.
    pub fn new(scenario: &str, label: Option<String>, target: String, mqtt: String) -> Report {
        Report {
            scenario: scenario.to_owned(),
            label,
            target,
            mqtt,
            ok: true,
            failures: Vec::new(),
            params: Vec::new(),
            messages: None,
            latency: None,
            connect: None,
            idle: None,
            state: None,
            broker_cpu: None,
            generator_cpu_seconds: None,
        }
    }

    /// Records a parameter.
    pub fn param(&mut self, name: &str, value: impl ToString) {
        self.params.push((name.to_owned(), value.to_string()));
    }

    /// Marks the run as failed, with a reason.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.ok = false;
        self.failures.push(reason.into());
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// The report as an aligned two-column table.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        row("scenario", self.scenario.clone());
        if let Some(label) = &self.label {
            row("broker", label.clone());
        }
        row("target", self.target.clone());
        row("mqtt", self.mqtt.clone());
        for (k, v) in &self.params {
            row(k, v.clone());
        }
        if let Some(m) = &self.messages {
            row("qos", m.qos.to_string());
            if let Some(rate) = m.offered_rate {
                row("offered rate", format!("{} msg/s", fmt_num(rate)));
            }
            row("window", format!("{:.2} s", m.window_secs));
            row("published", format!("{} msg/s", fmt_num(m.publish_rate)));
            row("delivered", format!("{} msg/s", fmt_num(m.delivery_rate)));
            row(
                "deliveries",
                format!("{} of {} expected", m.tally.deliveries, m.tally.expected),
            );
            row(
                "lost / dup / late",
                format!(
                    "{} / {} / {}",
                    m.tally.lost, m.tally.duplicates, m.tally.out_of_order
                ),
            );
            if m.tally.lost > 0 {
                row(
                    "lost: gaps / at end",
                    format!(
                        "{} / {}",
                        m.tally.lost - m.tally.missing_at_end,
                        m.tally.missing_at_end
                    ),
                );
            }
            if m.qos > 0 {
                row(
                    "acked / rejected / unacked",
                    format!("{} / {} / {}", m.acknowledged, m.rejected, m.unacknowledged),
                );
            }
            if m.stray > 0 || m.tally.unexpected > 0 {
                row(
                    "stray / unexpected",
                    format!("{} / {}", m.stray, m.tally.unexpected),
                );
            }
            if let Some(lag) = m.max_send_lag_ms {
                row("max send lag", format!("{lag:.2} ms"));
            }
        }
        if let Some(l) = &self.latency {
            row("latency samples", l.count.to_string());
            row(
                "latency p50 / p99 / p99.9",
                format!("{:.1} / {:.1} / {:.1} µs", l.p50_us, l.p99_us, l.p999_us),
            );
            row(
                "latency min / mean / max",
                format!("{:.1} / {:.1} / {:.1} µs", l.min_us, l.mean_us, l.max_us),
            );
        }
        if let Some(c) = &self.connect {
            row("window", format!("{:.2} s", c.window_secs));
            row(
                "connects",
                format!("{} /s ({} cycles)", fmt_num(c.rate), c.cycles),
            );
            row("failed", c.failed.to_string());
        }
        if let Some(i) = &self.idle {
            row(
                "held",
                format!("{} of {} ({} failed)", i.connected, i.requested, i.failed),
            );
            row("connect time", format!("{:.2} s", i.connect_secs));
            if let (Some(b), Some(a)) = (i.rss_before_kib, i.rss_after_kib) {
                row("broker RSS", format!("{b} → {a} KiB"));
            }
            if let Some(k) = i.kib_per_connection {
                row("per connection", format!("{k:.2} KiB"));
            }
        }
        if let Some(st) = &self.state {
            if st.sessions > 0 || st.retained > 0 {
                row(
                    "left",
                    format!(
                        "{} sessions in {:.2} s, {} retained in {:.2} s",
                        st.sessions, st.sessions_secs, st.retained, st.retained_secs
                    ),
                );
            }
            if let Some(r) = st.ready_secs {
                row("serving", format!("{r:.3} s"));
            }
            if let Some(r) = st.restored_secs {
                row("restored", format!("{r:.3} s"));
            }
            if let Some(k) = st.rss_kib {
                row("broker RSS", format!("{k} KiB"));
            }
        }
        if let Some(c) = &self.broker_cpu {
            let per = c
                .per_million
                .map(|p| format!(", {p:.2} s per million"))
                .unwrap_or_default();
            row(
                "broker CPU",
                format!("{:.2} s in {:.2} s{per}", c.seconds, c.window_secs),
            );
        }
        if let Some(g) = self.generator_cpu_seconds {
            row("generator CPU", format!("{g:.2} s"));
        }
        row(
            "result",
            if self.ok {
                "ok".to_owned()
            } else {
                format!("FAILED: {}", self.failures.join("; "))
            },
        );
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

fn as_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// A number with thousands separators and no decimals (rates).
pub fn fmt_num(value: f64) -> String {
    let n = value.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(999.4), "999");
        assert_eq!(fmt_num(1000.0), "1 000");
        assert_eq!(fmt_num(1234567.8), "1 234 568");
        assert_eq!(fmt_num(-12345.0), "-12 345");
    }

    #[test]
    fn failed_report_says_why_in_both_forms() {
        let mut r = Report::new("pairs", Some("x".into()), "127.0.0.1:1".into(), "5".into());
        r.param("pairs", 10);
        r.fail("3 messages lost at QoS 1");
        let table = r.to_table();
        assert!(
            table.contains("FAILED: 3 messages lost at QoS 1"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["failures"][0], "3 messages lost at QoS 1");
        assert_eq!(json["params"]["pairs"], "10");
    }
}
