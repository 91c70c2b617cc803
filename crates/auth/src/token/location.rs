//! Where a token travels in CONNECT, and how an authenticator finds it there.

use serde::Deserialize;

use crate::authentication::ConnectRequest;
use crate::SetupError;

/// Where the token travels in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLocation {
    /// In the password field (the user name is free, a fixed marker, or must match a claim).
    #[default]
    Password,
    /// In the user name field (as older integrations did).
    Username,
    /// In MQTT 5 authentication data, under an authentication method.
    AuthenticationData,
}

/// Where one authenticator looks for its token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSource {
    /// The field.
    pub location: TokenLocation,
    /// With the token in the password: the user name the client must send for the
    /// authenticator to try the token (`JWT`, `token`…); any user name when `None`.
    pub username_marker: Option<String>,
    /// With the token in authentication data: the method naming it.
    pub authentication_method: Option<String>,
}

impl TokenSource {
    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), SetupError> {
        if self.location == TokenLocation::AuthenticationData
            && self.authentication_method.is_none()
        {
            return Err(SetupError::AuthenticationMethodMissing);
        }
        Ok(())
    }

    /// Whether the user name of `request` names a user, as far as this source is concerned:
    /// not when it is the marker, the token itself, or a free name sent beside a token (unless
    /// `must_match_claim`: then it must be the token's user, so it names one).
    pub fn username_names_user(&self, request: &ConnectRequest, must_match_claim: bool) -> bool {
        match self.location {
            TokenLocation::Username => false,
            TokenLocation::Password => match &self.username_marker {
                Some(marker) => request.username.as_deref() != Some(marker.as_str()),
                None => must_match_claim,
            },
            TokenLocation::AuthenticationData => {
                request.authentication_method.as_deref() != self.authentication_method.as_deref()
                    || must_match_claim
            }
        }
    }

    /// The token in `request`, if it carries one where this source looks (as UTF-8 text).
    pub fn token<'r>(&self, request: &'r ConnectRequest) -> Option<&'r str> {
        match self.location {
            TokenLocation::Password => {
                if let Some(marker) = &self.username_marker {
                    if request.username.as_deref() != Some(marker.as_str()) {
                        return None;
                    }
                }
                std::str::from_utf8(request.password.as_ref()?.expose()).ok()
            }
            TokenLocation::Username => request.username.as_deref(),
            TokenLocation::AuthenticationData => {
                if request.authentication_method.as_deref() != self.authentication_method.as_deref()
                {
                    return None;
                }
                std::str::from_utf8(request.authentication_data.as_ref()?.expose()).ok()
            }
        }
    }
}
