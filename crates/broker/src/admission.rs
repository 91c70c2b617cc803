//! From an authentication decision to an admitted principal and its permissions: the one
//! path a CONNECT takes in the broker and `tollgate check` takes on the command line, so the
//! two cannot decide differently.
//!
//! In order: the chain's decision; the principal (with the name a client certificate gives,
//! as the listener says); the revocation list and the listener's CRLs; the listener's client
//! identifier patterns; the credentials' expiry; the permissions compiled from the listener's
//! authorizers (or the rules the authenticator granted); the will's topic against them.

use std::time::SystemTime;

use tollgate_auth::authentication::{AuthenticatedBy, ChainDecision, DenyReason, Identity};
use tollgate_auth::permissions::{compile_granted_only, CompiledPermissions};
use tollgate_auth::revocation::RevocationList;
use tollgate_auth::{CertificateInfo, Principal};
use tollgate_mqtt::{ReasonCode, Will};

use crate::client_id::client_id_allowed;
use crate::listener::Listener;

/// What is known of a client when its authentication has been decided.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The client identifier (assigned by the broker if the client sent none).
    pub client_id: &'a str,
    /// The user name the client sent.
    pub username: Option<&'a str>,
    /// The client certificate the TLS handshake verified.
    pub certificate: Option<&'a CertificateInfo>,
    /// The will in its CONNECT.
    pub will: Option<&'a Will>,
}

/// A principal's permissions on its listener.
#[derive(Debug)]
pub enum Permissions {
    /// No authorizer applies and the authenticator granted nothing: everything is allowed
    /// (but writing under `$SYS`).
    Unrestricted,
    /// What the authorizers (or the authenticator's granted rules) allow.
    Compiled(CompiledPermissions),
}

/// An admitted client.
#[derive(Debug)]
pub struct Admitted {
    /// Who it is.
    pub principal: Principal,
    /// What it may do.
    pub permissions: Permissions,
}

/// Why a client is not admitted.
#[derive(Debug)]
pub enum Refusal {
    /// The authentication chain refused it.
    Authentication {
        /// Why.
        reason: DenyReason,
        /// The authenticator that refused (`None`: the end of the chain, or the throttle).
        by: Option<String>,
        /// What happened, for the operator.
        detail: String,
    },
    /// The revocation list or a CRL names it.
    Revoked(String),
    /// Its client identifier matches none of the listener's patterns.
    ClientIdentifier,
    /// Its credentials have expired.
    Expired,
    /// Its will's topic is one it may not publish to.
    Will {
        /// The permission check's decision explained (which rule of which authorizer).
        explanation: String,
    },
}

impl Refusal {
    /// The CONNACK reason code (5.0; 3.x clients get its nearest return code).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Refusal::Authentication { reason, .. } => deny_reason_code(*reason),
            Refusal::ClientIdentifier => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            Refusal::Revoked(_) | Refusal::Expired | Refusal::Will { .. } => {
                ReasonCode::NOT_AUTHORIZED
            }
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Authentication { reason, by, detail } => write!(
                f,
                "authentication refused by {}: {reason} ({detail})",
                by.as_deref().unwrap_or("the end of the chain")
            ),
            Refusal::Revoked(why) => f.write_str(why),
            Refusal::ClientIdentifier => f.write_str(
                "the client identifier matches none of the listener's client_id_patterns",
            ),
            Refusal::Expired => f.write_str("the credentials have expired"),
            Refusal::Will { explanation } => write!(f, "will topic denied: {explanation}"),
        }
    }
}

/// The CONNACK reason code for a refusal of the authentication chain.
pub fn deny_reason_code(reason: DenyReason) -> ReasonCode {
    match reason {
        DenyReason::BadCredentials => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        DenyReason::NotAuthorized => ReasonCode::NOT_AUTHORIZED,
        DenyReason::Banned => ReasonCode::BANNED,
        DenyReason::RateLimited => ReasonCode::CONNECTION_RATE_EXCEEDED,
        DenyReason::BadAuthenticationMethod => ReasonCode::BAD_AUTHENTICATION_METHOD,
        DenyReason::BackendUnavailable => ReasonCode::SERVER_UNAVAILABLE,
        DenyReason::Busy => ReasonCode::SERVER_BUSY,
    }
}

/// The decision a listener that takes the client certificate's name as the user name makes
/// without asking its chain (Mosquitto's `use_identity_as_username`; any password is
/// ignored), if it is such a listener and the certificate has the name.
pub fn certificate_decision(
    listener: &Listener,
    certificate: Option<&CertificateInfo>,
) -> Option<ChainDecision> {
    let policy = listener.policy();
    if !policy.certificate_is_username() {
        return None;
    }
    let name = policy.certificate_identity(certificate?)?;
    Some(ChainDecision::Allowed {
        identity: Identity {
            username: Some(name),
            ..Identity::default()
        },
        by: AuthenticatedBy::Certificate,
    })
}

/// Admits the client the chain decided on, or says why not.
pub fn admit(
    listener: &Listener,
    revocations: &RevocationList,
    decision: ChainDecision,
    candidate: Candidate<'_>,
    now: SystemTime,
) -> Result<Admitted, Refusal> {
    let (identity, by) = match decision {
        ChainDecision::Allowed { identity, by } => (identity, by),
        ChainDecision::Refused { reason, by, detail } => {
            return Err(Refusal::Authentication { reason, by, detail })
        }
        ChainDecision::Continue { by, .. } => {
            // Only a connection can answer a challenge; a decision without one admits nobody.
            return Err(Refusal::Authentication {
                reason: DenyReason::NotAuthorized,
                by: Some(by),
                detail:
                    "the authenticator asks the client a question (an exchange in several steps)"
                        .into(),
            });
        }
    };
    let certificate_name = candidate
        .certificate
        .and_then(|c| listener.policy().certificate_identity(c));
    let principal = Principal::from_allow(
        candidate.client_id.to_owned(),
        identity,
        by,
        candidate.username.map(str::to_owned),
        certificate_name,
        candidate.certificate.cloned().map(Box::new),
    );
    admit_principal(listener, revocations, principal, candidate, now)
}

/// The checks after authentication, for a principal already made (by [`admit`], or by
/// `tollgate check` from the command line).
pub fn admit_principal(
    listener: &Listener,
    revocations: &RevocationList,
    principal: Principal,
    candidate: Candidate<'_>,
    now: SystemTime,
) -> Result<Admitted, Refusal> {
    if let Some(why) = revocation(
        listener,
        revocations,
        &principal,
        candidate.certificate,
        now,
    ) {
        return Err(Refusal::Revoked(why));
    }
    let patterns = &listener.policy().config.client_id_patterns;
    if !patterns.is_empty()
        && !client_id_allowed(patterns, candidate.client_id, principal.username.as_deref())
    {
        return Err(Refusal::ClientIdentifier);
    }
    if principal.expires_at.is_some_and(|expiry| expiry <= now) {
        return Err(Refusal::Expired);
    }
    let permissions = permissions_for(listener, &principal);
    if let (Some(will), Permissions::Compiled(compiled)) = (candidate.will, &permissions) {
        let decision = compiled.check_publish(&will.topic, will.qos, will.retain);
        if !decision.allowed {
            return Err(Refusal::Will {
                explanation: compiled.describe(&decision).to_string(),
            });
        }
    }
    Ok(Admitted {
        principal,
        permissions,
    })
}

/// Compiles `principal`'s permissions from the listener's current authorizer chain (or the
/// rules its authenticator granted).
pub fn permissions_for(listener: &Listener, principal: &Principal) -> Permissions {
    let chain = listener.authorization.read().clone();
    match chain {
        Some(chain) => Permissions::Compiled(chain.compile(principal)),
        None => match compile_granted_only(principal) {
            Some(compiled) => Permissions::Compiled(compiled),
            None => Permissions::Unrestricted,
        },
    }
}

/// Why `principal` (with its client `certificate`) is revoked at `now`, if the revocation
/// list or the listener's CRLs say it is: at CONNECT, and again whenever a connected client
/// is told the list changed.
pub fn revocation(
    listener: &Listener,
    revocations: &RevocationList,
    principal: &Principal,
    certificate: Option<&CertificateInfo>,
    now: SystemTime,
) -> Option<String> {
    revocations
        .revoked(principal, now)
        .or_else(|| certificate.and_then(|c| certificate_revoked(listener, c)))
}

/// Why a client certificate is no longer good, if the listener's CRLs now revoke it.
fn certificate_revoked(listener: &Listener, certificate: &CertificateInfo) -> Option<String> {
    let tls = listener.policy().tls.clone()?;
    tls.is_revoked(certificate).then(|| {
        format!(
            "client certificate {} of {} is revoked by a CRL",
            certificate.serial_hex, certificate.issuer
        )
    })
}
