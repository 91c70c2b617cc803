//! Deliveries: messages taken from the session's queue, encoded for this client (topic
//! aliases, maximum packet size), and in-flight messages re-sent on resume.

use super::*;

impl<S: Shared> Connection<S> {
    /// After a session is resumed: everything unacknowledged goes out again, PUBLISH with DUP
    /// set, PUBREL as it was. A PUBLISH goes out again only if the principal may still read
    /// its topic (the rules, or the principal, may have changed since it was first sent); one
    /// it may not is forgotten. A PUBREL always goes: the message itself was delivered.
    pub(super) fn resend_inflight(&mut self, now: Instant) {
        let Some(session) = self.session().cloned() else {
            return;
        };
        let mut state = session.state.lock();
        if !self.unrestricted {
            let permissions = Arc::clone(&self.permissions);
            let decisions = &mut self.decisions;
            let client_id = session.client_id.clone();
            state.retain_inflight(|flight| {
                flight.state == OutgoingState::AwaitingPubComp
                    || {
                        let decision = permissions.check_receive(
                            &flight.delivery.message.publish.topic,
                            flight.delivery.qos,
                            false,
                        );
                        if let Some(decisions) = decisions.as_mut() {
                            decisions.count(&permissions, DecidedAction::Receive, &decision);
                        }
                        decision.allowed
                    }
                    || {
                        tracing::debug!(client_id = ?client_id, topic = ?flight.delivery.message.publish.topic, "in-flight message withheld on resume: topic no longer readable");
                        false
                    }
            });
        }
        for flight in state.inflight() {
            match flight.state {
                OutgoingState::AwaitingPubComp => {
                    self.send(&Packet::PubRel(Ack {
                        packet_id: flight.packet_id,
                        ..Ack::default()
                    }));
                }
                OutgoingState::AwaitingPubAck | OutgoingState::AwaitingPubRec => {
                    let expiry = flight.delivery.message.remaining_expiry(now).flatten();
                    self.encode_delivery(&flight.delivery, Some(flight.packet_id), true, expiry);
                }
            }
        }
        drop(state);
    }

    /// Encodes one delivery, assigning a topic alias when the client accepts them, and counts
    /// it as sent. Returns false (and writes nothing) when it is larger than the client's
    /// maximum packet size.
    pub(super) fn encode_delivery(
        &mut self,
        delivery: &Delivery,
        packet_id: Option<u16>,
        dup: bool,
        expiry: Option<u32>,
    ) -> bool {
        let message = &delivery.message.publish;
        let mut overrides = PublishOverrides {
            dup,
            qos: delivery.qos,
            retain: delivery.retain,
            packet_id,
            topic_alias: None,
            omit_topic: false,
            message_expiry_interval: expiry,
            subscription_identifiers: &delivery.subscription_ids,
        };
        if self.version.is_v5() && self.client_topic_alias_maximum > 0 {
            let aliases = self.aliases.get_or_insert_with(Box::default);
            match aliases.outgoing.get(&message.topic) {
                Some(&alias) => {
                    overrides.topic_alias = Some(alias);
                    overrides.omit_topic = true;
                }
                None => {
                    let next = aliases.outgoing.len() + 1;
                    // As many aliases as the client takes, but no more than the broker takes
                    // from clients: each holds its topic for the connection's life.
                    let most = self
                        .client_topic_alias_maximum
                        .min(self.broker.config().limits.topic_alias_maximum);
                    if next <= usize::from(most) {
                        overrides.topic_alias = Some(next as u16);
                    }
                }
            }
        }
        match publish_encoded_len(message, &overrides, self.version) {
            Ok(len) if len as u64 <= u64::from(self.client_maximum_packet_size) => {}
            Ok(len) => {
                tracing::debug!(topic = %Escaped(&message.topic), len, max = self.client_maximum_packet_size, "message larger than the client's maximum packet size: not sent");
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a message");
                return false;
            }
        }
        if let (Some(alias), false) = (overrides.topic_alias, overrides.omit_topic) {
            self.aliases
                .get_or_insert_with(Box::default)
                .set_outgoing(message.topic.clone(), alias);
        }
        match encode_publish_with(message, &overrides, self.version, &mut self.out) {
            Ok(()) => {
                self.counts.sent.count(
                    delivery.qos,
                    message.payload.len(),
                    &self.broker.stats().sent,
                );
                let hooks = self.broker.hooks();
                if !hooks.is_empty() {
                    hooks.emit(&Event::Delivered {
                        client_id: self.client_id().unwrap_or(""),
                        topic: &message.topic,
                        qos: delivery.qos,
                    });
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a message");
                false
            }
        }
    }

    /// Moves messages from the session's queue to the socket's buffer, as far as the client's
    /// in-flight window and the buffer's high-water mark allow. Finds out here when the session
    /// was taken over by another connection.
    pub fn pull_deliveries(&mut self, now: Instant) -> Result<(), Close> {
        let (session, generation) = match &self.phase {
            Phase::Connected(attached) => (Arc::clone(&attached.session), attached.generation),
            _ => return Ok(()),
        };
        if self.permissions_generation != self.broker.policy_generation() {
            self.check_revocation()?;
            self.refresh_permissions();
        }
        let window = usize::from(
            self.client_receive_maximum
                .min(self.broker.config().limits.max_inflight_messages)
                .max(1),
        );
        // Acknowledgements whose commits are durable go first; while a SUBACK still waits,
        // deliveries do too (it leaves before the retained messages it brings).
        self.release_committed();
        if self.suback_held() {
            return Ok(());
        }
        let durable = self.broker.durable();
        let mut waits_for_commit = None;
        let mut state = session.state.lock();
        if state.generation() != generation {
            drop(state);
            tracing::info!(client_id = ?session.client_id, "session taken over by a new connection");
            self.send_disconnect(ReasonCode::SESSION_TAKEN_OVER);
            return Err(Close::abnormal(ReasonCode::SESSION_TAKEN_OVER));
        }
        if let Some(by) = state.kicked_by(generation) {
            drop(state);
            return Err(self.kicked(&by));
        }
        while self.out.len() < OUT_HIGH_WATER {
            let Some(next) = state.next_queued() else {
                break;
            };
            let qos = next.qos;
            if next.ready_at > durable {
                // Written to the store, not yet durable: sent once it is.
                waits_for_commit = Some(next.ready_at);
                break;
            }
            if qos != QoS::AtMostOnce && state.inflight_len() >= window {
                break;
            }
            // Taken off the queue only once it is sent or given up: a QoS 1/2 message moves
            // into the in-flight window as it is counted.
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                match state.packet_id_for_next() {
                    Some(id) => Some(id),
                    // Its identifier is still taken by an older delivery in flight.
                    None => break,
                }
            };
            let delivery = state.next_queued().expect("a next delivery exists");
            let sendable = match delivery.message.remaining_expiry(now) {
                None => false,
                // A queued message goes out only if the client may still read its topic now.
                Some(_) if !self.may_receive(&delivery.message.publish.topic, delivery.qos) => {
                    tracing::debug!(client_id = ?session.client_id, topic = ?delivery.message.publish.topic, "delivery withheld: topic no longer readable");
                    false
                }
                Some(expiry) => self.encode_delivery(delivery, packet_id, false, expiry),
            };
            match (sendable, packet_id) {
                (true, Some(packet_id)) => {
                    let flight_state = if qos == QoS::AtLeastOnce {
                        OutgoingState::AwaitingPubAck
                    } else {
                        OutgoingState::AwaitingPubRec
                    };
                    state.send_next_queued(packet_id, flight_state);
                }
                _ => {
                    state.pop_queued();
                }
            }
        }
        drop(state);
        if let Some(ticket) = waits_for_commit {
            self.wake_at_commit(ticket);
        }
        Ok(())
    }
}
