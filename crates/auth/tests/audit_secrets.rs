//! Audit lines never carry a secret: a token sent in the user name field is left out of the
//! line, allowed or refused, and the mapped user name is written instead.

use std::io::Write;
use std::sync::Arc;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::json;
use tollgate_auth::authentication::{
    AuthChain, ChainDecision, ChainEntry, ConnectRequest, OnError,
};
use tollgate_auth::jwt::{unix_now, JwtAuthenticator, JwtConfig, TokenClaimsConfig, TokenLocation};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_token_in_the_user_name_is_not_written_to_the_audit_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let jwt = JwtAuthenticator::new(
        "idp",
        JwtConfig {
            algorithms: vec!["HS256".into()],
            secret: Some("k".into()),
            claims: TokenClaimsConfig {
                token_from: TokenLocation::Username,
                ..TokenClaimsConfig::default()
            },
            ..JwtConfig::default()
        },
    )
    .unwrap();
    let chain = AuthChain::new(
        vec![ChainEntry {
            authenticator: Arc::new(jwt),
            on_error: OnError::Deny,
            cache: None,
        }],
        false,
        false,
        None,
    );
    let sign = |key: &str| {
        encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "meter-12", "exp": unix_now() + 60}),
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let good = sign("k");
    let forged = sign("not-k");
    for token in [&good, &forged] {
        let mut request = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "c");
        request.username = Some(token.clone());
        let decision = chain.authenticate(&request).await;
        assert_eq!(
            matches!(decision, ChainDecision::Allowed { .. }),
            token == &good
        );
    }
    let log = String::from_utf8(captured.0.lock().clone()).unwrap();
    assert_eq!(log.matches("authentication").count(), 2, "{log}");
    for token in [&good, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log: {log}");
    }
    assert!(
        log.contains("meter-12"),
        "the mapped user name is written: {log}"
    );
}
