//! Acknowledgements from the client (PUBACK, PUBREC, PUBREL, PUBCOMP): the QoS 1 and 2
//! flows of messages in both directions.

use super::*;

impl<S: Shared> Connection<S> {
    // Acknowledgements of outgoing messages, all handled by one rule: an acknowledgement that
    // names a message in flight at another step (PUBACK for a QoS 2 message, PUBREC for a
    // QoS 1 message, PUBCOMP before PUBREC) is a protocol error, and the connection closes
    // (5.0: DISCONNECT 0x82). One that names no message in flight is stale (a resend crossed
    // an acknowledgement, or came after a reconnect): PUBACK and PUBCOMP are ignored, a
    // successful PUBREC is answered with PUBREL (a refusing one needs nothing), as Mosquitto
    // does.

    pub(super) fn handle_puback(
        &mut self,
        session: &Session,
        ack: Ack,
        now: Instant,
    ) -> Result<(), Close> {
        self.complete_outgoing(session, ack.packet_id, OutgoingState::AwaitingPubAck)?;
        self.pull_deliveries(now)
    }

    pub(super) fn handle_pubrec(&mut self, session: &Session, ack: Ack) -> Result<(), Close> {
        let mut state = session.state.lock();
        match state.inflight_mut(ack.packet_id) {
            Some(flight) if flight.state != OutgoingState::AwaitingPubRec => {
                drop(state);
                return Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR));
            }
            Some(_) if ack.reason_code.is_error() => {
                // The client refused the message: the flow ends here.
                state.remove_inflight(ack.packet_id);
                return Ok(());
            }
            Some(_) => state.mark_released(ack.packet_id),
            None if ack.reason_code.is_error() => return Ok(()),
            None => {}
        };
        drop(state);
        self.acknowledge(Packet::PubRel(Ack {
            packet_id: ack.packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }));
        Ok(())
    }

    pub(super) fn handle_pubrel(&mut self, session: &Session, ack: Ack) -> Result<(), Close> {
        // A PUBREL for a flow already complete (resent after a reconnect, say) is answered
        // as if it had just completed: the message was taken once either way.
        session.state.lock().release_qos2(ack.packet_id);
        self.acknowledge(Packet::PubComp(Ack {
            packet_id: ack.packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }));
        Ok(())
    }

    pub(super) fn handle_pubcomp(
        &mut self,
        session: &Session,
        ack: Ack,
        now: Instant,
    ) -> Result<(), Close> {
        self.complete_outgoing(session, ack.packet_id, OutgoingState::AwaitingPubComp)?;
        self.pull_deliveries(now)
    }

    /// Removes an acknowledged message from the in-flight window (see the rule above).
    pub(super) fn complete_outgoing(
        &mut self,
        session: &Session,
        packet_id: u16,
        expected: OutgoingState,
    ) -> Result<(), Close> {
        let mut state = session.state.lock();
        match state.inflight_mut(packet_id).map(|f| f.state) {
            None => Ok(()),
            Some(found) if found == expected => {
                state.remove_inflight(packet_id);
                Ok(())
            }
            Some(_) => {
                drop(state);
                Err(self.protocol_error(ReasonCode::PROTOCOL_ERROR))
            }
        }
    }
}
