//! Re-authentication (AUTH 0x19) and periodic re-checks of a connected client's
//! credentials, and what input waits while one is decided.

use super::*;

impl<S: Shared> Connection<S> {
    /// AUTH from a connected client: re-authentication (0x19) with the method it connected
    /// with, or (0x18) the answer to the broker's challenge during one. Anything else is a
    /// protocol error.
    pub(super) fn handle_auth(&mut self, auth: tollgate_mqtt::Auth) -> Result<(), Close> {
        let same_method = self.reauth_basis.as_ref().is_some_and(|basis| {
            auth.properties.authentication_method.as_deref() == Some(basis.method.as_str())
        });
        if auth.reason_code == ReasonCode::CONTINUE_AUTHENTICATION && same_method {
            let deciding = self.attached_mut().and_then(|a| a.deciding.as_mut());
            if let Some(deciding) = deciding.filter(|d| d.challenged.is_some()) {
                let mut request = deciding.challenged.take().expect("filtered on it");
                request.authentication_data = auth
                    .properties
                    .authentication_data
                    .map(|d| Secret::new(d.to_vec()));
                deciding.request = Some(request);
                self.timers.set(Timer::Connect, None);
                return Ok(());
            }
        }
        // A new re-authentication while one is under way is a protocol error too.
        if auth.reason_code != ReasonCode::REAUTHENTICATE
            || !same_method
            || self.is_reauthenticating()
        {
            return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
        }
        let Some(principal) = self.principal().cloned() else {
            return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
        };
        let request = ConnectRequest {
            listener: Arc::clone(&self.listener.name),
            peer: self.peer,
            client_id: principal.client_id.clone(),
            username: self.reauth_basis.as_ref().and_then(|b| b.username.clone()),
            password: None,
            protocol_level: self.version.level(),
            certificate: self.certificate.as_deref().cloned(),
            authentication_method: auth.properties.authentication_method,
            authentication_data: auth
                .properties
                .authentication_data
                .map(|d| Secret::new(d.to_vec())),
            tls_exporter: None,
            exchange: None,
        };
        if let Some(recheck) = self.recheck.as_mut() {
            // Later re-checks use the fresh credentials.
            recheck.request = request.clone();
        }
        let first = request
            .authentication_method
            .is_some()
            .then(|| Box::new(request.clone()));
        if let Some(attached) = self.attached_mut() {
            attached.deciding = Some(Deciding {
                request: Some(Box::new(request)),
                recheck: false,
                first,
                challenged: None,
                challenges: 0,
            });
        }
        Ok(())
    }

    /// A re-authentication decided: the principal, its permissions and its expiry are
    /// replaced (the session is untouched), or the connection ends with 0x87.
    pub(super) fn finish_reauth(
        &mut self,
        decision: ChainDecision,
        now: Instant,
    ) -> Result<(), Close> {
        let deciding = self.attached_mut().and_then(|a| a.deciding.take());
        let rechecking = deciding.as_ref().is_some_and(|deciding| deciding.recheck);
        let (mut identity, by) = match decision {
            ChainDecision::Allowed { identity, by } => (identity, by),
            ChainDecision::Continue { challenge, .. } => {
                return self.challenge_reauth(deciding, challenge, now);
            }
            ChainDecision::Refused {
                reason: DenyReason::BackendUnavailable,
                ..
            } if rechecking => {
                // The provider could not say: the rights granted stand (until their expiry),
                // and the next check asks again.
                tracing::warn!(client_id = self.client_id().unwrap_or(""), "re-check impossible (authentication backend unavailable): connection kept, checked again later");
                return Ok(());
            }
            ChainDecision::Refused { reason, .. } => {
                let cause = if rechecking {
                    DisconnectCause::RecheckRefused(&reason)
                } else {
                    DisconnectCause::ReauthenticationRefused(ReauthRefusal::Refused(&reason))
                };
                self.audit(AuditEvent::Disconnected {
                    client_id: self.client_id().unwrap_or(""),
                    cause,
                });
                return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
            }
        };
        let sent_username = if rechecking {
            self.recheck
                .as_ref()
                .and_then(|r| r.request.username.clone())
        } else {
            self.reauth_basis.as_ref().and_then(|b| b.username.clone())
        };
        let Some(old) = self.principal().cloned() else {
            return Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR));
        };
        let final_data = identity.authentication_data.take();
        let mut principal = (*old).clone();
        principal.username = identity.username.or(sent_username);
        if principal.owner() != old.owner() {
            // Re-authentication renews a principal's rights; it cannot change who it is.
            self.audit(AuditEvent::Disconnected {
                client_id: &old.client_id,
                cause: DisconnectCause::ReauthenticationRefused(ReauthRefusal::AnotherPrincipal),
            });
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        principal.roles = identity.roles;
        principal.groups = identity.groups;
        principal.claims = identity.claims;
        principal.expires_at = identity.expires_at;
        principal.granted = identity.granted;
        let recheck_interval = self.listener.policy().chain.recheck_interval(&by);
        principal.authenticated_by = by;
        let revocations = self.broker.revocation_list();
        let certificate = self.certificate.as_deref();
        if let Some(why) = admission::revocation(
            &self.listener,
            &revocations,
            &principal,
            certificate,
            SystemTime::now(),
        ) {
            self.audit(AuditEvent::Disconnected {
                client_id: &old.client_id,
                cause: DisconnectCause::ReauthenticationRefused(ReauthRefusal::Revoked(&why)),
            });
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        self.install_principal(principal, now)?;
        self.schedule_recheck(recheck_interval, now);
        if rechecking {
            tracing::debug!(
                client_id = self.client_id().unwrap_or(""),
                "re-check passed"
            );
            return Ok(());
        }
        self.send(&Packet::Auth(tollgate_mqtt::Auth {
            reason_code: ReasonCode::SUCCESS,
            properties: tollgate_mqtt::AuthProperties {
                authentication_method: self.reauth_basis.as_ref().map(|b| b.method.clone()),
                authentication_data: final_data.map(bytes::Bytes::from),
                ..Default::default()
            },
        }));
        self.audit(AuditEvent::Reauthenticated {
            client_id: self.client_id().unwrap_or(""),
        });
        Ok(())
    }

    /// Makes `principal` the connection's (a re-authentication, a device grant's upgrade):
    /// its expiry timed, the session told, the permissions compiled again (dropping the
    /// subscriptions they no longer allow). Credentials already expired close (5.0: 0x87).
    pub(super) fn install_principal(
        &mut self,
        principal: Principal,
        now: Instant,
    ) -> Result<(), Close> {
        let expires = match principal.expires_at {
            Some(expiry) => match deadline_of(expiry, now) {
                Some(deadline) => Some(deadline),
                None => return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED)),
            },
            None => None,
        };
        self.timers.set(Timer::CredentialsExpiry, expires);
        let principal = Arc::new(principal);
        if let Some(attached) = self.attached_mut() {
            attached
                .session
                .state
                .lock()
                .set_principal(Arc::clone(&principal));
            attached.principal = principal;
        }
        self.refresh_permissions();
        Ok(())
    }

    /// Plans the next re-check `interval` from now, when the authenticator that allowed the
    /// client asks for them; drops the kept credentials otherwise.
    pub(super) fn schedule_recheck(&mut self, interval: Option<Duration>, now: Instant) {
        match interval {
            Some(interval) => {
                if let Some(recheck) = self.recheck.as_mut() {
                    recheck.interval = interval;
                    self.timers.set(Timer::Recheck, Some(later(now, interval)));
                }
            }
            None => {
                self.recheck = None;
                self.timers.set(Timer::Recheck, None);
            }
        }
    }

    /// Starts a re-check: the chain is asked again with the kept credentials.
    pub(super) fn start_recheck(&mut self, now: Instant) {
        let Some(recheck) = self.recheck.as_ref() else {
            return;
        };
        let request = Box::new(recheck.request.clone());
        // Until it is decided, the next one is not due.
        let next = later(now, recheck.interval);
        self.timers.set(Timer::Recheck, Some(next));
        if let Some(attached) = self.attached_mut() {
            attached.deciding = Some(Deciding {
                request: Some(request),
                recheck: true,
                first: None,
                challenged: None,
                challenges: 0,
            });
        }
    }

    /// Whether the authentication waiting is a connected client's (a re-authentication or a
    /// re-check), which the chain neither throttles nor answers from its cache.
    pub fn is_reauthenticating(&self) -> bool {
        self.attached().is_some_and(|a| a.deciding.is_some())
    }

    /// Whether the packet at the front of `input` must wait for the authentication being
    /// decided. While CONNECT is decided nothing more is handled (the client waits for its
    /// CONNACK). While a connected client's re-authentication or re-check is decided, its
    /// other packets are handled as usual (MQTT-4.12.1: the client may go on sending), and only
    /// a further AUTH waits for the decision.
    pub fn input_waits(&self, input: &[u8]) -> bool {
        const AUTH_TYPE: u8 = 15;
        // A challenge waiting for its answer reads the answer.
        let answering = self
            .attached()
            .and_then(|a| a.deciding.as_ref())
            .is_some_and(|d| d.challenged.is_some());
        matches!(&self.phase, Phase::Authenticating(p) if p.challenged.is_none())
            || (self.is_reauthenticating()
                && !answering
                && input.first().is_some_and(|b| b >> 4 == AUTH_TYPE))
    }
}
