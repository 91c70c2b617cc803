//! How a connection's life is timed and how it ends: DISCONNECT from the client, the
//! deadline (connect timeout, keep alive, credentials' expiry, re-checks), shutdown, and the
//! session detached with its will.

use super::*;

impl<S: Shared> Connection<S> {
    pub(super) fn handle_disconnect(&mut self, disconnect: Disconnect) -> Close {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.session_expiry == 0 && expiry != 0 {
                // Setting an expiry at DISCONNECT when CONNECT asked for none is forbidden.
                return self.protocol_error(ReasonCode::PROTOCOL_ERROR);
            }
            let expiry = expiry
                .min(self.broker.config().limits.max_session_expiry)
                .min(
                    self.listener
                        .policy()
                        .config
                        .max_session_expiry
                        .unwrap_or(u32::MAX),
                );
            self.session_expiry = expiry;
            if let Some(session) = self.session() {
                session.state.lock().set_expiry_interval(expiry);
            }
        }
        Close::by_client(disconnect.reason_code)
    }

    /// When the connection must next be looked at if nothing arrives: its earliest timer
    /// (the connect timeout before CONNECT; once connected, one and a half keep-alive periods
    /// after the last packet, the credentials' expiry, the next re-check).
    pub fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Handles the timer due at `now`, if one is.
    pub fn on_timer(&mut self, now: Instant) -> Result<(), Close> {
        match self.timers.due(now) {
            None => Ok(()),
            Some(timer) => match timer {
                Timer::Connect if self.is_connected() => {
                    // A re-authentication's challenge went unanswered.
                    tracing::info!(client_id = self.client_id().unwrap_or(""), "re-authentication challenge not answered within the connect timeout: closed");
                    Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED))
                }
                Timer::Connect => {
                    tracing::debug!(peer = %self.peer, "no CONNECT within the connect timeout");
                    Err(Close {
                        reason: ReasonCode::MAXIMUM_CONNECT_TIME,
                        publish_will: false,
                        by_client: false,
                    })
                }
                Timer::CredentialsExpiry => {
                    // The credentials ended: so do the principal's rights.
                    self.audit(AuditEvent::Disconnected {
                        client_id: self.client_id().unwrap_or(""),
                        cause: DisconnectCause::CredentialsExpired,
                    });
                    self.send_disconnect(ReasonCode::NOT_AUTHORIZED);
                    // RFC 9431 section 5: an `ace` client's will is published whether or not
                    // its token has expired (its topic was checked against the scope).
                    let ace = self
                        .reauth_basis
                        .as_ref()
                        .is_some_and(|b| b.method == tollgate_auth::ace::METHOD);
                    Err(Close {
                        reason: ReasonCode::NOT_AUTHORIZED,
                        publish_will: self.broker.config().will_on_expiry || ace,
                        by_client: false,
                    })
                }
                Timer::Recheck => {
                    if self.is_reauthenticating() {
                        // A re-authentication is being decided: it counts as the check.
                        let next = self.recheck.as_ref().map(|r| later(now, r.interval));
                        self.timers.set(Timer::Recheck, next);
                    } else {
                        self.start_recheck(now);
                    }
                    Ok(())
                }
                Timer::DeviceGrant => self.grant_timer(now),
                Timer::KeepAlive => {
                    tracing::info!(
                        client_id = self.client_id().unwrap_or(""),
                        "keep alive timeout"
                    );
                    Err(self.protocol_error(ReasonCode::KEEP_ALIVE_TIMEOUT))
                }
            },
        }
    }

    /// The broker is shutting down: 5.0 clients are told so.
    pub fn shutdown(&mut self) -> Close {
        self.send_disconnect(ReasonCode::SERVER_SHUTTING_DOWN);
        Close {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            publish_will: false,
            by_client: false,
        }
    }

    /// The connection is over (closed by either side, for `close`'s reason): the session is
    /// detached and the will handled. Call once, after the last bytes were written.
    pub fn closed(&mut self, close: Close) {
        self.timers.clear();
        if !self.is_connected() {
            self.phase = Phase::Closed;
            return;
        }
        BrokerStats::sub(&self.broker.stats().clients_connected, 1);
        self.counts.flush(self.broker.stats());
        let mut will = if close.publish_will {
            self.will.take().map(|w| *w)
        } else {
            None
        };
        // The will is checked again as it is sent: the rules may have changed since CONNECT.
        if let (Some(w), false) = (&will, self.unrestricted) {
            if self.permissions_generation != self.broker.policy_generation() {
                self.compile_permissions();
            }
            let decision = self.permissions.check_publish(&w.topic, w.qos, w.retain);
            self.count_decision(DecidedAction::Publish, &decision);
            if !self.unrestricted && !decision.allowed {
                self.audit_denial(Action::Will, &w.topic, &decision);
                will = None;
            }
        }
        let Phase::Connected(attached) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return;
        };
        let Attached {
            session,
            generation,
            ..
        } = attached;
        tracing::info!(client_id = ?session.client_id, reason = close.reason.0, will = will.is_some(), "client disconnected");
        let hooks = self.broker.hooks();
        if hooks.observes_connections() {
            hooks.emit(&Event::Disconnected {
                client_id: &session.client_id,
                reason: close.reason,
                by_client: close.by_client,
            });
        }
        let session_expiry = self.session_expiry;
        let will = will.map(|will| ClosingWill {
            delay: will
                .properties
                .will_delay_interval
                .unwrap_or(0)
                .min(session_expiry),
            will,
        });
        self.broker.close_session(&session, generation, will);
    }
}
