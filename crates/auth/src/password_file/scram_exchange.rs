//! SCRAM exchanges (MQTT 5 methods `SCRAM-SHA-256` and `SCRAM-SHA-512`) against a password
//! file's users: the first step answers the client's first message, the second checks its
//! proof. A password file takes every SCRAM exchange put to it: a user it does not know (or
//! knows without keys for that mechanism) gets a simulated exchange that fails at the proof,
//! so an exchange never tells who exists.

use super::PasswordFile;
use crate::authentication::{
    AuthOutcome, Challenge, ConnectRequest, DenyReason, ExchangeState, Identity,
};
use crate::scram::{simulated_keys, Mechanism, ServerExchange};

impl PasswordFile {
    /// One step of a `mechanism` exchange: the first (no exchange yet) or the answer.
    pub(super) fn scram_step(&self, mechanism: Mechanism, request: &ConnectRequest) -> AuthOutcome {
        let data = request.authentication_bytes();
        let Some(state) = &request.exchange else {
            return self.scram_first(mechanism, data);
        };
        let Some(exchange) = state.get::<ServerExchange>() else {
            return AuthOutcome::deny(DenyReason::NotAuthorized, "not a SCRAM exchange");
        };
        if exchange.mechanism() != mechanism {
            return AuthOutcome::deny(
                DenyReason::BadAuthenticationMethod,
                "the authentication method changed during the exchange",
            );
        }
        match exchange.finish(data) {
            Ok(server_final) => AuthOutcome::Allow(Identity {
                username: Some(exchange.username().to_owned()),
                authentication_data: Some(server_final),
                ..Identity::default()
            }),
            Err(failure) => AuthOutcome::deny(DenyReason::BadCredentials, failure.to_string()),
        }
    }

    fn scram_first(&self, mechanism: Mechanism, client_first: &[u8]) -> AuthOutcome {
        let users = self.users.read().clone();
        let started = ServerExchange::start(
            mechanism,
            client_first,
            |name| users.get(name).and_then(|hash| hash.scram_keys(mechanism)),
            |name| simulated_keys(mechanism, &self.simulation_secret, name),
            &ServerExchange::random_nonce(),
        );
        match started {
            Ok((exchange, server_first)) => {
                let user = Some(exchange.username().to_owned());
                AuthOutcome::Continue(Challenge {
                    data: server_first,
                    state: ExchangeState::new(self.name.as_str(), user, exchange),
                })
            }
            Err(failure) => AuthOutcome::deny(DenyReason::BadCredentials, failure.to_string()),
        }
    }
}
