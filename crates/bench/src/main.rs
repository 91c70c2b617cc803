//! `tollgate-bench`: runs one load scenario against an MQTT broker and prints a table or JSON.
//! Exit status: 0 when the run succeeded, 1 when it failed (loss, errors), 2 on bad usage.

use std::process::ExitCode;

use clap::Parser;
use tollgate_bench::cli::{Cli, ScenarioCmd};
use tollgate_bench::scenario;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.scenario {
        ScenarioCmd::Connect(a) => &a.common,
        ScenarioCmd::Pairs(a) => &a.common,
        ScenarioCmd::FanOut(a) => &a.common,
        ScenarioCmd::FanIn(a) => &a.common,
        ScenarioCmd::Latency(a) => &a.common,
        ScenarioCmd::Idle(a) => &a.common,
        ScenarioCmd::Fill(a) => &a.common,
        ScenarioCmd::Probe(a) => &a.common,
    };
    let threads = common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let json = common.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(scenario::run(cli.scenario, threads)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // Connections still closing in the background are not waited for.
    runtime.shutdown_background();
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
