//! Admin tokens that are JWTs from an identity provider (`[admin.jwt]`, the keys of a JWT
//! authenticator: `issuer`, `audience`, `jwks_url` or a key, `roles_claims`, ...): verified
//! as the JWT authenticator verifies an MQTT client's token, and given the `admin` role when
//! its roles hold `jwt_admin_role`, `read` when they hold `jwt_read_role`. A JWT is tried
//! only when the bearer token is not in the token file.

use std::net::SocketAddr;

use tollgate_auth::authentication::{AuthOutcome, ConnectRequest};
use tollgate_auth::jwt::{JwtAuthenticator, JwtConfig};
use tollgate_auth::SetupError;

use super::tokens::{Role, TokenHolder};

/// The issuer's verifier and the roles that make admin and read tokens.
pub struct AdminJwt {
    verifier: JwtAuthenticator,
    admin_role: String,
    read_role: Option<String>,
}

/// What a JWT presented as an admin token came to.
#[derive(Debug)]
pub enum JwtVerdict {
    /// Good, with this holder (its name is `jwt:` and the token's user name claim).
    Holder(TokenHolder),
    /// Not good (bad signature, expired, wrong issuer or audience).
    Refused(String),
    /// Good, but with neither role: the holder of `name` may not use the API.
    NoRole {
        /// `jwt:` and the token's user name claim.
        name: String,
    },
    /// The issuer's keys cannot be had: refused, and the operator told (fail closed).
    Unavailable(String),
}

impl AdminJwt {
    /// The verifier of `config`; `admin_role` and `read_role` name the roles that make each
    /// kind of token.
    pub fn new(
        config: JwtConfig,
        admin_role: String,
        read_role: Option<String>,
    ) -> Result<AdminJwt, SetupError> {
        Ok(AdminJwt {
            verifier: JwtAuthenticator::new("admin", config)?,
            admin_role,
            read_role,
        })
    }

    /// Verifies `token`, sent from `peer`.
    pub async fn verify(&self, token: &str, peer: SocketAddr) -> JwtVerdict {
        let request = ConnectRequest::new("admin", peer, "");
        let identity = match self.verifier.verify(&request, token).await {
            Ok(AuthOutcome::Allow(identity)) => identity,
            Ok(AuthOutcome::Deny { detail, .. }) => return JwtVerdict::Refused(detail),
            Ok(_) => return JwtVerdict::Refused("not a token for this API".to_owned()),
            Err(e) => return JwtVerdict::Unavailable(e.to_string()),
        };
        let has = |role: &str| identity.roles.iter().any(|r| r.value == role);
        let name = format!("jwt:{}", identity.username.as_deref().unwrap_or("?"));
        let role = if has(&self.admin_role) {
            Role::Admin
        } else if self.read_role.as_deref().is_some_and(has) {
            Role::Read
        } else {
            return JwtVerdict::NoRole { name };
        };
        JwtVerdict::Holder(TokenHolder { name, role })
    }
}
