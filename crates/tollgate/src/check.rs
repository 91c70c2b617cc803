//! `tollgate check`: explains an authorization decision, or runs the policy files' tests.
//!
//!     tollgate check --config tollgate.toml --client-id d1 --username alice publish devices/d1/state --qos 1
//!     tollgate check --config tollgate.toml --claims '{"topics":["a/#"]}' subscribe 'a/+'
//!     tollgate check --config tollgate.toml --username JWT --token "$TOKEN" publish plant/3/temp
//!     tollgate check --config tollgate.toml --tests
//!
//! With credentials (`--password`, `--token`, `--auth-method`/`--auth-data`), the listener's
//! authenticators are asked first, as for a CONNECT, and the principal they give (its claims,
//! roles, a webhook's permissions) is the one checked.
//!
//! The decision is computed exactly as the broker computes it for a connection on the chosen
//! listener: the configuration is built as `serve` builds it (short of binding sockets), and
//! the principal goes through the broker's own verdict path (`Prepared::verdict`, over the
//! admission code a CONNECT takes):
//! the certificate-as-user-name rule, the revocation list and CRLs, client identifier
//! patterns, the credentials' expiry, then the same authorizers in the same order.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use tollgate_auth::permissions::Request;
use tollgate_auth::policy::TestIdentity;
use tollgate_auth::{CertificateInfo, Principal, Secret};
use tollgate_broker::verdict::{Credentials, Query};
use tollgate_broker::{Admitted, Extensions, Permissions, Prepared, Server};
use tollgate_mqtt::QoS;

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
    /// The password as a client sends it (`@file` reads it from a file): the listener's
    /// authenticators decide who the client is.
    #[arg(long, conflicts_with_all = ["claims", "roles", "groups"])]
    password: Option<String>,
    /// An access token sent as the password (`@file` reads it from a file); give `--username`
    /// too when the authenticator expects a marker such as `JWT`.
    #[arg(long, conflicts_with_all = ["claims", "roles", "groups", "password"])]
    token: Option<String>,
    /// MQTT 5 authentication method (with `--auth-data`).
    #[arg(long, requires = "auth_data", conflicts_with_all = ["claims", "roles", "groups"])]
    auth_method: Option<String>,
    /// MQTT 5 authentication data, such as a token (`@file` reads it from a file).
    #[arg(long, requires = "auth_method")]
    auth_data: Option<String>,
    /// QoS of the publish or subscription.
    #[arg(long, default_value = "0", value_parser = parse_qos)]
    qos: QoS,
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
    let (config, _) = config_file::load(&args.config).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        // Built as `serve` builds it: every file read, every name resolved.
        let prepared = Server::prepare(config, Extensions::default()).map_err(|e| e.to_string())?;
        if args.tests {
            return run_tests(&prepared, args.listener.as_deref());
        }
        decide(&args, &prepared).await
    })
}

/// Runs the policy files' `[[test]]`s against the listener's authorizers.
fn run_tests(prepared: &Prepared, listener: Option<&str>) -> Result<bool, String> {
    let Some(runs) = prepared
        .run_policy_tests(listener)
        .map_err(|e| e.to_string())?
    else {
        println!("no authorizer configured: nothing to test");
        return Ok(true);
    };
    let mut all_passed = true;
    for run in runs {
        println!("{}:", run.path.display());
        print!("{}", run.report);
        all_passed &= run.report.is_success();
    }
    Ok(all_passed)
}

/// Who the command line's client is, whether the broker admits it, and what it may do.
async fn decide(args: &CheckArgs, prepared: &Prepared) -> Result<bool, String> {
    let certificate = args.cert_cn.as_ref().map(|cn| CertificateInfo {
        common_name: Some(cn.clone()),
        ..CertificateInfo::default()
    });
    let credentials = credentials(args)?;
    let claims = match &args.claims {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text_or_file(text)?)
                .map_err(|e| format!("--claims is not JSON: {e}"))?,
        ),
    };
    let stated = TestIdentity {
        client_id: args.client_id.clone(),
        username: args.username.clone(),
        roles: args.roles.clone(),
        groups: args.groups.clone(),
        claims,
        cert_cn: args.cert_cn.clone(),
    }
    .principal("the command line");
    let query = Query {
        client_id: args.client_id.clone(),
        username: args.username.clone(),
        certificate,
        credentials,
        stated,
    };
    let verdict = prepared
        .verdict(args.listener.as_deref(), query)
        .await
        .map_err(|e| e.to_string())?;
    let Admitted {
        principal,
        permissions,
    } = match verdict.outcome {
        Ok(admitted) => admitted,
        Err(refusal) => {
            println!(
                "connection refused ({:?}): {}",
                refusal.reason_code(),
                refusal
            );
            return Ok(false);
        }
    };
    if verdict.authenticated {
        print_principal(&principal);
    }
    let topic = args.topic.clone().expect("required by clap");
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
    let permissions = match permissions {
        Permissions::Compiled(compiled) => compiled,
        Permissions::Unrestricted => {
            println!("no authorizer configured on listener `{}`: everything is allowed but writing under $SYS", verdict.listener);
            return Ok(!(matches!(request, Request::Publish { .. })
                && tollgate_mqtt::topic::is_sys(&topic)));
        }
    };
    for note in permissions.notes() {
        println!("note: {} ({})", note.message, note.authorizer);
    }
    let explanation = permissions.explain(&request);
    print!("{explanation}");
    Ok(explanation.decision.allowed)
}

/// The credentials the command line gives, if any.
fn credentials(args: &CheckArgs) -> Result<Option<Credentials>, String> {
    let password = match args.password.as_deref().or(args.token.as_deref()) {
        Some(secret) => Some(Secret::new(text_or_file(secret)?)),
        None => None,
    };
    let authentication = match (&args.auth_method, &args.auth_data) {
        (Some(method), Some(data)) => Some((method.clone(), Secret::new(text_or_file(data)?))),
        _ => None,
    };
    Ok(
        (password.is_some() || authentication.is_some()).then_some(Credentials {
            password,
            authentication,
        }),
    )
}

/// A QoS as the command line writes it: 0, 1 or 2.
fn parse_qos(text: &str) -> Result<QoS, String> {
    text.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("`{text}` is not 0, 1 or 2"))
}

/// Reads a value given as text or as `@file`.
fn text_or_file(value: &str) -> Result<String, String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("{path}: {e}")),
        None => Ok(value.to_owned()),
    }
}

/// Prints who an authenticated client is and what its principal carries.
fn print_principal(principal: &Principal) {
    println!(
        "authentication: allowed by {} as {}",
        principal.authenticated_by,
        principal.username.as_deref().unwrap_or("(no user name)")
    );
    let list = |attributes: &[tollgate_auth::Attribute]| {
        attributes
            .iter()
            .map(|a| a.value.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(client) = &principal.client_identity {
        match &principal.client_identity_by {
            Some(by) => println!("  client identity: {client} (allowed by authenticator `{by}`)"),
            None => println!(
                "  client identity: {client} ({:?})",
                principal.client_identity_origin
            ),
        }
    }
    if !principal.roles.is_empty() {
        println!("  roles: {}", list(&principal.roles));
    }
    if !principal.groups.is_empty() {
        println!("  groups: {}", list(&principal.groups));
    }
    if let Some(expiry) = principal.expires_at {
        let left = expiry
            .duration_since(SystemTime::now())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        println!("  expires in {left} s");
    }
    if let Some(granted) = &principal.granted {
        println!(
            "  {} permission(s) granted by {}",
            granted.permissions.len(),
            granted.authenticator
        );
    }
}
