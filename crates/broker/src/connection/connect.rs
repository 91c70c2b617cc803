//! CONNECT: the checks before authentication, the request put to the chain, and the
//! decision applied (CONNACK, the session attached or created, the first deliveries).

use super::*;

impl<S: Shared> Connection<S> {
    /// Refuses CONNECT with `reason` (a 5.0 reason, converted for 3.x clients) and closes.
    pub(super) fn refuse(&mut self, reason: ReasonCode) -> Close {
        self.refuse_with(reason, Vec::new())
    }

    /// [`Self::refuse`], with user properties in the CONNACK (5.0 only).
    pub(super) fn refuse_with(
        &mut self,
        reason: ReasonCode,
        user_properties: Vec<(String, String)>,
    ) -> Close {
        let code = answers::connack_refusal(self.version, reason);
        self.send(&Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: code,
            properties: ConnAckProperties {
                user_properties,
                ..ConnAckProperties::default()
            },
        }));
        tracing::info!(peer = %self.peer, reason = reason.0, sent = code.0, version = ?self.version, "connection refused");
        Close {
            reason,
            publish_will: false,
            by_client: false,
        }
    }

    /// Refuses CONNECT because `ban` names the client (0x8A; 3.x: return code 5).
    fn refuse_banned(&mut self, client_id: &str, username: Option<&str>, ban: &Ban) -> Close {
        let target = ban.target.to_string();
        self.audit(AuditEvent::ConnectionRefused {
            client_id,
            username: username.unwrap_or(""),
            cause: ConnectRefusal::Banned {
                kind: ban.target.kind(),
                target: &target,
            },
        });
        self.refuse(ReasonCode::BANNED)
    }

    pub(super) fn handle_connect(&mut self, connect: Connect, now: Instant) -> Result<(), Close> {
        self.version = connect.protocol;
        if self.version.is_v5() {
            // Every packet to this client, CONNACK included, must fit it.
            self.client_maximum_packet_size =
                connect.properties.maximum_packet_size.unwrap_or(u32::MAX);
        }
        let limits = &self.broker.config().limits;
        let v5 = self.version.is_v5();

        // Client identifier rules per version.
        let mut client_id = connect.client_id.clone();
        let mut assigned = false;
        match self.version {
            ProtocolVersion::V3_1 => {
                if client_id.is_empty() || client_id.chars().count() > 23 {
                    return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
                }
            }
            ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => {
                if client_id.is_empty() {
                    if !v5 && !connect.clean_start {
                        return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
                    }
                    client_id = self.broker.assign_client_id();
                    assigned = true;
                } else if client_id.len() > limits.max_client_id_len {
                    return Err(self.refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
                }
            }
        }

        // An operator's ban refuses before any authenticator is asked.
        if let Some(ban) = self.broker.ban_of(
            &client_id,
            [connect.username.as_deref(), None],
            self.peer.ip(),
        ) {
            return Err(self.refuse_banned(&client_id, connect.username.as_deref(), &ban));
        }

        if self.broker.memory().pressure() >= Pressure::RefuseConnections {
            self.broker.memory().record(Overload::ConnectionRefused);
            return Err(self.refuse(ReasonCode::QUOTA_EXCEEDED));
        }
        let mut connect = connect;
        if let Some(will) = connect.will.as_mut() {
            if will.qos as u8 > limits.max_qos {
                return Err(self.refuse(ReasonCode::QOS_NOT_SUPPORTED));
            }
            if will.retain && !limits.retain_available {
                return Err(self.refuse(ReasonCode::RETAIN_NOT_SUPPORTED));
            }
            if topic_levels(&will.topic) > limits.max_topic_levels {
                return Err(self.refuse(ReasonCode::TOPIC_NAME_INVALID));
            }
            if tollgate_mqtt::topic::is_sys(&will.topic) {
                return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
            }
            // The will lives as long as the connection: its bytes must not keep the read
            // buffer CONNECT arrived in.
            will.payload = bytes::Bytes::copy_from_slice(&will.payload);
            if let Some(data) = will.properties.correlation_data.as_mut() {
                *data = bytes::Bytes::copy_from_slice(data);
            }
        }

        let request = ConnectRequest {
            listener: Arc::clone(&self.listener.name),
            peer: self.peer,
            client_id: client_id.clone(),
            username: connect.username.clone(),
            password: connect.password.as_ref().map(|p| Secret::new(p.to_vec())),
            protocol_level: self.version.level(),
            certificate: self.certificate.as_deref().cloned(),
            authentication_method: connect.properties.authentication_method.clone(),
            authentication_data: connect
                .properties
                .authentication_data
                .as_ref()
                .map(|d| Secret::new(d.to_vec())),
            tls_exporter: self.tls_exporter.take().map(|e| *e),
            exchange: None,
        };
        if let Some(decision) =
            admission::certificate_decision(&self.listener, self.certificate.as_deref())
        {
            let name = match &decision {
                ChainDecision::Allowed { identity, .. } => identity.username.as_deref(),
                ChainDecision::Refused { .. } | ChainDecision::Continue { .. } => None,
            };
            self.audit(AuditEvent::Authentication {
                listener: &request.listener,
                peer: request.peer,
                client_id: &request.client_id,
                username: name.unwrap_or(""),
                authenticator: AuthenticatedBy::Certificate.as_str(),
                client: None,
                outcome: AuditOutcome::Allowed,
            });
            self.phase = Phase::Authenticating(Box::new(PendingConnect {
                connect: Box::new(connect),
                client_id,
                assigned,
                request: None,
                kept: None,
                first: None,
                challenged: None,
                challenges: 0,
            }));
            return self.finish_connect(decision, now);
        }
        self.phase = Phase::Authenticating(Box::new(PendingConnect {
            connect: Box::new(connect),
            client_id,
            assigned,
            request: Some(request),
            kept: None,
            first: None,
            challenged: None,
            challenges: 0,
        }));
        Ok(())
    }

    /// The credentials to put to the listener's authentication chain, once, after CONNECT
    /// was received. The driver runs the chain and hands the decision to
    /// [`Connection::finish_connect`].
    pub fn take_auth_request(&mut self) -> Option<ConnectRequest> {
        let rechecks = self.listener.policy().chain.rechecks();
        match &mut self.phase {
            Phase::Authenticating(pending) => {
                let request = pending.request.take()?;
                if request.exchange.is_none() {
                    if rechecks {
                        pending.kept = Some(request.clone());
                    }
                    if request.authentication_method.is_some() {
                        pending.first = Some(request.clone());
                    }
                }
                Some(request)
            }
            Phase::Connected(attached) => attached.deciding.as_mut()?.request.take().map(|r| *r),
            Phase::AwaitingConnect | Phase::Closed => None,
        }
    }

    /// Applies the chain's decision on the request [`Connection::take_auth_request`] gave:
    /// completes CONNECT, or a re-authentication.
    pub fn finish_authentication(
        &mut self,
        decision: ChainDecision,
        now: Instant,
    ) -> Result<(), Close> {
        self.broker
            .hooks()
            .counts()
            .chain_decision(&self.listener.name, &decision);
        let step = if self.is_reauthenticating() {
            self.finish_reauth(decision, now)
        } else {
            self.finish_connect(decision, now)
        };
        self.check_oversized(step)
    }

    /// Completes CONNECT with the chain's decision: CONNACK, the session, deliveries.
    pub fn finish_connect(&mut self, decision: ChainDecision, now: Instant) -> Result<(), Close> {
        // Closed until the decision is applied: every refusal below ends the connection.
        let pending = match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Authenticating(pending) => pending,
            other => {
                self.phase = other;
                return Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR));
            }
        };
        let (mut identity, authenticated_by) = match decision {
            ChainDecision::Allowed { identity, by } => (identity, by),
            ChainDecision::Continue { challenge, .. } => {
                return self.challenge(pending, challenge, now);
            }
            ChainDecision::Refused { reason, by, .. } => {
                // Refusals that cost nothing to provoke are counted and logged once per
                // interval (the chain writes no audit line for each).
                match (reason, &by) {
                    (DenyReason::Busy, _) => {
                        self.broker.memory().record(Overload::AuthenticationsBusy)
                    }
                    (DenyReason::RateLimited | DenyReason::Banned, None) => {
                        self.broker.memory().record(Overload::Throttled)
                    }
                    _ => {}
                }
                let hints = match (&by, self.version.is_v5()) {
                    (Some(by), true) => self.listener.policy().chain.refusal_user_properties(by),
                    _ => Vec::new(),
                };
                return Err(self.refuse_with(admission::deny_reason_code(reason), hints));
            }
        };
        let PendingConnect {
            connect,
            client_id,
            assigned,
            kept,
            ..
        } = *pending;
        // The method's last word to the client (SCRAM's server-final message), for CONNACK.
        let final_data = identity.authentication_data.take();
        if let (Some(request), Some(interval)) = (
            kept,
            self.listener
                .policy()
                .chain
                .recheck_interval(&authenticated_by),
        ) {
            self.recheck = Some(Box::new(Recheck { request, interval }));
            self.timers.set(Timer::Recheck, Some(later(now, interval)));
        }
        let connect = *connect;
        let broker = Arc::clone(&self.broker);
        let limits = &broker.config().limits;
        let v5 = self.version.is_v5();

        // Who the client is and what it may do: the path `tollgate check` takes too.
        self.permissions_generation = broker.policy_generation();
        let candidate = Candidate {
            client_id: &client_id,
            username: connect.username.as_deref(),
            certificate: self.certificate.as_deref(),
            will: connect.will.as_ref(),
        };
        let admitted = admission::admit(
            &self.listener,
            &broker.revocation_list(),
            ChainDecision::Allowed {
                identity,
                by: authenticated_by,
            },
            candidate,
            SystemTime::now(),
        );
        let Admitted {
            principal,
            permissions,
        } = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let username = connect.username.as_deref().unwrap_or("");
                let refused = |cause| AuditEvent::ConnectionRefused {
                    client_id: &client_id,
                    username,
                    cause,
                };
                match &refusal {
                    Refusal::Revoked(why) => self.audit(refused(ConnectRefusal::Revoked(why))),
                    Refusal::ClientIdentifier => {
                        self.audit(refused(ConnectRefusal::ClientIdentifier))
                    }
                    Refusal::Will { explanation, .. } => self.audit(AuditEvent::Denied {
                        client_id: &client_id,
                        username,
                        action: Action::Will,
                        topic: connect.will.as_ref().map_or("", |w| w.topic.as_str()),
                        decision: explanation,
                    }),
                    Refusal::Expired | Refusal::Authentication { .. } => {}
                }
                return Err(self.refuse(refusal.reason_code()));
            }
        };
        // The name its authenticator gave may be banned too.
        if let Some(ban) = self.broker.ban_of(
            &client_id,
            [principal.username.as_deref(), connect.username.as_deref()],
            self.peer.ip(),
        ) {
            return Err(self.refuse_banned(&client_id, principal.username.as_deref(), &ban));
        }
        if let Some(expiry) = principal.expires_at {
            match deadline_of(expiry, now) {
                Some(deadline) => self.timers.set(Timer::CredentialsExpiry, Some(deadline)),
                None => return Err(self.refuse(ReasonCode::NOT_AUTHORIZED)),
            }
        }
        let principal = Arc::new(principal);
        self.set_permissions(permissions, &principal.client_id);

        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            NEVER_EXPIRES
        };
        let expiry = requested_expiry.min(limits.max_session_expiry).min(
            self.listener
                .policy()
                .config
                .max_session_expiry
                .unwrap_or(u32::MAX),
        );

        let owner = principal.owner();
        let opened =
            match self
                .broker
                .open_session(&client_id, connect.clean_start, expiry, owner.as_ref())
            {
                Ok(opened) => opened,
                Err(SessionOwnedByAnother) => {
                    let owner = owner.as_ref().map(ToString::to_string);
                    self.audit(AuditEvent::ConnectionRefused {
                        client_id: &client_id,
                        username: principal.username.as_deref().unwrap_or(""),
                        cause: ConnectRefusal::SessionOwnedByAnother {
                            owner: owner.as_deref(),
                        },
                    });
                    return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
                }
            };
        self.session_expiry = expiry;

        let mut props = ConnAckProperties::default();
        if v5 {
            self.client_receive_maximum = connect.properties.receive_maximum.unwrap_or(u16::MAX);
            self.client_maximum_packet_size =
                connect.properties.maximum_packet_size.unwrap_or(u32::MAX);
            self.client_topic_alias_maximum = connect.properties.topic_alias_maximum.unwrap_or(0);
            props.receive_maximum = Some(limits.receive_maximum);
            props.maximum_packet_size = Some(limits.max_packet_size);
            props.topic_alias_maximum = Some(limits.topic_alias_maximum);
            if limits.max_qos < 2 {
                props.maximum_qos = QoS::from_u8(limits.max_qos);
            }
            if !limits.retain_available {
                props.retain_available = Some(false);
            }
            if expiry != requested_expiry {
                props.session_expiry_interval = Some(expiry);
            }
            if assigned {
                props.assigned_client_identifier = Some(client_id.clone());
            }
            // A client authenticated through MQTT 5 authentication data is answered with the
            // same method (MQTT-3.2.2.3.17).
            props.authentication_method = connect.properties.authentication_method.clone();
            props.authentication_data = final_data.map(bytes::Bytes::from);
            self.reauth_basis = connect
                .properties
                .authentication_method
                .clone()
                .map(|method| {
                    Box::new(ReauthBasis {
                        method,
                        username: connect.username.clone(),
                    })
                });
        }

        let mut keep_alive = connect.keep_alive;
        if v5
            && (keep_alive > limits.max_keep_alive
                || (keep_alive == 0 && limits.max_keep_alive < u16::MAX))
        {
            keep_alive = limits.max_keep_alive;
            props.server_keep_alive = Some(keep_alive);
        }
        self.keep_alive = keep_alive;
        self.timers.set(
            Timer::KeepAlive,
            self.keep_alive_allowance().map(|allowed| now + allowed),
        );

        {
            let mut state = opened.session.state.lock();
            state.set_principal(Arc::clone(&principal));
            let traffic = Arc::new(ConnectionTraffic::default());
            self.traffic = Some(Arc::clone(&traffic));
            state.set_connection(AttachedConnection {
                listener: Arc::clone(&self.listener.name),
                peer: self.peer,
                version: self.version,
                connected_at: now,
                traffic,
            });
        }
        self.will = connect.will.map(Box::new);
        let policy = self.listener.policy();
        self.phase = Phase::Connected(Attached {
            session: opened.session,
            wake: opened.wake,
            generation: opened.generation,
            principal: Arc::clone(&principal),
            deciding: None,
            token_issuer: policy.token_issuer.clone(),
            device_grant: policy.device_grant.clone(),
        });
        BrokerStats::add(&self.broker.stats().clients_connected, 1);
        BrokerStats::add(&self.broker.stats().connections_total, 1);
        tracing::info!(peer = %self.peer, client_id = %Escaped(&client_id), version = ?self.version, session_present = opened.present, "client connected");
        let hooks = self.broker.hooks();
        if hooks.observes_connections() {
            hooks.emit(&Event::Connected {
                listener: &self.listener.name,
                peer: self.peer,
                client_id: &client_id,
                username: principal.username.as_deref(),
                version: self.version,
                session_present: opened.present,
            });
        }

        let session_present = answers::session_present(self.version, opened.present);
        self.send(&Packet::ConnAck(ConnAck {
            session_present,
            reason_code: ReasonCode::SUCCESS,
            properties: props,
        }));
        if self.oversized {
            // Not even CONNACK fits what the client takes: close without a word.
            self.oversized = false;
            return Err(Close {
                reason: ReasonCode::PACKET_TOO_LARGE,
                publish_will: false,
                by_client: false,
            });
        }
        if opened.present {
            self.resend_inflight(now);
        }
        self.pull_deliveries(now)
    }
}
