//! The admin HTTP listener (the `[admin]` table): off unless the table is present.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::TlsConfig;

/// Where the admin listener binds when `bind` is not set.
pub const DEFAULT_ADMIN_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 18083);

/// The least `max_request_bytes` may be: the HTTP parser's smallest read buffer.
pub const MIN_ADMIN_REQUEST_BYTES: usize = 8192;

/// The `[admin]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin HTTP listener (`127.0.0.1:18083` by default).
    pub bind: SocketAddr,
    /// TLS for the admin listener: the same table as a listener's `tls` (certificate, key,
    /// and optionally client certificates checked against a CA bundle and CRLs). Plain HTTP
    /// without it.
    pub tls: Option<TlsConfig>,
    /// Admin tokens that are JWTs from an identity provider: the keys of a JWT
    /// authenticator's `jwt` table (`issuer`, `audience`, `jwks_url` or a key,
    /// `roles_claims`, ...). Off without it.
    pub jwt: Option<tollgate_auth::jwt::JwtConfig>,
    /// The role a JWT must carry to be an `admin` token (`tollgate-admin`).
    pub jwt_admin_role: String,
    /// The role a JWT must carry to be a `read` token (`tollgate-read`).
    pub jwt_read_role: String,
    /// The file of admin tokens (one `name:role:sha256-hex` per line, written by
    /// `tollgate admin-token`). Required: there is no anonymous access.
    pub token_file: Option<PathBuf>,
    /// Largest request head a client may send, and largest body (the JSON of a ban or a
    /// revocation, an explain request), bytes (64 KiB by default, at least 8 KiB); a larger
    /// head gets 431, a larger body 413.
    pub max_request_bytes: usize,
    /// Admin connections served at once (32 by default); more wait in the listen queue.
    pub max_connections: usize,
    /// Seconds a request may take to arrive, headers and body (10 by default).
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub request_timeout: Duration,
    /// Failed authentications from one address before it is refused for `ban` (5).
    pub max_failures: u32,
    /// Seconds an address is refused (429) after `max_failures` failures (60).
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub ban: Duration,
    /// Most items one page of a listing holds, whatever `limit` asks (1000).
    pub max_page_size: usize,
    /// Event streams (`GET /api/v1/events`) open at once (8); one more gets 503. Each holds
    /// one of the `max_connections`.
    pub max_event_streams: usize,
    /// Seconds an event stream lasts before the broker ends it (3600; the client reconnects).
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub max_event_stream: Duration,
    /// Most bans in force at once (10 000); one more is refused with 409.
    pub max_bans: usize,
    /// Most revocations made through the API in force at once (10 000; the revocation file's
    /// entries are not counted).
    pub max_revocations: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: DEFAULT_ADMIN_BIND,
            tls: None,
            jwt: None,
            jwt_admin_role: "tollgate-admin".to_owned(),
            jwt_read_role: "tollgate-read".to_owned(),
            token_file: None,
            max_request_bytes: 64 * 1024,
            max_connections: 32,
            request_timeout: Duration::from_secs(10),
            max_failures: 5,
            ban: Duration::from_secs(60),
            max_page_size: 1000,
            max_event_streams: 8,
            max_event_stream: Duration::from_secs(3600),
            max_bans: 10_000,
            max_revocations: 10_000,
        }
    }
}
