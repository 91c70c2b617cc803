//! Tokens the broker signs itself: a short-lived JWT for a client that is already
//! authenticated and asks for one over MQTT (seed 001), carrying who it is and what it may
//! do, so that it can reconnect with the token instead of its password.
//!
//! The key is an ES256 (P-256) or EdDSA (Ed25519) private key in a PKCS#8 PEM file; its
//! public half is what a JWT authenticator that trusts this issuer verifies with
//! ([`TokenSigner::trusted`]), and what the admin listener publishes as a JWKS
//! ([`TokenSigner::jwk`]).
//!
//! The claims: `iss`, `aud`, `sub` (the user name, or else the client's own identity),
//! `iat`, `nbf`, `exp`, `jti`, `client_id` (the MQTT client identifier it was issued to),
//! `client_identity` (the device's own identity, when it has one besides the user's),
//! `roles` and `groups`, and the permissions: `acl` (every compiled rule, in order, with its
//! qualifiers: what the claims authorizer reads back exactly, and `acl_default`, `accept`
//! or `deny`, what decided when no rule did) or `scope` in the AIF-MQTT
//! form of RFC 9431 (allow rules only; see [`PermissionsForm::Aif`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Map, Value};

use crate::jwt::{KeyFamily, VerificationKey};
use crate::permissions::{
    Activity, CompiledPermissions, CompiledRule, Effect, QosSet, RetainCoverage,
};
use crate::principal::{NameOrigin, Principal};
use crate::secret::Secret;

/// How a token carries the principal's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionsForm {
    /// An `acl` claim: every rule in order, allow and deny, with its QoS, retain and shared
    /// qualifiers (what the `claims` authorizer and a trusting JWT authenticator read).
    #[default]
    Acl,
    /// A `scope` claim in the AIF-MQTT form (`[["topic", ["pub", "sub"]], …]`). AIF can say
    /// neither deny nor QoS nor retain: the scope holds the allow rules without qualifiers
    /// up to the first deny rule (a deny could shadow what follows it), so it is never wider
    /// than the permissions it comes from, and may be narrower.
    Aif,
    /// No permissions in the token: whoever accepts it decides from the identity alone.
    None,
}

/// The public half of a signer: what a JWT authenticator that trusts it needs.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The audience its tokens carry (`aud`).
    pub audience: String,
    /// The one algorithm it signs with.
    pub algorithm: Algorithm,
    /// Its public key, with its key id.
    pub key: VerificationKey,
}

/// What a token is issued for.
pub struct TokenGrant<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// Its compiled permissions; `None` when no authorizer restricts it.
    pub permissions: Option<&'a CompiledPermissions>,
    /// How long the token lives (it never outlives the principal's own expiry).
    pub lifetime: Duration,
    /// Now, by the wall clock.
    pub now: SystemTime,
}

/// A token signed.
pub struct SignedToken {
    /// The JWT (a secret: never logged).
    pub token: Secret,
    /// Its `jti` (for the audit line and the revocation list).
    pub jti: String,
    /// Seconds it lives from now.
    pub expires_in: u64,
}

/// Why no token was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignRefusal {
    /// The principal has no authenticated name to put in `sub` (an anonymous or unverified
    /// client): a token would vouch for what nobody checked.
    NoVerifiedName,
    /// The principal's own credentials expire within the second.
    CredentialsExpiring,
    /// More permission rules than `max_rules`, or an `acl`/`scope` larger than the bound.
    TooManyRules {
        /// The rules the principal has.
        rules: usize,
        /// The most a token carries.
        most: usize,
    },
    /// The signature failed (a broken key).
    Signing(String),
}

impl std::fmt::Display for SignRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignRefusal::NoVerifiedName => {
                f.write_str("no authenticated user name or client identity to issue a token for")
            }
            SignRefusal::CredentialsExpiring => f.write_str("the credentials are expiring"),
            SignRefusal::TooManyRules { rules, most } => write!(
                f,
                "{rules} permission rules are more than a token carries ({most})"
            ),
            SignRefusal::Signing(why) => write!(f, "signing failed: {why}"),
        }
    }
}

/// Signs the broker's own tokens.
pub struct TokenSigner {
    algorithm: Algorithm,
    key: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
    form: PermissionsForm,
    max_rules: usize,
    jwk: Jwk,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// What a signer is made of (the `[[token_issuer]]` table's signing keys, read by the broker).
pub struct SignerSettings<'a> {
    /// The PKCS#8 PEM private key.
    pub pem: &'a [u8],
    /// `ES256` or `EdDSA`.
    pub algorithm: &'a str,
    /// The key id (`kid`) tokens and the JWKS carry.
    pub kid: &'a str,
    /// The issuer (`iss`).
    pub issuer: &'a str,
    /// The audience (`aud`).
    pub audience: &'a str,
    /// How the permissions travel.
    pub form: PermissionsForm,
    /// The most permission rules a token carries.
    pub max_rules: usize,
}

impl TokenSigner {
    /// A signer with these settings; `Err` says what is wrong with the key or the algorithm.
    pub fn new(settings: &SignerSettings<'_>) -> Result<TokenSigner, String> {
        let algorithm = match settings.algorithm {
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other => {
                return Err(format!(
                    "algorithm `{other}`: only ES256 and EdDSA are signed"
                ))
            }
        };
        let not_a_key = |e: String| {
            format!(
                "not a PKCS#8 PEM private key for {}: {e}",
                settings.algorithm
            )
        };
        let key = match algorithm {
            Algorithm::ES256 => {
                EncodingKey::from_ec_pem(settings.pem).map_err(|e| not_a_key(e.to_string()))?
            }
            _ => EncodingKey::from_ed_der(&ed25519_pkcs8_v1(settings.pem).map_err(not_a_key)?),
        };
        let mut jwk = Jwk::from_encoding_key(&key, algorithm)
            .map_err(|e| format!("not a key for {}: {e}", settings.algorithm))?;
        jwk.common.key_id = Some(settings.kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match algorithm {
            Algorithm::ES256 => KeyAlgorithm::ES256,
            _ => KeyAlgorithm::EdDSA,
        });
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("public key: {e}"))?;
        let signer = TokenSigner {
            algorithm,
            key,
            kid: settings.kid.to_owned(),
            issuer: settings.issuer.to_owned(),
            audience: settings.audience.to_owned(),
            form: settings.form,
            max_rules: settings.max_rules,
            jwk,
            decoding,
        };
        // A key that signs but whose public half does not verify would issue tokens nobody
        // accepts: find out now.
        let probe = jsonwebtoken::encode(&signer.header(), &json!({ "probe": true }), &signer.key)
            .map_err(|e| format!("the key does not sign: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(&probe, &signer.decoding, &validation)
            .map_err(|e| format!("the key's public half does not verify its signature: {e}"))?;
        Ok(signer)
    }

    fn header(&self) -> Header {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        header
    }

    /// The public key as a JWK (with `kid`, `use` and `alg`), for the JWKS.
    pub fn jwk(&self) -> Value {
        serde_json::to_value(&self.jwk).unwrap_or(Value::Null)
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// What a JWT authenticator that trusts this signer verifies with.
    pub fn trusted(&self) -> TrustedIssuer {
        TrustedIssuer {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            algorithm: self.algorithm,
            key: VerificationKey {
                kid: Some(self.kid.clone()),
                family: match self.algorithm {
                    Algorithm::ES256 => KeyFamily::Ec,
                    _ => KeyFamily::Ed,
                },
                key: self.decoding.clone(),
            },
        }
    }

    /// Signs a token for `grant`, or says why not.
    pub fn sign(&self, grant: &TokenGrant<'_>) -> Result<SignedToken, SignRefusal> {
        let principal = grant.principal;
        let verified = |origin| origin != NameOrigin::Unverified;
        let subject = principal
            .username
            .as_ref()
            .filter(|_| verified(principal.username_origin))
            .or(principal
                .client_identity
                .as_ref()
                .filter(|_| verified(principal.client_identity_origin)))
            .filter(|_| {
                principal.authenticated_by != crate::authentication::AuthenticatedBy::Anonymous
            })
            .ok_or(SignRefusal::NoVerifiedName)?;
        let now = unix_secs(grant.now);
        let mut lifetime = grant.lifetime.as_secs();
        if let Some(expires_at) = principal.expires_at {
            let left = unix_secs(expires_at).saturating_sub(now);
            if left < 1 {
                return Err(SignRefusal::CredentialsExpiring);
            }
            lifetime = lifetime.min(left);
        }
        let jti = random_id();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("sub".into(), json!(subject));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + lifetime));
        claims.insert("jti".into(), json!(jti));
        claims.insert("client_id".into(), json!(principal.client_id));
        if let Some(identity) = principal
            .client_identity
            .as_ref()
            .filter(|_| verified(principal.client_identity_origin))
            .filter(|identity| *identity != subject)
        {
            claims.insert("client_identity".into(), json!(identity));
        }
        let values = |attributes: &[crate::Attribute]| -> Vec<String> {
            attributes.iter().map(|a| a.value.clone()).collect()
        };
        if !principal.roles.is_empty() {
            claims.insert("roles".into(), json!(values(&principal.roles)));
        }
        if !principal.groups.is_empty() {
            claims.insert("groups".into(), json!(values(&principal.groups)));
        }
        if let Some(permissions) = grant.permissions {
            let rules = permissions.rules();
            if rules.len() > self.max_rules {
                return Err(SignRefusal::TooManyRules {
                    rules: rules.len(),
                    most: self.max_rules,
                });
            }
            match self.form {
                PermissionsForm::Acl => {
                    claims.insert(
                        "acl".into(),
                        Value::Array(rules.iter().map(acl_entry).collect()),
                    );
                    // What answered when no rule did: the token's permissions are then exactly
                    // those it was issued with.
                    let default = if permissions.default_decision().allowed {
                        "accept"
                    } else {
                        "deny"
                    };
                    claims.insert("acl_default".into(), json!(default));
                }
                PermissionsForm::Aif => {
                    claims.insert("scope".into(), aif_scope(rules));
                }
                PermissionsForm::None => {}
            }
        }
        let token = jsonwebtoken::encode(&self.header(), &Value::Object(claims), &self.key)
            .map_err(|e| SignRefusal::Signing(e.to_string()))?;
        Ok(SignedToken {
            token: Secret::new(token.into_bytes()),
            jti,
            expires_in: lifetime,
        })
    }
}

/// One compiled rule as an `acl` entry, every qualifier written out.
fn acl_entry(rule: &CompiledRule) -> Value {
    let action = match rule.activity {
        Activity::Publish => "pub",
        Activity::Subscribe => "sub",
        Activity::All => "all",
    };
    let access = match rule.effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    };
    let retain = match rule.retain {
        RetainCoverage::All => "all",
        RetainCoverage::RetainedOnly => "retained",
        RetainCoverage::NotRetained => "not_retained",
    };
    json!({
        "filter": &*rule.filter,
        "action": action,
        "access": access,
        "qos": rule.qos.levels().collect::<Vec<u8>>(),
        "retain": retain,
        "shared": rule.shared_subscriptions,
    })
}

/// The allow rules without qualifiers, up to the first deny, in the AIF-MQTT form.
fn aif_scope(rules: &[CompiledRule]) -> Value {
    let mut scope = Vec::new();
    for rule in rules {
        if rule.effect == Effect::Deny {
            break;
        }
        let unqualified = rule.qos == QosSet::ALL
            && rule.retain == RetainCoverage::All
            && rule.shared_subscriptions;
        if !unqualified {
            continue;
        }
        let actions: &[&str] = match rule.activity {
            Activity::Publish => &["pub"],
            Activity::Subscribe => &["sub"],
            Activity::All => &["pub", "sub"],
        };
        scope.push(json!([&*rule.filter, actions]));
    }
    Value::Array(scope)
}

/// The DER of the PKCS#8 v1 form of an Ed25519 private key given in PEM, v1 or v2 (v2, RFC
/// 5958, adds the public key: what aws-lc and rcgen write; `openssl genpkey` writes v1).
/// jsonwebtoken derives the public key of v1 keys only.
fn ed25519_pkcs8_v1(pem: &[u8]) -> Result<Vec<u8>, String> {
    const V1_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    // After the outer SEQUENCE header: version, the Ed25519 algorithm, the seed's header.
    const BODY_PREFIX: [u8; 11] = [
        0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("no -----BEGIN PRIVATE KEY----- block".into());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("the PEM block is not base64: {e}"))?;
    // SEQUENCE (short length), INTEGER version (0 or 1), then the body.
    let (header, rest) = der.split_at(der.len().min(5));
    let versioned = header.len() == 5
        && header[0] == 0x30
        && usize::from(header[1]) == der.len() - 2
        && header[2..4] == [0x02, 0x01]
        && header[4] <= 1;
    if !versioned || rest.len() < 11 + 32 || rest[..11] != BODY_PREFIX {
        return Err("not an Ed25519 key".into());
    }
    let seed = &rest[11..11 + 32];
    let mut v1 = V1_PREFIX.to_vec();
    v1.extend_from_slice(seed);
    Ok(v1)
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 16 random bytes, base64url: a `jti` nobody can guess or repeat.
fn random_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random_bytes::<16>())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use jsonwebtoken::{decode, Validation};
    use serde_json::Value;
    use tollgate_mqtt::QoS;

    use super::*;
    use crate::authentication::AuthenticatedBy;
    use crate::permissions::{
        Activity, AuthorizerChain, CompiledPermissions, DefaultBehaviour, Permission, QosSet,
        StaticRules,
    };
    use crate::policy::{ClaimsAuthorizer, ClaimsSettings};

    /// An Ed25519 key as `openssl genpkey -algorithm ed25519` writes it (PKCS#8 v1).
    const ED25519_V1: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOKplu/V4NkCmY2uUmSGhouC2vcql6A3cQy4VLvpg9Au\n-----END PRIVATE KEY-----\n";

    fn signer_with(
        pem: &str,
        algorithm: &str,
        form: PermissionsForm,
        max_rules: usize,
    ) -> TokenSigner {
        TokenSigner::new(&SignerSettings {
            pem: pem.as_bytes(),
            algorithm,
            kid: "k1",
            issuer: "https://broker.test",
            audience: "mqtt",
            form,
            max_rules,
        })
        .unwrap()
    }

    fn es256(form: PermissionsForm) -> TokenSigner {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        signer_with(&key.serialize_pem(), "ES256", form, 16)
    }

    fn alice() -> Principal {
        Principal {
            username: Some("alice".into()),
            client_identity: Some("sensor-7".into()),
            client_identity_origin: NameOrigin::Certificate,
            roles: vec![crate::Attribute::new("device", crate::Source::Connect)],
            authenticated_by: AuthenticatedBy::Authenticator("passwords".into()),
            ..Principal::anonymous("alice-1")
        }
    }

    fn permissions(principal: &Principal) -> CompiledPermissions {
        let rules = vec![
            Permission::deny("devices/alice/secret").unwrap(),
            Permission::allow("devices/alice/#").unwrap(),
            Permission::allow("telemetry/#")
                .unwrap()
                .for_activity(Activity::Publish)
                .with_qos(QosSet::from_levels([0, 1]).unwrap()),
        ];
        AuthorizerChain::new()
            .with(StaticRules::new("policy", rules, DefaultBehaviour::Deny))
            .compile(principal)
    }

    /// The claims, verified with the signer's public half as a trusting authenticator would.
    fn verified(signer: &TokenSigner, token: &SignedToken) -> Value {
        let trusted = signer.trusted();
        let mut validation = Validation::new(trusted.algorithm);
        validation.set_issuer(&[&trusted.issuer]);
        validation.set_audience(&[&trusted.audience]);
        let token = std::str::from_utf8(token.token.expose()).unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        decode::<Value>(token, &trusted.key.key, &validation)
            .expect("the public half verifies")
            .claims
    }

    fn grant<'a>(
        principal: &'a Principal,
        permissions: Option<&'a CompiledPermissions>,
    ) -> TokenGrant<'a> {
        TokenGrant {
            principal,
            permissions,
            lifetime: Duration::from_secs(900),
            now: SystemTime::now(),
        }
    }

    #[test]
    fn the_token_names_the_principal_and_its_acl_reads_back_as_the_same_permissions() {
        let signer = es256(PermissionsForm::Acl);
        let principal = alice();
        let compiled = permissions(&principal);
        let token = signer.sign(&grant(&principal, Some(&compiled))).unwrap();
        assert_eq!(token.expires_in, 900);
        let claims = verified(&signer, &token);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["client_id"], "alice-1");
        assert_eq!(claims["client_identity"], "sensor-7");
        assert_eq!(claims["roles"], serde_json::json!(["device"]));
        assert_eq!(claims["jti"], token.jti.as_str());
        assert_eq!(claims["acl_default"], "deny");
        let exp = claims["exp"].as_u64().unwrap();
        assert_eq!(exp - claims["iat"].as_u64().unwrap(), 900);

        let reader = ClaimsAuthorizer::new(ClaimsSettings::default()).unwrap();
        let back = reader.acl_permissions("acl", &claims["acl"]).unwrap();
        let again = AuthorizerChain::new()
            .with(StaticRules::new("token", back, DefaultBehaviour::Deny))
            .compile(&principal);
        for (topic, qos, retain) in [
            ("devices/alice/secret", QoS::AtMostOnce, false),
            ("devices/alice/x", QoS::ExactlyOnce, true),
            ("telemetry/a", QoS::AtLeastOnce, false),
            ("telemetry/a", QoS::ExactlyOnce, false),
            ("devices/bob/x", QoS::AtMostOnce, false),
        ] {
            assert_eq!(
                again.check_publish(topic, qos, retain).allowed,
                compiled.check_publish(topic, qos, retain).allowed,
                "{topic} {qos:?}"
            );
        }
        assert!(
            !again
                .check_subscribe("telemetry/#", QoS::AtMostOnce, false)
                .allowed
        );
        assert!(
            again
                .check_subscribe("devices/alice/+", QoS::AtLeastOnce, false)
                .allowed
        );
    }

    #[test]
    fn the_aif_scope_stops_at_the_first_deny_so_it_is_never_wider() {
        let signer = es256(PermissionsForm::Aif);
        let principal = alice();
        let rules = vec![
            Permission::allow("a/#").unwrap(),
            Permission::allow("q/#")
                .unwrap()
                .with_qos(QosSet::from_levels([0]).unwrap()),
            Permission::allow("s")
                .unwrap()
                .for_activity(Activity::Subscribe),
            Permission::deny("a/secret").unwrap(),
            Permission::allow("after/#").unwrap(),
        ];
        let compiled = AuthorizerChain::new()
            .with(StaticRules::new("policy", rules, DefaultBehaviour::Deny))
            .compile(&principal);
        let token = signer.sign(&grant(&principal, Some(&compiled))).unwrap();
        let claims = verified(&signer, &token);
        assert_eq!(
            claims["scope"],
            serde_json::json!([["a/#", ["pub", "sub"]], ["s", ["sub"]]])
        );
        assert!(claims.get("acl").is_none());
    }

    #[test]
    fn no_token_vouches_for_a_name_nobody_checked() {
        let signer = es256(PermissionsForm::None);
        let anonymous = Principal::anonymous("anon");
        assert_eq!(
            signer.sign(&grant(&anonymous, None)).err(),
            Some(SignRefusal::NoVerifiedName)
        );
        let unverified = Principal {
            username: Some("alice".into()),
            username_origin: NameOrigin::Unverified,
            ..Principal::anonymous("anon")
        };
        assert_eq!(
            signer.sign(&grant(&unverified, None)).err(),
            Some(SignRefusal::NoVerifiedName)
        );
        // A certificate's name is vouched for by the TLS layer.
        let device = Principal {
            client_identity: Some("sensor-7".into()),
            client_identity_origin: NameOrigin::Certificate,
            authenticated_by: AuthenticatedBy::Certificate,
            ..Principal::anonymous("sensor-7")
        };
        let token = signer.sign(&grant(&device, None)).unwrap();
        let claims = verified(&signer, &token);
        assert_eq!(claims["sub"], "sensor-7");
        assert!(claims.get("client_identity").is_none(), "not repeated");
        assert!(claims.get("acl").is_none());
    }

    #[test]
    fn a_token_never_outlives_the_credentials_it_was_issued_for() {
        let signer = es256(PermissionsForm::None);
        let now = SystemTime::now();
        let principal = Principal {
            expires_at: Some(now + Duration::from_secs(120)),
            ..alice()
        };
        let mut asked = grant(&principal, None);
        asked.now = now;
        let token = signer.sign(&asked).unwrap();
        assert!(
            (119..=120).contains(&token.expires_in),
            "{}",
            token.expires_in
        );
        let expiring = Principal {
            expires_at: Some(now),
            ..alice()
        };
        let mut asked = grant(&expiring, None);
        asked.now = now;
        assert_eq!(
            signer.sign(&asked).err(),
            Some(SignRefusal::CredentialsExpiring)
        );
    }

    #[test]
    fn more_rules_than_a_token_carries_are_refused() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signer = signer_with(&key.serialize_pem(), "ES256", PermissionsForm::Acl, 2);
        let principal = alice();
        let compiled = permissions(&principal);
        assert_eq!(
            signer.sign(&grant(&principal, Some(&compiled))).err(),
            Some(SignRefusal::TooManyRules { rules: 3, most: 2 })
        );
    }

    #[test]
    fn ed25519_keys_of_both_pkcs8_versions_sign_and_verify() {
        let v2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        for pem in [ED25519_V1.to_owned(), v2.serialize_pem()] {
            let signer = signer_with(&pem, "EdDSA", PermissionsForm::None, 16);
            let principal = alice();
            let token = signer.sign(&grant(&principal, None)).unwrap();
            assert_eq!(verified(&signer, &token)["sub"], "alice");
            assert_eq!(signer.jwk()["crv"], "Ed25519");
            assert_eq!(signer.jwk()["kid"], "k1");
        }
    }

    fn try_new(pem: &str, algorithm: &str) -> Result<TokenSigner, String> {
        TokenSigner::new(&SignerSettings {
            pem: pem.as_bytes(),
            algorithm,
            kid: "k",
            issuer: "i",
            audience: "a",
            form: PermissionsForm::None,
            max_rules: 1,
        })
    }

    #[test]
    fn a_key_that_is_not_for_the_algorithm_is_refused() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = ec.serialize_pem();
        assert!(try_new(&pem, "EdDSA").is_err());
        assert!(try_new(ED25519_V1, "ES256").is_err());
        assert!(try_new(&pem, "RS256")
            .err()
            .unwrap()
            .starts_with("algorithm"));
        assert!(try_new("not a key", "ES256").is_err());
    }
}
