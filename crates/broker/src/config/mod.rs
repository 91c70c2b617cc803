//! The broker's settings: listeners, authenticators, limits.
//!
//! Every field has a default, so an empty configuration is a working one. The `tollgate`
//! binary reads these from a TOML file; an embedder builds them in code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tollgate_auth::authentication::{OnError, ThrottleConfig};
use tollgate_auth::permissions::DefaultBehaviour;
use tollgate_auth::policy::ClaimsSettings;

mod admin;
mod audit;
mod device_grant;
mod kinds;
mod limits;
mod persistence;
mod token_issuer;

pub use admin::{AdminConfig, MIN_ADMIN_REQUEST_BYTES};
pub use audit::{AuditConfig, MAX_AUDIT_KEEP_FILES, MIN_AUDIT_FILE_BYTES};

pub use device_grant::{DeviceGrantSettings, UpgradeMode};
pub use kinds::{AuthenticatorKind, AuthorizerKind};
pub use persistence::{FsyncMode, PersistenceConfig, DEFAULT_INTERVAL_MS, DEFAULT_MIN_FREE_BYTES};

pub use limits::Limits;
pub use token_issuer::{IssuedTokenSource, TokenIssuerConfig, MAX_TOKEN_LIFETIME, MAX_TOKEN_RULES};

/// Settings for the whole broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// The listeners; the default is one TCP listener on 127.0.0.1:1883 with anonymous access.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// The authenticators listeners can use, by name.
    #[serde(rename = "authenticator")]
    pub authenticators: Vec<AuthenticatorConfig>,
    /// Throttling of failed logins (shared by all listeners).
    pub throttle: ThrottleConfig,
    /// The authorizers listeners can use, by name. With none, every client may publish and
    /// subscribe anywhere but `$SYS` (which is read-only).
    #[serde(rename = "authorizer")]
    pub authorizers: Vec<AuthorizerConfig>,
    /// How denials are enforced per protocol version.
    pub authorization: AuthorizationConfig,
    /// Token issuers listeners can offer, by name: tokens handed to authenticated clients
    /// over MQTT.
    #[serde(rename = "token_issuer")]
    pub token_issuers: Vec<TokenIssuerConfig>,
    /// Device authorization grants listeners can offer, by name: the OAuth 2.0 device flow
    /// relayed over MQTT for devices with no HTTP.
    #[serde(rename = "device_grant")]
    pub device_grants: Vec<DeviceGrantSettings>,
    /// Seconds an authentication may take before it counts as a backend failure.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub auth_timeout: Duration,
    /// Whether a client disconnected because its credentials expired (a token's `exp`) or
    /// were revoked has its will published.
    pub will_on_expiry: bool,
    /// A file of revoked tokens, users and clients (see docs/authentication.md).
    pub revocation: Option<RevocationConfig>,
    /// Protocol limits and queue sizes.
    pub limits: Limits,
    /// Where persistent sessions and retained messages are kept across restarts (in memory
    /// only unless `path` is set).
    pub persistence: PersistenceConfig,
    /// The admin HTTP listener (API, metrics): off unless the `[admin]` table is present.
    pub admin: Option<AdminConfig>,
    /// Audit events as JSON lines in a file (`[audit]`; off unless `file` is set).
    pub audit: AuditConfig,
    /// Seconds between updates of the `$SYS/broker/...` topics; 0 turns them off.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub sys_interval: Duration,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a `tracing` directive list);
    /// `RUST_LOG` overrides it. Read by the binary that sets up logging.
    pub log_level: String,
    /// Threads running connections; 0 (the default) means one per CPU. Read by the binary
    /// that builds the runtime. One thread costs less CPU per connection where the broker
    /// shares few cores with other work; more carry more traffic on a machine of its own.
    pub worker_threads: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listeners: vec![ListenerConfig {
                allow_anonymous: true,
                ..ListenerConfig::default()
            }],
            authenticators: Vec::new(),
            throttle: ThrottleConfig::default(),
            authorizers: Vec::new(),
            authorization: AuthorizationConfig::default(),
            token_issuers: Vec::new(),
            device_grants: Vec::new(),
            auth_timeout: Duration::from_secs(10),
            will_on_expiry: false,
            revocation: None,
            limits: Limits::default(),
            persistence: PersistenceConfig::default(),
            admin: None,
            audit: AuditConfig::default(),
            sys_interval: Duration::from_secs(10),
            log_level: "info".to_owned(),
            worker_threads: 0,
        }
    }
}

/// One network listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Name used in logs and audit lines; the bind address when not set.
    pub name: Option<String>,
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// Whether clients presenting no credentials may connect. Off unless set, except on the
    /// embedded default listener (loopback only), as with Mosquitto 2.
    pub allow_anonymous: bool,
    /// The authenticators asked, in order, by name; all configured ones in file order when
    /// not set.
    pub authenticators: Option<Vec<String>>,
    /// The authorizers asked, in order, by name; all configured ones in file order when not set.
    pub authorizers: Option<Vec<String>>,
    /// Authenticators of the client's own identity, asked first (a device's identifier and
    /// its secret in the password, e.g. a `password_file` with `key = "client_id"`): one must
    /// allow, and the user's credentials (user name, MQTT 5 authentication data) then go to
    /// `authenticators`, giving one principal with both identities. Empty: one identity.
    pub client_authenticators: Vec<String>,
    /// The `[[token_issuer]]` whose tokens clients of this listener may ask for over MQTT
    /// (none when not set: the issuer's topics are then like any `$tollgate/` topic, refused).
    pub token_issuer: Option<String>,
    /// The `[[device_grant]]` its clients may start over MQTT (none when not set).
    pub device_grant: Option<String>,
    /// Patterns the client identifier must match, if any are given: `%u` stands for the user
    /// name and `*` for any run of characters (e.g. `["%u", "%u-*"]`). A client identifier
    /// matching none is refused (5.0: 0x85, 3.x: 2).
    pub client_id_patterns: Vec<String>,
    /// Set TCP_NODELAY on accepted connections (lower latency, more packets on the wire).
    pub tcp_nodelay: bool,
    /// Largest session expiry granted on this listener, in seconds (lower than
    /// `limits.max_session_expiry` only). 0 keeps every session on this listener non-persistent,
    /// so anonymous clients of an open listener cannot park sessions under other clients'
    /// identifiers. Not set: the broker-wide limit.
    pub max_session_expiry: Option<u32>,
    /// Most connections open at once on this listener; more are closed as they are accepted,
    /// before any TLS handshake (0: no limit).
    pub max_connections: usize,
    /// Most connections open at once from one address (IPv6: one /64); more are closed as
    /// they are accepted (0: no limit).
    pub max_connections_per_address: usize,
    /// Most new connections accepted per second (a burst of as many is allowed); more are
    /// closed as they are accepted, before any TLS handshake (0: no limit).
    pub max_connection_rate: u32,
    /// Most new connections accepted per second from one address (IPv6: one /64), a burst of
    /// as many allowed; more are closed as they are accepted. One address flooding the
    /// listener is held to this and leaves the listener's rate to others (0: no limit).
    pub max_connection_rate_per_address: u32,
    /// The listen backlog: connections the kernel queues before the broker accepts them.
    pub listen_backlog: u32,
    /// Most authentications under way at once on this listener (a CONNECT waiting for its
    /// authenticators); more are refused at once (CONNACK 0x89, 3.x: 3). 0: no limit.
    pub max_pending_authentications: usize,
    /// Most authentications under way at once from one address (IPv6: one /64); more are
    /// refused at once (CONNACK 0x89, 3.x: 3). 0: no limit.
    pub max_pending_authentications_per_address: usize,
    /// TLS on this listener (MQTT over TLS, or secure WebSocket with `websocket`).
    pub tls: Option<TlsConfig>,
    /// MQTT over WebSocket on this listener (`websocket = {}`, or with a `path`).
    pub websocket: Option<WebSocketConfig>,
}

/// WebSocket settings of a listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// The request path clients must use (e.g. `/mqtt`); any path when not set.
    pub path: Option<String>,
    /// The web origins whose pages may open a WebSocket here (`https://console.example.com`,
    /// compared without regard to case); an upgrade carrying another `Origin` is refused with
    /// 403. Requests without an `Origin` (clients that are not browsers) are served. Not set:
    /// every origin.
    pub allowed_origins: Option<Vec<String>>,
}

/// TLS settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle (PEM) that client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Client certificates: `none` (the default), `optional` or `required`.
    #[serde(default)]
    pub client_certs: ClientCertMode,
    /// Certificate revocation lists (PEM) checked for client certificates.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Which field of a client certificate names the client: `cn` (the default), `san` (the
    /// first subject alternative name) or `fingerprint` (SHA-256, lowercase hex).
    #[serde(default)]
    pub identity: CertIdentityField,
    /// What that name becomes: `client` (the default: the device's identity, beside any user
    /// a password names) or `username` (Mosquitto's `use_identity_as_username`: the user name,
    /// and no password is asked).
    #[serde(default)]
    pub identity_as: CertIdentityUse,
    /// Seconds between checks of the certificate and key files for changes; 0 turns it off.
    #[serde(default = "default_tls_reload_interval")]
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub reload_interval: Duration,
}

fn default_tls_reload_interval() -> Duration {
    Duration::from_secs(60)
}

/// Whether a listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertMode {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; a client without one may still authenticate otherwise.
    Optional,
    /// Required: the TLS handshake fails without a valid one.
    Required,
}

/// The client certificate field that names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertIdentityField {
    /// Subject common name.
    #[default]
    Cn,
    /// First subject alternative name.
    San,
    /// SHA-256 fingerprint.
    Fingerprint,
}

/// What a client certificate's name becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertIdentityUse {
    /// The client's own identity (`Principal::client_identity`).
    #[default]
    Client,
    /// The user name (no password asked).
    Username,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            name: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 1883)),
            allow_anonymous: false,
            authenticators: None,
            authorizers: None,
            client_authenticators: Vec::new(),
            token_issuer: None,
            device_grant: None,
            client_id_patterns: Vec::new(),
            tcp_nodelay: true,
            max_session_expiry: None,
            max_connections: 100_000,
            max_connections_per_address: 1_000,
            max_connection_rate: 1_000,
            max_connection_rate_per_address: 100,
            listen_backlog: 1024,
            max_pending_authentications: 1_000,
            max_pending_authentications_per_address: 64,
            tls: None,
            websocket: None,
        }
    }
}

impl ListenerConfig {
    /// The name used in logs.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.bind.to_string())
    }
}

/// The revocation file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// The file (`jti <id>`, `user <name>`, `client <id>` lines).
    pub path: PathBuf,
    /// Seconds between checks for a changed file; 0 turns watching off (SIGHUP still reloads).
    #[serde(default = "default_revocation_interval")]
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub reload_interval: Duration,
}

fn default_revocation_interval() -> Duration {
    Duration::from_secs(1)
}

/// One authenticator, referred to by listeners by its name. Exactly one kind table
/// (`password_file`, `jwt`, `introspection`, `password_grant`, `webhook`, `ace`) must be given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticatorConfig {
    /// The name listeners use, and logs show.
    pub name: String,
    /// What a backend failure means: `deny` (the default) or `next`.
    #[serde(default)]
    pub on_error: OnError,
    /// Seconds a successful authentication is remembered; 0 (the default) turns caching off.
    #[serde(default)]
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub cache_ttl: Duration,
    /// A password file (Mosquitto's format, or argon2id lines from `tollgate passwd`).
    pub password_file: Option<PasswordFileConfig>,
    /// JWT access tokens (see docs/authentication.md).
    pub jwt: Option<tollgate_auth::jwt::JwtConfig>,
    /// Opaque tokens checked at an RFC 7662 introspection endpoint.
    pub introspection: Option<tollgate_auth::oauth::IntrospectionConfig>,
    /// The user name and password exchanged for a token at the provider (password grant).
    pub password_grant: Option<tollgate_auth::oauth::PasswordGrantConfig>,
    /// An HTTP service that decides.
    pub webhook: Option<tollgate_auth::webhook::WebhookConfig>,
    /// RFC 9431: the MQTT 5 method `ace`, a token with proof of possession of its key.
    pub ace: Option<tollgate_auth::ace::AceConfig>,
}

/// Settings of a password file authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordFileConfig {
    /// The file.
    pub path: PathBuf,
    /// Seconds between checks for a changed file; 0 turns watching off (SIGHUP still reloads).
    #[serde(default = "default_reload_interval")]
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub reload_interval: Duration,
    /// Most password hashes checked at once; the rest wait.
    #[serde(default = "default_parallel_hashes")]
    pub max_parallel_hashes: usize,
    /// What the file's names are: `username` (the default), or `client_id`: client
    /// identifiers with their client secrets (the CONNECT's password), for a listener's
    /// `client_authenticators`.
    #[serde(default)]
    pub key: PasswordKey,
}

/// What a password file's names are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordKey {
    /// User names (the password is the user's).
    #[default]
    Username,
    /// Client identifiers (the password is the client's secret).
    ClientId,
}

/// One authorizer, referred to by listeners by its name. Exactly one kind table
/// (`policy_file`, `acl_file`, `claims`) must be given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerConfig {
    /// The name listeners use, and audit lines show.
    pub name: String,
    /// A TOML policy file (see docs/policy.md).
    pub policy_file: Option<PolicyFileSource>,
    /// A Mosquitto `acl_file`.
    pub acl_file: Option<AclFileSource>,
    /// Permissions from token claims.
    pub claims: Option<ClaimsSettings>,
}

/// Where a policy file is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFileSource {
    /// The file; re-read when it changes and on SIGHUP, applied to connected clients at once.
    pub path: PathBuf,
}

/// Where a Mosquitto ACL file is, and what happens when none of its lines matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclFileSource {
    /// The file; re-read when it changes and on SIGHUP.
    pub path: PathBuf,
    /// When no line matches: `deny` (Mosquitto's behaviour, the default), `accept` or `next`.
    #[serde(default = "default_acl_default")]
    pub default: DefaultBehaviour,
}

fn default_acl_default() -> DefaultBehaviour {
    DefaultBehaviour::Deny
}

/// How denied publishes and subscriptions are answered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationConfig {
    /// A denied PUBLISH from an MQTT 3.1.1 client: `disconnect` (the default) or
    /// `acknowledge` (acknowledged as usual and dropped). 3.1 clients are always disconnected.
    pub denied_publish_v311: DeniedPublish,
    /// Also disconnect an MQTT 5 client (DISCONNECT 0x87) after a denied PUBLISH (which is
    /// answered with PUBACK/PUBREC 0x87 for QoS 1/2, and dropped for QoS 0).
    pub disconnect_on_denied_publish_v5: bool,
    /// The SUBACK code for a denied subscription from an MQTT 5 client: `not_authorized`
    /// (0x87, the default) or `unspecified_error` (0x80, which does not reveal which topics
    /// exist, as RFC 9431 allows).
    pub denied_subscribe_code_v5: DeniedSubscribeCode,
    /// Seconds between checks of policy and ACL files for changes; 0 turns it off.
    #[serde(deserialize_with = "tollgate_auth::seconds::deserialize")]
    pub reload_interval: Duration,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        AuthorizationConfig {
            denied_publish_v311: DeniedPublish::Disconnect,
            disconnect_on_denied_publish_v5: false,
            denied_subscribe_code_v5: DeniedSubscribeCode::NotAuthorized,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// What a denied 3.1.1 PUBLISH gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeniedPublish {
    /// The connection is closed.
    Disconnect,
    /// It is acknowledged as usual, and dropped.
    Acknowledge,
}

/// The SUBACK code for a denied 5.0 subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeniedSubscribeCode {
    /// 0x87.
    NotAuthorized,
    /// 0x80.
    UnspecifiedError,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_parallel_hashes() -> usize {
    2
}
