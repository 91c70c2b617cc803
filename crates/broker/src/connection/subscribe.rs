//! SUBSCRIBE and UNSUBSCRIBE: the bounds, the permission check per filter, retained
//! messages queued as the subscription is made.

use super::*;

impl<S: Shared> Connection<S> {
    /// SUBSCRIBE: each filter checked and granted (or refused) in order, then SUBACK, then the
    /// retained messages. A filter repeated within the packet is handled once, with its last
    /// options (a later subscription replaces an earlier one), and every copy is answered with
    /// that one code. Retained messages are queued while the store is walked, and the walk
    /// stops when the session's queue is full.
    pub(super) fn handle_subscribe(
        &mut self,
        session: &Arc<Session>,
        subscribe: Subscribe,
        now: Instant,
    ) -> Result<(), Close> {
        let limits = &self.broker.config().limits;
        if subscribe.subscriptions.len() > limits.max_filters_per_subscribe {
            tracing::info!(client_id = ?session.client_id, filters = subscribe.subscriptions.len(), max = limits.max_filters_per_subscribe, "SUBSCRIBE with too many filters: connection closed");
            return Err(self.protocol_error(ReasonCode::QUOTA_EXCEEDED));
        }
        let identifier = subscribe.properties.subscription_identifier;
        // The last occurrence of each filter is the one that counts.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(subscribe.subscriptions.len());
        for (i, subscription) in subscribe.subscriptions.iter().enumerate() {
            last.insert(subscription.filter.as_str(), i);
        }
        let mut codes = vec![ReasonCode::SUCCESS; subscribe.subscriptions.len()];
        let mut granted: Vec<(usize, SubscriptionOptions)> = Vec::new();
        let mut token_asked = false;
        for (i, subscription) in subscribe.subscriptions.iter().enumerate() {
            if last[subscription.filter.as_str()] != i {
                continue;
            }
            let asks_token = self.is_token_subscription(&subscription.filter);
            match self.grant(session, subscription)? {
                // A token request: answered once SUBACK is out, never kept.
                Ok(_) if asks_token => {
                    codes[i] = ReasonCode::GRANTED_QOS_0;
                    token_asked = true;
                }
                Ok(options) => {
                    codes[i] = ReasonCode(options.qos as u8);
                    granted.push((i, options));
                }
                Err(code) => {
                    if asks_token {
                        self.token_subscription_denied();
                    }
                    codes[i] = code;
                }
            }
        }
        for (i, subscription) in subscribe.subscriptions.iter().enumerate() {
            codes[i] = codes[last[subscription.filter.as_str()]];
        }
        let mut send_retained = Vec::new();
        for (i, options) in granted {
            let filter = &subscribe.subscriptions[i].filter;
            let existed = self.broker.subscribe(session, filter, options, identifier);
            let wanted = match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            if wanted && tollgate_mqtt::topic::split_shared(filter).is_none() {
                send_retained.push((i, options));
            }
        }
        self.acknowledge(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes: codes,
        }));
        if token_asked {
            self.answer_token_subscription(now);
        }
        for (i, options) in send_retained {
            let filter = &subscribe.subscriptions[i].filter;
            if self
                .queue_retained(session, filter, options, identifier)
                .is_break()
            {
                tracing::debug!(client_id = ?session.client_id, filter = ?filter, "session queue full: retained messages not all queued");
                break;
            }
        }
        self.pull_deliveries(now)
    }

    /// Decides one subscription: the options granted (QoS lowered to what the broker and the
    /// permissions allow), or the SUBACK code refusing it. `Err` closes the connection.
    pub(super) fn grant(
        &mut self,
        session: &Arc<Session>,
        subscription: &tollgate_mqtt::Subscription,
    ) -> Result<Result<SubscriptionOptions, ReasonCode>, Close> {
        let limits = &self.broker.config().limits;
        let shared = tollgate_mqtt::topic::split_shared(&subscription.filter);
        if shared.is_some() && subscription.options.no_local && self.version.is_v5() {
            return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
        }
        let inner = shared.map_or(subscription.filter.as_str(), |s| s.filter);
        let refusal = if topic_levels(inner) > limits.max_topic_levels {
            Some(ReasonCode::TOPIC_FILTER_INVALID)
        } else {
            let state = session.state.lock();
            let subscriptions = state.subscriptions();
            let full = subscriptions.len() >= limits.max_subscriptions_per_session
                || state.subscription_bytes() + subscription.filter.len()
                    > limits.max_subscription_bytes;
            (full && !subscriptions.contains_key(&subscription.filter))
                .then_some(ReasonCode::QUOTA_EXCEEDED)
        };
        if let Some(reason) = refusal {
            tracing::info!(client_id = ?session.client_id, filter = ?subscription.filter, reason = reason.0, "subscription refused");
            return answers::refused_subscription(self.version, reason)
                .map(Err)
                .map_err(Close::abnormal);
        }
        let mut options = subscription.options;
        options.qos = options
            .qos
            .min(QoS::from_u8(limits.max_qos).unwrap_or(QoS::ExactlyOnce));
        if self.unrestricted {
            return Ok(Ok(options));
        }
        // Grant the highest QoS, up to the requested one, the permissions allow.
        let mut decision = self
            .permissions
            .check_subscribe(inner, options.qos, shared.is_some());
        let mut granted = options.qos;
        while let (false, Some(lower_qos)) = (decision.allowed, granted.lower()) {
            granted = lower_qos;
            let lower = self
                .permissions
                .check_subscribe(inner, granted, shared.is_some());
            if lower.allowed {
                decision = lower;
            }
        }
        self.count_decision(DecidedAction::Subscribe, &decision);
        if !decision.allowed {
            self.audit_denial(Action::Subscribe, &subscription.filter, &decision);
            let reason = answers::denied_subscription_reason(&self.broker.config().authorization);
            return match answers::refused_subscription(self.version, reason) {
                Ok(code) => Ok(Err(code)),
                // 3.1 closes, for the denial (whatever the 5.0 code is configured to be).
                Err(_) => Err(Close::abnormal(ReasonCode::NOT_AUTHORIZED)),
            };
        }
        options.qos = granted;
        Ok(Ok(options))
    }

    /// Queues the retained messages `filter` matches and the principal may read, as the
    /// store is walked; breaks when the session's queue takes no more.
    pub(super) fn queue_retained(
        &mut self,
        session: &Arc<Session>,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> ControlFlow<()> {
        let permissions = (!self.unrestricted).then(|| Arc::clone(&self.permissions));
        let decisions = &mut self.decisions;
        self.broker.for_each_retained(filter, |message| {
            if let Some(p) = &permissions {
                let decision = p.check_receive(&message.publish.topic, options.qos, false);
                // Counted when withheld here; one let through is decided (and counted) again
                // as it is sent.
                if !decision.allowed {
                    if let Some(decisions) = decisions.as_mut() {
                        decisions.count(p, DecidedAction::Receive, &decision);
                    }
                    return ControlFlow::Continue(());
                }
            }
            let delivery = Delivery::new(
                Arc::clone(message),
                message.publish.qos.min(options.qos),
                true,
                identifier.into_iter().collect(),
            );
            match session.enqueue(delivery) {
                EnqueueOutcome::Dropped | EnqueueOutcome::Shed => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        })
    }

    pub(super) fn handle_unsubscribe(
        &mut self,
        session: &Arc<Session>,
        unsubscribe: Unsubscribe,
    ) -> Result<(), Close> {
        let mut codes = Vec::new();
        for filter in &unsubscribe.filters {
            let existed = self.broker.unsubscribe(session, filter);
            if answers::unsuback_has_reasons(self.version) {
                codes.push(if existed {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                });
            }
        }
        self.acknowledge(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes: codes,
        }));
        Ok(())
    }
}
