//! Certificate-bound access tokens (RFC 8705 section 3): a token whose `cnf` claim carries
//! `x5t#S256`, the base64url SHA-256 thumbprint of a client certificate, is good only on a
//! connection that presented that certificate over mutual TLS. A bearer token copied off a
//! device is then useless without the device's private key.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::principal::CertificateInfo;

/// Whether, and how, tokens must be bound to the connection's client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateBinding {
    /// Every token must carry `cnf.x5t#S256`, matching the client certificate.
    Required,
    /// A token that carries `cnf.x5t#S256` must match the client certificate; one without
    /// `cnf` is a bearer token as before; one bound another way (`jkt`, `jwk`, `kid`) is
    /// refused. The default.
    #[default]
    WhenPresent,
    /// `cnf` is not looked at.
    Off,
}

impl CertificateBinding {
    /// Whether `claims` may be used on a connection with `certificate` (the verified client
    /// certificate, if any), or why not (for the audit line).
    pub fn check(
        self,
        claims: &Value,
        certificate: Option<&CertificateInfo>,
    ) -> Result<(), String> {
        if self == CertificateBinding::Off {
            return Ok(());
        }
        let cnf = claims.get("cnf").filter(|c| !c.is_null());
        if let Some(other) = cnf
            .and_then(Value::as_object)
            .and_then(|members| members.keys().find(|k| *k != "x5t#S256"))
        {
            // Bound to a key (DPoP's jkt, a jwk, a kid) whose possession MQTT cannot prove
            // here: taken as a bearer token, it would be usable by whoever copied it.
            return Err(format!(
                "the token is bound by cnf {other}, which this authenticator cannot check"
            ));
        }
        if cnf.is_some_and(|c| !c.is_object()) {
            return Err("the cnf claim is not an object".into());
        }
        let thumbprint = cnf.and_then(|cnf| cnf.get("x5t#S256"));
        let thumbprint = match thumbprint {
            None | Some(Value::Null) if self == CertificateBinding::Required => {
                return Err("the token is not bound to a certificate (no cnf x5t#S256)".into())
            }
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(t)) => t,
            Some(_) => return Err("the cnf x5t#S256 claim is not a string".into()),
        };
        let digest = URL_SAFE_NO_PAD
            .decode(thumbprint)
            .or_else(|_| URL_SAFE.decode(thumbprint))
            .ok()
            .filter(|d| d.len() == 32)
            .ok_or("the cnf x5t#S256 claim is not a base64url SHA-256 thumbprint")?;
        let Some(certificate) = certificate else {
            return Err("the token is bound to a certificate and the client presented none".into());
        };
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if !certificate.fingerprint_sha256.eq_ignore_ascii_case(&hex) {
            return Err("the token is bound to another certificate".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn certificate(fingerprint: &str) -> CertificateInfo {
        CertificateInfo {
            common_name: Some("device-1".into()),
            subject_alt_names: Vec::new(),
            fingerprint_sha256: fingerprint.into(),
            issuer: "CN=ca".into(),
            serial_hex: "01".into(),
        }
    }

    const FINGERPRINT: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

    fn bound() -> Value {
        let digest: Vec<u8> = (1..=32).collect();
        json!({ "sub": "d", "cnf": { "x5t#S256": URL_SAFE_NO_PAD.encode(digest) } })
    }

    #[test]
    fn a_bound_token_holds_only_with_its_certificate() {
        let mine = certificate(FINGERPRINT);
        let other = certificate(&"ab".repeat(32));
        for binding in [
            CertificateBinding::WhenPresent,
            CertificateBinding::Required,
        ] {
            assert_eq!(binding.check(&bound(), Some(&mine)), Ok(()));
            assert!(binding
                .check(&bound(), Some(&other))
                .unwrap_err()
                .contains("another"));
            assert!(binding
                .check(&bound(), None)
                .unwrap_err()
                .contains("presented none"));
        }
        assert_eq!(CertificateBinding::Off.check(&bound(), None), Ok(()));
    }

    #[test]
    fn an_unbound_token_is_refused_only_where_binding_is_required() {
        let plain = json!({ "sub": "d" });
        assert_eq!(CertificateBinding::WhenPresent.check(&plain, None), Ok(()));
        assert!(CertificateBinding::Required
            .check(&plain, Some(&certificate(FINGERPRINT)))
            .unwrap_err()
            .contains("not bound"));
    }

    #[test]
    fn a_token_bound_to_a_key_cannot_pass_as_a_bearer_token() {
        for cnf in [
            json!({ "jkt": "abc" }),
            json!({ "jwk": { "kty": "OKP" } }),
            json!("x"),
        ] {
            let claims = json!({ "sub": "d", "cnf": cnf });
            assert!(
                CertificateBinding::WhenPresent
                    .check(&claims, None)
                    .is_err(),
                "{claims}"
            );
            assert_eq!(CertificateBinding::Off.check(&claims, None), Ok(()));
        }
    }

    #[test]
    fn malformed_thumbprints_are_refused() {
        for cnf in [
            json!({ "x5t#S256": 7 }),
            json!({ "x5t#S256": "!!" }),
            json!({ "x5t#S256": "AQID" }),
        ] {
            let claims = json!({ "cnf": cnf });
            assert!(
                CertificateBinding::WhenPresent
                    .check(&claims, Some(&certificate(FINGERPRINT)))
                    .is_err(),
                "{claims}"
            );
        }
    }
}
