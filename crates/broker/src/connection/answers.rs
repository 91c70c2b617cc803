//! What each protocol version answers where the versions differ, in one place.
//!
//! MQTT 5.0 has a reason code in every acknowledgement and a server DISCONNECT; 3.1.1 has
//! CONNACK return codes and a SUBACK failure code (0x80) but nothing in PUBACK, PUBREC or
//! UNSUBACK; 3.1 has not even the SUBACK failure code. Where a version cannot say "no", the
//! broker either closes the connection or answers as if it had said yes, as stated per case
//! below. The packet handlers ask here and never match on the version themselves.

use tollgate_mqtt::{ConnectReturnCode, ProtocolVersion, ReasonCode};

use crate::config::{AuthorizationConfig, DeniedPublish, DeniedSubscribeCode};

/// The code a CONNACK refusing for `reason` (a 5.0 reason) carries: the reason itself for
/// 5.0, the return code that best conveys it for 3.x.
pub(super) fn connack_refusal(version: ProtocolVersion, reason: ReasonCode) -> ReasonCode {
    if version.is_v5() {
        reason
    } else {
        ConnectReturnCode::from_v5(reason)
    }
}

/// Whether CONNACK says a session was present (3.1's CONNACK has no such flag).
pub(super) fn session_present(version: ProtocolVersion, present: bool) -> bool {
    present && version != ProtocolVersion::V3_1
}

/// What a refused subscription gets for `reason` (a 5.0 reason): the SUBACK code, or `Err`
/// when the version has no failure code (3.1) and the connection closes with `reason`.
pub(super) fn refused_subscription(
    version: ProtocolVersion,
    reason: ReasonCode,
) -> Result<ReasonCode, ReasonCode> {
    match version {
        ProtocolVersion::V3_1 => Err(reason),
        ProtocolVersion::V3_1_1 => Ok(ReasonCode::UNSPECIFIED_ERROR),
        ProtocolVersion::V5 => Ok(reason),
    }
}

/// The 5.0 reason a subscription the permissions deny gets (as configured; 0x87 by default).
pub(super) fn denied_subscription_reason(authorization: &AuthorizationConfig) -> ReasonCode {
    match authorization.denied_subscribe_code_v5 {
        DeniedSubscribeCode::NotAuthorized => ReasonCode::NOT_AUTHORIZED,
        DeniedSubscribeCode::UnspecifiedError => ReasonCode::UNSPECIFIED_ERROR,
    }
}

/// What a PUBLISH the permissions deny does to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeniedPublishAnswer {
    /// Closed at once, unacknowledged (3.1; 3.1.1 by default).
    Close,
    /// Acknowledged (5.0: with 0x87; 3.1.1: as if taken) and dropped.
    Acknowledge,
    /// Acknowledged with 0x87, then DISCONNECT 0x87 (5.0 with
    /// `disconnect_on_denied_publish_v5`).
    AcknowledgeAndClose,
}

/// What a denied PUBLISH gets, per version and the `[authorization]` settings.
pub(super) fn denied_publish(
    version: ProtocolVersion,
    authorization: &AuthorizationConfig,
) -> DeniedPublishAnswer {
    match version {
        ProtocolVersion::V3_1 => DeniedPublishAnswer::Close,
        ProtocolVersion::V3_1_1 => match authorization.denied_publish_v311 {
            DeniedPublish::Disconnect => DeniedPublishAnswer::Close,
            DeniedPublish::Acknowledge => DeniedPublishAnswer::Acknowledge,
        },
        ProtocolVersion::V5 if authorization.disconnect_on_denied_publish_v5 => {
            DeniedPublishAnswer::AcknowledgeAndClose
        }
        ProtocolVersion::V5 => DeniedPublishAnswer::Acknowledge,
    }
}

/// Whether the version can refuse a QoS 1 or 2 PUBLISH in its acknowledgement (5.0); a 3.x
/// publisher whose message the broker cannot take is disconnected instead.
pub(super) fn can_refuse_publish(version: ProtocolVersion) -> bool {
    version.is_v5()
}

/// The reason code a PUBACK or PUBREC carries for `reason`: 3.x acknowledgements carry none
/// (it is sent as success).
pub(super) fn publish_ack_reason(version: ProtocolVersion, reason: ReasonCode) -> ReasonCode {
    if version.is_v5() {
        reason
    } else {
        ReasonCode::SUCCESS
    }
}

/// Whether UNSUBACK carries a reason code per filter (5.0).
pub(super) fn unsuback_has_reasons(version: ProtocolVersion) -> bool {
    version.is_v5()
}

/// Whether the server can send DISCONNECT (5.0; 3.x connections just close).
pub(super) fn server_disconnect(version: ProtocolVersion) -> bool {
    version.is_v5()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V31: ProtocolVersion = ProtocolVersion::V3_1;
    const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
    const V5: ProtocolVersion = ProtocolVersion::V5;

    #[test]
    fn connack_refusals_are_return_codes_before_5_0() {
        let bad_password = ReasonCode::BAD_USER_NAME_OR_PASSWORD;
        assert_eq!(connack_refusal(V5, bad_password), bad_password);
        assert_eq!(connack_refusal(V311, bad_password), ReasonCode(4));
        assert_eq!(
            connack_refusal(V31, ReasonCode::QUOTA_EXCEEDED),
            ReasonCode(3)
        );
        assert!(!session_present(V31, true));
        assert!(session_present(V311, true));
        assert!(!session_present(V5, false));
    }

    #[test]
    fn a_refused_subscription_closes_a_3_1_connection_and_is_0x80_in_3_1_1() {
        let quota = ReasonCode::QUOTA_EXCEEDED;
        assert_eq!(refused_subscription(V31, quota), Err(quota));
        assert_eq!(
            refused_subscription(V311, quota),
            Ok(ReasonCode::UNSPECIFIED_ERROR)
        );
        assert_eq!(refused_subscription(V5, quota), Ok(quota));
        let mut authorization = AuthorizationConfig::default();
        assert_eq!(
            denied_subscription_reason(&authorization),
            ReasonCode::NOT_AUTHORIZED
        );
        authorization.denied_subscribe_code_v5 = DeniedSubscribeCode::UnspecifiedError;
        assert_eq!(
            denied_subscription_reason(&authorization),
            ReasonCode::UNSPECIFIED_ERROR
        );
    }

    #[test]
    fn a_denied_publish_is_answered_per_version_and_setting() {
        use DeniedPublishAnswer::{Acknowledge, AcknowledgeAndClose, Close};
        let defaults = AuthorizationConfig::default();
        let lenient = AuthorizationConfig {
            denied_publish_v311: DeniedPublish::Acknowledge,
            disconnect_on_denied_publish_v5: true,
            ..AuthorizationConfig::default()
        };
        for (settings, expected) in [
            (&defaults, [Close, Close, Acknowledge]),
            (&lenient, [Close, Acknowledge, AcknowledgeAndClose]),
        ] {
            let answers = [V31, V311, V5].map(|version| denied_publish(version, settings));
            assert_eq!(answers, expected);
        }
    }

    #[test]
    fn only_5_0_says_no_in_acknowledgements_and_disconnects() {
        let refused = ReasonCode::NOT_AUTHORIZED;
        assert_eq!(publish_ack_reason(V5, refused), refused);
        assert_eq!(publish_ack_reason(V311, refused), ReasonCode::SUCCESS);
        assert_eq!(publish_ack_reason(V31, refused), ReasonCode::SUCCESS);
        for (version, v5) in [(V31, false), (V311, false), (V5, true)] {
            assert_eq!(can_refuse_publish(version), v5);
            assert_eq!(unsuback_has_reasons(version), v5);
            assert_eq!(server_disconnect(version), v5);
        }
    }
}
