//! A `[[device_grant]]`: the OAuth 2.0 device authorization grant (RFC 8628) relayed over
//! MQTT for devices with no HTTP (see docs/authentication.md, "The device grant over MQTT").
//! Listeners name the one they offer.

use std::time::Duration;

use serde::Deserialize;
use tollgate_auth::oauth::DeviceGrantConfig;

/// What becomes of the device's connection once the user has approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeMode {
    /// The connection becomes the token's principal at once: its permissions are compiled
    /// again, the session is untouched, no reconnect.
    #[default]
    InPlace,
    /// The token is sent, then the connection is closed (5.0: DISCONNECT 0x00 with a reason
    /// string): the device reconnects with the token.
    Reconnect,
}

/// One device grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGrantSettings {
    /// The name listeners use (`device_grant = "..."`).
    pub name: String,
    /// The provider and the broker's client there (`[device_grant.provider]`).
    pub provider: DeviceGrantConfig,
    /// `in_place` (the default) or `reconnect`.
    #[serde(default)]
    pub upgrade: UpgradeMode,
    /// Send the device the refresh token too (off: the broker keeps it).
    #[serde(default)]
    pub send_refresh_token: bool,
    /// Renew the access token with the refresh token before it expires and push the new one
    /// to the device, the connection's principal renewed with it (on, when the provider gives
    /// a refresh token and `upgrade = "in_place"`).
    #[serde(default = "yes")]
    pub refresh: bool,
    /// Seconds before the access token's expiry the renewal is made (60).
    #[serde(default = "default_refresh_before")]
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub refresh_before: Duration,
    /// The topic a device publishes its request to (`$tollgate/device/authorize`): MQTT 5
    /// with a Response Topic; 3.1.1 at `<request_topic>/<its client id>`, answered on
    /// `<answer_prefix>/<its client id>`.
    #[serde(default = "default_request_topic")]
    pub request_topic: String,
    /// Where 3.1.1 devices get the answers (`$tollgate/device`).
    #[serde(default = "default_answer_prefix")]
    pub answer_prefix: String,
    /// The longest a device code is polled, whatever the provider's `expires_in` (600 s).
    #[serde(default = "default_max_lifetime")]
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub max_lifetime: Duration,
    /// Grants under way at once, every device together (1000); more are refused
    /// (`temporarily_unavailable`).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Grants under way at once from one address (IPv6: one /64) (4).
    #[serde(default = "default_max_pending_per_address")]
    pub max_pending_per_address: usize,
    /// Grants one address (IPv6: one /64) may start per minute (6, a burst of as many): each
    /// costs a call to the provider. More are answered `slow_down`. 0 refuses every one.
    #[serde(default = "default_max_requests_per_minute")]
    pub max_requests_per_minute: u32,
    /// Failed calls to the provider in a row before a grant gives up
    /// (`temporarily_unavailable`) (3).
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
}

fn yes() -> bool {
    true
}

fn default_refresh_before() -> Duration {
    Duration::from_secs(60)
}

fn default_request_topic() -> String {
    "$tollgate/device/authorize".to_owned()
}

fn default_answer_prefix() -> String {
    "$tollgate/device".to_owned()
}

fn default_max_lifetime() -> Duration {
    Duration::from_secs(600)
}

fn default_max_pending() -> usize {
    1000
}

fn default_max_pending_per_address() -> usize {
    4
}

fn default_max_requests_per_minute() -> u32 {
    6
}

fn default_max_failures() -> u32 {
    3
}
