//! OAuth 2.0 services the broker calls as a client: token introspection (RFC 7662) for
//! opaque tokens, the password grant forwarded to the provider's token endpoint, and the
//! device authorization grant relayed for devices that speak only MQTT.

mod client;
mod device_grant;
mod introspection;
mod password_grant;
mod refresh;

pub(crate) use client::{
    check_max_response_bytes, default_max_concurrent_requests, default_max_response_bytes,
    read_body, HttpCaller,
};
pub use client::{
    http_client, ClientAuthMethod, ClientCredentials, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_RESPONSE_BYTES,
};
pub use device_grant::{
    DeviceAuthorization, DeviceGrantClient, DeviceGrantConfig, GrantedTokens, TokenAnswer,
};
pub use introspection::{IntrospectionAuthenticator, IntrospectionConfig};
pub use password_grant::{PasswordGrantAuthenticator, PasswordGrantConfig};
pub use refresh::TokenRefresher;
