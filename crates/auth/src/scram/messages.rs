//! The two client messages of a SCRAM exchange (RFC 5802 section 7), parsed from bytes a
//! client chose: every field checked, every length bounded, nothing trusted.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Longest client message accepted, in bytes (a user name, a nonce, a proof and their
/// framing fit in far less).
pub(super) const MAX_MESSAGE_LEN: usize = 2048;

/// Longest nonce accepted (the client's and the broker's together), in characters.
const MAX_NONCE_LEN: usize = 512;

/// Longest client nonce accepted: room is left for the broker's (32 characters) within
/// [`MAX_NONCE_LEN`].
const MAX_CLIENT_NONCE_LEN: usize = MAX_NONCE_LEN - 64;

/// Why a client message was refused: the `e=` value of RFC 5802's server-error where one
/// fits, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Malformed {
    /// Not the message's grammar (or not UTF-8, or too long).
    InvalidEncoding,
    /// The client asked for channel binding (`p=`), which is not offered.
    ChannelBindingNotSupported,
    /// A mandatory extension (`m=`) the broker does not know.
    ExtensionsNotSupported,
    /// An authorization identity other than the user name.
    AuthorizationIdentity,
}

impl Malformed {
    /// The RFC's name for it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Malformed::InvalidEncoding => "invalid-encoding",
            Malformed::ChannelBindingNotSupported => "channel-binding-not-supported",
            Malformed::ExtensionsNotSupported => "extensions-not-supported",
            Malformed::AuthorizationIdentity => "invalid-username-encoding",
        }
    }
}

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientFirst {
    /// The GS2 header as sent (`n,,` or `y,,`, with an authorization identity if any): the
    /// final message's channel binding must repeat it.
    pub gs2_header: String,
    /// The user name, decoded.
    pub username: String,
    /// The client's nonce.
    pub nonce: String,
    /// The message without its GS2 header, as sent: part of what both sides sign.
    pub bare: String,
}

impl ClientFirst {
    /// Parses `gs2-header client-first-message-bare`.
    pub(super) fn parse(bytes: &[u8]) -> Result<ClientFirst, Malformed> {
        let text = bounded_text(bytes)?;
        let (flag, rest) = text.split_once(',').ok_or(Malformed::InvalidEncoding)?;
        match flag {
            "n" | "y" => {}
            flag if flag.starts_with("p=") => return Err(Malformed::ChannelBindingNotSupported),
            _ => return Err(Malformed::InvalidEncoding),
        }
        let (authzid, bare) = rest.split_once(',').ok_or(Malformed::InvalidEncoding)?;
        let gs2_header = format!("{flag},{authzid},");
        let mut fields = bare.split(',');
        let first = fields.next().ok_or(Malformed::InvalidEncoding)?;
        if first.starts_with("m=") {
            return Err(Malformed::ExtensionsNotSupported);
        }
        let username = first
            .strip_prefix("n=")
            .ok_or(Malformed::InvalidEncoding)
            .and_then(decode_saslname)?;
        if username.is_empty() {
            return Err(Malformed::InvalidEncoding);
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(Malformed::InvalidEncoding)?;
        if !valid_nonce(nonce) || nonce.len() > MAX_CLIENT_NONCE_LEN {
            return Err(Malformed::InvalidEncoding);
        }
        // Optional extensions follow; none is known, and unknown ones are ignored.
        if !authzid.is_empty() {
            let authzid = authzid
                .strip_prefix("a=")
                .ok_or(Malformed::InvalidEncoding)
                .and_then(decode_saslname)?;
            if authzid != username {
                return Err(Malformed::AuthorizationIdentity);
            }
        }
        Ok(ClientFirst {
            gs2_header,
            username,
            nonce: nonce.to_owned(),
            bare: bare.to_owned(),
        })
    }
}

/// The client's final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientFinal {
    /// The channel binding, decoded (for `n` and `y`: the GS2 header again).
    pub channel_binding: Vec<u8>,
    /// The combined nonce.
    pub nonce: String,
    /// The message up to the proof, as sent: part of what both sides sign.
    pub without_proof: String,
    /// The client's proof.
    pub proof: Vec<u8>,
}

impl ClientFinal {
    /// Parses `c=…,r=…[,extensions],p=…`.
    pub(super) fn parse(bytes: &[u8]) -> Result<ClientFinal, Malformed> {
        let text = bounded_text(bytes)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(Malformed::InvalidEncoding)?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .and_then(|c| STANDARD.decode(c).ok())
            .ok_or(Malformed::InvalidEncoding)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| valid_nonce(n))
            .ok_or(Malformed::InvalidEncoding)?;
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| Malformed::InvalidEncoding)?;
        Ok(ClientFinal {
            channel_binding,
            nonce: nonce.to_owned(),
            without_proof: without_proof.to_owned(),
            proof,
        })
    }
}

/// `bytes` as UTF-8 text of at most [`MAX_MESSAGE_LEN`] bytes.
fn bounded_text(bytes: &[u8]) -> Result<&str, Malformed> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(Malformed::InvalidEncoding);
    }
    std::str::from_utf8(bytes).map_err(|_| Malformed::InvalidEncoding)
}

/// A nonce: printable ASCII but `,`, bounded.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A `saslname` with `=2C` and `=3D` turned back into `,` and `=` (any other `=` is invalid).
fn decode_saslname(name: &str) -> Result<String, Malformed> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(Malformed::InvalidEncoding),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_of_rfc_7677_parses() {
        let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.gs2_header, "n,,");
        assert_eq!(first.username, "user");
        assert_eq!(first.nonce, "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
    }

    #[test]
    fn escaped_names_and_the_same_authorization_identity_are_accepted() {
        let first = ClientFirst::parse(b"y,a=a=2Cb=3D,n=a=2Cb=3D,r=xyz,ext=1").unwrap();
        assert_eq!(first.username, "a,b=");
        assert_eq!(first.gs2_header, "y,a=a=2Cb=3D,");
    }

    #[test]
    fn hostile_client_first_messages_are_refused_with_their_reason() {
        let long = format!("n,,n=user,r={}", "x".repeat(MAX_MESSAGE_LEN));
        let cases: [(&[u8], Malformed); 10] = [
            (
                b"p=tls-exporter,,n=user,r=abc",
                Malformed::ChannelBindingNotSupported,
            ),
            (b"n,,m=ext,n=user,r=abc", Malformed::ExtensionsNotSupported),
            (b"n,a=admin,n=user,r=abc", Malformed::AuthorizationIdentity),
            (b"x,,n=user,r=abc", Malformed::InvalidEncoding),
            (b"n,,n=us=er,r=abc", Malformed::InvalidEncoding),
            (b"n,,n=,r=abc", Malformed::InvalidEncoding),
            (b"n,,n=user", Malformed::InvalidEncoding),
            (b"n,,n=user,r=", Malformed::InvalidEncoding),
            (b"n,,n=\xff,r=abc", Malformed::InvalidEncoding),
            (long.as_bytes(), Malformed::InvalidEncoding),
        ];
        for (message, reason) in cases {
            assert_eq!(
                ClientFirst::parse(message),
                Err(reason),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn a_client_nonce_leaves_room_for_the_brokers() {
        let with = |n: usize| format!("n,,n=user,r={}", "x".repeat(n));
        assert!(ClientFirst::parse(with(MAX_CLIENT_NONCE_LEN).as_bytes()).is_ok());
        assert_eq!(
            ClientFirst::parse(with(MAX_CLIENT_NONCE_LEN + 1).as_bytes()),
            Err(Malformed::InvalidEncoding)
        );
        let combined = "x".repeat(MAX_CLIENT_NONCE_LEN + 32);
        assert!(valid_nonce(&combined));
    }

    #[test]
    fn client_final_splits_off_the_proof() {
        let fin = ClientFinal::parse(b"c=biws,r=abcdef,p=AAEC").unwrap();
        assert_eq!(fin.channel_binding, b"n,,");
        assert_eq!(fin.nonce, "abcdef");
        assert_eq!(fin.without_proof, "c=biws,r=abcdef");
        assert_eq!(fin.proof, [0, 1, 2]);
        for bad in [
            &b"c=biws,r=abcdef"[..],
            b"c=!!,r=abc,p=AAEC",
            b"r=abc,c=biws,p=AAEC",
            b"c=biws,r=abc,p=!!",
        ] {
            assert_eq!(
                ClientFinal::parse(bad),
                Err(Malformed::InvalidEncoding),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
