//! TLS listeners over real connections, with certificates generated at test time: server
//! certificates and their reload, client certificates none / optional / required against a CA
//! and a CRL, and the identities a certificate gives (client, or user name).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_broker::{
    AuthenticatorConfig, CertIdentityField, CertIdentityUse, ClientCertMode, PasswordFileConfig,
    TlsConfig,
};
use tollgate_mqtt::*;

/// A test PKI written to a temporary directory.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_pem: String,
}

/// A client certificate and its key, PEM.
struct ClientCert {
    cert_pem: String,
    key_pem: String,
}

const REVOKED_SERIAL: u64 = 666;

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("tollgate-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = new_ca("Tollgate Test CA");
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        let pki = Pki { dir, ca, ca_pem };
        pki.write_server_cert("server");
        pki.write_crl();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes server.pem / server.key, a certificate for localhost and 127.0.0.1 with `cn`.
    fn write_server_cert(&self, cn: &str) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.path("server.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("server.key"), key.serialize_pem()).unwrap();
    }

    fn write_crl(&self) {
        self.write_crl_revoking(&[REVOKED_SERIAL], 1);
    }

    /// Writes crl.pem revoking `serials`, as CRL number `number`.
    fn write_crl_revoking(&self, serials: &[u64], number: u64) {
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)
        .unwrap();
        std::fs::write(self.path("crl.pem"), crl.pem().unwrap()).unwrap();
    }

    fn client_cert(&self, cn: &str, serial: u64) -> ClientCert {
        client_cert_from(&self.ca, cn, serial, Some("device.example.com"))
    }

    fn tls_config(&self, client_certs: ClientCertMode) -> TlsConfig {
        TlsConfig {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: (client_certs != ClientCertMode::None).then(|| self.path("ca.pem")),
            client_certs,
            crl: vec![self.path("crl.pem")],
            identity: CertIdentityField::Cn,
            identity_as: CertIdentityUse::Client,
            reload_interval: Duration::from_secs(0),
        }
    }

    /// Opens a TLS connection, presenting `client` if given. Fails with the handshake error.
    async fn connect(
        &self,
        addr: SocketAddr,
        client: Option<&ClientCert>,
    ) -> Result<(Box<dyn ByteStream>, Vec<CertificateDer<'static>>), std::io::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_certs(&self.ca_pem).remove(0)).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(c) => builder
                .with_client_auth_cert(pem_certs(&c.cert_pem), pem_key(&c.key_pem))
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let server_chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        // With TLS 1.3 the server refuses a client certificate after the client considers the
        // handshake done: the refusal shows on the first read (see `mqtt_connect`).
        Ok((Box::new(tls), server_chain))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn client_cert_from(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    serial: u64,
    san: Option<&str>,
) -> ClientCert {
    let mut params =
        CertificateParams::new(san.map(|s| vec![s.to_owned()]).unwrap_or_default()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn pem_key(pem: &str) -> PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

async fn tls_broker(
    pki: &Pki,
    mode: ClientCertMode,
    f: impl FnOnce(&mut tollgate_broker::BrokerConfig),
) -> (tollgate_broker::Server, SocketAddr) {
    let tls = pki.tls_config(mode);
    start_broker(|c| {
        c.listeners[0].tls = Some(tls);
        c.listeners[0].allow_anonymous = false;
        c.throttle.enabled = false;
        f(c);
    })
    .await
}

/// CONNECT over an open TLS stream; `Err` when the broker refused the TLS session.
async fn mqtt_connect(
    stream: Box<dyn ByteStream>,
    connect: Connect,
) -> Result<(TestClient, ConnAck), ()> {
    let mut client = TestClient::over(stream, connect.protocol);
    client.send(Packet::Connect(Box::new(connect))).await;
    let mut buf = bytes::BytesMut::new();
    use tokio::io::AsyncReadExt;
    let decoder = Decoder {
        role: Role::Client,
        version: client.version,
        maximum_packet_size: 1 << 20,
    };
    loop {
        match tokio::time::timeout(PACKET_TIMEOUT, client.stream.read_buf(&mut buf))
            .await
            .expect("an answer within the timeout")
        {
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {
                if let Some(Packet::ConnAck(ack)) = decoder.decode(&mut buf).expect("well-formed") {
                    return Ok((client, ack));
                }
            }
        }
    }
}

fn password_connect(client_id: &str, user: &str, password: &str) -> Connect {
    let mut c = connect_packet(ProtocolVersion::V5, client_id);
    c.username = Some(user.into());
    c.password = Some(password.to_owned().into_bytes().into());
    c
}

#[tokio::test]
async fn mqtt_over_tls_publishes_and_subscribes_in_every_version() {
    let pki = Pki::new("plain");
    let (_server, addr) = tls_broker(&pki, ClientCertMode::None, |c| {
        c.listeners[0].allow_anonymous = true
    })
    .await;
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let (stream, _) = pki.connect(addr, None).await.unwrap();
        let (mut sub, ack) = mqtt_connect(stream, connect_packet(version, "sub"))
            .await
            .unwrap();
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        sub.subscribe(1, "secure/#", QoS::ExactlyOnce).await;
        let (stream, _) = pki.connect(addr, None).await.unwrap();
        let (mut publisher, _) = mqtt_connect(stream, connect_packet(version, "pub"))
            .await
            .unwrap();
        publisher
            .publish("secure/1", b"over tls", QoS::ExactlyOnce, false, 1)
            .await;
        let got = sub.recv_publish().await;
        assert_eq!(&got.payload[..], b"over tls");
        sub.disconnect().await;
    }
}

#[tokio::test]
async fn required_client_certificate_authenticates_the_device_and_refuses_others() {
    let pki = Pki::new("required");
    let (server, addr) = tls_broker(&pki, ClientCertMode::Required, |_| {}).await;
    let device = pki.client_cert("device-1", 1);
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (_client, ack) = mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "d1"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let principal = server
        .broker()
        .connected_principal("d1")
        .expect("connected");
    assert_eq!(principal.client_identity.as_deref(), Some("device-1"));
    assert_eq!(
        principal.authenticated_by,
        tollgate_auth::authentication::AuthenticatedBy::Certificate
    );
    let certificate = principal.certificate.as_ref().unwrap();
    assert_eq!(
        certificate.subject_alt_names,
        vec!["device.example.com".to_owned()]
    );
    assert_eq!(certificate.fingerprint_sha256.len(), 64);

    // No certificate: the handshake fails.
    let refused = match pki.connect(addr, None).await {
        Err(_) => true,
        Ok((stream, _)) => mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "x"))
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate is refused");

    // A revoked certificate (in the CRL) and one from another CA are refused too.
    let revoked = pki.client_cert("device-2", REVOKED_SERIAL);
    let other_ca = new_ca("Stranger CA");
    let stranger = client_cert_from(&other_ca, "device-3", 3, None);
    for cert in [&revoked, &stranger] {
        let refused = match pki.connect(addr, Some(cert)).await {
            Err(_) => true,
            Ok((stream, _)) => mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "x"))
                .await
                .is_err(),
        };
        assert!(refused);
    }
}

#[tokio::test]
async fn certificate_and_password_give_a_principal_with_both_identities() {
    let pki = Pki::new("both");
    let passwd = pki.path("passwd");
    std::fs::write(&passwd, "").unwrap();
    let mut editor = PasswordFileEditor::open(&passwd, false).unwrap();
    editor.set("alice", b"wonderland").unwrap();
    editor.save().unwrap();
    let (server, addr) = tls_broker(&pki, ClientCertMode::Optional, |c| {
        c.authenticators = vec![AuthenticatorConfig {
            name: "users".into(),
            on_error: Default::default(),
            cache_ttl: Duration::from_secs(0),
            password_file: Some(PasswordFileConfig {
                path: passwd.clone(),
                reload_interval: Duration::from_secs(0),
                max_parallel_hashes: 1,
                key: Default::default(),
            }),
            jwt: None,
            ..Default::default()
        }];
    })
    .await;
    let device = pki.client_cert("thermostat-7", 7);
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (_c, ack) = mqtt_connect(stream, password_connect("t7", "alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let principal = server.broker().connected_principal("t7").unwrap();
    assert_eq!(principal.username.as_deref(), Some("alice"));
    assert_eq!(principal.client_identity.as_deref(), Some("thermostat-7"));
    assert_eq!(
        principal.authenticated_by,
        tollgate_auth::authentication::AuthenticatedBy::authenticator("users")
    );

    // The certificate does not excuse a wrong password.
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (_c, ack) = mqtt_connect(stream, password_connect("t7b", "alice", "guess"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    // Optional: no certificate and no credentials is not enough…
    let (stream, _) = pki.connect(addr, None).await.unwrap();
    let (_c, ack) = mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "n"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    // …but a password alone is.
    let (stream, _) = pki.connect(addr, None).await.unwrap();
    let (_c, ack) = mqtt_connect(stream, password_connect("p", "alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn certificate_name_as_user_name_like_use_identity_as_username() {
    let pki = Pki::new("asuser");
    let (server, addr) = tls_broker(&pki, ClientCertMode::Required, |c| {
        let tls = c.listeners[0].tls.as_mut().unwrap();
        tls.identity_as = CertIdentityUse::Username;
        tls.identity = CertIdentityField::San;
        c.listeners[0].client_id_patterns = vec!["%u".into()];
    })
    .await;
    let device = pki.client_cert("ignored-cn", 9);
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (_c, ack) = mqtt_connect(
        stream,
        connect_packet(ProtocolVersion::V3_1_1, "device.example.com"),
    )
    .await
    .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let principal = server
        .broker()
        .connected_principal("device.example.com")
        .unwrap();
    assert_eq!(principal.username.as_deref(), Some("device.example.com"));
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (_c, ack) = mqtt_connect(
        stream,
        connect_packet(ProtocolVersion::V3_1_1, "someone-else"),
    )
    .await
    .unwrap();
    assert_eq!(ack.reason_code, ConnectReturnCode::IDENTIFIER_REJECTED);
}

#[tokio::test]
async fn server_certificate_reload_serves_the_new_one_without_dropping_connections() {
    let pki = Pki::new("reload");
    let (server, addr) = tls_broker(&pki, ClientCertMode::None, |c| {
        c.listeners[0].allow_anonymous = true
    })
    .await;
    let common_name = |chain: &[CertificateDer<'static>]| {
        let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        name
    };
    let (stream, chain) = pki.connect(addr, None).await.unwrap();
    assert_eq!(common_name(&chain), "server");
    let (mut stays, _) = mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "stays"))
        .await
        .unwrap();
    pki.write_server_cert("server-renewed");
    server.reload();
    let (_, chain) = pki.connect(addr, None).await.unwrap();
    assert_eq!(common_name(&chain), "server-renewed");
    stays.expect_nothing().await;
}

#[tokio::test]
async fn a_listener_with_missing_certificate_files_does_not_start() {
    let pki = Pki::new("missing");
    let mut tls = pki.tls_config(ClientCertMode::None);
    tls.key = Path::new("/nonexistent/server.key").to_owned();
    let mut config = tollgate_broker::BrokerConfig::default();
    config.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
    config.listeners[0].tls = Some(tls);
    let err = tollgate_broker::Server::start(config)
        .await
        .err()
        .expect("does not start");
    assert!(err.to_string().contains("/nonexistent/server.key"), "{err}");
    let tollgate_broker::StartError::Config(problems) = err else {
        panic!("expected a configuration problem, got {err}");
    };
    let problem = problems.first();
    assert_eq!(problem.key.to_string(), "listener[0].tls.key");
    assert!(
        matches!(
            &problem.cause,
            tollgate_broker::ConfigCause::Tls {
                error: tollgate_broker::TlsError::Unreadable {
                    key: "key",
                    material: tollgate_broker::TlsMaterial::PrivateKey,
                    ..
                },
                ..
            }
        ),
        "{problem:?}"
    );
}

#[tokio::test]
async fn cert_cn_placeholder_binds_permissions_to_the_certificate() {
    let pki = Pki::new("certcn");
    let policy = pki.path("policy.toml");
    std::fs::write(
        &policy,
        "default = \"deny\"\n[[patterns]]\nfilter = \"devices/${cert.cn}/#\"\n",
    )
    .unwrap();
    let (_server, addr) = tls_broker(&pki, ClientCertMode::Required, |c| {
        c.authorizers = vec![tollgate_broker::AuthorizerConfig {
            name: "certs".into(),
            policy_file: Some(tollgate_broker::PolicyFileSource {
                path: policy.clone(),
            }),
            acl_file: None,
            claims: None,
        }];
        c.authorization.reload_interval = Duration::from_secs(0);
    })
    .await;
    let device = pki.client_cert("sensor-42", 42);
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (mut client, ack) = mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "anything"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        client
            .subscribe(1, "devices/sensor-42/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        client
            .subscribe(2, "devices/sensor-43/#", QoS::AtMostOnce)
            .await
            .reason_codes,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    assert_eq!(
        client
            .publish("devices/sensor-42/state", b"ok", QoS::AtLeastOnce, false, 3)
            .await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn a_reloaded_crl_closes_connections_whose_certificate_it_revokes() {
    let pki = Pki::new("crl-reload");
    let (server, addr) = tls_broker(&pki, ClientCertMode::Required, |_| {}).await;
    let device = pki.client_cert("device-1", 41);
    let other = pki.client_cert("device-2", 42);
    let (stream, _) = pki.connect(addr, Some(&device)).await.unwrap();
    let (mut revoked, ack) = mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "d1"))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let (stream, _) = pki.connect(addr, Some(&other)).await.unwrap();
    let (mut kept, _) = mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "d2"))
        .await
        .unwrap();
    pki.write_crl_revoking(&[REVOKED_SERIAL, 41], 2);
    server.reload();
    match revoked.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
    kept.expect_nothing().await;
    let refused = match pki.connect(addr, Some(&device)).await {
        Err(_) => true,
        Ok((stream, _)) => mqtt_connect(stream, connect_packet(ProtocolVersion::V5, "d1"))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "the new CRL refuses the certificate at the handshake"
    );
}

#[tokio::test]
async fn the_admin_listener_speaks_tls_with_the_listener_tls_table_and_refuses_plain_http() {
    use common::admin::{raw_exchange, start_admin_broker, ADMIN_TOKEN};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("admin");
    let dir = TestDir::new("admin-tls");
    let tls = pki.tls_config(ClientCertMode::None);
    let (server, _mqtt, admin) = start_admin_broker(&dir, |c| {
        c.admin.as_mut().unwrap().tls = Some(tls);
    })
    .await;
    let (mut stream, chain) = pki.connect(admin, None).await.expect("a TLS session");
    assert!(!chain.is_empty(), "the server presented its certificate");
    let head = format!(
        "GET /api/v1/clients HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PACKET_TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"total\":0"), "{answer}");
    let plain = raw_exchange(admin, b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n").await;
    assert_eq!(plain, None, "plain HTTP gets no HTTP answer");
    server.shutdown().await;
}

#[tokio::test]
async fn admin_tls_files_that_cannot_be_read_are_refused_at_their_key() {
    let dir = TestDir::new("admin-tls-bad");
    let mut config = anonymous_config();
    config.admin = Some(tollgate_broker::AdminConfig {
        token_file: Some(dir.write("admin.tokens", "")),
        tls: Some(TlsConfig {
            cert: dir.0.join("missing.pem"),
            key: dir.0.join("missing.key"),
            client_ca: None,
            client_certs: ClientCertMode::None,
            crl: Vec::new(),
            identity: CertIdentityField::Cn,
            identity_as: CertIdentityUse::Client,
            reload_interval: Duration::from_secs(0),
        }),
        ..tollgate_broker::AdminConfig::default()
    });
    let problems = tollgate_broker::Server::prepare(config, Default::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(problems.contains("admin.tls."), "{problems}");
}

/// An HS256 token for `sub`, bound to `certificate` (RFC 8705 `cnf` `x5t#S256`) if given.
fn token_bound_to(sub: &str, certificate: Option<&ClientCert>) -> String {
    use base64::Engine;
    use sha2::Digest;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let mut claims = serde_json::json!({ "sub": sub, "exp": exp });
    if let Some(c) = certificate {
        let der = pem_certs(&c.cert_pem).remove(0);
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(der.as_ref()));
        claims["cnf"] = serde_json::json!({ "x5t#S256": thumbprint });
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"bound-secret"),
    )
    .unwrap()
}

/// A TLS listener (client certificates optional) whose JWT authenticator reads the token
/// from MQTT 5 authentication data (method `jwt`), with `binding`.
async fn bound_token_broker(pki: &Pki, binding: &str) -> (tollgate_broker::Server, SocketAddr) {
    let table = format!(
        "name = \"jwt\"\n[jwt]\nalgorithms = [\"HS256\"]\nsecret = \"bound-secret\"\n\
         token_from = \"authentication_data\"\nauthentication_method = \"jwt\"\n\
         certificate_binding = \"{binding}\"\n"
    );
    let authenticator: AuthenticatorConfig = toml::from_str(&table).unwrap();
    tls_broker(pki, ClientCertMode::Optional, |c| {
        c.authenticators = vec![authenticator];
    })
    .await
}

fn token_connect(client_id: &str, token: &str) -> Connect {
    let mut c = connect_packet(ProtocolVersion::V5, client_id);
    c.properties.authentication_method = Some("jwt".into());
    c.properties.authentication_data = Some(token.to_owned().into_bytes().into());
    c
}

/// The CONNACK reason for `token` over TLS, presenting `certificate` if given.
async fn bound_connack(
    pki: &Pki,
    addr: SocketAddr,
    certificate: Option<&ClientCert>,
    token: &str,
) -> ReasonCode {
    let (stream, _) = pki.connect(addr, certificate).await.unwrap();
    let (_client, ack) = mqtt_connect(stream, token_connect("d1", token))
        .await
        .unwrap();
    ack.reason_code
}

#[tokio::test]
async fn a_certificate_bound_token_holds_only_with_its_certificate() {
    let pki = Pki::new("bound");
    let (_server, addr) = bound_token_broker(&pki, "when_present").await;
    let mine = pki.client_cert("device-1", 10);
    let other = pki.client_cert("device-2", 11);
    let bound = token_bound_to("device-1", Some(&mine));
    assert_eq!(
        bound_connack(&pki, addr, Some(&mine), &bound).await,
        ReasonCode::SUCCESS
    );
    // The same token copied to another device, or used without a certificate: refused.
    for certificate in [Some(&other), None] {
        assert_eq!(
            bound_connack(&pki, addr, certificate, &bound).await,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD
        );
    }
    // `when_present`: a token bound to nothing is a bearer token as before.
    let bearer = token_bound_to("device-1", None);
    assert_eq!(
        bound_connack(&pki, addr, None, &bearer).await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn binding_required_refuses_bearer_tokens_and_off_ignores_the_binding() {
    let pki = Pki::new("bound-required");
    let mine = pki.client_cert("device-1", 10);
    let other = pki.client_cert("device-2", 11);
    let (_server, addr) = bound_token_broker(&pki, "required").await;
    let bearer = token_bound_to("device-1", None);
    assert_eq!(
        bound_connack(&pki, addr, Some(&mine), &bearer).await,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    let bound = token_bound_to("device-1", Some(&mine));
    assert_eq!(
        bound_connack(&pki, addr, Some(&mine), &bound).await,
        ReasonCode::SUCCESS
    );

    let (_server, addr) = bound_token_broker(&pki, "off").await;
    assert_eq!(
        bound_connack(&pki, addr, Some(&other), &bound).await,
        ReasonCode::SUCCESS
    );
}

#[tokio::test]
async fn re_authentication_checks_the_binding_again() {
    let pki = Pki::new("bound-reauth");
    let (_server, addr) = bound_token_broker(&pki, "when_present").await;
    let mine = pki.client_cert("device-1", 10);
    let other = pki.client_cert("device-2", 11);
    let (stream, _) = pki.connect(addr, Some(&mine)).await.unwrap();
    let first = token_bound_to("device-1", Some(&mine));
    let (mut client, ack) = mqtt_connect(stream, token_connect("d1", &first))
        .await
        .unwrap();
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let reauth = |token: String| {
        Packet::Auth(Auth {
            reason_code: ReasonCode::REAUTHENTICATE,
            properties: AuthProperties {
                authentication_method: Some("jwt".into()),
                authentication_data: Some(token.into_bytes().into()),
                ..Default::default()
            },
        })
    };
    client
        .send(reauth(token_bound_to("device-1", Some(&mine))))
        .await;
    match client.recv().await {
        Packet::Auth(a) => assert_eq!(a.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    // A fresh token bound to another device's certificate, on this connection: ended.
    client
        .send(reauth(token_bound_to("device-1", Some(&other))))
        .await;
    match client.expect_close().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
}
