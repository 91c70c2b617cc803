//! The device authorization grant relayed over MQTT (seed 004, RFC 8628): a device on a
//! bootstrap listener publishes a request, the broker asks the provider for a user code as
//! its confidential client, sends the device the code and the address the user approves it
//! at, polls the token endpoint itself, and when the user has approved hands the device its
//! token and makes its connection the token's principal.
//!
//! This module holds what a configured grant is (`DeviceGrant`: the provider client, the
//! bounds on grants under way); the steps of one grant are the connection's
//! (`connection/device_grant.rs`), timed by its timers, with each call to the provider run
//! by the driver beside the connection, as an authentication is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use std::time::Instant;

use tollgate_auth::authentication::{AddressKey, Held, HeldPerAddress};
use tollgate_auth::oauth::DeviceGrantClient;

use crate::config::DeviceGrantSettings;
use crate::config_cause::{ConfigCause, NamedTable};
use crate::request_rate::RequestRate;
use crate::{ConfigProblem, KeyPath};

/// One `[[device_grant]]`, ready.
pub struct DeviceGrant {
    /// Its settings (the provider's among them).
    pub settings: DeviceGrantSettings,
    /// The broker as the provider's client.
    pub client: DeviceGrantClient,
    pending: Arc<HeldPerAddress>,
    /// Grants started per address, per minute.
    rate: parking_lot::Mutex<RequestRate>,
}

impl std::fmt::Debug for DeviceGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceGrant")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

impl DeviceGrant {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// A slot for one more grant from `address`, or `None` when as many are under way as
    /// the bounds allow (from that address, or in all).
    pub fn hold(&self, address: IpAddr) -> Option<Held> {
        self.pending.try_hold(address).ok()
    }

    /// Whether `address` may start one more grant at `now` (taking it if so).
    pub fn may_start(&self, address: IpAddr, now: Instant) -> bool {
        let key = format!("{:?}", AddressKey::of(address));
        self.rate.lock().take(&key, now)
    }

    /// Whether `topic` is this grant's request topic for the client `client_id` (the bare
    /// topic, for MQTT 5 request/response, or the topic with `/<client id>`).
    pub fn is_request(&self, topic: &str, client_id: &str) -> Option<RequestForm> {
        let request = self.settings.request_topic.as_str();
        if topic == request {
            return Some(RequestForm::Bare);
        }
        let id = topic.strip_prefix(request)?.strip_prefix('/')?;
        Some(if id == client_id {
            RequestForm::ClientTopic
        } else {
            RequestForm::OtherClient
        })
    }

    /// The topic a 3.1.1 device `client_id` gets its answers on.
    pub fn answer_topic(&self, client_id: &str) -> String {
        format!("{}/{client_id}", self.settings.answer_prefix)
    }
}

/// How a request topic names its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestForm {
    /// The bare request topic (MQTT 5, answered on the Response Topic).
    Bare,
    /// `<request_topic>/<its own client id>`.
    ClientTopic,
    /// `<request_topic>/<another client's id>`: refused.
    OtherClient,
}

/// The configured device grants, by name.
#[derive(Debug, Default)]
pub struct DeviceGrants {
    by_name: HashMap<String, Arc<DeviceGrant>>,
    broken: Vec<String>,
}

impl DeviceGrants {
    /// Builds every `[[device_grant]]`; each that cannot be built is a problem added to
    /// `problems`, at its key.
    pub fn build(
        configs: &[DeviceGrantSettings],
        problems: &mut Vec<ConfigProblem>,
    ) -> DeviceGrants {
        let mut by_name = HashMap::new();
        let mut broken = Vec::new();
        for (index, settings) in configs.iter().enumerate() {
            let at = || KeyPath::root().key("device_grant").index(index);
            if settings.name.is_empty() {
                problems.push(ConfigProblem::at(at().key("name"), ConfigCause::Required));
                continue;
            }
            if by_name.contains_key(&settings.name) || broken.contains(&settings.name) {
                problems.push(ConfigProblem::at(
                    at().key("name"),
                    ConfigCause::DuplicateName {
                        table: NamedTable::DeviceGrant,
                        name: settings.name.clone(),
                    },
                ));
                continue;
            }
            if let Err((key, reason)) = check_settings(settings) {
                broken.push(settings.name.clone());
                problems.push(ConfigProblem::at(
                    at().key(key),
                    ConfigCause::Table {
                        table: NamedTable::DeviceGrant,
                        name: settings.name.clone(),
                        reason,
                    },
                ));
                continue;
            }
            match DeviceGrantClient::new(&settings.name, settings.provider.clone()) {
                Ok(client) => {
                    let grant = DeviceGrant {
                        rate: parking_lot::Mutex::new(RequestRate::new(
                            settings.max_requests_per_minute,
                            100_000,
                        )),
                        pending: HeldPerAddress::new(
                            settings.max_pending_per_address,
                            settings.max_pending,
                        ),
                        settings: settings.clone(),
                        client,
                    };
                    by_name.insert(settings.name.clone(), Arc::new(grant));
                }
                Err(error) => {
                    broken.push(settings.name.clone());
                    let key = error
                        .key_path()
                        .into_iter()
                        .fold(at().key("provider"), KeyPath::key);
                    problems.push(ConfigProblem::at(
                        key,
                        ConfigCause::Authenticator {
                            name: settings.name.clone(),
                            error,
                        },
                    ));
                }
            }
        }
        DeviceGrants { by_name, broken }
    }

    /// The grant named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<DeviceGrant>> {
        self.by_name.get(name)
    }

    /// Whether `name` is a grant that could not be built (its problem is reported).
    pub fn is_broken(&self, name: &str) -> bool {
        self.broken.iter().any(|b| b == name)
    }
}

fn check_settings(settings: &DeviceGrantSettings) -> Result<(), (&'static str, String)> {
    use tollgate_mqtt::topic::{is_sys, is_valid_topic_name};
    for (key, topic) in [
        ("request_topic", &settings.request_topic),
        ("answer_prefix", &settings.answer_prefix),
    ] {
        if topic.is_empty() || !is_valid_topic_name(topic) || is_sys(topic) {
            return Err((key, format!("`{topic}` is not a topic name outside $SYS")));
        }
    }
    if settings.max_lifetime.is_zero() || settings.max_lifetime.as_secs() > 3600 {
        return Err(("max_lifetime", "must be between 1 and 3600 seconds".into()));
    }
    if settings.max_pending == 0 {
        return Err(("max_pending", "must be at least 1".into()));
    }
    if settings.max_failures == 0 {
        return Err(("max_failures", "must be at least 1".into()));
    }
    Ok(())
}
