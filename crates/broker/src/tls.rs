//! TLS for listeners: the server certificate (reloaded when its files change), client
//! certificates checked against a CA bundle and CRLs, and what the broker reads from a client
//! certificate (common name, subject alternative names, fingerprint).
//!
//! rustls is used as what it is, a state machine without I/O: the connection driver moves
//! bytes between the socket and the `ServerConnection`, so TLS connections run in the same
//! readiness-driven loop as plain ones.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};
use tollgate_auth::CertificateInfo;

use crate::config::{ClientCertMode, TlsConfig};

/// Most plaintext bytes rustls holds for sending before the driver waits for the socket.
pub(crate) const TLS_SEND_BUFFER: usize = 64 * 1024;

/// A TLS setting that could not be used: the key of the listener's `tls` table at fault, and
/// what is wrong.
pub type TlsProblem = (&'static str, String);

/// Serial numbers the listener's CRLs revoke, by issuer.
#[derive(Debug, Default)]
struct RevokedSerials(HashSet<(String, String)>);

impl RevokedSerials {
    fn contains(&self, certificate: &CertificateInfo) -> bool {
        self.0
            .contains(&(certificate.issuer.clone(), certificate.serial_hex.clone()))
    }
}

/// Makes TLS server connections for one listener. The server certificate, the client CA
/// bundle and the CRLs are read again on reload (SIGHUP, or when their files change); the
/// serial numbers the CRLs revoke are kept so that connected clients whose certificate is
/// revoked since can be found and closed.
pub struct TlsAcceptor {
    settings: TlsConfig,
    config: RwLock<Arc<ServerConfig>>,
    certificate: Arc<ReloadingCertificate>,
    revoked: RwLock<Arc<RevokedSerials>>,
    /// Modification times of the CA bundle and the CRLs when last read.
    trust_stamp: parking_lot::Mutex<Vec<Option<SystemTime>>>,
}

impl TlsAcceptor {
    /// Loads the certificate, key, CA bundle and CRLs named in `settings`.
    pub fn new(settings: &TlsConfig) -> Result<TlsAcceptor, TlsProblem> {
        let certificate = Arc::new(ReloadingCertificate::load(
            settings.cert.clone(),
            settings.key.clone(),
        )?);
        let (config, revoked) = server_config(settings, &certificate)?;
        Ok(TlsAcceptor {
            settings: settings.clone(),
            config: RwLock::new(config),
            certificate,
            revoked: RwLock::new(Arc::new(revoked)),
            trust_stamp: parking_lot::Mutex::new(trust_stamp(settings)),
        })
    }

    /// A new server-side TLS session for an accepted socket.
    pub fn accept(&self) -> Result<ServerConnection, String> {
        let config = Arc::clone(&self.config.read());
        let mut connection = ServerConnection::new(config).map_err(|e| e.to_string())?;
        connection.set_buffer_limit(Some(TLS_SEND_BUFFER));
        Ok(connection)
    }

    /// Whether the CRLs in force revoke `certificate`.
    pub fn is_revoked(&self, certificate: &CertificateInfo) -> bool {
        self.revoked.read().contains(certificate)
    }

    /// Reads the certificate and key, the CA bundle and the CRLs again (new connections use
    /// them; connected clients are checked against the new CRLs by the caller). What fails
    /// to load leaves the previous files in force. Returns whether the CA bundle or CRLs were
    /// read again.
    pub fn reload(&self) -> Result<bool, String> {
        let certificate = self.certificate.reload();
        let trust = self.reload_trust();
        certificate?;
        trust
    }

    /// Reloads whatever changed on disk since it was read; see [`TlsAcceptor::reload`].
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let mut trust_changed = false;
        if self.certificate.changed() {
            self.certificate.reload()?;
            tracing::info!(cert = %self.certificate.cert_path.display(), "TLS certificate reloaded");
        }
        if *self.trust_stamp.lock() != trust_stamp(&self.settings) {
            trust_changed = self.reload_trust()?;
        }
        Ok(trust_changed)
    }

    fn reload_trust(&self) -> Result<bool, String> {
        if self.settings.client_ca.is_none() {
            return Ok(false);
        }
        let stamp = trust_stamp(&self.settings);
        *self.trust_stamp.lock() = stamp;
        let (config, revoked) = server_config(&self.settings, &self.certificate)
            .map_err(|(key, e)| format!("tls.{key}: {e}"))?;
        *self.config.write() = config;
        *self.revoked.write() = Arc::new(revoked);
        tracing::info!(
            crls = self.settings.crl.len(),
            "TLS client CA and CRLs reloaded"
        );
        Ok(true)
    }
}

/// The modification times of the CA bundle and CRL files.
fn trust_stamp(settings: &TlsConfig) -> Vec<Option<SystemTime>> {
    settings
        .client_ca
        .iter()
        .chain(&settings.crl)
        .map(|p| modified(p))
        .collect()
}

/// The rustls configuration for `settings`, and the serials its CRLs revoke.
fn server_config(
    settings: &TlsConfig,
    certificate: &Arc<ReloadingCertificate>,
) -> Result<(Arc<ServerConfig>, RevokedSerials), TlsProblem> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut revoked = RevokedSerials::default();
    let verifier = match (&settings.client_certs, &settings.client_ca) {
        (ClientCertMode::None, None) => WebPkiClientVerifier::no_client_auth(),
        (ClientCertMode::None, Some(_)) => {
            return Err((
                "client_ca",
                "tls.client_ca is set but tls.client_certs is \"none\"".into(),
            ))
        }
        (_, None) => {
            return Err((
                "client_certs",
                "client certificates need tls.client_ca".into(),
            ))
        }
        (mode, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(ca).map_err(|e| ("client_ca", e))? {
                roots
                    .add(cert)
                    .map_err(|e| ("client_ca", format!("{}: {e}", ca.display())))?;
            }
            let mut crls = Vec::new();
            for path in &settings.crl {
                let crl = CertificateRevocationListDer::from_pem_file(path)
                    .map_err(|e| ("crl", format!("{}: cannot read CRL: {e}", path.display())))?;
                revoked_serials(&crl, &mut revoked)
                    .map_err(|e| ("crl", format!("{}: {e}", path.display())))?;
                crls.push(crl);
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .with_crls(crls);
            let builder = if *mode == ClientCertMode::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| ("client_ca", format!("client certificate verifier: {e}")))?
        }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("cert", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate.clone());
    Ok((Arc::new(config), revoked))
}

/// Adds the (issuer, serial) pairs a CRL revokes.
fn revoked_serials(
    der: &CertificateRevocationListDer<'_>,
    into: &mut RevokedSerials,
) -> Result<(), String> {
    let (_, crl) =
        x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| format!("bad CRL: {e}"))?;
    let issuer = crl.issuer().to_string();
    for entry in crl.iter_revoked_certificates() {
        into.0.insert((issuer.clone(), hex(entry.raw_serial())));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server certificate and key, swapped in place on reload.
#[derive(Debug)]
struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCertificate {
    fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsProblem> {
        let key = load_certified_key(&cert_path, &key_path)?;
        let stamp = modified(&cert_path).max(modified(&key_path));
        Ok(ReloadingCertificate {
            cert_path,
            key_path,
            current: RwLock::new((Arc::new(key), stamp)),
        })
    }

    fn reload(&self) -> Result<(), String> {
        let stamp = modified(&self.cert_path).max(modified(&self.key_path));
        let key = load_certified_key(&self.cert_path, &self.key_path).map_err(|(_, e)| e)?;
        *self.current.write() = (Arc::new(key), stamp);
        Ok(())
    }

    fn changed(&self) -> bool {
        let stamp = modified(&self.cert_path).max(modified(&self.key_path));
        stamp.is_some() && stamp != self.current.read().1
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().0))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsProblem> {
    let certs = read_certificates(cert_path).map_err(|e| ("cert", e))?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        (
            "key",
            format!("{}: cannot read private key: {e}", key_path.display()),
        )
    })?;
    let provider = aws_lc_rs::default_provider();
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        (
            "key",
            format!("{}: unusable private key: {e}", key_path.display()),
        )
    })?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        (
            "key",
            format!(
                "{} and {} do not belong together: {e}",
                cert_path.display(),
                key_path.display()
            ),
        )
    })?;
    Ok(certified)
}

/// What the broker reads from a client certificate (already verified by rustls).
pub fn certificate_info(der: &[u8]) -> CertificateInfo {
    let fingerprint_sha256 = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut info = CertificateInfo {
        fingerprint_sha256,
        ..CertificateInfo::default()
    };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        info.issuer = cert.issuer().to_string();
        info.serial_hex = hex(cert.raw_serial());
        info.common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                use x509_parser::extensions::GeneralName;
                match name {
                    GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                        info.subject_alt_names.push((*s).to_owned())
                    }
                    _ => {}
                }
            }
        }
    }
    info
}
