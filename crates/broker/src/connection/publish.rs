//! PUBLISH from the client: topic and alias checks, the permission check, the will and
//! retained store, routing, and the acknowledgement.

use super::*;

impl<S: Shared> Connection<S> {
    pub(super) fn handle_publish(
        &mut self,
        session: &Arc<Session>,
        mut publish: Publish,
        now: Instant,
    ) -> Result<(), Close> {
        let limits = &self.broker.config().limits;
        self.counts.received.count(
            publish.qos,
            publish.payload.len(),
            &self.broker.stats().received,
        );
        if publish.qos as u8 > limits.max_qos {
            return Err(self.protocol_error(ReasonCode::QOS_NOT_SUPPORTED));
        }
        if publish.retain && !limits.retain_available {
            return Err(self.protocol_error(ReasonCode::RETAIN_NOT_SUPPORTED));
        }
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > limits.topic_alias_maximum {
                return Err(self.protocol_error(ReasonCode::TOPIC_ALIAS_INVALID));
            }
            if publish.topic.is_empty() {
                match self.aliases.as_ref().and_then(|a| a.incoming.get(&alias)) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR)),
                }
            } else {
                self.aliases
                    .get_or_insert_with(Box::default)
                    .set_incoming(alias, publish.topic.clone());
            }
        } else if publish.topic.is_empty() {
            return Err(self.protocol_error(ReasonCode::TOPIC_NAME_INVALID));
        }
        if topic_levels(&publish.topic) > limits.max_topic_levels {
            return Err(self.protocol_error(ReasonCode::TOPIC_NAME_INVALID));
        }

        let packet_id = publish.packet_id;
        let qos = publish.qos;
        if qos == QoS::ExactlyOnce {
            let id = packet_id.expect("QoS 2 publishes carry a packet id");
            let arrival = session
                .state
                .lock()
                .receive_qos2(id, limits.receive_maximum);
            match arrival {
                Qos2Arrival::New => {}
                Qos2Arrival::Duplicate => {
                    // A resend of a message already taken: acknowledge again, route nothing.
                    self.acknowledge(Packet::PubRec(Ack {
                        packet_id: id,
                        ..Ack::default()
                    }));
                    return Ok(());
                }
                Qos2Arrival::TooMany => {
                    return Err(self.protocol_error(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED));
                }
            }
        }

        // `$tollgate/` is the broker's too: token requests, and nothing else.
        if (publish.topic.starts_with('$') || self.offers_tokens())
            && self.is_token_topic(&publish.topic)
        {
            return self.handle_token_publish(session, publish, now);
        }
        // `$SYS` is the broker's (read-only for everyone); anything else is as the principal's
        // permissions say.
        let denied = if tollgate_mqtt::topic::is_sys(&publish.topic) {
            self.audit(AuditEvent::Denied {
                client_id: &session.client_id,
                username: self.username(),
                action: Action::Publish,
                topic: &publish.topic,
                decision: "$SYS is read-only",
            });
            true
        } else if !self.unrestricted {
            let decision = self
                .permissions
                .check_publish(&publish.topic, qos, publish.retain);
            self.count_decision(DecidedAction::Publish, &decision);
            if !decision.allowed {
                self.audit_denial(Action::Publish, &publish.topic, &decision);
            }
            !decision.allowed
        } else {
            false
        };
        let denied_answer = denied
            .then(|| answers::denied_publish(self.version, &self.broker.config().authorization));
        if denied_answer == Some(DeniedPublishAnswer::Close) {
            return Err(Close::abnormal(ReasonCode::NOT_AUTHORIZED));
        }
        // The memory budget refuses publishes before anything is stored (3.x has no negative
        // acknowledgement: its publisher is disconnected; a QoS 0 message is just dropped).
        let memory_refuses = self.broker.memory().pressure() >= Pressure::RefusePublishes;
        // With the store's disk short of space, what would need storage is refused too.
        let disk_refuses = (qos != QoS::AtMostOnce || publish.retain) && self.broker.store_full();
        let overloaded = !denied && (memory_refuses || disk_refuses);
        if overloaded {
            if memory_refuses {
                self.broker.memory().record(Overload::PublishRefused);
            }
            if qos == QoS::AtMostOnce {
                return Ok(());
            }
            if !answers::can_refuse_publish(self.version) {
                return Err(Close::abnormal(ReasonCode::QUOTA_EXCEEDED));
            }
        }
        let reason = if denied {
            ReasonCode::NOT_AUTHORIZED
        } else if overloaded {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            publish.dup = false;
            publish.packet_id = None;
            let hooks = self.broker.hooks();
            if !hooks.is_empty() {
                hooks.emit(&Event::Published {
                    client_id: &session.client_id,
                    topic: &publish.topic,
                    qos,
                    retain: publish.retain,
                    payload: &publish.payload,
                });
            }
            let message = Message::received(publish, session.id, now, self.broker.memory());
            let retained =
                !message.publish.retain || self.broker.retain(Arc::clone(&message)).is_ok();
            let outcome =
                ROUTE_SCRATCH.with_borrow_mut(|scratch| self.broker.route(&message, scratch));
            if qos == QoS::AtMostOnce {
                ReasonCode::SUCCESS
            } else if outcome.dropped > 0 || !retained {
                ReasonCode::QUOTA_EXCEEDED
            } else if outcome.delivered == 0 {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            } else {
                ReasonCode::SUCCESS
            }
        };
        self.acknowledge_publish(session, packet_id, qos, reason);
        if denied_answer == Some(DeniedPublishAnswer::AcknowledgeAndClose) {
            return Err(self.protocol_error(ReasonCode::NOT_AUTHORIZED));
        }
        Ok(())
    }

    /// Acknowledges a QoS 1 or 2 PUBLISH with `reason` (as the version can say it); a QoS 0
    /// one (no packet id) needs nothing.
    pub(super) fn acknowledge_publish(
        &mut self,
        session: &Session,
        packet_id: Option<u16>,
        qos: QoS,
        reason: ReasonCode,
    ) {
        let reason = answers::publish_ack_reason(self.version, reason);
        let Some(packet_id) = packet_id else {
            return;
        };
        let ack = Ack {
            packet_id,
            reason_code: reason,
            properties: AckProperties::default(),
        };
        if qos == QoS::ExactlyOnce {
            if reason.is_error() {
                // A refused QoS 2 message is not held for PUBREL.
                session.state.lock().release_qos2(packet_id);
            }
            self.acknowledge(Packet::PubRec(ack));
        } else {
            self.acknowledge(Packet::PubAck(ack));
        }
    }
}
