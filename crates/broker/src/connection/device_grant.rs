//! One device authorization grant, relayed over MQTT (see `device_grant/`): the device's
//! request, the user code sent to it, the token endpoint polled on the connection's timer,
//! the token handed over and the connection upgraded to its principal (or closed for a
//! reconnect), and the token renewed before it expires.
//!
//! Each call to the provider is a [`GrantWork`] the driver takes and runs beside the
//! connection, as it runs an authentication; its result comes back through
//! [`Connection::finish_grant_call`]. The waits between polls are the connection's
//! [`Timer::DeviceGrant`], never a sleeping task. A grant ends (and its slot in the bounds is
//! given back) with its last answer to the device, or with the connection; none polls past
//! its device code's lifetime (at most `max_lifetime`) or `max_failures` failed calls.

use tollgate_auth::audit::TokenOutcome;
use tollgate_auth::authentication::{Held, Identity, ProviderTokens};
use tollgate_auth::oauth::{DeviceAuthorization, GrantedTokens, TokenAnswer, TokenRefresher};

use crate::config::UpgradeMode;
use crate::device_grant::{DeviceGrant, RequestForm};

use super::token_request::answerable;

use super::*;

/// How long to wait after a failed refresh before trying again.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// A grant under way on this connection.
pub(super) struct GrantFlow {
    grant: Arc<DeviceGrant>,
    /// Where the answers go: a topic, and the request's correlation data.
    answer_topic: String,
    correlation: Option<Bytes>,
    stage: Stage,
    /// The call waiting for the driver to take it.
    call: Option<GrantCall>,
    /// Whether a call is under way (taken, its result not back).
    calling: bool,
    /// When the device code runs out.
    deadline: Instant,
    interval: Duration,
    failures: u32,
    /// The grant's slot in the bounds on grants under way (given back once the token is
    /// handed over).
    held: Option<Held>,
}

enum Stage {
    /// Asking for the codes.
    Authorizing,
    /// The user has the code; polling with the device code.
    Polling { device_code: Secret },
    /// Granted; the refresh token kept to renew the access token.
    Renewing { refresh_token: Secret },
}

/// A call to the provider.
#[derive(Clone)]
pub enum GrantCall {
    /// The device authorization request.
    Authorize,
    /// A poll of the token endpoint.
    Poll(Secret),
    /// A refresh.
    Refresh(Secret),
}

/// A call to the identity provider for the driver to run: a device grant's, or the
/// renewal of a provider's token a token request waits for.
pub struct GrantWork {
    call: Work,
    request: ConnectRequest,
}

enum Work {
    Device(Arc<DeviceGrant>, GrantCall),
    ProviderRefresh(Arc<TokenRefresher>, Secret),
}

/// What a call answered.
pub enum GrantResult {
    /// The device authorization request's answer.
    Authorized(Result<DeviceAuthorization, String>),
    /// A poll's or a refresh's answer.
    Token(Result<TokenAnswer, String>),
    /// A provider token's renewal (for a token request).
    Renewed(Result<Result<Identity, String>, String>),
}

impl GrantWork {
    /// Makes the call.
    pub async fn run(self) -> GrantResult {
        match self.call {
            Work::Device(grant, call) => {
                let client = &grant.client;
                match call {
                    GrantCall::Authorize => GrantResult::Authorized(client.authorize().await),
                    GrantCall::Poll(code) => {
                        GrantResult::Token(client.poll(&code, &self.request).await)
                    }
                    GrantCall::Refresh(token) => {
                        GrantResult::Token(client.refresh(&token, &self.request).await)
                    }
                }
            }
            Work::ProviderRefresh(refresher, token) => {
                GrantResult::Renewed(refresher.refresh(&token, &self.request).await)
            }
        }
    }
}

impl<S: Shared> Connection<S> {
    /// The device grant this connection may start (its listener's, as of CONNECT).
    pub(super) fn device_grant(&self) -> Option<&Arc<DeviceGrant>> {
        self.attached().and_then(|a| a.device_grant.as_ref())
    }

    /// Whether `topic` is a device grant request of this connection's grant.
    pub(super) fn is_device_grant_request(&self, topic: &str) -> bool {
        let client_id = self.client_id().unwrap_or("");
        self.device_grant()
            .is_some_and(|grant| grant.is_request(topic, client_id).is_some())
    }

    /// A device's PUBLISH to the grant's request topic.
    pub(super) fn handle_device_grant_publish(
        &mut self,
        session: &Arc<Session>,
        publish: Publish,
        now: Instant,
    ) -> Result<(), Close> {
        let (packet_id, qos) = (publish.packet_id, publish.qos);
        let Some(grant) = self.device_grant().cloned() else {
            return self.refuse_token_publish(session, packet_id, qos);
        };
        let form = grant.is_request(&publish.topic, &session.client_id);
        if form == Some(RequestForm::OtherClient) {
            return self.refuse_broker_topic(
                session,
                &publish,
                "a device grant is asked for the client's own identifier only",
            );
        }
        if !self.publish_allowed(&publish) {
            return self.refuse_token_publish(session, packet_id, qos);
        }
        let (answer_topic, correlation) = match (form, publish.properties.response_topic) {
            (Some(RequestForm::Bare), Some(topic)) if answerable(&topic) => {
                (topic, publish.properties.correlation_data)
            }
            (Some(RequestForm::ClientTopic), response) => (
                response
                    .filter(|t| answerable(t))
                    .unwrap_or_else(|| grant.answer_topic(&session.client_id)),
                publish.properties.correlation_data,
            ),
            _ => {
                // The bare topic without a Response Topic: nowhere to answer.
                self.acknowledge_publish(
                    session,
                    packet_id,
                    qos,
                    ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
                );
                return Ok(());
            }
        };
        if self.grant_flow.is_some() {
            self.acknowledge_publish(session, packet_id, qos, ReasonCode::QUOTA_EXCEEDED);
            self.send_grant_answer_to(
                &answer_topic,
                correlation,
                &json_error(
                    "invalid_request",
                    "a device authorization is already under way",
                ),
            );
            return Ok(());
        }
        if !grant.may_start(self.peer.ip(), now) {
            self.acknowledge_publish(session, packet_id, qos, ReasonCode::QUOTA_EXCEEDED);
            self.send_grant_answer_to(
                &answer_topic,
                correlation,
                &json_error(
                    "slow_down",
                    "too many device authorizations started from this address: try again later",
                ),
            );
            self.audit_grant_refusal(&grant, "rate_limited", "too many grants started");
            return Ok(());
        }
        let Some(held) = grant.hold(self.peer.ip()) else {
            self.acknowledge_publish(session, packet_id, qos, ReasonCode::QUOTA_EXCEEDED);
            self.send_grant_answer_to(
                &answer_topic,
                correlation,
                &json_error(
                    "temporarily_unavailable",
                    "too many device authorizations under way: try again later",
                ),
            );
            self.audit_grant_refusal(&grant, "busy", "too many device authorizations under way");
            return Ok(());
        };
        self.acknowledge_publish(session, packet_id, qos, ReasonCode::SUCCESS);
        self.grant_flow = Some(Box::new(GrantFlow {
            grant: Arc::clone(&grant),
            answer_topic,
            correlation,
            stage: Stage::Authorizing,
            call: Some(GrantCall::Authorize),
            calling: false,
            deadline: later(now, grant.settings.max_lifetime),
            interval: Duration::from_secs(5),
            failures: 0,
            held: Some(held),
        }));
        Ok(())
    }

    /// The call the driver should run next, if one is waiting.
    pub fn take_grant_call(&mut self) -> Option<GrantWork> {
        // Asked after every step of every connection: nothing is made unless a call waits.
        let device_call = self.grant_flow.as_ref().is_some_and(|f| f.call.is_some());
        let refresh_call = self
            .token_refresh
            .as_ref()
            .is_some_and(|r| r.waits_for_driver());
        if !device_call && !refresh_call {
            return None;
        }
        let request = ConnectRequest {
            listener: Arc::clone(&self.listener.name),
            peer: self.peer,
            client_id: self.client_id()?.to_owned(),
            username: None,
            password: None,
            protocol_level: self.version.level(),
            certificate: self.certificate.as_deref().cloned(),
            authentication_method: None,
            authentication_data: None,
            tls_exporter: None,
            exchange: None,
        };
        if !device_call {
            let (refresher, token) = self.take_token_refresh()?;
            return Some(GrantWork {
                call: Work::ProviderRefresh(refresher, token),
                request,
            });
        }
        let flow = self.grant_flow.as_mut()?;
        let call = flow.call.take()?;
        flow.calling = true;
        Some(GrantWork {
            call: Work::Device(Arc::clone(&flow.grant), call),
            request,
        })
    }

    /// The grant's timer: the next poll, or the renewal, is due.
    pub(super) fn grant_timer(&mut self, now: Instant) -> Result<(), Close> {
        self.timers.set(Timer::DeviceGrant, None);
        let Some(flow) = self.grant_flow.as_mut() else {
            return Ok(());
        };
        if flow.calling {
            return Ok(());
        }
        match &flow.stage {
            Stage::Authorizing => {}
            Stage::Polling { device_code } => {
                if now >= flow.deadline {
                    self.end_grant("expired_token", "the user did not approve in time");
                    return Ok(());
                }
                flow.call = Some(GrantCall::Poll(device_code.clone()));
            }
            Stage::Renewing { refresh_token } => {
                flow.call = Some(GrantCall::Refresh(refresh_token.clone()));
            }
        }
        Ok(())
    }

    /// The result of the call the driver ran.
    pub fn finish_grant_call(&mut self, result: GrantResult, now: Instant) -> Result<(), Close> {
        if let GrantResult::Renewed(renewed) = result {
            return self.finish_token_refresh(renewed, now);
        }
        let Some(flow) = self.grant_flow.as_mut() else {
            return Ok(());
        };
        flow.calling = false;
        let max_failures = flow.grant.settings.max_failures;
        match result {
            GrantResult::Authorized(Ok(authorization)) => {
                let lifetime = Duration::from_secs(authorization.expires_in)
                    .min(flow.grant.settings.max_lifetime);
                flow.deadline = later(now, lifetime);
                flow.interval = Duration::from_secs(authorization.interval.clamp(1, 60));
                let mut answer = serde_json::json!({
                    "user_code": authorization.user_code,
                    "verification_uri": authorization.verification_uri,
                    "expires_in": lifetime.as_secs(),
                    "interval": flow.interval.as_secs(),
                });
                if let Some(complete) = &authorization.verification_uri_complete {
                    answer["verification_uri_complete"] =
                        serde_json::Value::from(complete.as_str());
                }
                flow.stage = Stage::Polling {
                    device_code: authorization.device_code,
                };
                let next = later(now, flow.interval);
                self.timers.set(Timer::DeviceGrant, Some(next));
                self.send_grant_answer(&answer);
                Ok(())
            }
            GrantResult::Authorized(Err(why)) => {
                tracing::warn!(grant = %flow.grant.name(), error = %Escaped(&why), "device authorization request failed");
                self.end_grant(
                    "temporarily_unavailable",
                    "the identity provider cannot be reached: try again later",
                );
                Ok(())
            }
            GrantResult::Token(Err(why)) => {
                flow.failures += 1;
                tracing::warn!(grant = %flow.grant.name(), failures = flow.failures, error = %Escaped(&why), "device grant: the token endpoint failed");
                if flow.failures >= max_failures {
                    self.end_grant(
                        "temporarily_unavailable",
                        "the identity provider cannot be reached: try again later",
                    );
                    return Ok(());
                }
                let wait = match flow.stage {
                    Stage::Renewing { .. } => REFRESH_RETRY,
                    _ => flow.interval,
                };
                self.timers.set(Timer::DeviceGrant, Some(later(now, wait)));
                Ok(())
            }
            GrantResult::Renewed(_) => Ok(()),
            GrantResult::Token(Ok(answer)) => {
                flow.failures = 0;
                match answer {
                    TokenAnswer::Pending => {
                        let next = later(now, flow.interval);
                        self.timers.set(Timer::DeviceGrant, Some(next));
                        Ok(())
                    }
                    TokenAnswer::SlowDown => {
                        flow.interval += Duration::from_secs(5);
                        let next = later(now, flow.interval);
                        self.timers.set(Timer::DeviceGrant, Some(next));
                        Ok(())
                    }
                    TokenAnswer::Denied => {
                        self.end_grant("access_denied", "the user refused");
                        Ok(())
                    }
                    TokenAnswer::Expired => {
                        self.end_grant("expired_token", "the user did not approve in time");
                        Ok(())
                    }
                    TokenAnswer::Refused(why) => {
                        let renewing = matches!(flow.stage, Stage::Renewing { .. });
                        let (code, text) = if renewing {
                            ("invalid_grant", "the token could not be renewed")
                        } else {
                            ("access_denied", "the identity provider refused the grant")
                        };
                        tracing::info!(grant = %flow.grant.name(), why = %Escaped(&why), "device grant refused");
                        self.end_grant(code, text);
                        Ok(())
                    }
                    TokenAnswer::Granted(tokens) => self.granted(*tokens, now),
                }
            }
        }
    }

    /// The user approved (or a renewal succeeded): the token to the device, the connection
    /// to its principal.
    fn granted(&mut self, tokens: GrantedTokens, now: Instant) -> Result<(), Close> {
        let Some(flow) = self.grant_flow.as_mut() else {
            return Ok(());
        };
        let grant = Arc::clone(&flow.grant);
        let settings = &grant.settings;
        let renewal = matches!(flow.stage, Stage::Renewing { .. });
        let (topic, correlation) = (flow.answer_topic.clone(), flow.correlation.clone());
        let mut answer = serde_json::json!({
            "access_token": String::from_utf8_lossy(tokens.access_token.expose()),
            "token_type": "Bearer",
        });
        if let Some(expires_in) = tokens.expires_in {
            answer["expires_in"] = serde_json::Value::from(expires_in);
        }
        if let (true, Some(refresh)) = (settings.send_refresh_token, &tokens.refresh_token) {
            answer["refresh_token"] =
                serde_json::Value::from(String::from_utf8_lossy(refresh.expose()).into_owned());
        }
        let in_place = settings.upgrade == UpgradeMode::InPlace;
        answer[if in_place { "upgraded" } else { "reconnect" }] = serde_json::Value::Bool(true);
        // The slot in the bounds is for grants waiting on a user, not for renewals.
        flow.held = None;
        let keep_renewing = in_place && settings.refresh;
        match (keep_renewing, tokens.refresh_token.clone()) {
            (true, Some(refresh_token)) => {
                flow.stage = Stage::Renewing { refresh_token };
                let renew_at = tokens.identity.expires_at.and_then(|at| {
                    deadline_of(at, now).map(|deadline| {
                        deadline
                            .checked_sub(settings.refresh_before)
                            .filter(|t| *t > now)
                            .unwrap_or(now + Duration::from_secs(1))
                    })
                });
                self.timers.set(Timer::DeviceGrant, renew_at);
            }
            _ => {
                self.timers.set(Timer::DeviceGrant, None);
                self.grant_flow = None;
            }
        }
        self.send_grant_answer_to(&topic, correlation, &answer);
        self.audit(AuditEvent::TokenRequest {
            client_id: self.client_id().unwrap_or(""),
            username: tokens.identity.username.as_deref().unwrap_or(""),
            issuer: grant.name(),
            outcome: TokenOutcome::Issued {
                jti: None,
                expires_in: tokens.expires_in.unwrap_or(0),
            },
        });
        if !in_place {
            let reconnect = Disconnect {
                reason_code: ReasonCode::SUCCESS,
                properties: DisconnectProperties {
                    reason_string: Some("reconnect with the token".into()),
                    ..DisconnectProperties::default()
                },
            };
            if answers::server_disconnect(self.version) {
                self.send(&Packet::Disconnect(reconnect));
            }
            return Err(Close {
                reason: ReasonCode::SUCCESS,
                publish_will: false,
                by_client: false,
            });
        }
        // The provider's tokens travel with the principal, as a password grant's do: a
        // `provider` token issuer on this listener hands them (renewals are the grant's).
        let mut identity = tokens.identity;
        identity.provider_tokens = Some(Arc::new(ProviderTokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: identity.expires_at,
            refresher: None,
        }));
        self.adopt_identity(&grant, identity, renewal, now)
    }

    /// Makes the connection the principal `identity` gives (a renewal must give the same
    /// one): its expiry, its permissions compiled again; the session untouched.
    fn adopt_identity(
        &mut self,
        grant: &DeviceGrant,
        identity: Identity,
        renewal: bool,
        now: Instant,
    ) -> Result<(), Close> {
        let Some(old) = self.principal().cloned() else {
            return Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR));
        };
        let certificate_name = self
            .certificate
            .as_deref()
            .and_then(|c| self.listener.policy().certificate_identity(c));
        let principal = Principal::from_allow(
            old.client_id.clone(),
            identity,
            AuthenticatedBy::authenticator(grant.name()),
            None,
            certificate_name,
            self.certificate.clone(),
        );
        if renewal && principal.owner() != old.owner() {
            self.audit(AuditEvent::Disconnected {
                client_id: &old.client_id,
                cause: DisconnectCause::ReauthenticationRefused(ReauthRefusal::AnotherPrincipal),
            });
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        if let Some(why) = admission::revocation(
            &self.listener,
            &self.broker.revocation_list(),
            &principal,
            self.certificate.as_deref(),
            SystemTime::now(),
        ) {
            self.audit(AuditEvent::Disconnected {
                client_id: &old.client_id,
                cause: DisconnectCause::Revoked(&why),
            });
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        let owner = principal.owner();
        self.install_principal(principal, now)?;
        if owner != old.owner() {
            // The session is the new principal's from now on: the anonymous device it was
            // opened by (or any other client of that owner) can no longer resume it.
            if let Some(session) = self.session() {
                session.state.lock().reown(owner);
            }
        }
        if let Some(principal) = self.principal().cloned() {
            self.audit(AuditEvent::Authentication {
                listener: &self.listener.name,
                peer: self.peer,
                client_id: &principal.client_id,
                username: principal.username.as_deref().unwrap_or(""),
                authenticator: grant.name(),
                client: None,
                outcome: AuditOutcome::Allowed,
            });
        }
        Ok(())
    }

    /// Ends the grant with an error answer to the device.
    fn end_grant(&mut self, code: &str, description: &str) {
        let Some(flow) = self.grant_flow.take() else {
            return;
        };
        self.timers.set(Timer::DeviceGrant, None);
        self.send_grant_answer_to(
            &flow.answer_topic,
            flow.correlation.clone(),
            &json_error(code, description),
        );
        self.audit_grant_refusal(&flow.grant, code, description);
    }

    fn audit_grant_refusal(&self, grant: &DeviceGrant, reason: &str, detail: &str) {
        self.audit(AuditEvent::TokenRequest {
            client_id: self.client_id().unwrap_or(""),
            username: self.username(),
            issuer: grant.name(),
            outcome: TokenOutcome::Refused { reason, detail },
        });
    }

    fn send_grant_answer(&mut self, answer: &serde_json::Value) {
        let Some(flow) = self.grant_flow.as_ref() else {
            return;
        };
        let (topic, correlation) = (flow.answer_topic.clone(), flow.correlation.clone());
        self.send_grant_answer_to(&topic, correlation, answer);
    }

    /// Writes `answer` to this connection only (QoS 0, not retained, never routed).
    fn send_grant_answer_to(
        &mut self,
        topic: &str,
        correlation: Option<Bytes>,
        answer: &serde_json::Value,
    ) {
        self.send_direct_answer(topic, correlation, answer.to_string().into_bytes());
    }
}

fn json_error(code: &str, description: &str) -> serde_json::Value {
    serde_json::json!({ "error": code, "error_description": description })
}
