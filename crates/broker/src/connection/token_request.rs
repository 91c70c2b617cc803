//! Token requests over MQTT (see `token_issuer/`): a PUBLISH to the listener's issuer's
//! request topic (MQTT 5, answered on its Response Topic with its Correlation Data), or a
//! SUBSCRIBE to the issuer's subscribe topic (any version, answered on the token topic).
//!
//! Asking is a publish or a subscribe like any other: the principal's permissions decide.
//! The answer is written to this connection only (QoS 0, never retained, never routed, never
//! queued in the session, so neither another subscriber nor the store ever sees it), and
//! every request is audited without the token. `$tollgate/` is the broker's: a publish
//! there that is not a request is refused, and a subscription there is only ever answered.

use tollgate_auth::audit::TokenOutcome;

use tollgate_auth::authentication::Identity;
use tollgate_auth::oauth::TokenRefresher;

use crate::token_issuer::{IssuerStep, Refusal, TokenAnswer, TokenIssuer};

use super::*;

/// Whether a request's Response Topic can carry the answer (a topic name, not empty).
pub(super) fn answerable(topic: &str) -> bool {
    !topic.is_empty() && tollgate_mqtt::topic::is_valid_topic_name(topic)
}

/// Topics under this prefix are the broker's own.
pub(super) const TOKEN_TOPICS: &str = "$tollgate/";

/// A request waiting for the provider's token to be renewed.
pub(super) struct TokenRefresh {
    issuer: Arc<TokenIssuer>,
    topic: String,
    correlation: Option<Bytes>,
    /// Until the driver takes the call.
    refresher: Option<Arc<TokenRefresher>>,
    refresh_token: Secret,
}

impl TokenRefresh {
    /// Whether its call waits for the driver to take it.
    pub(super) fn waits_for_driver(&self) -> bool {
        self.refresher.is_some()
    }
}

/// How a token request came.
enum Asked<'a> {
    /// A MQTT 5 request: answered on the response topic with the correlation data.
    Request {
        response_topic: &'a str,
        correlation_data: Option<Bytes>,
    },
    /// A subscription to the issuer's subscribe topic.
    Subscription,
}

impl<S: Shared> Connection<S> {
    /// The issuer this connection may ask (its listener's, as of CONNECT).
    pub(super) fn token_issuer(&self) -> Option<&Arc<TokenIssuer>> {
        self.attached().and_then(|a| a.token_issuer.as_ref())
    }

    /// Whether `topic` is a token request of this connection's issuer, or else one of the
    /// broker's own topics (both handled by [`Self::handle_token_publish`]).
    pub(super) fn is_token_topic(&self, topic: &str) -> bool {
        topic.starts_with(TOKEN_TOPICS)
            || self
                .token_issuer()
                .is_some_and(|issuer| issuer.request_topic() == topic)
            || self.is_device_grant_request(topic)
    }

    /// Whether the connection's listener offers tokens or a device grant (whose topics a
    /// publish may then be for, `$` or not).
    pub(super) fn offers_tokens(&self) -> bool {
        self.attached()
            .is_some_and(|a| a.token_issuer.is_some() || a.device_grant.is_some())
    }

    /// A PUBLISH to a `$tollgate/` topic or the issuer's request topic.
    pub(super) fn handle_token_publish(
        &mut self,
        session: &Arc<Session>,
        publish: Publish,
        now: Instant,
    ) -> Result<(), Close> {
        if self.is_device_grant_request(&publish.topic) {
            return self.handle_device_grant_publish(session, publish, now);
        }
        let (packet_id, qos) = (publish.packet_id, publish.qos);
        let issuer = self
            .token_issuer()
            .filter(|issuer| issuer.request_topic() == publish.topic)
            .cloned();
        let Some(issuer) = issuer else {
            return self.refuse_broker_topic(session, &publish, "$tollgate/ is the broker's");
        };
        if !self.publish_allowed(&publish) {
            self.audit_token_refusal(&issuer, Refusal::NotAuthorized, "not authorized");
            return self.refuse_token_publish(session, packet_id, qos);
        }
        let response_topic = publish
            .properties
            .response_topic
            .as_deref()
            .filter(|t| answerable(t));
        let Some(response_topic) = response_topic else {
            self.audit_token_refusal(&issuer, Refusal::NoResponseTopic, "no response topic");
            self.acknowledge_publish(
                session,
                packet_id,
                qos,
                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
            );
            return Ok(());
        };
        let correlation = publish.properties.correlation_data.clone();
        let Some(answer) = self.token_answer(&issuer, now, (response_topic, correlation.clone()))
        else {
            // Answered once the provider's token is renewed.
            self.acknowledge_publish(session, packet_id, qos, ReasonCode::SUCCESS);
            return Ok(());
        };
        let reason = match answer.outcome {
            Ok(_) => ReasonCode::SUCCESS,
            Err(Refusal::RateLimited) => ReasonCode::QUOTA_EXCEEDED,
            Err(Refusal::TooManyRules | Refusal::NoResponseTopic) => {
                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR
            }
            Err(Refusal::Failed) => ReasonCode::UNSPECIFIED_ERROR,
            Err(_) => ReasonCode::NOT_AUTHORIZED,
        };
        self.acknowledge_publish(session, packet_id, qos, reason);
        self.send_token_answer(
            answer,
            Asked::Request {
                response_topic,
                correlation_data: correlation,
            },
        );
        Ok(())
    }

    /// Whether the principal's permissions allow `publish` (counted, and audited when
    /// denied), as for any PUBLISH.
    pub(super) fn publish_allowed(&mut self, publish: &Publish) -> bool {
        if self.unrestricted {
            return true;
        }
        let decision = self
            .permissions
            .check_publish(&publish.topic, publish.qos, publish.retain);
        self.count_decision(DecidedAction::Publish, &decision);
        if !decision.allowed {
            self.audit_denial(Action::Publish, &publish.topic, &decision);
        }
        decision.allowed
    }

    /// A PUBLISH to one of the broker's topics that is not a request this client may make:
    /// audited with `decision`, refused as a denied PUBLISH is.
    pub(super) fn refuse_broker_topic(
        &mut self,
        session: &Arc<Session>,
        publish: &Publish,
        decision: &str,
    ) -> Result<(), Close> {
        self.audit(AuditEvent::Denied {
            client_id: &session.client_id,
            username: self.username(),
            action: Action::Publish,
            topic: &publish.topic,
            decision,
        });
        self.refuse_token_publish(session, publish.packet_id, publish.qos)
    }

    /// A request refused as a denied PUBLISH is (5.0: 0x87; 3.x as configured).
    pub(super) fn refuse_token_publish(
        &mut self,
        session: &Arc<Session>,
        packet_id: Option<u16>,
        qos: QoS,
    ) -> Result<(), Close> {
        let answer = answers::denied_publish(self.version, &self.broker.config().authorization);
        if answer == DeniedPublishAnswer::Close {
            return Err(Close::abnormal(ReasonCode::NOT_AUTHORIZED));
        }
        self.acknowledge_publish(session, packet_id, qos, ReasonCode::NOT_AUTHORIZED);
        if answer == DeniedPublishAnswer::AcknowledgeAndClose {
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        Ok(())
    }

    /// Whether `filter` asks this connection's issuer for a token.
    pub(super) fn is_token_subscription(&self, filter: &str) -> bool {
        self.token_issuer()
            .is_some_and(|issuer| issuer.subscribe_topic() == filter)
    }

    /// Answers a granted subscription to the issuer's subscribe topic (after SUBACK).
    pub(super) fn answer_token_subscription(&mut self, now: Instant) {
        let Some(issuer) = self.token_issuer().cloned() else {
            return;
        };
        let topic = issuer.token_topic().to_owned();
        if let Some(answer) = self.token_answer(&issuer, now, (&topic, None)) {
            self.send_token_answer(answer, Asked::Subscription);
        }
    }

    /// A subscription refused because asking was (its permissions were checked as any
    /// subscription's): audited as a token request too.
    pub(super) fn token_subscription_denied(&mut self) {
        if let Some(issuer) = self.token_issuer().cloned() {
            self.audit_token_refusal(&issuer, Refusal::NotAuthorized, "not authorized");
        }
    }

    /// The issuer's answer for this connection's principal now, audited; `None` when the
    /// provider's token is renewed first (the answer then goes to `to` once it is).
    fn token_answer(
        &mut self,
        issuer: &Arc<TokenIssuer>,
        now: Instant,
        to: (&str, Option<Bytes>),
    ) -> Option<TokenAnswer> {
        let Some(principal) = self.principal().cloned() else {
            return Some(TokenAnswer::refused(
                Refusal::NotAuthenticated,
                "not connected",
            ));
        };
        let wall = SystemTime::now();
        let revoked = admission::revocation(
            &self.listener,
            &self.broker.revocation_list(),
            &principal,
            self.certificate.as_deref(),
            wall,
        );
        let permissions = (!self.unrestricted).then(|| Arc::clone(&self.permissions));
        let step = issuer.answer(
            &principal,
            permissions.as_deref(),
            revoked.as_deref(),
            now,
            wall,
        );
        let answer = match step {
            IssuerStep::Answer(answer) => answer,
            IssuerStep::RefreshFirst {
                refresher,
                refresh_token,
            } => match (&self.token_refresh, &principal.provider_tokens) {
                // A renewal is under way: the token held is still good.
                (Some(_), Some(tokens)) => issuer.provider_answer(tokens, wall),
                _ => {
                    self.token_refresh = Some(Box::new(TokenRefresh {
                        issuer: Arc::clone(issuer),
                        topic: to.0.to_owned(),
                        correlation: to.1,
                        refresher: Some(refresher),
                        refresh_token,
                    }));
                    return None;
                }
            },
        };
        self.audit_token_answer(issuer, &principal, &answer);
        Some(answer)
    }

    fn audit_token_answer(
        &self,
        issuer: &TokenIssuer,
        principal: &Principal,
        answer: &TokenAnswer,
    ) {
        let outcome = match &answer.outcome {
            Ok((jti, expires_in)) => TokenOutcome::Issued {
                jti: jti.as_deref(),
                expires_in: *expires_in,
            },
            Err(refusal) => TokenOutcome::Refused {
                reason: refusal.label(),
                detail: &answer.description,
            },
        };
        self.audit(AuditEvent::TokenRequest {
            client_id: &principal.client_id,
            username: principal.username.as_deref().unwrap_or(""),
            issuer: issuer.name(),
            outcome,
        });
    }

    /// The renewal of the provider's token to take to the driver, if one waits.
    pub(super) fn take_token_refresh(&mut self) -> Option<(Arc<TokenRefresher>, Secret)> {
        let pending = self.token_refresh.as_mut()?;
        let refresher = pending.refresher.take()?;
        Some((refresher, pending.refresh_token.clone()))
    }

    /// The renewal's outcome: the principal renewed and the new token handed over; a refusal
    /// answered as one; a provider that cannot be reached leaves the token held, which is
    /// handed over.
    pub(super) fn finish_token_refresh(
        &mut self,
        result: Result<Result<Identity, String>, String>,
        now: Instant,
    ) -> Result<(), Close> {
        let Some(pending) = self.token_refresh.take() else {
            return Ok(());
        };
        let Some(old) = self.principal().cloned() else {
            return Ok(());
        };
        let wall = SystemTime::now();
        let answer = match result {
            Ok(Ok(identity)) => {
                let mut principal = (*old).clone();
                principal.username = identity.username.or(principal.username);
                if principal.owner() != old.owner() {
                    self.audit(AuditEvent::Disconnected {
                        client_id: &old.client_id,
                        cause: DisconnectCause::ReauthenticationRefused(
                            ReauthRefusal::AnotherPrincipal,
                        ),
                    });
                    return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
                }
                principal.roles = identity.roles;
                principal.groups = identity.groups;
                principal.claims = identity.claims;
                principal.expires_at = identity.expires_at;
                principal.granted = identity.granted;
                principal.provider_tokens = identity.provider_tokens;
                let answer = match &principal.provider_tokens {
                    Some(tokens) => pending.issuer.provider_answer(tokens, wall),
                    None => TokenAnswer::refused(Refusal::Failed, "no token"),
                };
                self.install_principal(principal, now)?;
                answer
            }
            Ok(Err(why)) => {
                tracing::info!(client_id = %Escaped(&old.client_id), why = %Escaped(&why), "the provider refused to renew the token");
                TokenAnswer::refused(Refusal::Expired, "the provider refused to renew the token")
            }
            Err(why) => {
                tracing::warn!(client_id = %Escaped(&old.client_id), error = %Escaped(&why), "renewing the provider's token failed: the token held is handed");
                match &old.provider_tokens {
                    Some(tokens) => pending.issuer.provider_answer(tokens, wall),
                    None => TokenAnswer::refused(Refusal::Failed, "no token"),
                }
            }
        };
        let principal = self.principal().cloned().unwrap_or(old);
        self.audit_token_answer(&pending.issuer, &principal, &answer);
        self.send_direct_answer(&pending.topic, pending.correlation, answer.payload);
        Ok(())
    }

    fn audit_token_refusal(&self, issuer: &TokenIssuer, refusal: Refusal, detail: &str) {
        self.audit(AuditEvent::TokenRequest {
            client_id: self.client_id().unwrap_or(""),
            username: self.username(),
            issuer: issuer.name(),
            outcome: TokenOutcome::Refused {
                reason: refusal.label(),
                detail,
            },
        });
    }

    /// Writes the answer to this connection only, as a QoS 0 PUBLISH that is not retained.
    fn send_token_answer(&mut self, answer: TokenAnswer, asked: Asked<'_>) {
        let (topic, correlation) = match asked {
            Asked::Request {
                response_topic,
                correlation_data,
            } => (response_topic.to_owned(), correlation_data),
            Asked::Subscription => match self.token_issuer() {
                Some(issuer) => (issuer.token_topic().to_owned(), None),
                None => return,
            },
        };
        self.send_direct_answer(&topic, correlation, answer.payload);
    }

    /// Writes a JSON `payload` for this connection only on `topic` (with `correlation`):
    /// one QoS 0 PUBLISH, not retained, never routed, queued or stored.
    pub(super) fn send_direct_answer(
        &mut self,
        topic: &str,
        correlation: Option<Bytes>,
        payload: Vec<u8>,
    ) {
        let mut properties = PublishProperties {
            correlation_data: correlation,
            ..PublishProperties::default()
        };
        if self.version.is_v5() {
            properties.content_type = Some("application/json".to_owned());
            properties.payload_format_indicator = Some(true);
        }
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.to_owned(),
            packet_id: None,
            properties,
            payload: Bytes::from(payload),
        });
        // A PUBLISH larger than the client takes is dropped, not sent (MQTT-3.1.2-25).
        let fits = tollgate_mqtt::encoded_len(&packet, self.version)
            .is_ok_and(|len| len as u64 <= u64::from(self.client_maximum_packet_size));
        if !fits {
            tracing::info!(client_id = ?self.client_id().map(Escaped), max = self.client_maximum_packet_size, "answer larger than the client's maximum packet size: not sent");
            return;
        }
        self.send(&packet);
    }
}
