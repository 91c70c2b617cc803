//! What kind an `[[authenticator]]` or `[[authorizer]]` is, lowered from the file's shape
//! (one optional table per kind, exactly one of which must be given) into an enum the code
//! that builds them matches on.

use tollgate_auth::jwt::JwtConfig;
use tollgate_auth::oauth::{IntrospectionConfig, PasswordGrantConfig};
use tollgate_auth::policy::ClaimsSettings;
use tollgate_auth::webhook::WebhookConfig;

use crate::config_cause::{ConfigCause, NamedTable};

use super::{
    AclFileSource, AuthenticatorConfig, AuthorizerConfig, PasswordFileConfig, PolicyFileSource,
};

/// An authenticator's kind, with its settings.
#[derive(Debug, Clone, Copy)]
pub enum AuthenticatorKind<'a> {
    /// `password_file`.
    PasswordFile(&'a PasswordFileConfig),
    /// `jwt`.
    Jwt(&'a JwtConfig),
    /// `introspection`.
    Introspection(&'a IntrospectionConfig),
    /// `password_grant`.
    PasswordGrant(&'a PasswordGrantConfig),
    /// `webhook`.
    Webhook(&'a WebhookConfig),
    /// `ace`.
    Ace(&'a tollgate_auth::ace::AceConfig),
}

impl AuthenticatorKind<'_> {
    /// The kind's table name in the file.
    pub fn table(&self) -> &'static str {
        match self {
            AuthenticatorKind::PasswordFile(_) => "password_file",
            AuthenticatorKind::Jwt(_) => "jwt",
            AuthenticatorKind::Introspection(_) => "introspection",
            AuthenticatorKind::PasswordGrant(_) => "password_grant",
            AuthenticatorKind::Webhook(_) => "webhook",
            AuthenticatorKind::Ace(_) => "ace",
        }
    }
}

/// An authorizer's kind, with its settings.
#[derive(Debug, Clone, Copy)]
pub enum AuthorizerKind<'a> {
    /// `policy_file`.
    PolicyFile(&'a PolicyFileSource),
    /// `acl_file`.
    AclFile(&'a AclFileSource),
    /// `claims`.
    Claims(&'a ClaimsSettings),
}

/// The one item of `present` that is given, or `None` when none or several are.
fn exactly_one<T>(present: impl IntoIterator<Item = Option<T>>) -> Option<T> {
    let mut given = present.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

impl AuthenticatorConfig {
    /// Its kind: exactly one kind table must be given.
    pub fn kind(&self) -> Result<AuthenticatorKind<'_>, ConfigCause> {
        exactly_one([
            self.password_file
                .as_ref()
                .map(AuthenticatorKind::PasswordFile),
            self.jwt.as_ref().map(AuthenticatorKind::Jwt),
            self.introspection
                .as_ref()
                .map(AuthenticatorKind::Introspection),
            self.password_grant
                .as_ref()
                .map(AuthenticatorKind::PasswordGrant),
            self.webhook.as_ref().map(AuthenticatorKind::Webhook),
            self.ace.as_ref().map(AuthenticatorKind::Ace),
        ])
        .ok_or_else(|| ConfigCause::KindTable {
            table: NamedTable::Authenticator,
            name: self.name.clone(),
        })
    }
}

impl AuthorizerConfig {
    /// Its kind: exactly one kind table must be given.
    pub fn kind(&self) -> Result<AuthorizerKind<'_>, ConfigCause> {
        exactly_one([
            self.policy_file.as_ref().map(AuthorizerKind::PolicyFile),
            self.acl_file.as_ref().map(AuthorizerKind::AclFile),
            self.claims.as_ref().map(AuthorizerKind::Claims),
        ])
        .ok_or_else(|| ConfigCause::KindTable {
            table: NamedTable::Authorizer,
            name: self.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_kind_table_is_a_kind() {
        let mut config = AuthenticatorConfig {
            name: "a".into(),
            ..AuthenticatorConfig::default()
        };
        let none = ConfigCause::KindTable {
            table: NamedTable::Authenticator,
            name: "a".into(),
        };
        assert_eq!(config.kind().unwrap_err(), none);
        config.password_file = Some(PasswordFileConfig {
            path: "p".into(),
            reload_interval: std::time::Duration::ZERO,
            max_parallel_hashes: 1,
            key: Default::default(),
        });
        assert_eq!(config.kind().unwrap().table(), "password_file");
        config.jwt = Some(JwtConfig::default());
        assert_eq!(config.kind().unwrap_err(), none);
    }
}
