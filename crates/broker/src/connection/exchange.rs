//! MQTT 5 enhanced authentication in several steps (SCRAM): the broker's AUTH 0x18 with an
//! authenticator's challenge, and the client's AUTH 0x18 answer put to the chain again,
//! until the chain allows (CONNACK with the method's last data) or refuses.
//!
//! While a challenge waits for its answer the connect timer runs again: an exchange must end
//! within `connect_timeout` of each challenge, and at most [`MAX_CHALLENGES`] are sent. A
//! re-authentication (AUTH 0x19) may take several steps the same way, while the client goes
//! on being served; it ends with AUTH 0x00 carrying the method's last data.

use super::*;
use tollgate_auth::authentication::Challenge;

/// Most challenges one CONNECT is sent before it is refused (SCRAM needs one).
pub(super) const MAX_CHALLENGES: u8 = 4;

impl<S: Shared> Connection<S> {
    /// The chain asks the client `challenge`: AUTH 0x18 with the method of CONNECT, then
    /// wait for the answer.
    pub(super) fn challenge(
        &mut self,
        mut pending: Box<PendingConnect>,
        challenge: Challenge,
        now: Instant,
    ) -> Result<(), Close> {
        let method = pending.connect.properties.authentication_method.clone();
        let first = pending.first.clone();
        let (Some(method), Some(first), true) = (method, first, self.version.is_v5()) else {
            // Only an MQTT 5 CONNECT with a method can be asked anything.
            return Err(self.refuse(ReasonCode::BAD_AUTHENTICATION_METHOD));
        };
        if pending.challenges >= MAX_CHALLENGES {
            tracing::info!(peer = %self.peer, "authentication exchange refused: too many steps");
            return Err(self.refuse(ReasonCode::NOT_AUTHORIZED));
        }
        pending.challenges += 1;
        pending.challenged = Some(ConnectRequest {
            authentication_data: None,
            exchange: Some(challenge.state),
            ..first
        });
        self.phase = Phase::Authenticating(pending);
        self.send_challenge(method, challenge.data, now);
        Ok(())
    }

    /// Sends AUTH 0x18 with `data` and times the answer: it must come within
    /// `connect_timeout` (the connect timer, idle once CONNECT has arrived).
    fn send_challenge(&mut self, method: String, data: Vec<u8>, now: Instant) {
        self.timers.set(
            Timer::Connect,
            Some(now + self.broker.config().limits.connect_timeout()),
        );
        self.send(&Packet::Auth(tollgate_mqtt::Auth {
            reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: tollgate_mqtt::AuthProperties {
                authentication_method: Some(method),
                authentication_data: Some(bytes::Bytes::from(data)),
                ..Default::default()
            },
        }));
    }

    /// A packet while a challenge waits for its answer: AUTH 0x18 with the same method is
    /// the answer, put to the chain; anything else ends the connection (a DISCONNECT quietly,
    /// the rest as a protocol error, MQTT-4.12.0-1).
    pub(super) fn handle_challenge_answer(&mut self, packet: Packet) -> Result<(), Close> {
        let Phase::Authenticating(pending) = &mut self.phase else {
            return Err(Close::abnormal(ReasonCode::PROTOCOL_ERROR));
        };
        let auth = match packet {
            Packet::Auth(auth) => auth,
            Packet::Disconnect(_) => {
                return Err(Close {
                    reason: ReasonCode::SUCCESS,
                    publish_will: false,
                    by_client: true,
                })
            }
            _ => return Err(self.refuse(ReasonCode::PROTOCOL_ERROR)),
        };
        let same_method = auth.properties.authentication_method
            == pending.connect.properties.authentication_method;
        if auth.reason_code != ReasonCode::CONTINUE_AUTHENTICATION || !same_method {
            return Err(self.refuse(ReasonCode::PROTOCOL_ERROR));
        }
        let Some(mut request) = pending.challenged.take() else {
            return Err(self.refuse(ReasonCode::PROTOCOL_ERROR));
        };
        request.authentication_data = auth
            .properties
            .authentication_data
            .map(|d| Secret::new(d.to_vec()));
        pending.request = Some(request);
        self.timers.set(Timer::Connect, None);
        Ok(())
    }
}

impl<S: Shared> Connection<S> {
    /// The chain asks a re-authenticating client `challenge`: AUTH 0x18, then wait for the
    /// answer (the connection is served meanwhile) until `connect_timeout` from now: an
    /// unanswered challenge ends the connection (0x87). A periodic re-check cannot ask the
    /// client anything: it is taken as undecided, and the connection kept until the next.
    pub(super) fn challenge_reauth(
        &mut self,
        deciding: Option<Deciding>,
        challenge: Challenge,
        now: Instant,
    ) -> Result<(), Close> {
        if deciding.as_ref().is_some_and(|d| d.recheck) {
            tracing::warn!(client_id = self.client_id().unwrap_or(""), "re-check undecided (the authenticator asks a question only the client could answer): connection kept, checked again later");
            return Ok(());
        }
        let method = self.reauth_basis.as_ref().map(|b| b.method.clone());
        let Some((mut deciding, method)) = deciding.zip(method) else {
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        };
        let Some(first) = deciding.first.clone() else {
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        };
        if deciding.challenges >= MAX_CHALLENGES {
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        deciding.challenges += 1;
        deciding.challenged = Some(Box::new(ConnectRequest {
            authentication_data: None,
            exchange: Some(challenge.state),
            ..*first
        }));
        if let Some(attached) = self.attached_mut() {
            attached.deciding = Some(deciding);
        }
        self.send_challenge(method, challenge.data, now);
        Ok(())
    }
}
