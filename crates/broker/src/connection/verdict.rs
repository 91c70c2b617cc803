//! The principal's permissions on this connection: compiled at CONNECT, refreshed when the
//! policy changes, revocation checks, and the audit line of a denial.

use super::*;

impl<S: Shared> Connection<S> {
    /// Ends the connection if its principal has been revoked (DISCONNECT 0x87 to a 5.0
    /// client; the will as for an expiry).
    pub(super) fn check_revocation(&mut self) -> Result<(), Close> {
        let Some(why) = self.principal().and_then(|principal| {
            admission::revocation(
                &self.listener,
                &self.broker.revocation_list(),
                principal,
                self.certificate.as_deref(),
                SystemTime::now(),
            )
        }) else {
            return Ok(());
        };
        self.audit(AuditEvent::Disconnected {
            client_id: self.client_id().unwrap_or(""),
            cause: DisconnectCause::Revoked(&why),
        });
        self.send_disconnect(ReasonCode::NOT_AUTHORIZED);
        Err(Close {
            reason: ReasonCode::NOT_AUTHORIZED,
            publish_will: self.broker.config().will_on_expiry,
            by_client: false,
        })
    }

    /// An operator closed the connection (`by`: the admin token's name): DISCONNECT 0x98 to
    /// a 5.0 client, and the will, as for any close the client did not ask for.
    pub(super) fn kicked(&mut self, by: &str) -> Close {
        self.audit(AuditEvent::Disconnected {
            client_id: self.client_id().unwrap_or(""),
            cause: DisconnectCause::Kicked(by),
        });
        self.send_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
        Close::abnormal(ReasonCode::ADMINISTRATIVE_ACTION)
    }

    /// Compiles the principal's permissions from the listener's current authorizer chain.
    pub(super) fn compile_permissions(&mut self) {
        self.permissions_generation = self.broker.policy_generation();
        let Some(principal) = self.principal().cloned() else {
            self.set_permissions(Permissions::Unrestricted, "");
            return;
        };
        let permissions = admission::permissions_for(&self.listener, &principal);
        self.set_permissions(permissions, &principal.client_id);
    }

    /// Takes `permissions` as the connection's (the notes of compiling them are logged, for
    /// `client_id`).
    pub(super) fn set_permissions(&mut self, permissions: Permissions, client_id: &str) {
        match permissions {
            Permissions::Compiled(compiled) => {
                for note in compiled.notes() {
                    tracing::warn!(client_id = %Escaped(client_id), authorizer = %Escaped(&note.authorizer), "permissions: {}", Escaped(&note.message));
                }
                self.decisions = Some(Box::new(LocalDecisions::new(
                    &self.broker.stats().decisions,
                    &compiled,
                )));
                self.permissions = Arc::new(compiled);
                self.unrestricted = false;
            }
            Permissions::Unrestricted => {
                self.permissions = Arc::clone(self.broker.allow_all());
                self.decisions = None;
                self.unrestricted = true;
            }
        }
    }

    /// The rules changed (a policy reload): compile again, and drop the subscriptions the
    /// new permissions no longer allow (they stop delivering at once; the client is not told,
    /// as a subscription the broker removes has no packet in MQTT).
    pub fn refresh_permissions(&mut self) {
        self.compile_permissions();
        if self.unrestricted {
            return;
        }
        let Some(session) = self.session().cloned() else {
            return;
        };
        let subscriptions: Vec<(String, QoS)> = session
            .state
            .lock()
            .subscriptions()
            .iter()
            .map(|(f, s)| (f.clone(), s.options.qos))
            .collect();
        for (filter, qos) in subscriptions {
            let shared = tollgate_mqtt::topic::split_shared(&filter);
            let inner = shared.map_or(filter.as_str(), |s| s.filter);
            let decision = self
                .permissions
                .check_subscribe(inner, qos, shared.is_some());
            if !decision.allowed {
                self.audit_denial(Action::SubscriptionRemoved, &filter, &decision);
                self.broker.unsubscribe(&session, &filter);
            }
        }
    }

    /// Counts `decision` of the permissions, for `/metrics`.
    pub(super) fn count_decision(&mut self, action: DecidedAction, decision: &Decision) {
        if let Some(decisions) = &mut self.decisions {
            decisions.count(&self.permissions, action, decision);
        }
    }

    /// May the client be sent a message on `topic` at `qos` (counted)? Always when
    /// unrestricted.
    pub(super) fn may_receive(&mut self, topic: &str, qos: QoS) -> bool {
        if self.unrestricted {
            return true;
        }
        let decision = self.permissions.check_receive(topic, qos, false);
        self.count_decision(DecidedAction::Receive, &decision);
        decision.allowed
    }

    /// Audits a denied action.
    pub(super) fn audit_denial(&self, action: Action, topic: &str, decision: &Decision) {
        let explained = self.permissions.describe(decision).to_string();
        self.audit(AuditEvent::Denied {
            client_id: self.client_id().unwrap_or(""),
            username: self.username(),
            action,
            topic,
            decision: &explained,
        });
    }

    /// Writes an audit line, and tells the embedder's hooks.
    pub(super) fn audit(&self, event: AuditEvent<'_>) {
        self.broker.hooks().audit(event);
    }

    /// The principal's user name (empty without one).
    pub(super) fn username(&self) -> &str {
        self.principal()
            .and_then(|p| p.username.as_deref())
            .unwrap_or("")
    }
}
