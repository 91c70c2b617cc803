//! The broker's side of one SCRAM exchange: the answer to the client's first message, then
//! the check of its proof and the broker's own proof.
//!
//! A user the broker does not know gets an exchange that looks like any other (a salt and
//! an iteration count derived from the user name with a secret of the broker's, so the same
//! name always gets the same ones) and fails only at the proof, as a wrong password does:
//! the exchange does not tell who exists.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::messages::{ClientFinal, ClientFirst, Malformed};
use super::{Mechanism, ScramKeys, MIN_ITERATIONS};

/// Random bytes in the broker's nonce (sent base64: 32 characters).
pub const SERVER_NONCE_LEN: usize = 24;

/// Why an exchange failed. None of them says whether the user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramFailure {
    /// A client message that is not SCRAM's grammar, or asks for what is not offered
    /// (channel binding, a mandatory extension, another authorization identity).
    Malformed(&'static str),
    /// The final message's nonce is not the one of this exchange (a replay of another).
    NonceMismatch,
    /// The final message's channel binding does not repeat the first message's header.
    ChannelBindingMismatch,
    /// The proof is wrong: a wrong password, or a user the broker does not know.
    InvalidProof,
}

impl std::fmt::Display for ScramFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScramFailure::Malformed(what) => write!(f, "malformed SCRAM message ({what})"),
            ScramFailure::NonceMismatch => f.write_str("the nonce is not this exchange's"),
            ScramFailure::ChannelBindingMismatch => f.write_str("channel binding does not match"),
            ScramFailure::InvalidProof => f.write_str("invalid proof"),
        }
    }
}

impl From<Malformed> for ScramFailure {
    fn from(m: Malformed) -> Self {
        ScramFailure::Malformed(m.as_str())
    }
}

/// One exchange after the broker's first message: what checking the client's proof needs.
#[derive(Clone)]
pub struct ServerExchange {
    keys: ScramKeys,
    /// Whether `keys` are the user's (else simulated: every proof fails).
    known: bool,
    username: String,
    gs2_header: String,
    /// The client's nonce and the broker's together.
    nonce: String,
    /// `client-first-message-bare "," server-first-message "," `: the signed message's start.
    signed_prefix: String,
}

impl std::fmt::Debug for ServerExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerExchange")
            .field("mechanism", &self.keys.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ServerExchange {
    /// Answers the client's first message with the server-first message. `keys` are the
    /// user's, `None` for a user the broker does not know (then `simulated` stands in, see
    /// [`simulated_keys`]). `server_nonce` is the broker's nonce: printable, no `,`
    /// ([`ServerExchange::random_nonce`]).
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        keys: impl FnOnce(&str) -> Option<ScramKeys>,
        simulated: impl FnOnce(&str) -> ScramKeys,
        server_nonce: &str,
    ) -> Result<(ServerExchange, Vec<u8>), ScramFailure> {
        let first = ClientFirst::parse(client_first)?;
        let (keys, known) = match keys(&first.username).filter(|k| k.mechanism == mechanism) {
            Some(keys) => (keys, true),
            None => (simulated(&first.username), false),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&keys.salt),
            keys.iterations
        );
        let signed_prefix = format!("{},{server_first},", first.bare);
        Ok((
            ServerExchange {
                keys,
                known,
                username: first.username,
                gs2_header: first.gs2_header,
                nonce,
                signed_prefix,
            },
            server_first.into_bytes(),
        ))
    }

    /// A fresh random nonce for [`ServerExchange::start`].
    pub fn random_nonce() -> String {
        STANDARD.encode(crate::random_bytes::<SERVER_NONCE_LEN>())
    }

    /// The user name the client gave (checked only once [`ServerExchange::finish`] succeeds).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The exchange's mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.keys.mechanism
    }

    /// Checks the client's final message; on success, the server-final message (`v=`, the
    /// broker's signature) for the client to check.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramFailure> {
        let fin = ClientFinal::parse(client_final)?;
        if fin.nonce != self.nonce {
            return Err(ScramFailure::NonceMismatch);
        }
        if fin.channel_binding != self.gs2_header.as_bytes() {
            return Err(ScramFailure::ChannelBindingMismatch);
        }
        let mechanism = self.keys.mechanism;
        let signed = format!("{}{}", self.signed_prefix, fin.without_proof);
        let client_signature = mechanism.hmac(&self.keys.stored_key, signed.as_bytes());
        if fin.proof.len() != client_signature.len() {
            return Err(ScramFailure::InvalidProof);
        }
        let client_key: Vec<u8> = fin
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches = crate::constant_time_eq(&mechanism.hash(&client_key), &self.keys.stored_key);
        if !(matches && self.known) {
            return Err(ScramFailure::InvalidProof);
        }
        let server_signature = mechanism.hmac(&self.keys.server_key, signed.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

/// Keys for a user the broker does not know, the same for the same `username` and `secret`:
/// a salt and keys that look like any user's, with the fewest iterations `tollgate passwd`
/// writes. No proof matches them.
pub fn simulated_keys(mechanism: Mechanism, secret: &[u8], username: &str) -> ScramKeys {
    let derive = |label: &str| {
        let mut data = Vec::with_capacity(label.len() + username.len() + 16);
        data.extend_from_slice(label.as_bytes());
        data.extend_from_slice(mechanism.name().as_bytes());
        data.push(0);
        data.extend_from_slice(username.as_bytes());
        mechanism.hmac(secret, &data)
    };
    ScramKeys {
        mechanism,
        iterations: MIN_ITERATIONS,
        salt: derive("salt")[..16].to_vec(),
        stored_key: derive("stored"),
        server_key: derive("server"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"broker secret for simulated users";

    /// RFC 7677 section 3's exchange, byte for byte.
    const CLIENT_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_keys() -> ScramKeys {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramKeys::derive(Mechanism::Sha256, b"pencil", &salt, 4096)
    }

    fn rfc_exchange() -> ServerExchange {
        let (exchange, server_first) = ServerExchange::start(
            Mechanism::Sha256,
            CLIENT_FIRST,
            |name| (name == "user").then(rfc_keys),
            |name| simulated_keys(Mechanism::Sha256, SECRET, name),
            SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(server_first, SERVER_FIRST);
        exchange
    }

    #[test]
    fn rfc_7677_test_vector_is_reproduced() {
        let exchange = rfc_exchange();
        assert_eq!(exchange.username(), "user");
        assert_eq!(exchange.finish(CLIENT_FINAL).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn a_wrong_proof_fails() {
        let exchange = rfc_exchange();
        let mut tampered = CLIENT_FINAL.to_vec();
        let at = tampered.len() - 5;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(exchange.finish(&tampered), Err(ScramFailure::InvalidProof));
        let short = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA";
        assert_eq!(exchange.finish(short), Err(ScramFailure::InvalidProof));
    }

    #[test]
    fn a_final_message_replayed_into_another_exchange_fails_on_its_nonce() {
        let (fresh, _) = ServerExchange::start(
            Mechanism::Sha256,
            CLIENT_FIRST,
            |_| Some(rfc_keys()),
            |name| simulated_keys(Mechanism::Sha256, SECRET, name),
            &ServerExchange::random_nonce(),
        )
        .unwrap();
        assert_eq!(fresh.finish(CLIENT_FINAL), Err(ScramFailure::NonceMismatch));
    }

    #[test]
    fn channel_binding_must_repeat_the_header() {
        let exchange = rfc_exchange();
        // `c=eSws` is "y,,": not what the first message said.
        let other = b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(other),
            Err(ScramFailure::ChannelBindingMismatch)
        );
    }

    #[test]
    fn an_unknown_user_gets_a_stable_answer_and_fails_like_a_wrong_password() {
        let start = |nonce: &str| {
            ServerExchange::start(
                Mechanism::Sha256,
                b"n,,n=nobody,r=abc",
                |_| None,
                |name| simulated_keys(Mechanism::Sha256, SECRET, name),
                nonce,
            )
            .unwrap()
        };
        let (exchange, first) = start("N1");
        let (_, again) = start("N1");
        assert_eq!(first, again, "the same salt and count for the same name");
        let text = String::from_utf8(first).unwrap();
        assert!(
            text.starts_with("r=abcN1,s=") && text.ends_with(",i=4096"),
            "{text}"
        );
        // Even a proof made with the simulated keys' own salt cannot succeed.
        assert_eq!(
            exchange.finish(b"c=biws,r=abcN1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Err(ScramFailure::InvalidProof)
        );
    }

    #[test]
    fn keys_of_another_mechanism_are_not_used() {
        let (exchange, _) = ServerExchange::start(
            Mechanism::Sha512,
            CLIENT_FIRST,
            |_| Some(rfc_keys()),
            |name| simulated_keys(Mechanism::Sha512, SECRET, name),
            SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(exchange.mechanism(), Mechanism::Sha512);
        assert!(!exchange.known);
    }
}
