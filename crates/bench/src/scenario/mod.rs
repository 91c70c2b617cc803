//! The scenarios, and what they share: the target, how connections are named and
//! authenticated, and the broker's CPU meter.

pub mod connect_rate;
pub mod idle;
pub mod messaging;
pub mod publisher;
pub mod state;
pub mod subscriber;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cli::{self, Common, ScenarioCmd};
use crate::client::ConnectOptions;
use crate::procfs::{self, ProcSample};
use crate::report::{CpuStats, Report};
use crate::tls::TlsSettings;

/// Largest packet a benchmark client accepts.
const MAX_PACKET: u32 = 1024 * 1024;

/// What every scenario needs from the command line, resolved.
#[derive(Debug)]
pub struct Setup {
    /// The broker's address.
    pub addr: SocketAddr,
    /// The options as given.
    pub common: Common,
    /// Worker tasks (= runtime threads).
    pub threads: usize,
    /// Distinguishes this run's client identifiers from any other run's.
    pub run_id: u32,
    /// TLS settings, with `--tls-ca`.
    pub tls: Option<TlsSettings>,
    /// The SCRAM login, with `--scram`.
    pub scram: Option<std::sync::Arc<crate::scram::ScramLogin>>,
    /// The `ace` login, with `--ace-token` and `--ace-key`.
    pub ace: Option<std::sync::Arc<crate::ace::AceLogin>>,
    next_connection: AtomicUsize,
}

impl Setup {
    /// Resolves the target address and fills in defaults.
    pub fn new(common: Common, threads: usize) -> Result<Setup, String> {
        let addr = (common.host.as_str(), common.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", common.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", common.host))?;
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
            .unwrap_or(0)
            ^ std::process::id();
        let tls = match &common.tls_ca {
            Some(ca) => Some(TlsSettings::new(ca, &common.tls_server_name)?),
            None => None,
        };
        let scram = match (&common.scram, &common.username, &common.password) {
            (Some(mechanism), Some(user), Some(password)) => Some(std::sync::Arc::new(
                crate::scram::ScramLogin::new(mechanism, user, password)?,
            )),
            _ => None,
        };
        let ace = match (&common.ace_token, &common.ace_key) {
            (Some(token), Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--ace-key {}: {e}", path.display()))?;
                Some(std::sync::Arc::new(crate::ace::AceLogin::new(token, &pem)?))
            }
            _ => None,
        };
        Ok(Setup {
            addr,
            tls,
            scram,
            ace,
            common,
            threads,
            run_id,
            next_connection: AtomicUsize::new(0),
        })
    }

    /// Connect options for a new connection: a unique client identifier built from `role`,
    /// and the credentials with `{i}` replaced by the connection's number.
    pub fn connect_options(&self, role: &str, receive_maximum: Option<u16>) -> ConnectOptions {
        let i = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let subst = |s: &String| s.replace("{i}", &i.to_string());
        ConnectOptions {
            version: self.common.version,
            client_id: format!("tgb{:08x}{role}{i}", self.run_id),
            username: self.common.username.as_ref().map(subst),
            password: self
                .common
                .password
                .as_ref()
                .map(|p| Bytes::from(subst(p).into_bytes())),
            keep_alive: 0,
            receive_maximum,
            maximum_packet_size: MAX_PACKET,
            tls: self.tls.clone(),
            persistent: false,
            scram: self.scram.clone(),
            ace: self.ace.clone(),
        }
    }

    /// Time allowed for each handshake.
    pub fn connect_timeout(&self) -> Duration {
        cli::secs(self.common.connect_timeout)
    }

    /// A report for `scenario` against this target.
    pub fn report(&self, scenario: &str) -> Report {
        Report::new(
            scenario,
            self.common.label.clone(),
            self.addr.to_string(),
            cli::version_name(self.common.version).to_owned(),
        )
    }

    /// Starts measuring the broker's CPU (if its pid was given) and the generator's own.
    pub fn cpu_meter(&self) -> CpuMeter {
        CpuMeter {
            pid: self.common.broker_pid,
            start: self.common.broker_pid.and_then(|p| procfs::sample(p).ok()),
            own_start: procfs::sample(std::process::id()).ok(),
            started: Instant::now(),
        }
    }
}

/// The broker's and the generator's CPU time from one moment to another.
#[derive(Debug)]
pub struct CpuMeter {
    pid: Option<u32>,
    start: Option<ProcSample>,
    own_start: Option<ProcSample>,
    started: Instant,
}

impl CpuMeter {
    /// Fills in the report's CPU figures since the meter started; `per_million` is computed
    /// for `units` (deliveries or connections) done meanwhile.
    pub fn stop(&self, units: u64, report: &mut Report) {
        let window_secs = self.started.elapsed().as_secs_f64();
        let seconds = |start: ProcSample, end: ProcSample| {
            end.cpu_ticks.saturating_sub(start.cpu_ticks) as f64
                / procfs::clock_ticks_per_second() as f64
        };
        if let (Some(start), Some(end)) = (self.own_start, procfs::sample(std::process::id()).ok())
        {
            report.generator_cpu_seconds = Some(seconds(start, end));
        }
        let broker_end = self.pid.and_then(|pid| procfs::sample(pid).ok());
        if let (Some(start), Some(end)) = (self.start, broker_end) {
            let seconds = seconds(start, end);
            report.broker_cpu = Some(CpuStats {
                seconds,
                window_secs,
                per_million: (units > 0).then(|| seconds / (units as f64 / 1e6)),
            });
        }
    }
}

/// Runs the scenario chosen on the command line.
pub async fn run(cmd: ScenarioCmd, threads: usize) -> Result<Report, String> {
    match cmd {
        ScenarioCmd::Connect(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            Ok(connect_rate::run(&setup, &a).await)
        }
        ScenarioCmd::Pairs(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            let plan = messaging::Plan::new(messaging::Shape::Pairs(a.pairs), &a.message);
            Ok(messaging::run(&setup, &plan).await)
        }
        ScenarioCmd::FanOut(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            let plan = messaging::Plan::new(messaging::Shape::FanOut(a.subscribers), &a.message);
            Ok(messaging::run(&setup, &plan).await)
        }
        ScenarioCmd::FanIn(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            let plan = messaging::Plan::new(messaging::Shape::FanIn(a.publishers), &a.message);
            Ok(messaging::run(&setup, &plan).await)
        }
        ScenarioCmd::Latency(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            let mut plan = messaging::Plan::new(messaging::Shape::Pairs(a.pairs), &a.message);
            plan.rate = Some(a.rate);
            plan.max_lag_ms = Some(a.max_lag_ms);
            plan.name = "latency";
            Ok(messaging::run(&setup, &plan).await)
        }
        ScenarioCmd::Idle(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            Ok(idle::run(&setup, &a).await)
        }
        ScenarioCmd::Fill(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            Ok(state::fill(&setup, &a).await)
        }
        ScenarioCmd::Probe(a) => {
            let setup = Setup::new(a.common.clone(), threads)?;
            Ok(state::probe(&setup, &a).await)
        }
    }
}
