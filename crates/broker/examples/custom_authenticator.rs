//! Embedding Tollgate with an authenticator written in Rust.
//!
//! Run it with `cargo run -p tollgate-broker --example custom_authenticator`, then:
//!
//!     mosquitto_pub -h 127.0.0.1 -p 1884 -u sensor-17 -P key-17 -t t -m hello   # accepted
//!     mosquitto_pub -h 127.0.0.1 -p 1884 -u sensor-17 -P wrong  -t t -m hello   # refused (4 / 0x86)
//!
//! The authenticator here accepts devices named `sensor-<n>` whose password is `key-<n>`
//! and gives them the role `sensor`; anyone else is left to the next authenticator (here
//! there is none, so they are refused). A real one would ask a device registry.

use std::sync::Arc;

use tollgate_auth::authentication::{
    AuthError, AuthOutcome, Authenticator, BoxFuture, ConnectRequest, DenyReason, Identity,
};
use tollgate_auth::{Attribute, Source};
use tollgate_broker::{BrokerConfig, Extensions, ListenerConfig, Server};

struct SensorRegistry;

impl Authenticator for SensorRegistry {
    fn name(&self) -> &str {
        "sensor-registry"
    }

    fn authenticate<'a>(
        &'a self,
        request: &'a ConnectRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, AuthError>> {
        Box::pin(async move {
            let Some(number) = request
                .username
                .as_deref()
                .and_then(|u| u.strip_prefix("sensor-"))
            else {
                return Ok(AuthOutcome::Next);
            };
            let expected = format!("key-{number}");
            let given = request
                .password
                .as_ref()
                .map(|p| p.expose())
                .unwrap_or_default();
            if tollgate_auth::constant_time_eq(given, expected.as_bytes()) {
                let role = Attribute::new("sensor", Source::Authenticator(self.name().to_owned()));
                Ok(AuthOutcome::Allow(Identity {
                    roles: vec![role],
                    ..Identity::default()
                }))
            } else {
                Ok(AuthOutcome::deny(
                    DenyReason::BadCredentials,
                    "wrong device key",
                ))
            }
        })
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .init();
    let config = BrokerConfig {
        listeners: vec![ListenerConfig {
            bind: "127.0.0.1:1884".parse().unwrap(),
            ..ListenerConfig::default()
        }],
        ..BrokerConfig::default()
    };
    let server = Server::start_with(
        config,
        Extensions {
            authenticators: vec![Arc::new(SensorRegistry)],
            ..Default::default()
        },
    )
    .await?;
    println!("listening on {:?}; Ctrl-C to stop", server.local_addrs());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
