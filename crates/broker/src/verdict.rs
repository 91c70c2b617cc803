//! The broker's verdict on a client described offline (`tollgate check`): who it is, whether
//! it is admitted and what it may do, decided by the same code a CONNECT goes through
//! (`admission.rs`, the listener's chain and authorizers as `serve` builds them), so the
//! command line and the broker cannot decide differently. Also the policy files' `[[test]]`s,
//! run against a listener's authorizers.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tollgate_auth::authentication::ConnectRequest;
use tollgate_auth::policy::{run_policy_tests, PolicyFile, TestReport};
use tollgate_auth::revocation::RevocationList;
use tollgate_auth::{CertificateInfo, Principal, Secret};

use crate::admission::{self, Admitted, Candidate, Refusal};
use crate::listener::Listener;
use crate::server::Prepared;

/// A client, as `tollgate check` describes it.
#[derive(Debug, Clone)]
pub struct Query {
    /// The client identifier.
    pub client_id: String,
    /// The user name it sends.
    pub username: Option<String>,
    /// The client certificate it presents (as the TLS layer would have verified it).
    pub certificate: Option<CertificateInfo>,
    /// Credentials as a client sends them; when given, the listener's authenticators decide
    /// who the client is, as for a CONNECT.
    pub credentials: Option<Credentials>,
    /// Who the client is when no credentials are given and no certificate names it: a
    /// principal stated outright (its roles, groups, claims), which only goes through the
    /// checks after authentication.
    pub stated: Principal,
}

/// What a client presents to authenticate.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The password field (a password, or a token sent as one).
    pub password: Option<Secret>,
    /// An MQTT 5 authentication method and its data.
    pub authentication: Option<(String, Secret)>,
}

/// The broker's verdict on a [`Query`].
#[derive(Debug)]
pub struct Verdict {
    /// The listener that decided.
    pub listener: Arc<str>,
    /// Whether an authenticator or the certificate decided who the client is (rather than
    /// the stated principal being taken as it is).
    pub authenticated: bool,
    /// Admitted (who, and with what permissions), or refused and why.
    pub outcome: Result<Admitted, Refusal>,
}

/// Why a check cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// No listener has that name or bind address.
    NoSuchListener(String),
    /// The configuration has no listener at all.
    NoListener,
    /// A policy file could not be read for its tests.
    PolicyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NoSuchListener(name) => write!(f, "no listener named `{name}`"),
            CheckError::NoListener => f.write_str("no listener configured"),
            CheckError::PolicyFile { path, message } => {
                write!(f, "{}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for CheckError {}

/// The policy tests of one policy file, run.
#[derive(Debug)]
pub struct PolicyTestRun {
    /// The policy file.
    pub path: PathBuf,
    /// What passed and what failed.
    pub report: TestReport,
}

impl Prepared {
    /// The listener named `name` (its name or bind address), or the first one.
    fn chosen_listener(&self, name: Option<&str>) -> Result<&Arc<Listener>, CheckError> {
        self.listener(name).ok_or_else(|| match name {
            Some(name) => CheckError::NoSuchListener(name.to_owned()),
            None => CheckError::NoListener,
        })
    }

    /// The verdict on `query` at the listener `listener` (its name or bind address; the
    /// first one with `None`): see [`decide`].
    pub async fn verdict(
        &self,
        listener: Option<&str>,
        query: Query,
    ) -> Result<Verdict, CheckError> {
        let listener = self.chosen_listener(listener)?;
        Ok(decide(listener, &self.revocation_list(), query).await)
    }

    /// Runs every `[[test]]` of the configured policy files against the authorizers of the
    /// listener `listener` (the first one with `None`); `None` when that listener has no
    /// authorizer.
    pub fn run_policy_tests(
        &self,
        listener: Option<&str>,
    ) -> Result<Option<Vec<PolicyTestRun>>, CheckError> {
        let listener = self.chosen_listener(listener)?;
        let Some(chain) = listener.authorization.read().clone() else {
            return Ok(None);
        };
        let mut runs = Vec::new();
        for path in self.policy_files() {
            let file = PolicyFile::load(&path).map_err(|e| CheckError::PolicyFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let report = run_policy_tests(file.tests(), &chain);
            runs.push(PolicyTestRun { path, report });
        }
        Ok(Some(runs))
    }
}

/// The verdict on `query` at `listener`, with `revocations` in force: the
/// certificate-as-user-name rule, else the listener's chain when credentials are given, else
/// the stated principal; then the revocation list and CRLs, client identifier patterns, the
/// credentials' expiry and the listener's authorizers, as for a CONNECT. `tollgate check`
/// and the admin API's `POST /authorize` both decide here.
pub async fn decide(listener: &Listener, revocations: &RevocationList, query: Query) -> Verdict {
    let candidate = Candidate {
        client_id: &query.client_id,
        username: query.username.as_deref(),
        certificate: query.certificate.as_ref(),
        will: None,
    };
    let decision = match (
        admission::certificate_decision(listener, query.certificate.as_ref()),
        &query.credentials,
    ) {
        (Some(decision), _) => Some(decision),
        (None, Some(credentials)) => {
            let request = connect_request(listener, &query, credentials);
            Some(listener.policy().chain.authenticate(&request).await)
        }
        (None, None) => None,
    };
    let authenticated = decision.is_some();
    let now = SystemTime::now();
    let outcome = match decision {
        Some(decision) => admission::admit(listener, revocations, decision, candidate, now),
        None => {
            admission::admit_principal(listener, revocations, query.stated.clone(), candidate, now)
        }
    };
    Verdict {
        listener: Arc::clone(&listener.name),
        authenticated,
        outcome,
    }
}

/// The CONNECT `query` describes, as the listener's chain is asked it.
fn connect_request(
    listener: &Listener,
    query: &Query,
    credentials: &Credentials,
) -> ConnectRequest {
    let mut request = ConnectRequest::new(
        &listener.name,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        query.client_id.clone(),
    );
    request.username = query.username.clone();
    request.password = credentials.password.clone();
    if let Some((method, data)) = &credentials.authentication {
        request.protocol_level = 5;
        request.authentication_method = Some(method.clone());
        request.authentication_data = Some(data.clone());
    }
    request.certificate = query.certificate.clone();
    request
}
