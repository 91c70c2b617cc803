//! What a client presents at CONNECT, as the authenticators see it.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::principal::CertificateInfo;
use crate::secret::Secret;

/// The credentials and context of one connection attempt.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Name of the listener the client connected to.
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Client identifier (after assignment, if the broker assigned one).
    pub client_id: String,
    /// User name from CONNECT.
    pub username: Option<String>,
    /// Password from CONNECT.
    pub password: Option<Secret>,
    /// Protocol level: 3 (3.1), 4 (3.1.1) or 5 (5.0).
    pub protocol_level: u8,
    /// The verified TLS client certificate, if one was presented.
    pub certificate: Option<CertificateInfo>,
    /// MQTT 5 authentication method.
    pub authentication_method: Option<String>,
    /// MQTT 5 authentication data.
    pub authentication_data: Option<Secret>,
    /// The TLS exporter value of the connection for RFC 9431's proof of possession (label
    /// `EXPORTER-ACE-MQTT-Sign-Challenge`, empty context, 32 bytes), over TLS.
    pub tls_exporter: Option<Secret>,
    /// The exchange this request continues (the client's AUTH 0x18 answering a challenge),
    /// or `None` for the first step.
    pub exchange: Option<super::ExchangeState>,
}

impl ConnectRequest {
    /// A request with no credentials, for tests and tools.
    pub fn new(listener: &str, peer: SocketAddr, client_id: impl Into<String>) -> Self {
        ConnectRequest {
            listener: listener.into(),
            peer,
            client_id: client_id.into(),
            username: None,
            password: None,
            protocol_level: 4,
            certificate: None,
            authentication_method: None,
            authentication_data: None,
            tls_exporter: None,
            exchange: None,
        }
    }

    /// The MQTT 5 authentication data, empty when there is none.
    pub fn authentication_bytes(&self) -> &[u8] {
        self.authentication_data
            .as_ref()
            .map_or(&[][..], |d| d.expose())
    }

    /// Whether the client presented no credentials at all (no user name, password, token or
    /// certificate).
    pub fn is_anonymous(&self) -> bool {
        self.username.is_none()
            && self.password.is_none()
            && self.authentication_method.is_none()
            && self.certificate.is_none()
    }
}
