//! `tollgate ctl`: the admin API from the command line.
//!
//!     export TOLLGATE_ADMIN_TOKEN=$(cat ops.token)
//!     tollgate ctl clients --user alice
//!     tollgate ctl kick sensor-17
//!     tollgate ctl ban address 203.0.113.0/24 --reason scanner --expires-in 86400
//!     tollgate ctl revoke jti 6a2b9c1e --expires-in 3600
//!     tollgate ctl explain sensor-17 publish devices/sensor-17/temp --qos 1
//!     tollgate ctl metrics
//!
//! The token comes from `TOLLGATE_ADMIN_TOKEN` or `--token-file`, never from an argument
//! (arguments are visible to every user of the machine). `--json` prints the API's answer as
//! it is. Exit status: 0 done (for `explain`: allowed), 1 `explain` denied or refused, 2 the
//! request failed (the API's error is printed).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// How long a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes of an answer read (a page of clients is far smaller).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Arguments of `tollgate ctl`.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The admin API's address.
    #[arg(long, default_value = "http://127.0.0.1:18083")]
    url: String,
    /// A file holding the admin token (else `TOLLGATE_ADMIN_TOKEN`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON answer as it is.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand, Debug)]
enum CtlCommand {
    /// List connected clients.
    Clients {
        /// Client identifiers containing this.
        #[arg(long)]
        client_id: Option<String>,
        /// This user name.
        #[arg(long)]
        user: Option<String>,
        /// This listener.
        #[arg(long)]
        listener: Option<String>,
        /// This address or network.
        #[arg(long)]
        address: Option<String>,
        /// Most clients shown.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a connected client: its principal and subscriptions.
    Client {
        /// The client identifier.
        client_id: String,
    },
    /// Disconnect a client (5.0: DISCONNECT 0x98).
    Kick {
        /// The client identifier.
        client_id: String,
    },
    /// Ban a client identifier, user name or address/network.
    Ban {
        /// `client`, `user` or `address`.
        kind: String,
        /// What is banned.
        value: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Seconds it lasts (for good without).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Lift a ban.
    Unban {
        /// `client`, `user` or `address`.
        kind: String,
        /// What was banned.
        value: String,
    },
    /// List the bans in force.
    Bans,
    /// Revoke a token (jti), user or client identifier at once.
    Revoke {
        /// `jti`, `user` or `client`.
        kind: String,
        /// What is revoked.
        value: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Seconds it lasts (for good without).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Withdraw a revocation made through the API.
    Unrevoke {
        /// `jti`, `user` or `client`.
        kind: String,
        /// What was revoked.
        value: String,
    },
    /// List the revocations in force (the API's and the file's).
    Revocations,
    /// Explain a decision for a connected client, or for a described one (--username, --role).
    Explain {
        /// The client identifier.
        client_id: String,
        /// `publish`, `subscribe` or `receive`.
        action: String,
        /// The topic (a filter, to subscribe).
        topic: String,
        /// The QoS.
        #[arg(long, default_value_t = 0)]
        qos: u8,
        /// The publish's retain flag.
        #[arg(long)]
        retain: bool,
        /// Describe the client instead of taking the connected one: its user name.
        #[arg(long)]
        username: Option<String>,
        /// Describe the client: a role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Describe the client: a group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The listener whose authorizers decide.
        #[arg(long)]
        listener: Option<String>,
    },
    /// Print the Prometheus metrics.
    Metrics,
    /// Re-read the files the configuration names (as SIGHUP does).
    Reload,
}

/// Runs `tollgate ctl`.
pub fn run(args: CtlArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(execute(&args)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tollgate ctl: {message}");
            ExitCode::from(2)
        }
    }
}

/// One request to the API.
struct Call {
    method: reqwest::Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Call {
    fn get(path: impl Into<String>) -> Call {
        Call {
            method: reqwest::Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    fn with(method: reqwest::Method, path: impl Into<String>, body: Option<Value>) -> Call {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body,
        }
    }
}

async fn execute(args: &CtlArgs) -> Result<ExitCode, String> {
    let token = token(args)?;
    let call = call_for(&args.command);
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}{}", args.url.trim_end_matches('/'), call.path);
    let mut request = client
        .request(call.method.clone(), &url)
        .bearer_auth(&token)
        .query(&call.query);
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    let answer = request
        .send()
        .await
        .map_err(|e| format!("{url}: {}", without_url(&e)))?;
    let status = answer.status();
    let text = read_bounded(answer).await?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(format!("{status}: {message}"));
    }
    if matches!(args.command, CtlCommand::Metrics) {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))?
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print_human(&args.command, &value);
    }
    let denied = matches!(args.command, CtlCommand::Explain { .. })
        && value["allowed"].as_bool() != Some(true);
    Ok(if denied {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The admin token: from `--token-file`, else `TOLLGATE_ADMIN_TOKEN`.
fn token(args: &CtlArgs) -> Result<String, String> {
    let token = match &args.token_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => std::env::var("TOLLGATE_ADMIN_TOKEN")
            .map_err(|_| "no token: set TOLLGATE_ADMIN_TOKEN or give --token-file".to_owned())?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err("the admin token is empty".to_owned());
    }
    Ok(token)
}

/// A reqwest error without the URL (it is printed once, before it).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_bounded(mut answer: reqwest::Response) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err("the answer is larger than 64 MiB".to_owned());
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| "the answer is not UTF-8".to_owned())
}

/// A path segment with `/`, `%`, `?` and `#` escaped (a value may hold them; an address's
/// network keeps its `/`, which the API's path reads back as part of the value).
fn segment(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' | ':' | '@' => out.push(c),
            other => {
                let mut buf = [0u8; 4];
                for b in other.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

fn call_for(command: &CtlCommand) -> Call {
    use reqwest::Method;
    let entry = |kind: &str, value: &str, reason: &Option<String>, expires_in: &Option<u64>| {
        let mut body = json!({ "kind": kind, "value": value });
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        if let Some(seconds) = expires_in {
            body["expires_in"] = json!(seconds);
        }
        body
    };
    match command {
        CtlCommand::Clients {
            client_id,
            user,
            listener,
            address,
            limit,
        } => {
            let mut call = Call::get("/api/v1/clients");
            for (key, value) in [
                ("client_id", client_id.clone()),
                ("user", user.clone()),
                ("listener", listener.clone()),
                ("address", address.clone()),
                ("limit", limit.map(|l| l.to_string())),
            ] {
                if let Some(value) = value {
                    call.query.push((key, value));
                }
            }
            call
        }
        CtlCommand::Client { client_id } => {
            Call::get(format!("/api/v1/clients/{}", segment(client_id)))
        }
        CtlCommand::Kick { client_id } => Call::with(
            Method::DELETE,
            format!("/api/v1/clients/{}", segment(client_id)),
            None,
        ),
        CtlCommand::Ban {
            kind,
            value,
            reason,
            expires_in,
        } => Call::with(
            Method::POST,
            "/api/v1/bans",
            Some(entry(kind, value, reason, expires_in)),
        ),
        CtlCommand::Unban { kind, value } => Call::with(
            Method::DELETE,
            format!("/api/v1/bans/{}/{}", segment(kind), network_segment(value)),
            None,
        ),
        CtlCommand::Bans => Call::get("/api/v1/bans"),
        CtlCommand::Revoke {
            kind,
            value,
            reason,
            expires_in,
        } => Call::with(
            Method::POST,
            "/api/v1/revocations",
            Some(entry(kind, value, reason, expires_in)),
        ),
        CtlCommand::Unrevoke { kind, value } => Call::with(
            Method::DELETE,
            format!("/api/v1/revocations/{}/{}", segment(kind), segment(value)),
            None,
        ),
        CtlCommand::Revocations => Call::get("/api/v1/revocations"),
        CtlCommand::Explain {
            client_id,
            action,
            topic,
            qos,
            retain,
            username,
            roles,
            groups,
            listener,
        } => {
            let mut body = json!({
                "client_id": client_id,
                "action": action,
                "topic": topic,
                "qos": qos,
                "retain": retain,
            });
            if username.is_some() || !roles.is_empty() || !groups.is_empty() {
                body["principal"] =
                    json!({ "username": username, "roles": roles, "groups": groups });
            }
            if let Some(listener) = listener {
                body["listener"] = json!(listener);
            }
            Call::with(Method::POST, "/api/v1/authorize", Some(body))
        }
        CtlCommand::Metrics => Call::get("/metrics"),
        CtlCommand::Reload => Call::with(Method::POST, "/api/v1/reload", None),
    }
}

/// An address or network as a path: its `/` kept (the API reads the rest of the path as the
/// value), everything else escaped.
fn network_segment(value: &str) -> String {
    value.split('/').map(segment).collect::<Vec<_>>().join("/")
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_human(command: &CtlCommand, value: &Value) {
    let rows = |value: &Value| value["data"].as_array().cloned().unwrap_or_default();
    match command {
        CtlCommand::Clients { .. } => {
            println!(
                "{:<32} {:<20} {:<14} {:<22} PROTOCOL",
                "CLIENT", "USER", "LISTENER", "ADDRESS"
            );
            for c in rows(value) {
                println!(
                    "{:<32} {:<20} {:<14} {:<22} {}",
                    text(&c["client_id"]),
                    text(&c["username"]),
                    text(&c["listener"]),
                    text(&c["address"]),
                    text(&c["protocol"])
                );
            }
            println!("{} connected", text(&value["total"]));
        }
        CtlCommand::Bans | CtlCommand::Revocations => {
            println!(
                "{:<8} {:<32} {:<12} {:<8} REASON",
                "KIND", "VALUE", "EXPIRES", "BY"
            );
            for e in rows(value) {
                println!(
                    "{:<8} {:<32} {:<12} {:<8} {}",
                    text(&e["kind"]),
                    text(&e["value"]),
                    text(&e["expires_at"]),
                    text(e.get("by").unwrap_or(&e["source"])),
                    text(&e["reason"])
                );
            }
        }
        CtlCommand::Ban { .. } => println!(
            "banned {} {} ({} disconnected)",
            text(&value["kind"]),
            text(&value["value"]),
            text(&value["disconnected"])
        ),
        CtlCommand::Revoke { .. } => {
            println!("revoked {} {}", text(&value["kind"]), text(&value["value"]))
        }
        CtlCommand::Kick { client_id } => println!("kicked {client_id}"),
        CtlCommand::Unban { kind, value } => println!("ban of {kind} {value} lifted"),
        CtlCommand::Unrevoke { kind, value } => println!("revocation of {kind} {value} withdrawn"),
        CtlCommand::Reload => println!("reloaded"),
        CtlCommand::Explain { .. } => match value["admitted"].as_bool() {
            Some(false) => println!(
                "refused at CONNECT (reason code 0x{:02X}): {}",
                value["refusal"]["reason_code"].as_u64().unwrap_or(0),
                text(&value["refusal"]["why"])
            ),
            _ => match value["explanation"].as_str() {
                Some(explanation) => print!("{explanation}"),
                None => println!("{}", text(&value["summary"])),
            },
        },
        CtlCommand::Client { .. } | CtlCommand::Metrics => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values_are_escaped_and_a_network_keeps_its_slash() {
        assert_eq!(segment("a/b c?#%"), "a%2Fb%20c%3F%23%25");
        assert_eq!(network_segment("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(segment("2001:db8::1"), "2001:db8::1");
    }
}
