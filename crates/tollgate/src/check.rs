//! `tollgate check`: explains an authorization decision, or runs the policy files' tests.
//!
//!     tollgate check --config tollgate.toml --client-id d1 --username alice publish devices/d1/state --qos 1
//!     tollgate check --config tollgate.toml --claims '{"topics":["a/#"]}' subscribe 'a/+'
//!     tollgate check --config tollgate.toml --tests
//!
//! The decision is computed exactly as the broker computes it for a connection on the chosen
//! listener: the same authorizers, in the same order, compiled for the same principal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tollgate_auth::permissions::Request;
use tollgate_auth::policy::{run_policy_tests, PolicyFile, TestIdentity};
use tollgate_broker::authorization::Authorizers;

use crate::config_file;

/// What is checked.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Action {
    /// Publishing to a topic.
    Publish,
    /// Subscribing to a filter.
    Subscribe,
    /// Receiving a message on a topic (a delivery, a retained message).
    Receive,
}

/// Arguments of `tollgate check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The broker's configuration file.
    #[arg(short, long)]
    config: PathBuf,
    /// The listener whose authorizers apply (its name or bind address); the first one by default.
    #[arg(long)]
    listener: Option<String>,
    /// Run every `[[test]]` of the configured policy files and exit non-zero if one fails.
    #[arg(long, conflicts_with_all = ["action", "topic"])]
    tests: bool,
    /// Client identifier.
    #[arg(long, default_value = "check-client")]
    client_id: String,
    /// User name.
    #[arg(long)]
    username: Option<String>,
    /// A role the authenticator gave (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// A group the authenticator gave (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Token claims, as JSON, or `@file` to read them from a file.
    #[arg(long)]
    claims: Option<String>,
    /// The client certificate's common name.
    #[arg(long)]
    cert_cn: Option<String>,
    /// QoS of the publish or subscription.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// A retained publish.
    #[arg(long)]
    retain: bool,
    /// A shared subscription.
    #[arg(long)]
    shared: bool,
    /// publish, subscribe or receive.
    #[arg(value_enum, required_unless_present = "tests")]
    action: Option<Action>,
    /// The topic (publish, receive) or filter (subscribe).
    #[arg(required_unless_present = "tests")]
    topic: Option<String>,
}

/// Runs `tollgate check`.
pub fn run(args: CheckArgs) -> ExitCode {
    match execute(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("tollgate check: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints the explanation or the test report. Ok(true) when allowed / all tests passed.
fn execute(args: CheckArgs) -> Result<bool, String> {
    let config = config_file::load(&args.config).map_err(|e| e.to_string())?;
    let listener = match &args.listener {
        None => config.listeners.first().ok_or("no listener configured")?,
        Some(name) => config
            .listeners
            .iter()
            .find(|l| l.name.as_deref() == Some(name.as_str()) || l.bind.to_string() == *name)
            .ok_or_else(|| format!("no listener named `{name}`"))?,
    };
    let authorizers = Authorizers::build(&config.authorizers)?;
    let chain = authorizers.chain_for(&listener.display_name(), listener.authorizers.as_deref())?;

    if args.tests {
        let Some(chain) = chain else {
            println!("no authorizer configured: nothing to test");
            return Ok(true);
        };
        let mut all_passed = true;
        for policy in config
            .authorizers
            .iter()
            .filter_map(|a| a.policy_file.as_ref())
        {
            let file = PolicyFile::load(&policy.path).map_err(|e| e.to_string())?;
            println!("{}:", policy.path.display());
            let report = run_policy_tests(file.tests(), &chain);
            print!("{report}");
            all_passed &= report.is_success();
        }
        return Ok(all_passed);
    }

    let claims = match &args.claims {
        None => None,
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
                None => text.clone(),
            };
            Some(serde_json::from_str(&text).map_err(|e| format!("--claims is not JSON: {e}"))?)
        }
    };
    let identity = TestIdentity {
        client_id: args.client_id,
        username: args.username,
        roles: args.roles,
        groups: args.groups,
        claims,
        cert_cn: args.cert_cn,
    };
    let principal = identity.principal("the command line");
    let topic = args.topic.expect("required by clap");
    let request = match args.action.expect("required by clap") {
        Action::Publish => Request::Publish {
            topic: &topic,
            qos: args.qos,
            retain: args.retain,
        },
        Action::Subscribe => Request::Subscribe {
            filter: &topic,
            qos: args.qos,
            shared: args.shared,
        },
        Action::Receive => Request::Receive {
            topic: &topic,
            qos: args.qos,
            shared: args.shared,
        },
    };
    let Some(chain) = chain else {
        println!("no authorizer configured on listener `{}`: everything is allowed but writing under $SYS", listener.display_name());
        return Ok(!(matches!(request, Request::Publish { .. }) && topic.starts_with("$SYS")));
    };
    let permissions = Arc::new(chain.compile(&principal));
    for note in permissions.notes() {
        println!("note: {} ({})", note.message, note.authorizer);
    }
    let explanation = permissions.explain(&request);
    print!("{explanation}");
    Ok(explanation.decision.allowed)
}
