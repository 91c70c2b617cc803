//! The keys every token authenticator's table shares (JWT, introspection, the password
//! grant's `verify`): where the token travels and how its claims become an identity.
//!
//! They are one struct, flattened into each authenticator's settings, so they are declared
//! once. serde's own flattening would lose the key of a value of the wrong type and let
//! unknown keys through, so this struct reads its keys itself: an error names its key, and any
//! key the surrounding table does not know is refused here (the table is read with every key
//! the surrounding struct did not take).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{ClaimMapping, TokenLocation, TokenSource};

/// Where the token travels and how its claims map to an identity.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClaimsConfig {
    /// Where the token travels (`token_from`: `password`, the default; `username`;
    /// `authentication_data`).
    pub token_from: TokenLocation,
    /// With the token in the password: the user name the client must send for this
    /// authenticator to try the token (such as `JWT`, as in the Auth0 article). Any user name
    /// when not set.
    pub username_marker: Option<String>,
    /// With the token in the password: the user name must equal the token's user name claim
    /// (`matchUsernameToSubject`).
    pub username_must_match_claim: bool,
    /// The MQTT 5 authentication method carrying the token (`token_from = "authentication_data"`).
    pub authentication_method: Option<String>,
    /// Claims that must be present with these values (a string claim equals the value; an
    /// array claim contains it).
    pub required_claims: BTreeMap<String, Value>,
    /// The claim naming the user (`sub` by default).
    pub username_claim: String,
    /// The claim the client identifier must equal (`matchClientIdToSubject` when `sub`).
    pub client_id_claim: Option<String>,
    /// The claim naming the client's (device's) own identity beside the user's
    /// (`%c` / `${client_identity}` in permissions).
    pub client_identity_claim: Option<String>,
    /// Claim paths listing roles (`realm_access.roles`, `roles`, `scope`, a namespaced claim).
    pub roles_claims: Vec<String>,
    /// Claim paths listing groups.
    pub groups_claims: Vec<String>,
    /// RFC 8705 certificate-bound tokens: `when_present` (the default: a token whose `cnf`
    /// has `x5t#S256` holds only with that client certificate), `required` (every token
    /// must be so bound) or `off`.
    pub certificate_binding: super::CertificateBinding,
}

impl Default for TokenClaimsConfig {
    fn default() -> Self {
        TokenClaimsConfig {
            token_from: TokenLocation::default(),
            username_marker: None,
            username_must_match_claim: false,
            authentication_method: None,
            required_claims: BTreeMap::new(),
            username_claim: "sub".into(),
            client_id_claim: None,
            client_identity_claim: None,
            roles_claims: Vec::new(),
            groups_claims: Vec::new(),
            certificate_binding: super::CertificateBinding::default(),
        }
    }
}

impl TokenClaimsConfig {
    /// Where the token is looked for.
    pub fn token_source(&self) -> TokenSource {
        TokenSource {
            location: self.token_from,
            username_marker: self.username_marker.clone(),
            authentication_method: self.authentication_method.clone(),
        }
    }

    /// How the claims map to an identity. The user name can only be held to a claim when the
    /// token is in the password (elsewhere the user name is the token or free).
    pub fn claim_mapping(&self) -> ClaimMapping {
        ClaimMapping {
            required_claims: self
                .required_claims
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            username_claim: self.username_claim.clone(),
            username_must_match_claim: self.username_must_match_claim
                && self.token_from == TokenLocation::Password,
            client_id_claim: self.client_id_claim.clone(),
            client_identity_claim: self.client_identity_claim.clone(),
            roles_claims: self.roles_claims.clone(),
            groups_claims: self.groups_claims.clone(),
            certificate_binding: self.certificate_binding,
        }
    }
}

impl<'de> Deserialize<'de> for TokenClaimsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A map, not a struct: flattened, a struct is shown only its own keys, a map every key
        // left over, so an unknown one is seen (and refused) here.
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// Reads the shared keys one by one, naming the key in any error.
struct KeysVisitor;

impl<'de> Visitor<'de> for KeysVisitor {
    type Value = TokenClaimsConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token authenticator's table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TokenClaimsConfig, A::Error> {
        let mut config = TokenClaimsConfig::default();
        while let Some(key) = map.next_key::<String>()? {
            let named = |e: A::Error| de::Error::custom(format!("key `{key}`: {e}"));
            match key.as_str() {
                "token_from" => config.token_from = map.next_value().map_err(named)?,
                "username_marker" => config.username_marker = map.next_value().map_err(named)?,
                "username_must_match_claim" => {
                    config.username_must_match_claim = map.next_value().map_err(named)?
                }
                "authentication_method" => {
                    config.authentication_method = map.next_value().map_err(named)?
                }
                "required_claims" => config.required_claims = map.next_value().map_err(named)?,
                "username_claim" => config.username_claim = map.next_value().map_err(named)?,
                "client_id_claim" => config.client_id_claim = map.next_value().map_err(named)?,
                "client_identity_claim" => {
                    config.client_identity_claim = map.next_value().map_err(named)?
                }
                "roles_claims" => config.roles_claims = map.next_value().map_err(named)?,
                "groups_claims" => config.groups_claims = map.next_value().map_err(named)?,
                "certificate_binding" => {
                    config.certificate_binding = map.next_value().map_err(named)?
                }
                // Not `unknown_field`: its list would name only the shared keys, not the
                // table's own.
                _ => return Err(de::Error::custom(format!("unknown field `{key}`"))),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with one key of its own beside the shared ones, as an authenticator's is.
    #[derive(Debug, Deserialize)]
    struct Table {
        #[serde(default)]
        own: u32,
        #[serde(flatten)]
        claims: TokenClaimsConfig,
    }

    fn parse(text: &str) -> Result<Table, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn an_empty_table_gives_the_defaults() {
        let table = parse("").unwrap();
        assert_eq!(table.claims, TokenClaimsConfig::default());
        assert_eq!(table.claims.username_claim, "sub");
    }

    #[test]
    fn shared_and_own_keys_are_read_side_by_side() {
        let table = parse(
            "own = 3\ntoken_from = \"authentication_data\"\nauthentication_method = \"jwt\"\nroles_claims = [\"realm_access.roles\"]\nrequired_claims = { azp = \"broker\" }\n",
        )
        .unwrap();
        assert_eq!(table.own, 3);
        assert_eq!(table.claims.token_from, TokenLocation::AuthenticationData);
        assert_eq!(table.claims.authentication_method.as_deref(), Some("jwt"));
        assert_eq!(table.claims.roles_claims, ["realm_access.roles"]);
        assert_eq!(
            table.claims.required_claims.get("azp"),
            Some(&Value::from("broker"))
        );
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let e = parse("own = 1\nusername_claims = \"sub\"\n").unwrap_err();
        assert!(
            e.message().starts_with("unknown field `username_claims`"),
            "{e}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let e = parse("username_must_match_claim = \"yes\"\n").unwrap_err();
        assert!(
            e.message().starts_with("key `username_must_match_claim`: "),
            "{e}"
        );
    }

    #[test]
    fn certificate_binding_is_read_and_a_wrong_value_names_its_key() {
        let table = parse("certificate_binding = \"required\"\n").unwrap();
        assert_eq!(
            table.claims.claim_mapping().certificate_binding,
            super::super::CertificateBinding::Required
        );
        let e = parse("certificate_binding = \"sometimes\"\n").unwrap_err();
        assert!(
            e.message().starts_with("key `certificate_binding`: "),
            "{e}"
        );
    }

    #[test]
    fn the_user_name_is_held_to_the_claim_only_with_the_token_in_the_password() {
        let mut config = TokenClaimsConfig {
            username_must_match_claim: true,
            ..TokenClaimsConfig::default()
        };
        assert!(config.claim_mapping().username_must_match_claim);
        config.token_from = TokenLocation::Username;
        assert!(!config.claim_mapping().username_must_match_claim);
    }
}
