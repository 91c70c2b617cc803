//! The identity a connection acts as.

/// Who a connection is: the client (device) and, where one was given, the user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// The MQTT client identifier in use (after assignment, if the server assigned it).
    pub client_id: String,
    /// The user name, if the connection authenticated as a user.
    pub username: Option<String>,
}

impl Principal {
    /// A principal for an anonymous connection with this client identifier.
    pub fn anonymous(client_id: impl Into<String>) -> Self {
        Principal { client_id: client_id.into(), username: None }
    }
}
